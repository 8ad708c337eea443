"""``seeknal draft``."""

from __future__ import annotations

from pathlib import Path

import click


def register(cli: click.Group) -> None:
    @cli.command("draft")
    @click.argument("kind")
    @click.argument("name")
    @click.option("--python", "python", is_flag=True, help="Write a Python (decorator) node instead of YAML.")
    @click.option("--deps", default="", help="Comma-separated PEP 723 dependencies (with --python).")
    @click.option("--description", default="", help="The node's description.")
    def draft(kind: str, name: str, python: bool, deps: str, description: str) -> None:
        """Write draft_<kind>_<name>.yml|.py from a template; fill in the TODOs, then `seeknal apply`."""
        from seeknal_flow.authoring.drafts import write_draft

        path = write_draft(
            kind, name, python=python, deps=[d for d in deps.split(",") if d.strip()],
            description=description, folder=Path.cwd(),
        )
        click.echo(f"Wrote {path.name}: fill in its TODOs, preview with `seeknal dry-run {path.name}`, "
                   f"then `seeknal apply {path.name}`")
