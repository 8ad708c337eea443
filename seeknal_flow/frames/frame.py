"""FeatureFrame: a lazy, Arrow-backed view of a node's output.

It reads nothing until asked. DuckDB SQL in ``ctx.duckdb.sql`` scans it in
place (Parquet, with projection pushdown); ``to_reader()`` streams it;
pandas-style use (``df["col"]``, ``len(df)``, ``.head()``, ``.merge``...)
materializes a pandas copy once, on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from operators.datasets import parquet_dataset, plain_parquet_file
from operators.memory import MemoryConfig
from operators.scan import BATCH_ROWS
from seeknal_flow.authoring.specs import FeatureGroupSpec
from seeknal_flow.errors import FrameError
from seeknal_flow.frames import reads

Data = Path | list[Path] | pa.Table


class FeatureFrame:
    """A node's output, lazily.

    Args:
        data: Parquet file(s)/directory written by the node, or an in-memory table.
        node_id: the node that produced it (``feature_group.customer_features``).
        entity, join_keys, event_time_col: set for feature groups.

    >>> ff = FeatureFrame(pa.table({"customer_id": ["a"], "n": [1]}), node_id="feature_group.x")
    >>> len(ff), ff.columns
    (1, ['customer_id', 'n'])
    """

    def __init__(
        self,
        data: Data,
        *,
        node_id: str | None = None,
        entity: str | None = None,
        join_keys: tuple[str, ...] = (),
        event_time_col: str | None = None,
        memory: MemoryConfig | None = None,
    ) -> None:
        if not isinstance(data, pa.Table):
            reads.check_path_read(data)  # inside a node: another node's output must be an upstream
        self._data = data
        self.memory = memory  # the run's MemoryConfig, for joins that may spill
        self.node_id = node_id
        self.entity = entity
        self.join_keys = tuple(join_keys)
        self.event_time_col = event_time_col
        self._table: pa.Table | None = data if isinstance(data, pa.Table) else None
        self._pandas = None

    # --- Arrow access (never through pandas) ---------------------------------
    @property
    def paths(self) -> list[Path] | None:
        """Parquet paths backing this frame, or None for an in-memory frame."""
        if isinstance(self._data, pa.Table):
            return None
        return self._data if isinstance(self._data, list) else [self._data]

    def _dataset(self):
        paths = self.paths
        return parquet_dataset(paths[0] if len(paths) == 1 else paths)

    def _file(self):
        """A ``ParquetFile`` when the frame is one plain Parquet file (most node outputs), else None.

        Read directly it needs no ``pyarrow.dataset`` (whose import brings pandas).
        """
        import pyarrow.parquet as pq

        path = plain_parquet_file(self.paths)
        return None if path is None else pq.ParquetFile(path)

    @property
    def schema(self) -> pa.Schema:
        if self._table is not None:
            return self._table.schema
        if (file := self._file()) is not None:
            return file.schema_arrow
        return self._dataset().schema

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    def to_reader(self, columns: list[str] | None = None) -> pa.RecordBatchReader:
        """Stream the frame batch by batch."""
        if self._table is not None:
            table = self._table.select(columns) if columns else self._table
            return table.to_reader(BATCH_ROWS)
        if (file := self._file()) is not None:
            schema = file.schema_arrow
            if columns is not None:
                missing = [c for c in columns if c not in schema.names]
                if missing:  # as the dataset scanner would say it
                    raise pa.ArrowInvalid(f"No match for column(s) {missing} in {', '.join(schema.names)}")
                schema = pa.schema([schema.field(c) for c in columns], metadata=schema.metadata)
            return pa.RecordBatchReader.from_batches(schema, file.iter_batches(BATCH_ROWS, columns=columns))
        return self._dataset().scanner(
            columns=columns, batch_size=BATCH_ROWS, batch_readahead=2, fragment_readahead=1
        ).to_reader()

    def to_arrow(self) -> pa.Table:
        """The whole frame as a pyarrow Table (read once, then cached)."""
        if self._table is None:
            file = self._file()
            self._table = file.read() if file is not None else self._dataset().to_table()
        return self._table

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self.to_reader().__arrow_c_stream__(requested_schema)

    def __len__(self) -> int:
        if self._table is not None:
            return self._table.num_rows
        if (file := self._file()) is not None:
            return file.metadata.num_rows
        return self._dataset().count_rows()

    # --- point in time ----------------------------------------------------------
    def as_features(self, join_keys: str | list[str] | tuple[str, ...], event_time_col: str) -> FeatureFrame:
        """The same data as features keyed by ``join_keys`` at ``event_time_col``; nothing is read.

        For a ``pit_join`` (or ``as_of``) straight over a source or transform output,
        without copying it into a feature group first.

        >>> import datetime as dt
        >>> tx = FeatureFrame(pa.table({"k": ["a", "a"], "t": [dt.date(2026, 1, 1), dt.date(2026, 1, 5)],
        ...                             "x": [1, 2]}), node_id="source.tx")
        >>> f = tx.as_features(join_keys="k", event_time_col="t")
        >>> f.pit_join(pa.table({"k": ["a"], "d": [dt.date(2026, 1, 3)]}), "d").to_arrow()["x"].to_pylist()
        [1]
        """
        keys = (join_keys,) if isinstance(join_keys, str) else tuple(join_keys)
        if not keys:
            raise FrameError(f"as_features of {self.node_id or 'a frame'}: join_keys is empty; name the key column(s)")
        missing = [c for c in (*keys, event_time_col) if c not in self.schema.names]
        if missing:
            raise FrameError(f"as_features of {self.node_id or 'a frame'}: no column(s) {', '.join(missing)} "
                             f"(columns: {', '.join(self.schema.names)})")
        return FeatureFrame(self._table if self._table is not None else self._data, node_id=self.node_id,
                            join_keys=keys, event_time_col=event_time_col, memory=self.memory)

    def pit_join(self, spine, date_col: str, keep_cols: list[str] | None = None, max_age=None) -> FeatureFrame:
        """Point-in-time join onto ``spine``: per spine row, the latest row at or before ``date_col``.

        Args:
            spine: FeatureFrame, pandas DataFrame or pyarrow Table with the join keys and ``date_col``.
            date_col: the spine's date or timestamp column.
            keep_cols: spine columns to keep besides keys and ``date_col`` (default: all).
            max_age: e.g. ``"30d"``; older matches count as no match.

        >>> import datetime as dt
        >>> f = FeatureFrame(pa.table({"k": ["a", "a"], "event_time": [dt.date(2026, 1, 1), dt.date(2026, 1, 5)],
        ...                            "x": [1, 2]}), node_id="feature_group.f", join_keys=("k",),
        ...                  event_time_col="event_time")
        >>> f.pit_join(pa.table({"k": ["a"], "d": [dt.date(2026, 1, 3)]}), "d").to_arrow()["x"].to_pylist()
        [1]
        """
        # Imported here, not at the top: the ASOF kernel needs numpy, which an isolated
        # node's environment (pyarrow, duckdb, msgspec and its own dependencies) may lack.
        from seeknal_flow.frames.pit import pit_join

        table = pit_join(self, spine, date_col, keep_cols=keep_cols, max_age=max_age, memory=self.memory)
        return FeatureFrame(table, node_id=None)

    def as_of(self, ts) -> FeatureFrame:
        """The latest row per join key with event time <= ``ts`` (a date, datetime or ISO string)."""
        from seeknal_flow.frames.pit import as_of  # numpy: see pit_join

        return FeatureFrame(as_of(self, ts, memory=self.memory), node_id=self.node_id, entity=self.entity,
                            join_keys=self.join_keys, event_time_col=self.event_time_col)

    # --- pandas boundary ------------------------------------------------------
    def to_pandas(self):
        """A pandas DataFrame copy (materialized once)."""
        if self._pandas is None:
            self._pandas = self.to_arrow().to_pandas()
        return self._pandas

    def __getitem__(self, key):
        return self.to_pandas()[key]

    def __getattr__(self, name: str):
        # Only reached for names FeatureFrame lacks: behave like a pandas DataFrame.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.to_pandas(), name)

    def __iter__(self):
        return iter(self.to_pandas())

    def __repr__(self) -> str:
        where = "in memory" if self.paths is None else ", ".join(str(p) for p in self.paths)
        return f"FeatureFrame({self.node_id or 'anonymous'}, {where})"


def frame_meta(spec) -> dict[str, Any]:
    """What a frame of ``spec``'s output carries: its node id and, for a feature group, entity,
    join keys and event time column (one definition for the local and Spark engines).

    >>> from seeknal_flow.authoring.specs import Entity, Location
    >>> spec = FeatureGroupSpec(name="g", location=Location("g.yml", 1), entity=Entity.from_value("customer"))
    >>> frame_meta(spec)["join_keys"]
    ('customer_id',)
    """
    if isinstance(spec, FeatureGroupSpec):
        return {"node_id": spec.id, "entity": spec.entity.name if spec.entity else None,
                "join_keys": spec.entity.join_keys if spec.entity else (), "event_time_col": spec.event_time_col}
    return {"node_id": spec.id}


def frame_for(spec, data, memory: MemoryConfig | None = None) -> FeatureFrame:
    """Wrap a node's output (Parquet path or Arrow table) as a FeatureFrame carrying its metadata."""
    return FeatureFrame(data, memory=memory, **frame_meta(spec))
