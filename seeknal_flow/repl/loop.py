"""The interactive REPL loop: history, meta-commands, multi-line statements."""

from __future__ import annotations

import click

from seeknal_flow.errors import ReplError, SeeknalError
from seeknal_flow.repl.session import HELP, ReplSession, format_rows


def interactive(session: ReplSession, fmt: str = "table") -> None:
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
                if not _meta(session, stripped):
                    break
                continue
            if stripped:
                buffer.append(line)
            if buffer and (stripped.endswith(";") or not stripped):
                sql = "\n".join(buffer)
                buffer = []
                try:
                    click.echo(format_rows(*session.query(sql), fmt))
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


def _meta(session: ReplSession, command: str) -> bool:
    """Run a meta-command; False means quit."""
    name, _, arg = command.partition(" ")
    try:
        if name in (".quit", ".exit"):
            return False
        if name == ".help":
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
