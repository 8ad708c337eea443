"""``seeknal dry-run``."""

from __future__ import annotations

from pathlib import Path

import click
import msgspec

from seeknal_flow.cli.options import project_option
from seeknal_flow.cli.output import emit_json, format_option, is_json


class PreviewColumn(msgspec.Struct, kw_only=True):
    name: str
    type: str  # the Arrow type


class NodePreview(msgspec.Struct, kw_only=True):
    node: str
    valid: bool
    columns: list[PreviewColumn]
    rows: list[dict]  # at most --limit rows, values as JSON (dates and times as ISO text)
    output: str  # what the node printed


class DryRunReport(msgspec.Struct, kw_only=True):
    """``seeknal dry-run FILE --format json``: each node of FILE, its schema and first rows."""

    file: str
    limit: int
    nodes: list[NodePreview]


def register(cli: click.Group) -> None:
    @cli.command("dry-run")
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.option("--limit", default=10, show_default=True, type=click.IntRange(min=0), help="Rows to preview.")
    @format_option
    @project_option
    def dry_run(file: str, limit: int, output_format: str, project_dir: str | None) -> None:
        """Validate FILE (syntax, schema, refs) and preview its first rows; writes nothing."""
        from seeknal_flow.load.workspace import Workspace
        from seeknal_flow.repl.table_format import render_table
        from seeknal_flow.run.preview import preview_file

        ws = Workspace.open(project_dir)
        previews = preview_file(ws, Path(file), limit=limit)
        if is_json(output_format):
            emit_json(DryRunReport(file=file, limit=limit, nodes=[
                NodePreview(node=p.node_id, valid=True,
                            columns=[PreviewColumn(name=f.name, type=str(f.type)) for f in p.table.schema],
                            rows=p.table.to_pylist(), output=p.output)
                for p in previews]))
            return
        for p in previews:
            click.echo(f"{p.node_id}: valid")
            if p.output:
                click.echo("  " + p.output.rstrip().replace("\n", "\n  "))
            cols = ", ".join(f"{f.name} {f.type}" for f in p.table.schema)
            click.echo(f"columns: {cols}")
            rows = [tuple(r.values()) for r in p.table.to_pylist()]
            click.echo(render_table(p.table.column_names, rows))
            click.echo(f"({p.table.num_rows} row{'s' if p.table.num_rows != 1 else ''} shown, limit {limit})")
