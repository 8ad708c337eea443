"""Point-in-time joins of a feature group onto a spine, and ``as_of`` snapshots.

Both run on the vectorized ASOF kernel (``operators.asof.join``); this module
only decides columns and keys from the feature group's spec and names both
inputs in every error.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from operators.asof.join import asof_join
from operators.errors import EngineError
from operators.memory import MemoryConfig
from seeknal_flow.errors import FrameError


class Features(Protocol):
    """What a PIT join needs of a feature group's output (a FeatureFrame is one)."""

    node_id: str | None
    join_keys: tuple[str, ...]
    event_time_col: str | None
    memory: MemoryConfig | None

    @property
    def schema(self) -> pa.Schema: ...
    @property
    def paths(self) -> list[Path] | None: ...
    def to_arrow(self) -> pa.Table: ...
    def to_reader(self, columns: list[str] | None = None) -> pa.RecordBatchReader: ...


def spine_table(spine: Any) -> pa.Table:
    """Accept a FeatureFrame, pandas DataFrame, pyarrow Table/RecordBatchReader as a spine.

    >>> spine_table(pa.table({"k": [1]})).num_rows
    1
    """
    if isinstance(spine, pa.Table):
        return spine
    if isinstance(spine, pa.RecordBatchReader):
        return spine.read_all()
    if (type(spine).__module__ or "").startswith("pandas"):
        return pa.Table.from_pandas(spine, preserve_index=False)
    if callable(getattr(spine, "to_arrow", None)):  # a FeatureFrame (its cached table) or a polars frame
        return spine.to_arrow()
    if hasattr(spine, "__arrow_c_stream__"):
        return pa.RecordBatchReader.from_stream(spine).read_all()
    raise FrameError(
        f"spine of type {type(spine).__name__} is not a table; pass a FeatureFrame, pandas DataFrame or pyarrow Table"
    )


def join_keys(features: Features, spine_schema: pa.Schema, date_col: str) -> tuple[str, ...]:
    """The group's entity join keys; for a group without an entity, the columns it
    shares with the spine (other than the date and event time columns)."""
    if features.join_keys:
        return features.join_keys
    shared = [
        c for c in spine_schema.names
        if c in features.schema.names and c not in (date_col, features.event_time_col)
    ]
    if not shared:
        raise FrameError(
            f"pit_join of {features.node_id or 'features'}: no join key; the group has no entity and "
            f"shares no column with the spine (spine: {', '.join(spine_schema.names)}); declare entity=..."
        )
    return tuple(shared)


def pit_join(
    features: Features,
    spine: Any,
    date_col: str,
    *,
    keep_cols: list[str] | None = None,
    max_age: str | dt.timedelta | None = None,
    feature_cols: list[str] | None = None,
    memory: MemoryConfig | None = None,
) -> pa.Table:
    """For each spine row, the feature row with equal keys and the latest event time <= ``date_col``.

    Output: spine columns (all, or ``keep_cols`` + keys + ``date_col``, in the
    spine's order), then the feature columns (``feature_cols`` or all but the
    keys); on a name clash the spine column wins. One row per spine row, in order.
    """
    name = features.node_id or "features"
    event_col = features.event_time_col
    if not event_col:
        raise FrameError(f"pit_join of {name}: it has no event time column; use a feature group")
    table = spine_table(spine)
    if date_col not in table.schema.names:
        raise FrameError(
            f"pit_join of {name} onto the spine: the spine has no date column '{date_col}' "
            f"(spine columns: {', '.join(table.schema.names)})"
        )
    table = _parse_iso_dates(table, date_col, name)
    keys = join_keys(features, table.schema, date_col)
    for key in keys:
        if key not in table.schema.names:
            raise FrameError(
                f"pit_join of {name} onto the spine: the spine has no join key '{key}' "
                f"(spine columns: {', '.join(table.schema.names)}; {name} keys: {', '.join(keys)})"
            )
    if event_col not in features.schema.names:
        raise FrameError(
            f"pit_join of {name}: event time column '{event_col}' is not in its output "
            f"(columns: {', '.join(features.schema.names)}); set event_time_col on the feature group"
        )
    if keep_cols is not None:
        missing = [c for c in keep_cols if c not in table.schema.names]
        if missing:
            raise FrameError(f"pit_join of {name}: keep_cols {missing} are not spine columns "
                               f"(spine columns: {', '.join(table.schema.names)})")
        wanted = set(keep_cols) | set(keys) | {date_col}
        table = table.select([c for c in table.schema.names if c in wanted])
    right = _feature_input(features, keys, feature_cols)
    try:
        return asof_join(table, right, left_on=date_col, right_on=event_col, by=list(keys),
                         max_age=max_age, memory=memory)
    except EngineError as e:
        raise FrameError(f"pit_join of {name} onto the spine: {e}") from e


