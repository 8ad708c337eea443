"""Training sets from the offline store: point-in-time lookups of several feature groups.

>>> from seeknal_flow import HistoricalFeaturesDuckDB, FeatureLookup, FillNull
>>> hist = HistoricalFeaturesDuckDB(
...     lookups=[FeatureLookup(source="feature_group.customer_daily_agg", features=["daily_amount"])],
...     fill_nulls=[FillNull(value=0, columns=["daily_amount"])],
...     project="examples/ml-path")   # doctest: +SKIP
>>> train = hist.to_dataframe(spine=labels, date_col="application_date", keep_cols=["churned"])  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from seeknal_flow.authoring.specs import Kind
from seeknal_flow.errors import SeeknalError, StoreError
from seeknal_flow.frames import reads
from seeknal_flow.frames.frame import frame_for
from seeknal_flow.frames.pandas_types import pandas_frame
from seeknal_flow.frames.pit import pit_join, spine_table
from seeknal_flow.load.workspace import Workspace


@dataclass(frozen=True)
class FeatureLookup:
    """One feature group to look up; ``features=None`` takes all of its columns."""

    source: str
    features: list[str] | None = None


@dataclass(frozen=True)
class FillNull:
    """Replace NULLs in ``columns`` (all feature columns when None) with ``value``."""

    value: Any
    columns: list[str] | None = None


@dataclass
class HistoricalFeaturesDuckDB:
    """Point-in-time correct training data from materialized feature groups.

    Each lookup is joined onto the spine in turn (the latest feature row at or
    before the spine date, per join key); then ``fill_nulls`` are applied.

    Args:
        lookups: feature groups (``"feature_group.name"``) and optional feature subsets.
        fill_nulls: NULL replacements applied after all joins.
        project: the project folder (default: found from the current folder).
    """

    lookups: list[FeatureLookup]
    fill_nulls: list[FillNull] = field(default_factory=list)
    project: str | Path | None = None
    _spine: tuple | None = field(default=None, repr=False)

    def to_arrow(self, spine: Any, date_col: str, keep_cols: list[str] | None = None,
                 max_age: Any = None) -> pa.Table:
        """The training set as a pyarrow Table, one row per spine row, in spine order."""
        frames = [self._frame(lookup) for lookup in self.lookups]
        result = spine_table(spine)
        added: list[str] = []
        for i, (lookup, frame) in enumerate(zip(self.lookups, frames, strict=True)):
            before = set(result.schema.names)
            result = pit_join(frame, result, date_col, keep_cols=keep_cols if i == 0 else None,
                              max_age=max_age, feature_cols=lookup.features, memory=frame.memory)
            added += [c for c in result.schema.names if c not in before]
        return self._fill(result, added)

    def to_dataframe(self, spine: Any, date_col: str, keep_cols: list[str] | None = None, max_age: Any = None):
        """The training set as a pandas DataFrame (dtypes: ``seeknal_flow.frames.pandas_types``, as online)."""
        return pandas_frame(self.to_arrow(spine, date_col, keep_cols, max_age))

    def using_spine(self, spine: Any, date_col: str, keep_cols: list[str] | None = None,
                    max_age: Any = None) -> HistoricalFeaturesDuckDB:
        """Remember a spine (older API); then call :meth:`to_dataframe_with_spine`."""
        self._spine = (spine, date_col, keep_cols, max_age)
        return self

    def to_dataframe_with_spine(self):
        if self._spine is None:
            raise StoreError("call using_spine(spine, date_col) before to_dataframe_with_spine()")
        return self.to_dataframe(*self._spine)

    def _frame(self, lookup: FeatureLookup):
        ws = Workspace.open(self.project or reads.running_project())  # inside a node: the node's project
        try:
            node_id = ws.dag.resolve(lookup.source)
        except SeeknalError as e:
            groups = sorted(i for i, s in ws.dag.nodes.items() if s.kind == Kind.FEATURE_GROUP)
            raise StoreError(
                f"FeatureLookup source '{lookup.source}' is not a node of the project; feature groups: "
                f"{', '.join(groups) or 'none'}"
            ) from e
        reads.check_read(node_id)  # inside a node: the group must be an upstream (an edge)
        spec = ws.dag.nodes[node_id]
        if spec.kind != Kind.FEATURE_GROUP:
            raise StoreError(f"FeatureLookup source '{lookup.source}' is a {spec.kind.value}, not a feature group")
        path = ws.project.intermediate_path(spec.output_name)
        if not path.exists():
            raise StoreError(f"{node_id} has no output yet; run `seeknal run` first")
        frame = frame_for(spec, path, ws.memory())
        if lookup.features is not None:
            unknown = [f for f in lookup.features if f not in frame.schema.names]
            if unknown:
                raise StoreError(
                    f"FeatureLookup of {node_id}: unknown feature(s) {unknown}; "
                    f"available: {', '.join(frame.schema.names)}"
                )
        return frame

    def _fill(self, table: pa.Table, feature_cols: list[str]) -> pa.Table:
        for fill in self.fill_nulls:
            columns = fill.columns if fill.columns is not None else feature_cols
            for col in columns:
                if col not in table.schema.names:
                    raise StoreError(f"FillNull column '{col}' is not in the result "
                                       f"(columns: {', '.join(table.schema.names)})")
                i = table.schema.get_field_index(col)
                column = table.column(i)
                try:
                    value = pa.scalar(fill.value).cast(column.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                    raise StoreError(f"FillNull value {fill.value!r} does not fit column '{col}' "
                                     f"of type {column.type}") from e
                table = table.set_column(i, table.field(i), pc.fill_null(column, value))
        return table
