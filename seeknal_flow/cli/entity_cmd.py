"""``seeknal entity list|show`` and ``seeknal consolidate``."""

from __future__ import annotations

import click

from seeknal_flow.cli.options import lock_note, no_wait_option, project_option
from seeknal_flow.cli.output import emit_json, format_option, is_json


def register(cli: click.Group) -> None:
    @cli.group("entity")
    def entity() -> None:
        """Inspect consolidated entities (target/feature_store/)."""

    @entity.command("list")
    @format_option
    @project_option
    def entity_list(output_format: str, project_dir: str | None) -> None:
        """One line per entity: groups, features, ready/stale, consolidated time."""
        from seeknal_flow.load.workspace import Workspace
        from seeknal_flow.store.entity_info import EntityList, entity_rows

        rows = entity_rows(Workspace.open(project_dir))
        if is_json(output_format):
            emit_json(EntityList(entities=rows))
            return
        if not rows:
            click.echo("No entities yet: declare a feature group with entity=..., then `seeknal run`.")
        for r in rows:
            click.echo(f"{r.name}  {r.groups} FG{'s' if r.groups != 1 else ''}  {r.features} features  "
                       f"{r.status.value}  {r.consolidated_at}")

    @entity.command("show")
    @click.argument("name")
    @format_option
    @project_option
    def entity_show(name: str, output_format: str, project_dir: str | None) -> None:
        """Join keys, consolidated time, schema version, and each group's features and rows."""
        from seeknal_flow.load.workspace import Workspace
        from seeknal_flow.store.entity_info import entity_detail, render_entity

        detail = entity_detail(Workspace.open(project_dir), name)
        if is_json(output_format):
            emit_json(detail)
        else:
            click.echo(render_entity(detail))

    @cli.command("consolidate")
    @click.option("--prune", is_flag=True, help="Drop groups no longer in the project, and empty entities.")
    @click.option("--force", is_flag=True, help="Rebuild every entity, stale or not.")
    @no_wait_option
    @project_option
    def consolidate_cmd(prune: bool, force: bool, no_wait: bool, project_dir: str | None) -> None:
        """Rebuild the entity tables of stale entities (and publish them online)."""
        from seeknal_flow.load.workspace import Workspace
        from seeknal_flow.run.lock import project_lock
        from seeknal_flow.run.post_run import record_steps
        from seeknal_flow.store.consolidation import consolidate_and_publish, read_catalog

        ws = Workspace.open(project_dir)
        with project_lock(ws.project, "seeknal consolidate", wait=not no_wait, note=lock_note):
            rebuilt = consolidate_and_publish(ws.project, ws.dag, ws.memory(), prune=prune, force=force)
            record_steps(ws.project, ws.dag, rebuilt)
        click.echo(f"Consolidated: {', '.join(rebuilt)}" if rebuilt else "Every entity is up to date.")
        for entity in rebuilt:  # what each consolidation did: "1 of 3 groups recomputed"
            if note := (read_catalog(ws.project, entity) or {}).get("consolidation"):
                click.echo(f"  {entity}: {note}")
