"""What ``seeknal entity list`` and ``entity show`` print, from the catalogs and the project."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from seeknal_flow.errors import StoreError
from seeknal_flow.load.entities import entity_groups
from seeknal_flow.load.workspace import Workspace
from seeknal_flow.store.consolidation import entity_inputs, is_stale, list_catalogs, read_catalog


class EntityStatus(str, enum.Enum):
    """``ready``: the entity table matches its groups' outputs; ``stale``: a group changed since."""

    READY = "ready"
    STALE = "stale"


@dataclass(frozen=True)
class EntityRow:
    name: str
    groups: int
    features: int
    status: EntityStatus
    consolidated_at: str


def entity_rows(ws: Workspace) -> list[EntityRow]:
    entities = entity_groups(ws.dag)
    rows = []
    for catalog in list_catalogs(ws.project):
        name = catalog["entity"]
        groups = catalog["groups"]
        status = EntityStatus.READY
        if name in entities:
            keys, specs = entities[name]
            if is_stale(ws.project, catalog, entity_inputs(ws.project, ws.dag, specs, catalog), keys):
                status = EntityStatus.STALE
        rows.append(EntityRow(name, len(groups), sum(len(g["features"]) for g in groups.values()),
                              status, catalog["consolidated_at"]))
    return rows


def describe_entity(ws: Workspace, name: str) -> str:
    catalog = read_catalog(ws.project, name)
    if catalog is None:
        known = ", ".join(c["entity"] for c in list_catalogs(ws.project)) or "none"
        raise StoreError(f"unknown entity '{name}'; consolidated entities: {known}")
    lines = [
        f"entity: {name}",
        f"join keys: {', '.join(catalog['join_keys'])}",
        f"rows: {catalog['row_count']}",
        f"consolidated at: {catalog['consolidated_at']}",
        f"schema version: {catalog['schema_version']}",
        "groups:",
    ]
    for group, info in sorted(catalog["groups"].items()):
        lines.append(f"  {group}: {info['row_count']} rows, event time column {info['event_time_col']}"
                     + (f", ttl {info['ttl']}" if info.get("ttl") else ""))
        lines.append(f"    features: {', '.join(info['features'])}")
    return "\n".join(lines)
