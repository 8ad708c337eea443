"""Second-order aggregation on DataFusion: the compiled statement run under the memory budget, streamed.

:func:`execute_soa` checks the query against the input schemas
(:mod:`operators.soa.check`), registers the inputs (Parquet in place, Arrow in
memory, a Python reader spooled to an Arrow IPC file), picks the plan shape
from cheap facts about the input (:func:`soa_sql`'s ``all_past`` and
``partition_by_key``) and streams the result as Arrow batches.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from operators.arrays import arrow_array
from operators.errors import DATAFUSION_ERRORS, EngineError
from operators.memory import MemoryConfig, datafusion_context
from operators.soa.check import soa_output_schema
from operators.soa.compile import NO_KEYS_COL, NO_KEYS_TABLE, output_columns, soa_sql
from operators.soa.df_session import empty_batch, error_line, import_datafusion, with_spine_row
from operators.soa.spec import SOAQuery
from operators.sql_text import quote_ident

__all__ = ["SOAInput", "SOAOperator", "execute_soa"]

SOAInput = str | os.PathLike | list | pa.Table | pa.RecordBatchReader


# --------------------------------------------------------------------------- execution


def _is_path(src: object) -> bool:
    return isinstance(src, (str, os.PathLike))


def _schema_of(src: SOAInput) -> pa.Schema:
    if isinstance(src, (pa.Table, pa.RecordBatchReader)):
        return src.schema
    paths = [str(p) for p in src] if isinstance(src, list) else str(src)
    try:
        if isinstance(paths, str) and os.path.isfile(paths):
            # One file: its footer is enough (pyarrow.dataset imports pandas at import).
            import pyarrow.parquet as pq

            return pq.read_schema(paths)
        import pyarrow.dataset as ds

        return ds.dataset(paths, format="parquet").schema
    except (OSError, pa.ArrowInvalid) as exc:
        raise EngineError(f"second-order aggregation: cannot read Parquet {paths}: {error_line(exc)}") from exc


# ----------------------------------------------------- proving every row is in the past

# Units per day of the Parquet TIMESTAMP units (raw statistics are in these units).
_PER_DAY = {"milliseconds": 86_400_000, "microseconds": 86_400_000_000, "nanoseconds": 86_400_000_000_000}


def _parquet_days(column_schema, value: int) -> int | None:
    """Raw Parquet statistic of a DATE / local TIMESTAMP column -> day number (None: unsupported)."""
    logical = column_schema.logical_type
    if logical.type == "DATE" and column_schema.physical_type == "INT32":
        return int(value)
    if logical.type == "TIMESTAMP" and column_schema.physical_type == "INT64":
        import json

        info = json.loads(logical.to_json())
        # UTC-adjusted timestamps carry a time zone in Arrow; their CAST to DATE is not
        # a plain floor of the stored value everywhere, so they are not used.
        per_day = _PER_DAY.get(info.get("timeUnit", ""))
        if per_day and info.get("isAdjustedToUTC") is False:
            return int(value) // per_day
    return None


def _parquet_file_all_past(pf, feat: str, app: str) -> bool:
    """Parquet statistics of ``pf`` prove: no NULL dates and, per row group, min(app) >= max(feature)."""
    meta = pf.metadata
    idx = {meta.schema.column(j).path: j for j in range(meta.num_columns)}
    names = pf.schema_arrow.names
    if feat not in idx or app not in idx or feat not in names or app not in names:
        return False  # e.g. a hive partition column: no statistics
    for name in (feat, app):  # what DataFusion reads: a date, or a timestamp without time zone
        t = pf.schema_arrow.field(name).type
        if not (pa.types.is_date(t) or (pa.types.is_timestamp(t) and t.tz is None)):
            return False
    for i in range(meta.num_row_groups):
        rg = meta.row_group(i)
        if rg.num_rows == 0:
            continue
        bounds = []
        for name, pick in ((feat, "max_raw"), (app, "min_raw")):
            j = idx[name]
            st = rg.column(j).statistics
            if st is None or not st.has_min_max or not st.has_null_count or st.null_count != 0:
                return False
            day = _parquet_days(meta.schema.column(j), getattr(st, pick))
            if day is None:
                return False
            bounds.append(day)
        if bounds[1] < bounds[0]:
            return False
    return True


def _arrow_all_past(data: pa.Table | pa.RecordBatch, feat: str, app: str) -> bool:
    """Whether every row has both dates and ``app >= feat`` (same date or local timestamp type).

    >>> import datetime as dt
    >>> d = dt.date
    >>> t = pa.table({"f": [d(2026, 1, 1), d(2026, 1, 5)], "a": [d(2026, 1, 5), d(2026, 1, 5)]})
    >>> _arrow_all_past(t, "f", "a"), _arrow_all_past(t, "a", "f")
    (True, False)
    >>> _arrow_all_past(pa.table({"f": [d(2026, 1, 1), None], "a": [d(2026, 1, 5)] * 2}), "f", "a")
    False
    """
    import pyarrow.compute as pc

    f, a = data.column(feat), data.column(app)
    t = f.type
    if a.type != t or not (pa.types.is_date(t) or (pa.types.is_timestamp(t) and t.tz is None)):
        return False
    if f.null_count or a.null_count:
        return False
    return data.num_rows == 0 or pc.all(pc.greater_equal(a, f)).as_py() is True


class _Spool:
    """Spool files of one execution, removed when the result stream ends or is closed."""

    def __init__(self, memory: MemoryConfig) -> None:
        base = memory.spill_dir or Path(tempfile.gettempdir())
        self.dir = Path(base) / f"soa-{uuid.uuid4().hex[:12]}"
        self._made = False

    def path(self, name: str) -> Path:
        if not self._made:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._made = True
        return self.dir / name

    def cleanup(self) -> None:
        if self._made:
            for p in self.dir.iterdir():
                with contextlib.suppress(OSError):
                    p.unlink()
            with contextlib.suppress(OSError):
                self.dir.rmdir()
            self._made = False


# When to partition rows by key (soa_sql's partition_by_key). DataFusion's partial
# aggregation gives up (skip_partial_aggregation_probe_*: 100k rows, ratio 0.8) when its
# first 100k rows hold more than 0.8 distinct keys per row; the same test on the first
# 100k keys of the input picks the one-step plan for exactly those inputs. Below
# _PARTITION_MIN_ROWS rows both plans take well under 0.2 s: no sample is taken (the
# sample costs 3-30 ms).
_PROBE_ROWS = 100_000
_PROBE_RATIO = 0.8
_PARTITION_MIN_ROWS = 2_000_000
# Hash partitions per thread of the one-step plan. Each partition aggregates its own
# share of the keys: more partitions, smaller hash tables and accumulator arrays, which
# stay in cache (an accumulator update is a random access per row; STDDEV's touches
# three arrays). By customer at 1e7 rows (2 threads), query CPU 1.7 s with 1 partition
# per thread, 1.6 s with 4, 1.2 s with 8, 1.1 s with 16; peak RSS +0, +25, +50, +80 MB
# (every scan partition reads its own row group at once; one scan partition feeding all
# hash partitions avoids that, but costs +30% CPU). See benchmarks/RESULTS.md.
_PARTITIONS_PER_THREAD = 8
# Under a memory limit DataFusion's fair pool gives each partition's aggregation an equal
# share, and a partition that cannot grow must still sort and spill its state: with a few
# MB per partition that fails ("Resources exhausted"). At most one partition per 32 MB of
# pool, which also keeps the buffers outside the pool (above) small next to the limit.
_MIN_POOL_PER_PARTITION = 32 << 20


@dataclass
class _InputFacts:
    """What execute_soa learned about the input while registering it."""

    all_past: bool = False  # every row provably past: soa_sql's all_past
    rows: int = 0  # input rows (0 when unknown)


def _many_keys(ctx, table: str, key: str) -> bool:
    """DataFusion's partial-aggregation probe, on the first keys of ``table``.

    Run by DataFusion on the registered input, whatever its kind (``LIMIT`` stops
    the scan early): 3 ms by region, 30 ms by customer at 1e7 rows.

    >>> from operators.memory import datafusion_context
    >>> ctx = datafusion_context(MemoryConfig(threads=1))
    >>> ctx.register_record_batches("t", [[pa.record_batch({"k": pa.array(["a", "b", "c", "d", "a"])})]])
    >>> _many_keys(ctx, "t", "k"), _many_keys(ctx, "t", "no such column")
    (True, False)
    """
    k = quote_ident(key)
    try:
        got = ctx.sql(
            f"SELECT COUNT(DISTINCT {k}) AS n, COUNT(*) AS m FROM (SELECT {k} FROM {table} LIMIT {_PROBE_ROWS})"
        ).collect()
        n, m = got[0].column(0)[0].as_py(), got[0].column(1)[0].as_py()
    except DATAFUSION_ERRORS:
        return False
    return m > 0 and n >= _PROBE_RATIO * m


def _parquet_files(src: SOAInput) -> list[str]:
    files: list[str] = []
    for p in src if isinstance(src, list) else [src]:
        p = Path(p)
        if p.is_dir():
            # DataFusion reads the *.parquet files below a directory (this may be a
            # superset, e.g. hidden files: a conservative answer either way).
            files += [str(f) for f in sorted(p.rglob("*.parquet")) if f.is_file()]
        else:
            files.append(str(p))
    return files


def _parquet_facts(src: SOAInput, query: SOAQuery) -> _InputFacts:
    """Row count and all_past from the Parquet footers (defaults when unreadable)."""
    import pyarrow.parquet as pq

    try:
        files = [pq.ParquetFile(p) for p in _parquet_files(src)]
        feat, app = query.feature_date_col, query.application_date_col
        return _InputFacts(
            all_past=bool(files) and all(_parquet_file_all_past(f, feat, app) for f in files),
            rows=sum(f.metadata.num_rows for f in files),
        )
    except (OSError, pa.ArrowException, ValueError):  # unreadable metadata, odd statistics: keep the filters
        return _InputFacts()


def _register_input(
    ctx, name: str, src: SOAInput, spool: _Spool, partitions: int, query: SOAQuery | None
) -> _InputFacts:
    """Register ``src`` as table ``name``; with ``query`` (no spine), also learn :class:`_InputFacts`."""
    if isinstance(src, pa.Table):
        # Already in memory: hand DataFusion the batches, spread over partitions.
        batches = src.combine_chunks().to_batches(max_chunksize=max(1, -(-src.num_rows // partitions)))
        parts = [batches[i::partitions] for i in range(partitions)]
        parts = [p for p in parts if p] or [[empty_batch(src.schema)]]
        ctx.register_record_batches(name, parts)
        if query is None:
            return _InputFacts()
        return _InputFacts(_arrow_all_past(src, query.feature_date_col, query.application_date_col), src.num_rows)
    if isinstance(src, pa.RecordBatchReader):
        # DataFusion would drain a Python reader at registration; stream it to an
        # Arrow IPC file instead and let DataFusion scan that lazily.
        path = spool.path(f"{name}.arrow")
        all_past, rows = query is not None, 0
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, src.schema) as writer:
            for batch in src:
                if all_past:
                    all_past = _arrow_all_past(batch, query.feature_date_col, query.application_date_col)
                rows += batch.num_rows
                writer.write_batch(batch)
        ctx.register_arrow(name, str(path))
        return _InputFacts(all_past, rows)
    if isinstance(src, list):
        if not src:
            raise EngineError("second-order aggregation: empty list of input files")
        df = ctx.read_parquet(str(src[0]))
        for p in src[1:]:
            df = df.union(ctx.read_parquet(str(p)))
        ctx.register_view(name, df)
    else:
        ctx.register_parquet(name, str(src))
    return _parquet_facts(src, query) if query is not None else _InputFacts()


def _plan(ctx, query: SOAQuery, facts: _InputFacts, memory: MemoryConfig):
    """The DataFusion DataFrame of a non-temporal SOA: one-step plan when many keys (see soa_sql)."""
    partitions = memory.effective_threads
    if partitions > 1 and facts.rows >= _PARTITION_MIN_ROWS and _many_keys(ctx, "soa_input", query.id_col):
        fan_out = partitions * _PARTITIONS_PER_THREAD
        if memory.memory_limit is not None:
            fan_out = max(partitions, min(fan_out, memory.memory_limit // _MIN_POOL_PER_PARTITION))
        settings = {
            # A partitioned hash join (never "collect left"), however small the empty side.
            "datafusion.optimizer.hash_join_single_partition_threshold": 0,
            "datafusion.optimizer.hash_join_single_partition_threshold_rows": 0,
            "datafusion.execution.target_partitions": fan_out,
        }
        try:
            key_type = ctx.table("soa_input").schema().field(query.id_col).type
            empty = pa.RecordBatch.from_arrays([pa.nulls(0, key_type)], names=[NO_KEYS_COL])
            ctx.register_record_batches(NO_KEYS_TABLE, [[empty]])
            for name, value in settings.items():  # this session only
                ctx.sql(f"SET {name} = {value}")
            return ctx.sql(soa_sql(query, "soa_input", all_past=facts.all_past, partition_by_key=True))
        except DATAFUSION_ERRORS:  # e.g. a key type DataFusion cannot join on: the two-step plan
            with contextlib.suppress(*DATAFUSION_ERRORS):
                ctx.sql(f"SET datafusion.execution.target_partitions = {partitions}")
    return ctx.sql(soa_sql(query, "soa_input", all_past=facts.all_past))


# Arrow types DataFusion's arrow_cast can produce from its view types, by name.
_CAST_NAMES = {
    pa.string(): "Utf8",
    pa.large_string(): "LargeUtf8",
    pa.binary(): "Binary",
    pa.large_binary(): "LargeBinary",
}


def _unview(ctx, df, schema: pa.Schema):
    """``df`` with its string/binary view columns cast (in DataFusion) to the types of ``schema``.

    DataFusion reads Parquet strings as views; the contract is the input's own type.
    Casting in the plan saves the pyarrow cast of every output batch, and with it the
    import of pyarrow.compute (~30 ms, 15% of the by-region query at 1e7 rows).
    """
    exprs, changed = [], False
    for got, want in zip(df.schema(), schema, strict=False):
        name = quote_ident(got.name)
        target = _CAST_NAMES.get(want.type)
        view = pa.types.is_string_view(got.type) or pa.types.is_binary_view(got.type)
        if got.type != want.type and target and view:
            exprs.append(f"arrow_cast({name}, '{target}') AS {name}")
            changed = True
        else:
            exprs.append(name)
    if not changed:
        return df
    ctx.register_view("_soa_result", df)
    return ctx.sql(f"SELECT {', '.join(exprs)} FROM _soa_result")


def _spine_batches(src: SOAInput, columns: list[str]) -> Iterator[pa.RecordBatch]:
    if isinstance(src, pa.Table):
        yield from src.select(columns).to_batches()
    elif isinstance(src, pa.RecordBatchReader):
        for b in src:
            yield b.select(columns)
    else:
        import pyarrow.dataset as ds

        paths = [str(p) for p in src] if isinstance(src, list) else str(src)
        # Scanner.to_batches yields in file/row-group order: that order is the spine's.
        yield from ds.dataset(paths, format="parquet").to_batches(columns=columns)


def _spool_spine(src: SOAInput, columns: list[str], spool: _Spool) -> Path:
    """Copy the spine's key/date columns plus a row number to an IPC file (streaming)."""
    schema = _schema_of(src)
    out_schema = pa.schema([schema.field(c) for c in dict.fromkeys(columns)])
    out_schema = with_spine_row(out_schema)
    path = spool.path("spine.arrow")
    row = 0
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, out_schema) as writer:
        for b in _spine_batches(src, list(dict.fromkeys(columns))):
            n = b.num_rows
            # From its buffer, not pa.array: the latter imports pandas to check for pandas objects.
            rows = arrow_array(np.arange(row, row + n, dtype=np.int64))
            writer.write_batch(pa.RecordBatch.from_arrays([*b.columns, rows], schema=out_schema))
            row += n
    return path