def as_of(features: Features, ts: Any, memory: MemoryConfig | None = None) -> pa.Table:
    """The latest row per key with event time <= ``ts`` (keys with none are left out)."""
    import pyarrow.compute as pc

    name = features.node_id or "features"
    if not features.join_keys:
        raise FrameError(f"as_of on {name}: the group has no entity; declare entity=... to get one row per key")
    keys = list(features.join_keys)
    distinct = features.to_reader(columns=keys).read_all().group_by(keys).aggregate([])
    when = _timestamp(ts)
    spine = distinct.append_column("__as_of", pa.array([when] * distinct.num_rows, pa.timestamp("us", "UTC")))
    try:
        joined = asof_join(spine, _feature_input(features, tuple(keys), None), left_on="__as_of",
                           right_on=features.event_time_col, by=keys, memory=memory)
    except EngineError as e:
        raise FrameError(f"as_of on {name}: {e}") from e
    joined = joined.filter(pc.is_valid(joined[features.event_time_col]))
    return joined.select(features.schema.names)


def _parse_iso_dates(table: pa.Table, date_col: str, name: str) -> pa.Table:
    # Spines read with pandas.read_csv carry dates as strings; ISO text is unambiguous.
    i = table.schema.get_field_index(date_col)
    if not (pa.types.is_string(table.schema.field(i).type) or pa.types.is_large_string(table.schema.field(i).type)):
        return table
    try:
        parsed = table.column(i).cast(pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise FrameError(
            f"pit_join of {name} onto the spine: date column '{date_col}' holds text that is not an ISO "
            "date or timestamp (e.g. 2026-01-20); convert it first"
        ) from e
    return table.set_column(i, pa.field(date_col, parsed.type), parsed)


def _feature_input(features: Features, keys: tuple[str, ...], feature_cols: list[str] | None):
    if feature_cols is None:
        paths = features.paths
        if paths is not None and len(paths) == 1:
            return paths[0]  # the kernel reads key/time columns first, values only for matches
        return features.to_arrow()
    unknown = [c for c in feature_cols if c not in features.schema.names]
    if unknown:
        raise FrameError(
            f"{features.node_id or 'features'} has no feature(s) {unknown} "
            f"(columns: {', '.join(features.schema.names)})"
        )
    cols = list(dict.fromkeys([*keys, features.event_time_col, *feature_cols]))
    return features.to_reader(columns=cols).read_all()


def _timestamp(ts: Any) -> dt.datetime:
    if isinstance(ts, str):
        try:
            ts = dt.datetime.fromisoformat(ts)
        except ValueError as e:
            raise FrameError(f"as_of: {ts!r} is not an ISO date or timestamp") from e
    if isinstance(ts, dt.date) and not isinstance(ts, dt.datetime):
        ts = dt.datetime(ts.year, ts.month, ts.day)
    if not isinstance(ts, dt.datetime):
        raise FrameError(f"as_of: {ts!r} is not a date or timestamp")
    return ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC)
