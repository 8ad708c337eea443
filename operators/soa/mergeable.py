"""Mergeable SOA state: the totals of partial aggregates, updated by new input partitions only.

A non-temporal SOA is a filtered aggregation *per row*: each row's day count
(application date - feature date) decides which filtered aggregates it feeds,
independently of every other row. So every aggregate that merges (``count``,
``sum``, ``min``, ``max``; ``mean`` is ``sum / count``; a sample ``stddev``/``var``
is kept as ``count``, ``sum`` and the population variance, merged as Chan et al. do
the M2 of parallel variance) can be kept as partial aggregates per id, and the
partials of a new input partition merged into them (Chronon's tiled partial
aggregates, with the partition as the tile).

State kept in ``state_dir`` (``target/state/soa/<node>/`` in a project):

* ``totals-<uuid>.arrow`` (Arrow IPC): one row per id, in id order (NULL last), the
  filtered partial aggregates (``_soa_a0``, ...) over every input partition;
* ``manifest.json``: the query digest, the input folder, the totals file and per
  partition the signature of its files (names, sizes, modification times); written
  last, with an atomic rename. A run killed before that rename leaves the previous
  manifest and the totals it names; the next run removes files it does not name.

An update reads the new partitions only: totals = merge(totals, partials of the
new partitions), the merged rows of the ids they touch put in place of the old ones,
so the totals stay in id order and the output (one row per id, in id order) needs no
sort. A changed or removed partition cannot be taken out of a ``min``
or ``max`` (nor, exactly, out of a floating-point ``sum``): the totals are then
recomputed from every partition in one pass, which is what a full run costs.
``count_distinct``, ``median`` and temporal SOA (a spine) are not
mergeable here: :func:`not_mergeable` says why and the caller recomputes in full.

>>> from operators.soa.spec import SOAFeature
>>> q = SOAQuery(id_col="k", feature_date_col="d", application_date_col="app",
...              features={"x": SOAFeature(basic=("sum", "mean"))})
>>> not_mergeable(q, temporal=False) is None
True
>>> not_mergeable(SOAQuery(id_col="k", feature_date_col="d", application_date_col="app",
...               features={"x": SOAFeature(basic=("median", "sum"))}), temporal=False)
'median is not mergeable'
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa

from operators.arrays import arrow_array, bool_array, pack_bits, validity
from operators.datasets import partition_files
from operators.errors import DATAFUSION_ERRORS, EngineError
from operators.memory import MemoryConfig, datafusion_context
from operators.soa.compile import _Aggs, _final_exprs, since_conditions, source_columns
from operators.soa.df_session import error_line, import_datafusion
from operators.soa.spec import SOAQuery
from operators.soa.validate import MERGEABLE_AGGS, not_mergeable
from operators.sql_text import quote_ident

__all__ = ["MERGEABLE_AGGS", "IncrementalSOA", "not_mergeable"]

# How each partial (by the SQL function it starts with) merges across partitions.
_MERGE = {"COUNT(": "SUM", "SUM(": "SUM", "MIN(": "MIN", "MAX(": "MAX"}
_MANIFEST = "manifest.json"
_VERSION = 5  # 4: stddev/var kept as population variances; 5: totals in id order
# The row of each id in the totals, as touched_sql returns it with the merged rows.
POSITION_COL = "_soa_pos"


def _aggs(query: SOAQuery) -> tuple[_Aggs, list[str]]:
    aggs = _Aggs(quote=quote_ident, mergeable=True)
    final = _final_exprs(query, aggs)
    return aggs, final


def partial_sql(query: SOAQuery, input_name: str) -> str:
    """One row per id: the filtered aggregates of the rows of ``input_name`` (no final expressions)."""
    aggs, _ = _aggs(query)
    key = quote_ident(query.id_col)
    days = (f"CAST({quote_ident(query.application_date_col)} AS DATE) - "
            f"CAST({quote_ident(query.feature_date_col)} AS DATE) AS _days_between")
    flags = [f"({cond}) AS {flag}" for flag, cond in since_conditions(query)]
    cols = [key, days, *(quote_ident(c) for c in source_columns(query, exclude=(query.id_col,))), *flags]
    agg_list = ",\n    ".join(f"{sql} AS {alias}" for sql, alias in aggs.exprs.items())
    return (f"WITH _soa_rows AS (\n  SELECT {', '.join(cols)}\n  FROM {input_name}\n)\n"
            f"SELECT {key},\n    {agg_list}\nFROM _soa_rows\nGROUP BY {key}")


def merge_sql(query: SOAQuery, partials_name: str) -> str:
    """Partials (any number of rows per id) merged into one row per id, same columns."""
    aggs, _ = _aggs(query)
    key = quote_ident(query.id_col)
    merged, means = [], []
    for sql, alias in aggs.exprs.items():
        if alias in aggs.variances:
            # Population variances of parts with n_i values and means m_i merge into
            # (sum(n_i * var_i) + sum(n_i * (m_i - m)^2)) / sum(n_i), m the overall mean:
            # exact, and free of the cancellation of a sum of squares.
            total, n = aggs.variances[alias]
            mean = f"CAST({total} AS DOUBLE) / CAST(NULLIF({n}, 0) AS DOUBLE)"
            means.append(f"SUM(CAST({total} AS DOUBLE)) OVER (PARTITION BY {key}) / "
                         f"CAST(NULLIF(SUM({n}) OVER (PARTITION BY {key}), 0) AS DOUBLE) AS _m_{alias}")
            merged.append(f"(SUM({alias} * CAST({n} AS DOUBLE)) + SUM(CAST({n} AS DOUBLE) * "
                          f"({mean} - _m_{alias}) * ({mean} - _m_{alias}))) / "
                          f"CAST(NULLIF(SUM({n}), 0) AS DOUBLE) AS {alias}")
            continue
        fn = next(f for prefix, f in _MERGE.items() if sql.startswith(prefix))
        merged.append(f"{fn}({alias}) AS {alias}")
    source = partials_name if not means else f"(SELECT *, {', '.join(means)} FROM {partials_name}) AS _soa_p"
    return f"SELECT {key}, {', '.join(merged)}\nFROM {source}\nGROUP BY {key}"


def touched_sql(query: SOAQuery, totals_name: str, partials_name: str, positions_name: str) -> str:
    """The new totals of the ids ``partials_name`` touches: their kept row merged with their partials.

    Both have the totals' columns. Ids match NULL-safely (a NULL id is a group of its own),
    as a hash join: only the touched ids' rows are read from the totals, not re-aggregated.
    Each merged row carries its id's row in the totals (``positions_name``: the id and
    :data:`POSITION_COL`; NULL for an id the totals lack) and the rows come in that order,
    new ids last: the caller puts them in place without hashing the ids again.
    """
    key = quote_ident(query.id_col)
    same = f"{totals_name}.{key} IS NOT DISTINCT FROM _soa_ids.{key}"
    parts = (f"SELECT {totals_name}.* FROM {totals_name} LEFT SEMI JOIN _soa_ids ON {same}\n"
             f"UNION ALL SELECT * FROM {partials_name}")
    merged = (f"WITH _soa_ids AS (SELECT DISTINCT {key} FROM {partials_name}),\n_soa_parts AS ({parts})\n"
              f"{merge_sql(query, '_soa_parts')}")
    pos = quote_ident(POSITION_COL)
    return (f"SELECT _soa_m.*, {positions_name}.{pos} FROM ({merged}) AS _soa_m\n"
            f"LEFT JOIN {positions_name} ON _soa_m.{key} IS NOT DISTINCT FROM {positions_name}.{key}\n"
            f"ORDER BY {positions_name}.{pos} ASC NULLS LAST")


def in_id_order(sql: str, query: SOAQuery) -> str:
    """``sql`` (one row per id) sorted as the SOA's output is: by id, NULL last."""
    return f"SELECT * FROM ({sql}) AS _soa_unsorted ORDER BY {quote_ident(query.id_col)} ASC NULLS LAST"


