"""The interactive REPL loop: history, meta-commands, multi-line statements."""

from __future__ import annotations

from dataclasses import dataclass

import click

from seeknal_flow.errors import ReplError, SeeknalError
from seeknal_flow.repl.session import HELP, QueryResult, ReplSession, format_rows


@dataclass
class _Display:
    fmt: str
    max_rows: int


def interactive(session: ReplSession, fmt: str = "table", max_rows: int = 40) -> None:
    display = _Display(fmt, max_rows)
    history = session.project.target / ".repl_history"
    try:
        import readline

        history.parent.mkdir(parents=True, exist_ok=True)
        if history.exists():
            readline.read_history_file(history)
    except (ImportError, OSError):
        readline = None
    click.echo(f"seeknal repl: {len(session.views)} views; .help for commands, .quit to leave")
    buffer: list[str] = []
    try:
        while True:
            try:
                line = input("   ...> " if buffer else "seeknal> ")
            except EOFError:
                click.echo()
                break
            stripped = line.strip()
            if not buffer and stripped.startswith("."):
                if not _meta(session, stripped, display):
                    break
                continue
            if stripped:
                buffer.append(line)
            if buffer and (stripped.endswith(";") or not stripped):
                sql = "\n".join(buffer)
                buffer = []
                try:
                    print_result(session.query_capped(sql, display.max_rows), display.fmt, interactive=True)
                except SeeknalError as e:
                    click.echo(f"error: {e}", err=True)
    except KeyboardInterrupt:
        click.echo()
    finally:
        if readline is not None:
            try:
                readline.write_history_file(history)
            except OSError:
                pass


def print_result(result: QueryResult, fmt: str, interactive: bool = False) -> None:
    """Print a (capped) result; the footer goes to stderr for csv/json so the data stays parseable."""
    click.echo(format_rows(result.columns, result.rows, fmt))
    if result.truncated:
        click.echo(result.footer(interactive), err=fmt != "table")


def _meta(session: ReplSession, command: str, display: _Display) -> bool:
    """Run a meta-command; False means quit."""
    name, _, arg = command.partition(" ")
    arg = arg.strip()
    try:
        if name in (".quit", ".exit"):
            return False
        if name == ".mode":
            if arg not in ("table", "csv", "json"):
                raise ReplError(".mode takes table, csv or json, e.g. .mode csv")
            display.fmt = arg
        elif name == ".maxrows":
            if not arg.isdigit():
                raise ReplError(".maxrows takes a whole number of rows (0: all), e.g. .maxrows 100")
            display.max_rows = int(arg)
        elif name == ".help":
            click.echo(HELP)
        elif name == ".tables":
            for view, path in session.tables():
                click.echo(f"{view}  ({path})")
            if not session.views:
                click.echo("(no outputs yet: run `seeknal run`)")
        elif name == ".schema":
            if not arg.strip():
                raise ReplError(".schema needs a view name, e.g. .schema source_transactions")
            for col, typ in session.schema(arg.strip()):
                click.echo(f"{col}  {typ}")
        else:
            raise ReplError(f"unknown command {name}; .help lists them")
    except SeeknalError as e:
        click.echo(f"error: {e}", err=True)
    return True
