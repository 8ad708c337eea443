"""``seeknal lineage``."""

from __future__ import annotations

import click

from seeknal_flow.cli.options import project_option


def register(cli: click.Group) -> None:
    @cli.command("lineage")
    @click.argument("node", required=False)
    @click.option("--ascii", "ascii_only", is_flag=True, help="Draw with ASCII characters only.")
    @project_option
    def lineage(node: str | None, ascii_only: bool, project_dir: str | None) -> None:
        """Show the DAG: upstream and downstream of NODE, or the whole graph."""
        from seeknal_flow.load.workspace import Workspace
        from seeknal_flow.plan.lineage import render_lineage

        ws = Workspace.open(project_dir)
        node_id = ws.dag.resolve(node) if node else None
        click.echo(render_lineage(ws.dag, node_id, ascii_only))
