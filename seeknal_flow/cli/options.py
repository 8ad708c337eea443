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
