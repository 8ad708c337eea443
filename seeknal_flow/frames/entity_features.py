"""``ctx.features``: an entity's features inside a node — latest, as of a time, or PIT over a spine.

It reads each group's history (the group's own output, an upstream of the
node), not the published snapshot, so a run sees the values it just computed
and the PIT path reuses the ASOF operator.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from seeknal_flow.errors import FrameError
from seeknal_flow.frames.pit import as_of as group_as_of
from seeknal_flow.frames.pit import pit_join


def split_features(features: list[str]) -> dict[str, list[str]]:
    """``["fg.a", "fg.b", "other.c"]`` -> ``{"fg": ["a", "b"], "other": ["c"]}``.

    >>> split_features(["customer_features.total_revenue"])
    {'customer_features': ['total_revenue']}
    """
    groups: dict[str, list[str]] = {}
    for ref in features:
        group, sep, feature = ref.partition(".")
        if not sep or not group or not feature:
            raise FrameError(f"feature '{ref}' must be written group.feature, e.g. customer_features.total_revenue")
        groups.setdefault(group, []).append(feature)
    return groups


def entity_features(
    frames: dict[str, Any],
    entity: str,
    features: list[str],
    *,
    keys: list[dict] | None = None,
    as_of: Any = None,
    spine: Any = None,
    date_col: str | None = None,
    memory=None,
) -> pa.Table:
    """Compute the features; ``frames`` maps ``feature_group.<name>`` to FeatureFrames."""
    per_group = split_features(features)
    chosen = []
    for group, feats in per_group.items():
        frame = frames.get(f"feature_group.{group}")
        if frame is None:
            raise FrameError(
                f"ctx.features: 'feature_group.{group}' is not an input of this node; "
                "list its features literally so discovery adds the edge"
            )
        if frame.entity != entity:
            raise FrameError(f"ctx.features: feature_group.{group} belongs to entity {frame.entity!r}, not {entity!r}")
        unknown = [f for f in feats if f not in frame.schema.names]
        if unknown:
            raise FrameError(f"ctx.features: feature_group.{group} has no feature(s) {unknown}; "
                               f"columns: {', '.join(frame.schema.names)}")
        chosen.append((frame, feats))
    join_keys = list(chosen[0][0].join_keys)
    if spine is not None:
        if date_col is None:
            raise FrameError("ctx.features: a spine needs date_col=")
        result = spine
        for frame, feats in chosen:
            result = pit_join(frame, result, date_col, feature_cols=feats, memory=memory)
            result = result.drop_columns([frame.event_time_col]) if frame.event_time_col not in feats and \
                frame.event_time_col in result.column_names and not _in_spine(spine, frame.event_time_col) else result
        return result
    when = as_of if as_of is not None else datetime.now(UTC)
    result = None
    for frame, feats in chosen:
        snap = group_as_of(frame, when, memory=memory).select(join_keys + feats)
        result = snap if result is None else result.join(snap, keys=join_keys, join_type="full outer")
    if keys is not None:
        result = _select_keys(result, join_keys, keys)
    return result


def _in_spine(spine: Any, column: str) -> bool:
    names = getattr(spine, "column_names", None) or getattr(spine, "columns", [])
    return column in list(names)


def _select_keys(table: pa.Table, join_keys: list[str], keys: list[dict]) -> pa.Table:
    for i, key in enumerate(keys):
        missing = [k for k in join_keys if k not in key]
        if missing:
            raise FrameError(f"ctx.features: key #{i} {key!r} lacks join key(s) {missing}")
    wanted = pa.table({k: pa.array([key[k] for key in keys], table.schema.field(k).type) for k in join_keys})
    wanted = wanted.append_column("__order", pa.array(range(len(keys)), pa.int64()))
    out = wanted.join(table, keys=join_keys, join_type="left outer")
    return out.sort_by("__order").drop_columns(["__order"])


__all__ = ["entity_features", "split_features"]
