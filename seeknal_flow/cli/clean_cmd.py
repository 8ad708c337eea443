"""``seeknal clean``: delete orphaned outputs and temp files left by killed writers."""

from __future__ import annotations

import click

from seeknal_flow.cli.options import lock_note, no_wait_option, project_option


def register(cli: click.Group) -> None:
    @cli.command("clean")
    @click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
    @no_wait_option
    @project_option
    def clean(dry_run: bool, no_wait: bool, project_dir: str | None) -> None:
        """Delete outputs of nodes no longer in the project, and stale temp files, under target/.

        Removed feature groups leave their entities (rebuilt and republished without them);
        an entity left without groups is dropped with its online copy. Temp files are removed
        only when the process that wrote them is gone. Nothing outside target/ is touched.
        """
        from seeknal_flow.load.workspace import Workspace
        from seeknal_flow.run.lock import project_lock
        from seeknal_flow.run.removal import clean_project

        ws = Workspace.open(project_dir)
        with project_lock(ws.project, "seeknal clean", wait=not no_wait, note=lock_note):
            removal = clean_project(ws.project, ws.dag, ws.memory(), dry_run=dry_run)
        verb = "Would delete" if dry_run else "Deleted"
        if not removal.paths and not removal.nodes:
            click.echo("Nothing to clean.")
            return
        for path in removal.paths:
            click.echo(f"{verb} {path}")
        if removal.nodes:
            click.echo(f"{'Would forget' if dry_run else 'Forgot'} removed node(s): {', '.join(removal.nodes)}")
        if removal.entities_to_rebuild:
            verb = "Would rebuild" if dry_run else "Rebuilt"
            click.echo(f"{verb} entities: {', '.join(removal.entities_to_rebuild)}")
