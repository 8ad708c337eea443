"""``seeknal init``."""

from __future__ import annotations

from pathlib import Path

import click


def register(cli: click.Group) -> None:
    @cli.command("init")
    @click.option("--name", required=True, help="Project name (letters, digits, _).")
    @click.option("--description", default="", help="One line about the project.")
    @click.option("--path", "path", type=click.Path(file_okay=False), default=None,
                  help="Folder to create the project in (default: current folder).")
    def init(name: str, description: str, path: str | None) -> None:
        """Create a project: seeknal_project.yml, seeknal/<kind>/, data/, target/."""
        from seeknal_flow.load.scaffold import init_project

        root = init_project(name, description, Path(path) if path else Path.cwd())
        click.echo(f"Created project '{name}' in {root}")
        click.echo("Next: put data in data/, then `seeknal draft source NAME --python`")