def execute_soa(
    query: SOAQuery,
    input: SOAInput,
    *,
    spine: SOAInput | None = None,
    memory: MemoryConfig,
    by_id: bool = False,
) -> pa.RecordBatchReader:
    """Run ``query`` on DataFusion and return the result as a lazy RecordBatchReader.

    ``input`` and ``spine`` each are a Parquet path (file or directory), a list of
    Parquet paths, a ``pa.Table`` or a ``pa.RecordBatchReader`` (spooled to an
    Arrow IPC file under ``memory.spill_dir``, removed when the result is exhausted
    or closed). Problems with the query raise :class:`EngineError` before any work.
    ``by_id=True`` (without a spine) returns the rows sorted by id, NULL last: one row
    per id, so that is a total order, sorted inside the plan instead of after it.

    >>> import datetime as dt
    >>> t = pa.table({"k": ["a", "a", "b"], "x": [1.0, 2.0, 5.0],
    ...               "d": [dt.date(2026, 1, 1), dt.date(2026, 1, 9), dt.date(2026, 2, 1)],
    ...               "app": [dt.date(2026, 1, 10)] * 3})
    >>> from operators.soa.spec import SOAFeature
    >>> q = SOAQuery(id_col="k", feature_date_col="d", application_date_col="app",
    ...              features={"x": SOAFeature(basic=("sum", "count"))})
    >>> out = execute_soa(q, t, memory=MemoryConfig(threads=1)).read_all().sort_by("k")
    >>> out.to_pydict()
    {'k': ['a', 'b'], 'x_SUM': [3.0, None], 'x_COUNT': [2, 0]}
    """
    spool = _Spool(memory)
    try:
        input_schema = _schema_of(input)
        spine_schema = _schema_of(spine) if spine is not None else None
        # The schema planned from the inputs' Arrow schemas is the contract: DataFusion
        # reads Parquet strings as string_view, which the stream casts back.
        schema = soa_output_schema(query, input_schema, spine_schema)
        import_datafusion()
        ctx = datafusion_context(memory)
        facts = _register_input(
            ctx, "soa_input", input, spool, memory.effective_threads, query if spine is None else None
        )
        spine_table = None
        if spine is not None:
            cols = [query.spine_id_col or query.id_col, query.spine_date_col or query.application_date_col]
            path = _spool_spine(spine, cols, spool)
            ctx.register_arrow("soa_spine", str(path))
            # Memory-mapped: the zip in _stream slices it without loading the spine.
            spine_table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
            # all_past: the join keeps past rows only, and unmatched spine rows are all NULL.
            df = ctx.sql(soa_sql(query, "soa_input", "soa_spine", all_past=True))
        else:
            df = _unview(ctx, _plan(ctx, query, facts, memory), schema)
            if by_id:
                from datafusion import col

                df = df.sort(col(query.id_col).sort(ascending=True, nulls_first=False))
    except EngineError:
        spool.cleanup()
        raise
    except DATAFUSION_ERRORS as exc:
        spool.cleanup()
        raise EngineError(f"second-order aggregation: {error_line(exc)}") from exc
    stream = _stream(ctx, df, schema, spool, spine_table)
    # A generator closed before its first batch never runs its `finally`: tie the
    # spool's removal to the generator's lifetime as well.
    weakref.finalize(stream, spool.cleanup)
    return pa.RecordBatchReader.from_batches(schema, stream)