def replace_rows(totals: pa.Table, touched: pa.Table, rows, key: str) -> pa.Table:
    """``totals`` with its rows ``rows`` (ascending positions) replaced by ``touched``'s rows, in order.

    The id column is kept as it is (the touched rows are the same ids); every other
    column gets the touched values at those positions.

    >>> import numpy as np
    >>> t = pa.table({"k": ["a", "b", None], "v": [1, 2, 3]})
    >>> replace_rows(t, pa.table({"k": ["a", None], "v": [10, 30]}), np.array([0, 2]), "k").to_pydict()
    {'k': ['a', 'b', None], 'v': [10, 2, 30]}
    """
    touched = touched.select(totals.column_names)
    if touched.schema.types != totals.schema.types:
        touched = touched.cast(totals.schema)
    # A copy and a scatter per column (pyarrow's take of every column cost 3x as much).
    columns = [totals.column(name) if name == key else
               _scatter(totals.column(name).combine_chunks(), rows, touched.column(name).combine_chunks())
               for name in totals.column_names]
    return pa.Table.from_arrays(columns, schema=totals.schema)


def _scatter(arr: pa.Array, rows, new: pa.Array) -> pa.Array:
    """``arr`` with ``new``'s values at positions ``rows`` (ascending, one per value of ``new``)."""
    import numpy as np

    t = arr.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_temporal(t)) or t.bit_width % 8:
        from pyarrow._compute import call_function

        mask = np.zeros(len(arr), bool)
        mask[rows] = True
        return call_function("replace_with_mask", [arr, bool_array(mask), new])
    width = t.bit_width // 8
    dtype = np.dtype(f"V{width}")  # the bytes of each value, whatever its type
    values = np.frombuffer(arr.buffers()[1], dtype, len(arr), arr.offset * width).copy()
    values[rows] = np.frombuffer(new.buffers()[1], dtype, len(new), new.offset * width)
    bitmap = None
    if arr.null_count or new.null_count:
        valid = validity(arr)
        valid[rows] = validity(new)
        bitmap = pack_bits(valid)
    return pa.Array.from_buffers(t, len(arr), [bitmap, pa.py_buffer(values)])


