"""``seeknal repl``."""

from __future__ import annotations

from pathlib import Path

import click

from seeknal_flow.cli.options import project_option


def register(cli: click.Group) -> None:
    @cli.command("repl")
    @click.option("-e", "--execute", "sql", default=None, help="Run one query, print it, exit.")
    @click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
    @click.option("--output", type=click.Path(dir_okay=False), default=None,
                  help="Write the result to .csv, .json or .parquet.")
    @click.option("--max-rows", type=click.IntRange(min=0), default=40, show_default=True,
                  help="Print at most this many rows of a result, then a footer with the total (0: all).")
    @project_option
    def repl(sql: str | None, fmt: str, output: str | None, max_rows: int, project_dir: str | None) -> None:
        """Explore node outputs and entities with DuckDB SQL (read-only)."""
        from seeknal_flow.load.project import Project
        from seeknal_flow.repl.loop import interactive, print_result
        from seeknal_flow.repl.session import ReplSession

        session = ReplSession(Project.find(Path(project_dir) if project_dir else None))
        if sql is not None:
            if output:
                n = session.export(sql, Path(output))
                click.echo(f"wrote {n} rows to {output}")
            else:
                print_result(session.query_capped(sql, max_rows), fmt)
            return
        interactive(session, fmt, max_rows)