def _stream(ctx, df, schema: pa.Schema, spool: _Spool, spine: pa.Table | None) -> Iterator[pa.RecordBatch]:
    # ctx is held here so the session (memory pool, registered tables) outlives the stream.
    try:
        done = 0
        for batch in df.execute_stream():
            b = batch.to_pyarrow()
            if b.num_rows == 0:
                continue
            if spine is not None:
                b = _zip_spine(b, spine, done, schema)
                done += b.num_rows
            yield b if b.schema == schema else b.cast(schema)
        if spine is not None and done != spine.num_rows:
            raise EngineError(f"second-order aggregation: {done} result rows for {spine.num_rows} spine rows")
    except EngineError:
        raise
    except DATAFUSION_ERRORS as exc:
        msg = error_line(exc)
        if spine is not None and "HashJoinInput" in msg:
            # DataFusion cannot spill a hash join's build side (here: the spine).
            msg += " (temporal SOA keeps the spine's ids and dates in memory: raise the memory limit)"
        raise EngineError(f"second-order aggregation failed: {msg}") from exc
    finally:
        del ctx
        spool.cleanup()


def _zip_spine(b: pa.RecordBatch, spine: pa.Table, start: int, schema: pa.Schema) -> pa.RecordBatch:
    """Put spine rows [start, start + n) (id, date) in front of a (row number, features...) batch."""
    n = b.num_rows
    rows = b.column(0)
    # Guard the contract of soa_sql (rows sorted, one per spine row): row i is spine row i.
    if rows[0].as_py() != start or rows[n - 1].as_py() != start + n - 1:
        raise EngineError("second-order aggregation: result rows are not in spine order")
    part = spine.slice(start, n).combine_chunks()
    cols = [part.column(0).chunk(0), part.column(1).chunk(0)]
    return pa.RecordBatch.from_arrays([*cols, *b.columns[1:]], names=schema.names)


