"""Point-in-time (ASOF) join: for each spine row, the latest feature row at or before it.

Two execution paths give identical results:

* in memory: encode keys and times of both sides, match with
  :func:`operators.asof_kernel.match_rows`, then ``take`` the matched right rows.
  When the right side is a Parquet path only its key and time columns are read
  for matching; value columns are read afterwards (low-cardinality strings as
  dictionaries) and only the matched rows are kept.
* bucketed (larger than memory): both inputs are streamed batch by batch into
  N hash buckets of Arrow IPC files under ``memory.spill_dir``, each bucket is
  joined in memory, and the spine order is restored from a carried row number.
  Peak memory is about one bucket's inputs plus twice the final output (the
  concatenated bucket outputs and the reordered copy).
"""

from __future__ import annotations

import datetime
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.asof_kernel import match_rows
from operators.base import to_reader
from operators.durations import parse_duration
from operators.errors import EngineError
from operators.key_encoding import (
    check_time_type,
    encode_keys,
    key_hash,
    time_unit,
    time_values,
    unify_key_types,
)
from operators.memory import MemoryConfig

_ROW = "__seeknal_asof_row"
_SIDES = {"left": "left (spine)", "right": "right (features)"}


def asof_join(
    left,
    right,
    *,
    left_on: str,
    right_on: str,
    by: list[str] | str,
    max_age: str | datetime.timedelta | None = None,
    memory: MemoryConfig | None = None,
    buckets: int | None = None,
) -> pa.Table:
    """Join each left row to the right row with equal ``by`` keys and the latest time <= its own.

    Args:
        left: The spine: a ``pa.Table``, ``pa.RecordBatchReader``, an operator,
            anything with ``__arrow_c_stream__``, or a Parquet path.
        right: The features, same kinds as ``left``.
        left_on: Time column of ``left`` (date or timestamp).
        right_on: Time column of ``right`` (date or timestamp).
        by: Key column name(s), present on both sides.
        max_age: Matches older than this (``"30d"`` or a ``timedelta``) count as none.
        memory: Memory limit and spill directory; large inputs go through disk buckets.
        buckets: Force the bucketed path with this many buckets.

    Returns:
        One row per left row, in left order: all left columns, then the right
        columns other than ``by`` (a right column whose name is taken is dropped).

    Raises:
        EngineError: A column is missing, a time column is not a date/timestamp,
            key types cannot be reconciled, or ``max_age`` is not a duration.

    >>> import datetime as dt
    >>> spine = pa.table({"id": [1, 1, 2], "ts": [dt.date(2025, 1, 5), dt.date(2025, 1, 1),
    ...                                           dt.date(2025, 1, 5)]})
    >>> feats = pa.table({"id": [1, 1], "at": [dt.date(2025, 1, 2), dt.date(2025, 1, 4)],
    ...                   "x": [10, 20]})
    >>> asof_join(spine, feats, left_on="ts", right_on="at", by="id")["x"].to_pylist()
    [20, None, None]
    """
    spec = _Spec(left_on, right_on, by, max_age)
    lsrc, rsrc = _Source.of(left, "left"), _Source.of(right, "right")
    spec.validate(lsrc.schema, rsrc.schema)
    limit = memory.memory_limit if memory is not None else None
    if buckets is None and limit is not None:
        budget = limit // 3
        size = rsrc.estimate(budget) + lsrc.estimate(budget)
        if size > budget:
            buckets = max(2, math.ceil(3 * size / max(limit, 1)))
    threads = memory.effective_threads if memory is not None else (os.cpu_count() or 1)
    if buckets:
        spill = memory.spill_dir if memory is not None and memory.spill_dir else None
        return _join_bucketed(lsrc, rsrc, spec, int(buckets), spill, threads)
    return _join_in_memory(lsrc.table(), rsrc, spec, threads)


