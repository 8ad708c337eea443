"""Options shared by several commands."""

from __future__ import annotations

import click

project_option = click.option(
    "--project",
    "project_dir",
    type=click.Path(file_okay=False),
    default=None,
    envvar="SEEKNAL_PROJECT",
    show_envvar=True,
    help="Project folder (default: walk up from the current folder to seeknal_project.yml).",
)

no_wait_option = click.option(
    "--no-wait",
    is_flag=True,
    help="If another seeknal command holds the project lock, exit 1 at once instead of waiting.",
)


def lock_note(text: str) -> None:
    """Where lock messages go: stderr, so --format json output stays clean."""
    click.echo(text, err=True)
