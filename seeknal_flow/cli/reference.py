"""Generate ``docs/cli.md`` from the click commands, so the reference cannot go stale.

``python -m seeknal_flow.cli.reference > docs/cli.md`` rewrites it; a test fails when the
file differs from what the commands say.
"""

from __future__ import annotations

import click

from seeknal_flow.cli.main import cli

HEADER = """# CLI reference

Generated from the commands themselves (`python -m seeknal_flow.cli.reference > docs/cli.md`);
a test keeps it in step. Every command also answers `--help`. Options that read an environment
variable say so; the precedence is flag > environment > `seeknal_project.yml` > default
([configuration.md](configuration.md)). Commands with `--format json` print one JSON document on
stdout ([json-output.md](json-output.md)).

Exit codes: 0 success, 1 a user or data error (one line on stderr; `seeknal --debug ...` adds
the traceback), 2 a usage error or an internal error, 130 interrupted (Ctrl-C).
"""


def cli_reference() -> str:
    """The whole reference as Markdown."""
    parts = [HEADER]
    ctx = click.Context(cli, info_name="seeknal", **cli.context_settings)
    parts.append(_command(cli, ctx, "seeknal", level=2))
    for name, cmd in sorted(cli.commands.items()):
        sub = click.Context(cmd, info_name=name, parent=ctx)
        parts.append(_command(cmd, sub, f"seeknal {name}", level=2))
        if isinstance(cmd, click.Group):
            for child_name, child in sorted(cmd.commands.items()):
                grand = click.Context(child, info_name=child_name, parent=sub)
                parts.append(_command(child, grand, f"seeknal {name} {child_name}", level=3))
    return "\n".join(parts).rstrip() + "\n"


def _command(cmd: click.Command, ctx: click.Context, title: str, level: int) -> str:
    lines = [f"{'#' * level} `{title}`", ""]
    pieces = cmd.collect_usage_pieces(ctx)
    lines += ["```", f"{title} {' '.join(pieces)}".rstrip(), "```", ""]
    if cmd.help:
        lines += [click.unstyle(_dedent(cmd.help)), ""]
    rows = []
    for param in cmd.get_params(ctx):
        if isinstance(param, click.Argument):
            continue
        record = param.get_help_record(ctx)
        if record is None:
            continue
        names, text = record
        rows.append(f"| `{names}` | {_cell(text)} |")
    if isinstance(cmd, click.Group):
        subs = ", ".join(f"`{n}`" for n in sorted(cmd.commands))
        lines += [f"Subcommands: {subs}.", ""]
    if rows:
        lines += ["| Option | Meaning |", "|---|---|", *rows, ""]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _dedent(text: str) -> str:
    import inspect

    return inspect.cleandoc(text)


if __name__ == "__main__":
    click.echo(cli_reference(), nl=False)