class SOAOperator:
    """The SOA as an operator (see :mod:`operators.base`): schema known before running.

    >>> import datetime as dt
    >>> t = pa.table({"k": ["a"], "x": [1.0], "d": [dt.date(2026, 1, 1)], "app": [dt.date(2026, 1, 2)]})
    >>> from operators.soa.spec import SOAFeature
    >>> op = SOAOperator(SOAQuery(id_col="k", feature_date_col="d", application_date_col="app",
    ...                           features={"x": SOAFeature(basic=("max",))}), t, memory=MemoryConfig())
    >>> op.schema.names, [b.num_rows for b in op.batches()], op.describe()
    (['k', 'x_MAX'], [1], 'SOA(by k: x_MAX)')
    """

    def __init__(
        self,
        query: SOAQuery,
        input: SOAInput,
        *,
        spine: SOAInput | None = None,
        memory: MemoryConfig,
        by_id: bool = False,
    ) -> None:
        self.query = query
        self._input = input
        self._spine = spine
        self._memory = memory
        self._by_id = by_id and spine is None  # see execute_soa
        self._schema: pa.Schema | None = None

    @property
    def schema(self) -> pa.Schema:
        if self._schema is None:
            spine_schema = _schema_of(self._spine) if self._spine is not None else None
            self._schema = soa_output_schema(self.query, _schema_of(self._input), spine_schema)
        return self._schema

    def batches(self) -> Iterator[pa.RecordBatch]:
        schema = self.schema
        reader = execute_soa(self.query, self._input, spine=self._spine, memory=self._memory, by_id=self._by_id)
        with contextlib.closing(reader):
            for b in reader:
                yield b if b.schema == schema else b.cast(schema)

    def describe(self) -> str:
        cols = output_columns(self.query)
        temporal = ", temporal" if self._spine is not None else ""
        order = ", sorted by id" if self._by_id else ""
        return f"SOA(by {cols[0]}{temporal}{order}: {', '.join(cols[1:])})"

