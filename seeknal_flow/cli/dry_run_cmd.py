"""``seeknal dry-run``."""

from __future__ import annotations

from pathlib import Path

import click

from seeknal_flow.cli.options import project_option


def register(cli: click.Group) -> None:
    @cli.command("dry-run")
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.option("--limit", default=10, show_default=True, type=click.IntRange(min=0), help="Rows to preview.")
    @project_option
    def dry_run(file: str, limit: int, project_dir: str | None) -> None:
        """Validate FILE (syntax, schema, refs) and preview its first rows; writes nothing."""
        from seeknal_flow.load.workspace import Workspace
        from seeknal_flow.repl.table_format import render_table
        from seeknal_flow.run.preview import preview_file

        ws = Workspace.open(project_dir)
        for p in preview_file(ws, Path(file), limit=limit):
            click.echo(f"{p.node_id}: valid")
            if p.output:
                click.echo("  " + p.output.rstrip().replace("\n", "\n  "))
            cols = ", ".join(f"{f.name} {f.type}" for f in p.table.schema)
            click.echo(f"columns: {cols}")
            rows = [tuple(r.values()) for r in p.table.to_pylist()]
            click.echo(render_table(p.table.column_names, rows))
            click.echo(f"({p.table.num_rows} row{'s' if p.table.num_rows != 1 else ''} shown, limit {limit})")