class AsofJoinOperator:
    """:func:`asof_join` as an operator: the joined table is computed on the first pull.

    >>> import datetime as dt
    >>> spine = pa.table({"id": ["a"], "ts": [dt.date(2025, 1, 5)]})
    >>> feats = pa.table({"id": ["a"], "at": [dt.date(2025, 1, 2)], "x": [1.5]})
    >>> op = AsofJoinOperator(spine, feats, left_on="ts", right_on="at", by="id")
    >>> op.schema.names, [b.num_rows for b in op.batches()]
    (['id', 'ts', 'at', 'x'], [1])
    """

    def __init__(self, left, right, *, left_on, right_on, by, max_age=None, memory=None,
                 buckets=None, max_chunksize: int = 131_072) -> None:
        self._left, self._right = left, right
        self._kwargs = dict(left_on=left_on, right_on=right_on, by=by, max_age=max_age,
                            memory=memory, buckets=buckets)
        self._spec = _Spec(left_on, right_on, by, max_age)
        self._chunk = max_chunksize
        self._schema: pa.Schema | None = None

    @property
    def schema(self) -> pa.Schema:
        if self._schema is None:
            ls, rs = _schema_of(self._left), _schema_of(self._right)
            self._spec.validate(ls, rs)
            self._schema = self._spec.output_schema(ls, rs)
        return self._schema

    def batches(self) -> Iterator[pa.RecordBatch]:
        left, right = _maybe_reader(self._left), _maybe_reader(self._right)
        yield from asof_join(left, right, **self._kwargs).to_batches(self._chunk)

    def describe(self) -> str:
        s = self._spec
        age = f", max_age={s.max_age_text}" if s.max_age_text else ""
        return f"AsofJoin(by={s.by}, {s.left_on} >= {s.right_on}{age})"


# ----------------------------------------------------------------------------- spec


class _Spec:
    def __init__(self, left_on, right_on, by, max_age) -> None:
        self.left_on, self.right_on = left_on, right_on
        self.by = [by] if isinstance(by, str) else list(by)
        if not self.by:
            raise EngineError("asof join needs at least one key column in 'by'")
        self.max_age = parse_duration(max_age) if max_age is not None else None
        self.max_age_text = str(max_age) if max_age is not None else None

    def validate(self, ls: pa.Schema, rs: pa.Schema) -> None:
        for side, schema, cols in (("left", ls, [*self.by, self.left_on]),
                                   ("right", rs, [*self.by, self.right_on])):
            for col in cols:
                if col not in schema.names:
                    kind = "join key" if col in self.by else "time column"
                    raise EngineError(
                        f"{kind} '{col}' is missing from the {_SIDES[side]} input; "
                        f"available columns: {', '.join(schema.names)}"
                    )
        check_time_type(ls.field(self.left_on).type, self.left_on, _SIDES["left"])
        check_time_type(rs.field(self.right_on).type, self.right_on, _SIDES["right"])
        for key in self.by:
            lt, rt = ls.field(key).type, rs.field(key).type
            unify_key_types(pa.chunked_array([], lt), pa.chunked_array([], rt), key)

    def right_values(self, ls: pa.Schema, rs: pa.Schema) -> list[str]:
        return [n for n in rs.names if n not in self.by and n not in ls.names]

    def output_schema(self, ls: pa.Schema, rs: pa.Schema) -> pa.Schema:
        return pa.schema([*ls, *(rs.field(n) for n in self.right_values(ls, rs))])

    def unit(self, ls: pa.Schema, rs: pa.Schema) -> str:
        return time_unit(ls.field(self.left_on).type, rs.field(self.right_on).type)

    def max_age_in(self, unit: str) -> int | None:
        if self.max_age is None:
            return None
        us = self.max_age // datetime.timedelta(microseconds=1)
        return us * 1000 if unit == "ns" else us


# -------------------------------------------------------------------------- sources


