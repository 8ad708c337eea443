"""What ``seeknal entity list`` and ``entity show`` print, from the catalogs and the project."""

from __future__ import annotations

import enum

import msgspec

from seeknal_flow.errors import StoreError
from seeknal_flow.load.entities import entity_groups
from seeknal_flow.load.workspace import Workspace
from seeknal_flow.store.consolidation import entity_inputs, is_stale, list_catalogs, read_catalog


class EntityStatus(str, enum.Enum):
    """``ready``: the entity table matches its groups' outputs; ``stale``: a group changed since."""

    READY = "ready"
    STALE = "stale"


class EntityRow(msgspec.Struct, frozen=True, kw_only=True):
    """One line of ``seeknal entity list``."""

    name: str
    groups: int
    features: int
    status: EntityStatus
    consolidated_at: str


class EntityList(msgspec.Struct, kw_only=True):
    """``seeknal entity list --format json``."""

    entities: list[EntityRow]


class FeatureInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    dtype: str  # the Arrow type, e.g. int64, double, string, timestamp[us, tz=UTC]


class GroupInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    rows: int
    event_time_col: str
    ttl: str | None
    last_updated: str | None
    features: list[FeatureInfo]


class EntityDetail(msgspec.Struct, frozen=True, kw_only=True):
    """``seeknal entity show NAME --format json``."""

    name: str
    join_keys: list[str]
    rows: int
    consolidated_at: str
    schema_version: int
    groups: list[GroupInfo]


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
        rows.append(EntityRow(name=name, groups=len(groups),
                              features=sum(len(g["features"]) for g in groups.values()),
                              status=status, consolidated_at=catalog["consolidated_at"]))
    return rows


def entity_detail(ws: Workspace, name: str) -> EntityDetail:
    """What ``seeknal entity show`` prints: keys, rows, and each group's features with dtypes."""
    catalog = read_catalog(ws.project, name)
    if catalog is None:
        known = ", ".join(c["entity"] for c in list_catalogs(ws.project)) or "none"
        raise StoreError(f"unknown entity '{name}'; consolidated entities: {known}")
    groups = []
    for group, info in sorted(catalog["groups"].items()):
        schema = info.get("schema", {})
        groups.append(GroupInfo(
            name=group, rows=info["row_count"], event_time_col=info["event_time_col"], ttl=info.get("ttl"),
            last_updated=info.get("last_updated"),
            features=[FeatureInfo(name=f, dtype=schema.get(f, "unknown")) for f in info["features"]]))
    return EntityDetail(name=name, join_keys=list(catalog["join_keys"]), rows=catalog["row_count"],
                        consolidated_at=catalog["consolidated_at"], schema_version=catalog["schema_version"],
                        groups=groups)


def render_entity(detail: EntityDetail) -> str:
    lines = [
        f"entity: {detail.name}",
        f"join keys: {', '.join(detail.join_keys)}",
        f"rows: {detail.rows}",
        f"consolidated at: {detail.consolidated_at}",
        f"schema version: {detail.schema_version}",
        "groups:",
    ]
    for g in detail.groups:
        lines.append(f"  {g.name}: {g.rows} rows, event time column {g.event_time_col}"
                     + (f", ttl {g.ttl}" if g.ttl else ""))
        lines.append(f"    features: {', '.join(f.name for f in g.features)}")
    return "\n".join(lines)
