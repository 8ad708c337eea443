"""``seeknal lineage``."""

from __future__ import annotations

import click

from seeknal_flow.cli.options import project_option
from seeknal_flow.cli.output import emit_json
from seeknal_flow.plan.lineage import Direction, LineageFormat


def register(cli: click.Group) -> None:
    @cli.command("lineage")
    @click.argument("node", required=False)
    @click.option("--format", "output_format", type=click.Choice([f.value for f in LineageFormat]),
                  default=LineageFormat.TREE.value, show_default=True,
                  help="tree/ascii: indented trees; mermaid or dot: a graph to render; json: nodes and edges.")
    @click.option("--direction", type=click.Choice([d.value for d in Direction]), default=Direction.BOTH.value,
                  show_default=True, help="With NODE: what feeds it (upstream), what it feeds, or both.")
    @click.option("--ascii", "ascii_only", is_flag=True, help="Same as --format ascii.")
    @project_option
    def lineage(node: str | None, output_format: str, direction: str, ascii_only: bool,
                project_dir: str | None) -> None:
        """Show the DAG: upstream and downstream of NODE, or the whole graph."""
        from seeknal_flow.load.workspace import Workspace
        from seeknal_flow.plan.lineage import node_lineage, render_dot, render_lineage, render_mermaid

        ws = Workspace.open(project_dir)
        node_id = ws.dag.resolve(node) if node else None
        fmt, way = LineageFormat(output_format), Direction(direction)
        if ascii_only:
            fmt = LineageFormat.ASCII
        if fmt in (LineageFormat.TREE, LineageFormat.ASCII):
            click.echo(render_lineage(ws.dag, node_id, fmt == LineageFormat.ASCII, way))
            return
        graph = node_lineage(ws.dag, node_id, way)
        if fmt == LineageFormat.JSON:
            emit_json(graph)
        else:
            click.echo(render_mermaid(graph) if fmt == LineageFormat.MERMAID else render_dot(graph))