class _Source:
    """One input: an in-memory table, a one-shot stream, or a Parquet path."""

    def __init__(self, side: str, table=None, reader=None, path=None) -> None:
        self.side, self._table, self._reader, self.path = side, table, reader, path
        self._buffered: list[pa.RecordBatch] = []
        if path is not None:
            import pyarrow.dataset as ds

            self.dataset = ds.dataset(path, format="parquet", partitioning="hive")
        src = table if table is not None else reader
        self.schema = src.schema if src is not None else self.dataset.schema

    @classmethod
    def of(cls, obj, side: str) -> _Source:
        if isinstance(obj, pa.Table):
            return cls(side, table=obj)
        if isinstance(obj, (str, os.PathLike)):
            return cls(side, path=Path(obj))
        return cls(side, reader=_maybe_reader(obj))

    def estimate(self, budget: int) -> int:
        """Bytes in memory; a stream is buffered only until it exceeds ``budget``."""
        if self._table is not None:
            return self._table.nbytes
        if self.path is not None:
            return sum(
                rg.total_byte_size
                for frag in self.dataset.get_fragments()
                for rg in (frag.metadata.row_group(i) for i in range(frag.metadata.num_row_groups))
            )
        size = sum(b.nbytes for b in self._buffered)
        while size <= budget:
            batch = _next(self._reader)
            if batch is None:
                self._table = pa.Table.from_batches(self._buffered, self.schema)
                self._buffered = []
                return self._table.nbytes
            self._buffered.append(batch)
            size += batch.nbytes
        return size

    def read(self, columns: list[str] | None, dictionary: list[str] | None = None) -> pa.Table:
        if self.path.is_file():  # the single-file reader is faster than a dataset scan
            import pyarrow.parquet as pq

            return pq.read_table(self.path, columns=columns, read_dictionary=dictionary)
        import pyarrow.dataset as ds

        fmt = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=dictionary or []))
        return ds.dataset(self.path, format=fmt, partitioning="hive").to_table(columns=columns)

    def batches(self, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        if self.path is not None:
            yield from self.dataset.to_batches(columns=columns, batch_size=262_144)
            return
        if self._table is not None:
            src: Iterator[pa.RecordBatch] = iter(self._table.to_batches())
        else:
            src = _chain(self._buffered, self._reader)
        for batch in src:
            yield batch.select(columns) if columns is not None else batch

    def table(self, columns: list[str] | None = None) -> pa.Table:
        if self.path is not None:
            return self.read(columns)
        if self._table is None:
            self._table = pa.Table.from_batches(list(self.batches()), self.schema)
            self._buffered, self._reader = [], None
        return self._table.select(columns) if columns is not None else self._table


def _next(reader: pa.RecordBatchReader):
    try:
        return reader.read_next_batch()
    except StopIteration:
        return None


def _chain(first: list[pa.RecordBatch], reader) -> Iterator[pa.RecordBatch]:
    yield from first
    if reader is not None:
        yield from reader


def _maybe_reader(obj):
    if isinstance(obj, (pa.Table, pa.RecordBatchReader, str, os.PathLike)):
        return obj
    if hasattr(obj, "batches") and hasattr(obj, "schema"):
        return to_reader(obj)
    if hasattr(obj, "__arrow_c_stream__"):
        return pa.RecordBatchReader.from_stream(obj)
    raise EngineError(f"asof join input {type(obj).__name__} is not Arrow data")


def _schema_of(obj) -> pa.Schema:
    if isinstance(obj, (str, os.PathLike)):
        return _Source.of(obj, "right").schema
    if hasattr(obj, "schema"):
        return obj.schema
    return pa.RecordBatchReader.from_stream(obj).schema


# ------------------------------------------------------------------------ in memory


def _match(left: pa.Table, rkeys: pa.Table, spec: _Spec, unit: str, threads: int) -> np.ndarray:
    lcols, rcols = [], []
    for key in spec.by:
        lk, rk = unify_key_types(left[key], rkeys[key], key)
        lcols.append(lk)
        rcols.append(rk)
    lcodes, rcodes, n_codes = encode_keys(lcols, rcols, threads)
    lt, lvalid = time_values(left[spec.left_on], unit, spec.left_on, _SIDES["left"])
    rt, rvalid = time_values(rkeys[spec.right_on], unit, spec.right_on, _SIDES["right"])
    return match_rows(lcodes, lt, lvalid, rcodes, rt, rvalid, n_codes, spec.max_age_in(unit))


def _join_in_memory(left: pa.Table, rsrc: _Source, spec: _Spec, threads: int) -> pa.Table:
    ls, rs = left.schema, rsrc.schema
    unit = spec.unit(ls, rs)
    values = spec.right_values(ls, rs)
    if rsrc.path is None:
        right = rsrc.table()
        idx = _match(left, right, spec, unit, threads)
        taken = right.select(values).take(_indices(idx))
    else:
        # Late materialization: values are read after matching, and only matched rows kept.
        keys = rsrc.table([*spec.by, spec.right_on])
        idx = _match(left, keys, spec, unit, threads)
        del keys
        taken = _take_from_parquet(rsrc, values, idx)
    return _assemble(left, taken, spec.output_schema(ls, rs))


def _indices(idx: np.ndarray) -> pa.Array:
    return pa.array(idx, mask=idx < 0) if (idx < 0).any() else pa.array(idx)


def _take_from_parquet(rsrc: _Source, values: list[str], idx: np.ndarray) -> pa.Table:
    if not values:
        return pa.table({})
    text = [n for n in values if pa.types.is_string(rsrc.schema.field(n).type)]
    data = rsrc.read(values, text)
    taken = data.take(_indices(idx))
    del data
    return taken.cast(pa.schema([rsrc.schema.field(n) for n in values]))


def _assemble(left: pa.Table, taken: pa.Table, schema: pa.Schema) -> pa.Table:
    columns = [*left.columns, *taken.columns]
    return pa.Table.from_arrays(columns, schema=schema)


# ------------------------------------------------------------------------- bucketed


def _join_bucketed(lsrc: _Source, rsrc: _Source, spec: _Spec, n: int, spill_dir, threads: int):
    if spill_dir is not None:
        Path(spill_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="asof-join-", dir=spill_dir))
    try:
        ls, rs = lsrc.schema, rsrc.schema
        key_types = [_unified_type(ls.field(k).type, rs.field(k).type, k) for k in spec.by]
        wanted = {*spec.by, spec.right_on, *spec.right_values(ls, rs)}
        rcols = [c for c in rs.names if c in wanted]
        lschema = ls.append(pa.field(_ROW, pa.int64()))
        _spill(_numbered(lsrc.batches()), lschema, spec.by, key_types, tmp / "left", n)
        rschema = pa.schema([rs.field(c) for c in rcols])
        _spill(rsrc.batches(rcols), rschema, spec.by, key_types, tmp / "right", n)
        out_schema = spec.output_schema(ls, rschema).append(pa.field(_ROW, pa.int64()))
        outputs = []
        for b in range(n):
            left = _read_ipc(tmp / "left" / f"{b}.arrow")
            right = _Source("right", table=_read_ipc(tmp / "right" / f"{b}.arrow"))
            joined = _join_in_memory(left, right, spec, threads)
            outputs.append(_write_ipc(joined.select(out_schema.names), tmp / f"out-{b}.arrow"))
            del left, right, joined
        result = pa.concat_tables([_read_ipc(p) for p in outputs])
        order = pc.sort_indices(result[_ROW])
        final_schema = pa.schema([f for f in out_schema if f.name != _ROW])
        return result.drop_columns([_ROW]).take(order).combine_chunks().cast(final_schema)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _unified_type(lt: pa.DataType, rt: pa.DataType, name: str) -> pa.DataType:
    return unify_key_types(pa.chunked_array([], lt), pa.chunked_array([], rt), name)[0].type


