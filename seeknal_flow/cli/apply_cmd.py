"""``seeknal apply``."""

from __future__ import annotations

from pathlib import Path

import click

from seeknal_flow.cli.options import lock_note, no_wait_option, project_option


def register(cli: click.Group) -> None:
    @cli.command("apply")
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.option("--force", is_flag=True, help="Replace an existing file that defines something else.")
    @no_wait_option
    @project_option
    def apply(file: str, force: bool, no_wait: bool, project_dir: str | None) -> None:
        """Validate FILE and move it into seeknal/<kind folder>/."""
        from seeknal_flow.load.workspace import Workspace
        from seeknal_flow.run.applying import apply_file
        from seeknal_flow.run.lock import project_lock

        ws = Workspace.open(project_dir)
        with project_lock(ws.project, "seeknal apply", wait=not no_wait, note=lock_note):
            applied = apply_file(ws, Path(file), force=force)
        verb = "Replaced" if applied.replaced else "Added"
        rel = applied.target.relative_to(ws.project.root)
        click.echo(f"{verb} {', '.join(applied.node_ids)} -> {rel}")
        if applied.schema is not None:
            for field in applied.schema:
                click.echo(f"  {field.name}: {field.type}")
        else:
            click.echo(f"  columns not computed yet: {applied.schema_problem}")
