"""Point-in-time (ASOF) join: for each spine row, the latest feature row at or before it.

Two execution paths give identical results:

* in memory: the left (spine) keys and times are encoded and sorted once
  (:class:`operators.asof.key_encoding.KeyCodec`, :class:`operators.asof.kernel.AsofPlan`);
  the right side is then streamed chunk by chunk (Parquet row groups, or
  slices of an in-memory table) on a thread pool: each chunk's key and time
  columns are read, encoded and folded into per-left-row state. Only then are
  the right value columns gathered for the matched rows; from a Parquet file
  they are read row group by row group (dictionary-encoded text stays
  dictionaries until the end, and the time column comes from the kernel).
  Memory is about the left side plus the output plus a row group per thread,
  whatever the size of a right Parquet file, so with a memory limit this path
  is kept when that estimate fits.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.arrays import arrow_array
from operators.asof import sources
from operators.asof.kernel import AsofPlan
from operators.asof.key_encoding import (
    KeyCodec,
    cast_key,
    check_time_type,
    key_hash,
    time_unit,
    time_values,
    unified_key_type,
)
from operators.durations import parse_duration
from operators.errors import EngineError
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
    lsrc, rsrc = sources.Source.of(left, "left"), sources.Source.of(right, "right")
    spec.validate(lsrc.schema, rsrc.schema)
    limit = memory.memory_limit if memory is not None else None
    threads = memory.effective_threads if memory is not None else (os.cpu_count() or 1)
    if buckets is None and limit is not None:
        budget = limit // 3
        # A Parquet file on the right is streamed: only the left side must fit. Its estimate
        # covers the join's whole working set, so it may take three quarters of the limit
        # (the sink's buffer and the inputs' readers share the rest): bucketing a join that
        # fits costs more memory than streaming it (buckets are sized to a third of the
        # limit and joined in memory at ~3x their size) and two to three times the time.
        stream_budget = limit * 3 // 4
        if not (rsrc.single_file and _streaming_need(lsrc, rsrc, spec, stream_budget, threads) <= stream_budget):
            size = rsrc.estimate(budget) + lsrc.estimate(budget)
            if size > budget:
                buckets = max(2, math.ceil(3 * size / max(limit, 1)))
    try:
        if buckets:
            spill = memory.spill_dir if memory is not None and memory.spill_dir else None
            return _join_bucketed(lsrc, rsrc, spec, int(buckets), spill, threads)
        return _join_in_memory(lsrc.table(), rsrc, spec, threads)
    finally:
        lsrc.close()
        rsrc.close()


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
            ls, rs = sources.schema_of(self._left), sources.schema_of(self._right)
            self._spec.validate(ls, rs)
            self._schema = self._spec.output_schema(ls, rs)
        return self._schema

    def batches(self) -> Iterator[pa.RecordBatch]:
        left, right = sources.maybe_reader(self._left), sources.maybe_reader(self._right)
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
            unified_key_type(ls.field(key).type, rs.field(key).type, key)

    def right_values(self, ls: pa.Schema, rs: pa.Schema) -> list[str]:
        return [n for n in rs.names if n not in self.by and n not in ls.names]

    def output_schema(self, ls: pa.Schema, rs: pa.Schema) -> pa.Schema:
        # A spine row may match nothing: its right values are NULL, whatever the right side's file says.
        return pa.schema([*ls, *(rs.field(n).with_nullable(True) for n in self.right_values(ls, rs))])

    def unit(self, ls: pa.Schema, rs: pa.Schema) -> str:
        return time_unit(ls.field(self.left_on).type, rs.field(self.right_on).type)

    def max_age_in(self, unit: str) -> int | None:
        if self.max_age is None:
            return None
        us = self.max_age // datetime.timedelta(microseconds=1)
        return us * 1000 if unit == "ns" else us


def _streaming_need(lsrc: sources.Source, rsrc: sources.Source, spec: _Spec, budget: int, threads: int) -> int:
    """Bytes the in-memory path needs when the right side is one Parquet file.

    It holds the left side, about 256 bytes per left row (its encoded and
    sorted copy, per-key tables, per-thread slot arrays), the output twice, and
    per thread one row group of the right's key and value columns.
    """
    left_bytes = lsrc.estimate(budget)
    if left_bytes > budget:
        return left_bytes
    n_left = lsrc.num_rows()
    meta = rsrc._file().metadata
    index = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
    values = spec.right_values(lsrc.schema, rsrc.schema)
    widest = value_row = 0
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        sizes = {n: rg.column(index[n]).total_uncompressed_size for n in rsrc.schema.names if n in index}
        rows = min(rg.num_rows, sources.WHOLE_ROW_GROUP)
        scale = rows / max(rg.num_rows, 1)
        widest = max(widest, scale * sum(sizes.get(n, 0) for n in [*spec.by, spec.right_on, *values]))
        value_row = max(value_row, sum(sizes.get(n, 0) for n in values) / max(rg.num_rows, 1))
    return int(left_bytes + n_left * (256 + 2 * value_row) + threads * widest)


# ------------------------------------------------------------------------ in memory


def _join_in_memory(left: pa.Table, rsrc: sources.Source, spec: _Spec, threads: int) -> pa.Table:
    """Match, then gather the right values of the matched rows.

    The right side is processed in chunks (Parquet row groups or table slices)
    on ``threads`` threads: each chunk's keys and times are read, encoded and
    folded into the kernel's per-slot state (the first chunks are read while the
    left side is encoded); the value columns of a Parquet file are read
    afterwards, only for row groups that hold a match.
    """
    ls, rs = left.schema, rsrc.schema
    unit = spec.unit(ls, rs)
    types = [unified_key_type(ls.field(k).type, rs.field(k).type, k) for k in spec.by]
    key_cols = [*spec.by, spec.right_on]
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    try:
        chunks = rsrc.chunks(key_cols)
        ahead = {}
        if pool is not None and rsrc.single_file:
            for i, chunk in enumerate(chunks[:threads]):
                if chunk.num_rows <= sources.WHOLE_ROW_GROUP:
                    ahead[i] = pool.submit(chunk.read, key_cols)
        codec, lcodes = KeyCodec.fit([cast_key(left[k], t) for k, t in zip(spec.by, types, strict=True)])
        lt, lvalid = time_values(left[spec.left_on], unit, spec.left_on, _SIDES["left"])
        plan = AsofPlan(lcodes, lt, lvalid, codec.n_codes, spec.max_age_in(unit),
                        n_right=sum(c.num_rows for c in chunks))
        del lcodes, lt, lvalid

        def fold(i: int) -> None:
            chunk, start = chunks[i], chunks[i].start
            early = ahead.pop(i, None)
            batches = early.result().to_batches() if early is not None else chunk.batches(key_cols)
            for whole in batches:
                # Slices keep the encoders' temporaries small enough to be reused, not paged in.
                for piece in range(0, whole.num_rows, sources.SLICE):
                    batch = whole.slice(piece, sources.SLICE)
                    keys = [_key_chunk(batch.column(k), t) for k, t in zip(spec.by, types, strict=True)]
                    codes = codec.encode(keys)
                    rt, rvalid = time_values(batch.column(spec.right_on), unit, spec.right_on,
                                             _SIDES["right"])
                    plan.add(codes, rt, rvalid, start)
                    start += batch.num_rows

        _map(fold, range(len(chunks)), pool)
        values = spec.right_values(ls, rs)
        # From files, the matched times come from the kernel instead of a second read.
        reuse = rsrc.path is not None and spec.right_on in values
        idx = plan.solve(want_times=reuse)
        times = plan.matched_times
        plan = None  # the kernel's per-slot arrays go before the values are read
        read = [v for v in values if not (reuse and v == spec.right_on)]
        if not read:
            taken = pa.table({"": pa.nulls(len(idx))}).drop_columns([""])  # rows, no columns
        elif rsrc.single_file:
            taken = _take_by_chunk(rsrc, chunks, read, idx, pool)
        elif rsrc.path is not None:
            taken = _take_from_parquet(rsrc, read, idx)
        else:
            taken = rsrc.table().select(read).take(_indices(idx))
        if reuse:
            col = _time_column(times, idx, rs.field(spec.right_on).type, unit)
            taken = taken.add_column(values.index(spec.right_on), spec.right_on, col)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        rsrc.close()
    return _assemble(left, taken, spec.output_schema(ls, rs))


def _time_column(times: np.ndarray, idx: np.ndarray, t: pa.DataType, unit: str) -> pa.Array:
    """Matched times (int64 ``unit`` since the epoch, UTC) back in the column's own type."""
    per_unit = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
    missing = idx < 0
    if pa.types.is_date32(t):
        days = times // (86_400 * per_unit[unit])
        return arrow_array(days.astype(np.int32), missing).cast(t)
    if pa.types.is_date64(t):
        return arrow_array(times // (per_unit[unit] // 1_000), missing).cast(t)
    ints = times // (per_unit[unit] // per_unit[t.unit])
    return arrow_array(ints, missing).cast(t)


def _key_chunk(col, target: pa.DataType):
    """A right key column in the unified type; dictionaries stay dictionaries (encoded once)."""
    if pa.types.is_dictionary(col.type):
        values = col.dictionary
        if values.type != target:
            col = pa.DictionaryArray.from_arrays(col.indices, values.cast(target))
        return col
    return col if col.type == target else col.cast(target)


def _map(fn, items, pool: ThreadPoolExecutor | None) -> list:
    if pool is None:
        return [fn(x) for x in items]
    return list(pool.map(fn, items))


def _indices(idx: np.ndarray) -> pa.Array:
    return arrow_array(idx, idx < 0)


def _take_by_chunk(rsrc: sources.Source, chunks: list[sources.Chunk], values: list[str], idx: np.ndarray,
                   pool: ThreadPoolExecutor | None) -> pa.Table:
    """Values of the matched right rows, read row group by row group (skipping unmatched ones)."""
    schema = pa.schema([rsrc.schema.field(n).with_nullable(True) for n in values])  # unmatched rows: NULL
    dictionary = tuple(rsrc.dictionary_worthy(values))
    hit = np.flatnonzero(idx >= 0)
    rows = idx[hit]
    starts = np.array([c.start for c in chunks] + [chunks[-1].start + chunks[-1].num_rows if chunks else 0])
    which = np.searchsorted(starts, rows, side="right") - 1
    order = np.argsort(which.astype(np.uint16) if len(chunks) < (1 << 16) else which, kind="stable")
    which, rows, hit = which[order], rows[order], hit[order]
    del order
    bounds = np.searchsorted(which, np.arange(len(chunks) + 1))

    def one(i: int) -> pa.Table | None:
        a, b = bounds[i], bounds[i + 1]
        if a == b:
            return None
        chunk = chunks[i]
        local = rows[a:b] - chunk.start
        if chunk.num_rows <= sources.WHOLE_ROW_GROUP:
            data = pa.Table.from_batches(list(chunk.batches(values, dictionary)))
            return data.take(arrow_array(local))
        # Huge row group: take batch by batch in row order, then restore the match order.
        order = np.argsort(local, kind="stable")
        local = local[order]
        pieces, first = [], 0
        for batch in chunk.batches(values, dictionary):
            lo, hi = np.searchsorted(local, [first, first + batch.num_rows])
            if hi > lo:
                pieces.append(pa.Table.from_batches([batch]).take(arrow_array(local[lo:hi] - first)))
            first += batch.num_rows
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        return pa.concat_tables(pieces).unify_dictionaries().combine_chunks().take(arrow_array(back))

    pieces = [p for p in _map(one, range(len(chunks)), pool) if p is not None]
    if not pieces:
        return pa.Table.from_arrays([pa.nulls(len(idx), f.type) for f in schema], schema=schema)
    # Text read as dictionaries stays encoded (one shared dictionary) until the last take.
    grouped = pa.concat_tables(pieces).unify_dictionaries().combine_chunks()
    del pieces
    where = np.full(len(idx), -1, np.int64)
    where[hit] = np.arange(len(hit))
    return grouped.take(_indices(where)).cast(schema)


def _take_from_parquet(rsrc: sources.Source, values: list[str], idx: np.ndarray) -> pa.Table:
    text = [n for n in values if pa.types.is_string(rsrc.schema.field(n).type)]
    data = rsrc.read(values, text)
    taken = data.take(_indices(idx))
    del data
    return taken.cast(pa.schema([rsrc.schema.field(n).with_nullable(True) for n in values]))  # unmatched: NULL


def _assemble(left: pa.Table, taken: pa.Table, schema: pa.Schema) -> pa.Table:
    columns = [*left.columns, *taken.columns]
    return pa.Table.from_arrays(columns, schema=schema)


# ------------------------------------------------------------------------- bucketed


def _join_bucketed(lsrc: sources.Source, rsrc: sources.Source, spec: _Spec, n: int, spill_dir, threads: int):
    if spill_dir is not None:
        Path(spill_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="asof-join-", dir=spill_dir))
    try:
        ls, rs = lsrc.schema, rsrc.schema
        key_types = [unified_key_type(ls.field(k).type, rs.field(k).type, k) for k in spec.by]
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
            right = sources.Source("right", table=_read_ipc(tmp / "right" / f"{b}.arrow"))
            joined = _join_in_memory(left, right, spec, threads)
            outputs.append(_write_ipc(joined.select(out_schema.names), tmp / f"out-{b}.arrow"))
            del left, right, joined
        result = pa.concat_tables([_read_ipc(p) for p in outputs])
        order = pc.sort_indices(result[_ROW])
        final_schema = pa.schema([f for f in out_schema if f.name != _ROW])
        return result.drop_columns([_ROW]).take(order).combine_chunks().cast(final_schema)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _numbered(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    start = 0
    for batch in batches:
        rows = arrow_array(np.arange(start, start + batch.num_rows, dtype=np.int64))
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
            grouped = batch.take(arrow_array(order))
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