def _numbered(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    start = 0
    for batch in batches:
        rows = pa.array(np.arange(start, start + batch.num_rows, dtype=np.int64))
        start += batch.num_rows
        yield batch.append_column(_ROW, rows)


def _spill(batches, schema: pa.Schema, by, key_types, folder: Path, n: int) -> None:
    folder.mkdir()
    sinks = [pa.OSFile(str(folder / f"{b}.arrow"), "wb") for b in range(n)]
    writers = [pa.ipc.new_file(s, schema) for s in sinks]
    try:
        for batch in batches:
            if not batch.num_rows:
                continue
            keys = [batch.column(k).cast(t) for k, t in zip(by, key_types, strict=True)]
            bucket = (key_hash(keys) % np.uint64(n)).astype(np.uint16)
            order = np.argsort(bucket, kind="stable")
            bounds = np.searchsorted(bucket[order], np.arange(n + 1))
            grouped = batch.take(pa.array(order))
            for b in range(n):
                if bounds[b + 1] > bounds[b]:
                    writers[b].write_batch(grouped.slice(bounds[b], bounds[b + 1] - bounds[b]))
    finally:
        for w, s in zip(writers, sinks, strict=True):
            w.close()
            s.close()


def _read_ipc(path: Path) -> pa.Table:
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def _write_ipc(table: pa.Table, path: Path) -> Path:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return path