def final_sql(query: SOAQuery, totals_name: str) -> str:
    """The SOA's output columns from the merged totals, row for row (the totals are in id order).

    One row per id, so the id alone orders the rows as the run's defined order does
    (``seeknal_flow/run/ordering.py``: keys, then every other column; NULLs last).
    """
    _, final = _aggs(query)
    return f"SELECT {quote_ident(query.id_col)},\n  {', '.join(final)}\nFROM {totals_name}"


def query_digest(query: SOAQuery) -> str:
    import msgspec

    return hashlib.sha256(msgspec.json.encode(query)).hexdigest()[:24]


def input_partitions(root: Path) -> dict[str, tuple[Path, str]]:
    """Partition (folder relative to ``root``) -> (folder, signature of its Parquet files).

    Hidden files and folders (a writer's ``.tmp-*``, ``.old-*``) are skipped. The
    signature is names, sizes and modification times: a partition written by a
    run is a new folder with new files.
    """
    return {p: (root / p, signature) for p, (_, signature) in partition_files(root, skip=(".", "_")).items()}


class IncrementalSOA:
    """Updates the partial-aggregate state of ``query`` over the partitions under ``input_root``.

    >>> import datetime as dt, tempfile, pyarrow.parquet as pq
    >>> from operators.soa.spec import SOAFeature
    >>> tmp = Path(tempfile.mkdtemp())
    >>> for day, x in (("d=1", 1.0), ("d=2", 5.0)):
    ...     (tmp / "in" / day).mkdir(parents=True)
    ...     pq.write_table(pa.table({"k": ["a"], "x": [x], "f": [dt.date(2026, 1, 1)],
    ...                              "app": [dt.date(2026, 1, 2)]}), tmp / "in" / day / "p.parquet")
    >>> q = SOAQuery(id_col="k", feature_date_col="f", application_date_col="app",
    ...              features={"x": SOAFeature(basic=("sum", "max"))})
    >>> soa = IncrementalSOA(q, tmp / "in", tmp / "state", memory=MemoryConfig(threads=1))
    >>> soa.update(), soa.result().read_all().to_pydict()
    ('2 input partitions aggregated in full (no earlier state)', {'k': ['a'], 'x_SUM': [6.0], 'x_MAX': [5.0]})
    """

    def __init__(self, query: SOAQuery, input_root: Path, state_dir: Path, *, memory: MemoryConfig,
                 rebuild: bool = False) -> None:
        self.query, self.root, self.dir, self.memory = query, Path(input_root), Path(state_dir), memory
        self.rebuild = rebuild
        self._totals: pa.Table | None = None
        self._ctx = None
        self._saving: Future | None = None

    # ------------------------------------------------------------------ engine

    def _context(self):
        if self._ctx is None:
            import_datafusion()
            self._ctx = datafusion_context(self.memory)
            # Parquet strings as plain strings, the totals' type: no cast of every partial
            # and total (a cast is also what imports pyarrow.compute, 0.05 s of a run).
            self._ctx.sql("SET datafusion.execution.parquet.schema_force_view_types = false")
        return self._ctx

    def _sql(self, sql: str, tables: dict[str, object], *, in_order: bool = False) -> pa.Table:
        """Run ``sql`` with ``tables`` (a Parquet folder or an Arrow table each) registered.

        ``in_order``: on one partition, so a projection keeps its input's row order.
        """
        ctx = self._context()
        if in_order:
            ctx.sql("SET datafusion.execution.target_partitions = 1")
        try:
            for name, data in tables.items():
                with contextlib.suppress(*DATAFUSION_ERRORS):
                    ctx.deregister_table(name)
                if isinstance(data, pa.Table):
                    batches = data.to_batches() or [pa.RecordBatch.from_pylist([], schema=data.schema)]
                    ctx.register_record_batches(name, [batches])
                else:
                    ctx.register_parquet(name, str(data))
            return _unview(ctx.sql(sql).to_arrow_table())
        except DATAFUSION_ERRORS as exc:
            raise EngineError(f"second-order aggregation (incremental): {error_line(exc)}") from exc
        finally:
            if in_order:
                ctx.sql(f"SET datafusion.execution.target_partitions = {self.memory.effective_threads}")

    def _merge_affected(self, kept: pa.Table, news: list[pa.Table]) -> pa.Table:
        """The totals with the ids of the new partials updated; every other id's row kept as it is.

        A new day touches some of the ids: merging only their rows (not a GROUP BY over
        every id) makes the update cost the size of the new data, not of the totals; and
        putting them in place keeps the totals in id order without a sort, unless a new id
        came (then the totals are sorted once more).
        """
        import numpy as np

        key = self.query.id_col
        positions = pa.table({key: kept.column(key),
                              POSITION_COL: arrow_array(np.arange(kept.num_rows, dtype=np.int64))})
        touched = self._sql(touched_sql(self.query, "_soa_kept", "_soa_new", "_soa_positions"),
                            {"_soa_kept": kept, "_soa_new": _concat(news), "_soa_positions": positions})
        pos = touched.column(POSITION_COL).combine_chunks()
        touched = touched.drop_columns([POSITION_COL])
        if len(pos) == 0:  # new partitions without rows
            return kept
        totals = None
        if pos.null_count == 0:  # every touched id has its row: put the merged rows there
            rows = np.frombuffer(pos.buffers()[1], np.int64, len(pos), pos.offset)
            totals = replace_rows(kept, touched, rows, key)
        if totals is None:  # a new id has no place yet: the totals are sorted once more
            k = quote_ident(key)
            rest = (f"SELECT _soa_kept.* FROM _soa_kept LEFT ANTI JOIN _soa_touched "
                    f"ON _soa_kept.{k} IS NOT DISTINCT FROM _soa_touched.{k} "
                    f"UNION ALL SELECT * FROM _soa_touched")
            totals = self._sql(in_id_order(rest, self.query), {"_soa_kept": kept, "_soa_touched": touched})
        return totals

    # ------------------------------------------------------------------ state

    def _load_manifest(self) -> dict | None:
        try:
            m = json.loads((self.dir / _MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        if (m.get("version") != _VERSION or m.get("query") != query_digest(self.query)
                or m.get("input") != str(self.root.resolve()) or not (self.dir / m.get("totals", "")).is_file()):
            return None
        return m

    def update(self, *, background: bool = False) -> str:
        """Bring the state up to date with the input; return a one-line summary of what was merged.

        ``background``: the new state is written on a thread (the output can be computed
        and written meanwhile); :meth:`wait_saved` waits for it and raises its error.
        """
        manifest = None if self.rebuild else self._load_manifest()
        self._clean(manifest)
        now = input_partitions(self.root)
        if not now:
            raise EngineError(f"second-order aggregation: no Parquet files under {self.root}")
        old = manifest["partitions"] if manifest else {}
        todo = [p for p, (_, sig) in now.items() if old.get(p) != sig]
        removed = [p for p in old if p not in now]
        changed = [p for p in todo if p in old]
        totals = None
        if manifest is not None and not changed and not removed:
            try:
                kept = self._read(manifest["totals"])
                if not todo:
                    self._totals = kept
                    return f"0 of {len(now)} input partitions changed"
                news = [self._sql(partial_sql(self.query, "_soa_input"), {"_soa_input": now[p][0]}) for p in todo]
                totals = self._merge_affected(kept, news)
                summary = f"{len(todo)} new of {len(now)} input partitions merged into the totals"
            except (OSError, pa.ArrowException):
                # An unreadable totals file, or new partials whose types do not fit the totals'
                # (e.g. a column that was all NULL): one full pass instead.
                summary = f"{len(now)} input partitions aggregated in full (the kept totals did not fit)"
        if totals is None:
            # One pass over every partition: the normal SOA's cost.
            totals = self._sql(in_id_order(partial_sql(self.query, "_soa_input"), self.query),
                               {"_soa_input": self.root})
            if manifest is None or changed or removed:
                summary = (f"{len(now)} input partitions aggregated in full (" + (
                    "no earlier state)" if manifest is None else
                    f"{len(changed)} changed, {len(removed)} removed: min/max cannot be taken back)"))
        self._totals = totals
        if background:
            pool = ThreadPoolExecutor(1, thread_name_prefix="soa-state")
            self._saving = pool.submit(self._save, totals, now)
            pool.shutdown(wait=False)
        else:
            self._save(totals, now)
        return summary

    def _save(self, totals: pa.Table, now: dict[str, tuple[Path, str]]) -> None:
        """The totals first (a unique name), then the manifest (atomic rename), then the old totals go."""
        self.dir.mkdir(parents=True, exist_ok=True)
        totals_name = f"totals-{uuid.uuid4().hex[:8]}.arrow"
        _write(totals, self.dir / totals_name)
        doc = {"version": _VERSION, "query": query_digest(self.query), "input": str(self.root.resolve()),
               "totals": totals_name, "partitions": {p: sig for p, (_, sig) in now.items()}}
        tmp = self.dir / f".{_MANIFEST}.{uuid.uuid4().hex[:8]}"
        tmp.write_text(json.dumps(doc, indent=0))
        os.replace(tmp, self.dir / _MANIFEST)
        self._clean(doc)

    def wait_saved(self, *, raise_error: bool = True) -> None:
        """Wait for the state written by ``update(background=True)``; raise its error unless told not to."""
        saving, self._saving = self._saving, None
        if saving is None:
            return
        try:
            saving.result()
        except (OSError, pa.ArrowException):
            if raise_error:
                raise

    def _read(self, name: str) -> pa.Table:
        with pa.memory_map(str(self.dir / name)) as source:
            return pa.ipc.open_file(source).read_all()

    def _clean(self, manifest: dict | None) -> None:
        """Remove state files the manifest does not name (left by a killed run, or replaced)."""
        if not self.dir.is_dir():
            return
        named = set() if manifest is None else {manifest["totals"]}
        for f in [*self.dir.glob("totals-*.arrow"), *self.dir.glob(".*")]:
            if f.name not in named:
                with contextlib.suppress(OSError):
                    f.unlink()

    # ------------------------------------------------------------------ result

    def result(self) -> pa.RecordBatchReader:
        """The SOA's output from the totals (call :meth:`update` first)."""
        if self._totals is None:
            raise EngineError("second-order aggregation (incremental): update() must run before result()")
        out = self._sql(final_sql(self.query, "_soa_totals"), {"_soa_totals": self._totals}, in_order=True)
        return out.to_reader()


def _unview(t: pa.Table) -> pa.Table:
    """String/binary views (how DataFusion reads Parquet) as plain strings/binaries: stable state types."""
    fields = []
    for f in t.schema:
        if pa.types.is_string_view(f.type):
            f = f.with_type(pa.string())
        elif pa.types.is_binary_view(f.type):
            f = f.with_type(pa.binary())
        fields.append(f)
    schema = pa.schema(fields)
    return t if schema == t.schema else t.cast(schema)


def _concat(tables: list[pa.Table]) -> pa.Table:
    schema = tables[0].schema
    return pa.concat_tables([t.cast(schema) if t.schema != schema else t for t in tables])


def _write(table: pa.Table, path: Path) -> None:
    """An Arrow IPC file (uncompressed: written and memory-mapped back in milliseconds), renamed into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    os.replace(tmp, path)


class IncrementalSOAOperator:
    """:class:`IncrementalSOA` as an operator: ``batches()`` updates the state, then yields the result."""

    def __init__(self, soa: IncrementalSOA, schema: pa.Schema) -> None:
        self.soa, self._schema = soa, schema
        self.output = ""

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    def describe(self) -> str:
        return f"IncrementalSOA(by {self.soa.query.id_col})"

    def batches(self) -> Iterator[pa.RecordBatch]:
        # The state is written while the output is computed and written (0.07 s at 5e5
        # ids); the node ends, and its output is committed, only once the state is saved.
        self.output = self.soa.update(background=True) + "\n"
        try:
            for b in self.soa.result():
                if b.num_rows:
                    yield b if b.schema == self._schema else b.cast(self._schema)
        except BaseException:
            self.soa.wait_saved(raise_error=False)  # the error under way is the one to report
            raise
        self.soa.wait_saved()
