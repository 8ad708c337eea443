"""Second-order aggregation (SPEC §4): spec -> one DataFusion aggregate plan -> Arrow stream.

Three layers, kept apart so another engine can execute the same plan later:

* :func:`check_soa` validates a :class:`SOAQuery` against the input (and spine)
  schema and returns every problem, without reading data;
* :func:`output_columns` / :func:`soa_sql` compile it (pure functions);
* :func:`execute_soa` / :class:`SOAOperator` run the SQL on DataFusion with the
  run's memory pool and spill directory, streaming the result.

Semantics decided here (beyond SPEC §4):

* Each distinct id of the input gives one output row, including ids whose rows
  are all in the future or have NULL dates (a NULL id is a group of its own).
  Over such an empty filter ``count``/``count_distinct`` give 0 and every other
  aggregate gives NULL (plain SQL ``FILTER`` semantics); ratios are then NULL.
* A ratio is NULL when its numerator aggregate is NULL (empty window), or is 0
  for ``count``/``count_distinct`` (the window had no non-null value), or when
  the denominator is NULL or 0.
* Window bounds must satisfy ``0 <= lo <= hi``: a negative bound would read rows
  dated after the application date.
* Temporal SOA keeps the spine's application date value as is (its own type)
  and outputs rows in spine order; spine rows without input rows (or with a
  NULL date) still get a row.
* Unquoted identifiers in a ``since`` condition are lower-cased by DataFusion's
  SQL parser: quote mixed-case column names (``"Status" = 'x'``).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import sys
import tempfile
import uuid
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np
import pyarrow as pa

from operators.errors import EngineError
from operators.memory import MemoryConfig, datafusion_context
from operators.soa.spec import AGG_SQL, COUNT_LIKE, VALID_AGGS, SOAFeature, SOAQuery, SOARatio, SOASince

__all__ = [
    "SOAFeature",
    "SOAOperator",
    "SOAQuery",
    "SOARatio",
    "SOASince",
    "SPINE_ROW_COL",
    "check_soa",
    "execute_soa",
    "output_columns",
    "soa_output_schema",
    "soa_sql",
]

SOAInput = Union[str, os.PathLike, list, pa.Table, pa.RecordBatchReader]

# Column execute_soa adds to the spooled spine: its row number, which fixes the
# output order without relying on scan order inside DataFusion.
SPINE_ROW_COL = "_soa_spine_row"
# Empty table (one column, the key type as DataFusion reads it) that soa_sql joins when
# partition_by_key is set; execute_soa registers it.
NO_KEYS_TABLE = "_soa_no_keys"
NO_KEYS_COL = "_soa_key"
_DAYS = "_days_between"
_PAST = f"{_DAYS} >= 0"  # the filter of basic and since aggregates: rows dated on or before the application date


# --------------------------------------------------------------------------- naming


def _q(name: str) -> str:
    """Quote an identifier for DataFusion (case preserved, quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def _q_spark(name: str) -> str:
    """Quote an identifier for Spark SQL (backticks, doubled inside)."""
    return "`" + name.replace("`", "``") + "`"


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class _Dialect:
    """What differs between the engines :func:`soa_sql` compiles to; the plan itself does not."""

    quote: Callable[[str], str]
    days: str  # whole days from DATE {start} to DATE {end}


_DIALECTS = {
    "datafusion": _Dialect(_q, "{end} - {start}"),
    # Spark: DATE - DATE is an INTERVAL there (not comparable to integers); DATEDIFF is whole days.
    "spark": _Dialect(_q_spark, "DATEDIFF({end}, {start})"),
}


@dataclass(frozen=True)
class _Out:
    """One output column: its name, the feature it comes from and how to compute it."""

    name: str
    feature: str
    kind: str  # basic | window | ratio | since
    agg: str
    col: str
    filters: tuple[str, ...]  # one per aggregate (two for a ratio: numerator, denominator)


def _window_filter(lo: int, hi: int) -> str:
    return f"{_DAYS} BETWEEN {lo} AND {hi}"


def _outputs(query: SOAQuery) -> list[_Out]:
    outs: list[_Out] = []
    since_idx = 0
    for key, f in query.features.items():
        col = f.source_feature or key
        if f.window is not None:
            lo, hi = f.window
            for a in f.basic:
                outs.append(_Out(f"{col}_{a.upper()}_{lo}_{hi}", key, "window", a, col, (_window_filter(lo, hi),)))
        else:
            for a in f.basic:
                outs.append(_Out(f"{col}_{a.upper()}", key, "basic", a, col, (_PAST,)))
        if f.ratio is not None:
            (l1, u1), (l2, u2) = f.ratio.numerator, f.ratio.denominator
            for a in f.ratio.aggs:
                A = a.upper()
                outs.append(
                    _Out(
                        f"{col}_{A}{l1}_{u1}_{A}{l2}_{u2}",
                        key,
                        "ratio",
                        a,
                        col,
                        (_window_filter(l1, u1), _window_filter(l2, u2)),
                    )
                )
        if f.since is not None:
            flag = f"_soa_since_{since_idx}"
            since_idx += 1
            for a in f.since.aggs:
                outs.append(_Out(f"SINCE_{a.upper()}_{col}_GEO_D", key, "since", a, col, (f"{flag} AND {_PAST}",)))
    return outs


def output_columns(query: SOAQuery) -> list[str]:
    """Names of the output columns, in order (id first; temporal SOA adds the application date).

    >>> q = SOAQuery(id_col="region", feature_date_col="d", application_date_col="app", features={
    ...     "amount": SOAFeature(basic=("sum", "mean")),
    ...     "recent": SOAFeature(source_feature="amount", window=(1, 7), basic=("sum",)),
    ...     "trend": SOAFeature(source_feature="amount", ratio=SOARatio(numerator=(1, 7), denominator=(8, 14))),
    ...     "returns": SOAFeature(since=SOASince(condition="returns > 0")),
    ... })
    >>> output_columns(q)
    ['region', 'amount_SUM', 'amount_MEAN', 'amount_SUM_1_7', 'amount_SUM1_7_SUM8_14', 'SINCE_COUNT_returns_GEO_D']
    """
    return [query.id_col] + [o.name for o in _outputs(query)]


# --------------------------------------------------------------------------- SQL


def _since_conditions(query: SOAQuery) -> list[tuple[str, str]]:
    flags = []
    for f in query.features.values():
        if f.since is not None:
            flags.append((f"_soa_since_{len(flags)}", f.since.condition))
    return flags


def _source_columns(query: SOAQuery, exclude: tuple[str, ...] = ()) -> list[str]:
    cols: list[str] = []
    for o in _outputs(query):
        if o.col not in cols and o.col not in exclude:
            cols.append(o.col)
    return cols


@dataclass
class _Aggs:
    """Filtered aggregates, deduplicated: a window sum reused by a ratio is computed once."""

    exprs: dict[str, str] = field(default_factory=dict)  # SQL -> alias
    quote: Callable[[str], str] = _q
    all_past: bool = False  # every row has _days_between >= 0 (or only NULL values): see soa_sql

    def _filter(self, flt: str) -> str | None:
        if self.all_past:
            if flt == _PAST:
                return None
            if flt.endswith(f" AND {_PAST}"):
                return flt[: -len(f" AND {_PAST}")]
        return flt

    def alias(self, agg: str, col: str, flt: str) -> str:
        sql = AGG_SQL[agg].format(x=self.quote(col))
        flt = self._filter(flt)
        if flt is not None:
            sql += f" FILTER (WHERE {flt})"
        if sql not in self.exprs:
            self.exprs[sql] = f"_soa_a{len(self.exprs)}"
        return self.exprs[sql]

    def expr(self, agg: str, col: str, flt: str) -> str:
        """SQL over the aggregate aliases giving ``agg`` of ``col`` under ``flt``."""
        if agg in ("mean", "avg"):
            # SUM / COUNT instead of AVG: the SUM is usually requested too and is
            # then shared, which saves an accumulator per group (measurable with
            # many groups); the result is DOUBLE, as SPEC §4 requires for mean.
            total, n = self.alias("sum", col, flt), self.alias("count", col, flt)
            return f"CAST({total} AS DOUBLE) / CAST(NULLIF({n}, 0) AS DOUBLE)"
        return self.alias(agg, col, flt)


def _final_exprs(query: SOAQuery, aggs: _Aggs) -> list[str]:
    exprs = []
    for o in _outputs(query):
        if o.kind == "ratio":
            num = aggs.expr(o.agg, o.col, o.filters[0])
            den = aggs.expr(o.agg, o.col, o.filters[1])
            if o.agg in COUNT_LIKE:  # COUNT over an empty window is 0, not NULL
                num = f"NULLIF({num}, 0)"
            exprs.append(f"CAST({num} AS DOUBLE) / NULLIF(CAST({den} AS DOUBLE), 0) AS {aggs.quote(o.name)}")
        else:
            exprs.append(f"{aggs.expr(o.agg, o.col, o.filters[0])} AS {aggs.quote(o.name)}")
    return exprs


def soa_sql(
    query: SOAQuery,
    input_name: str = "soa_input",
    spine_name: str | None = None,
    dialect: str = "datafusion",
    *,
    all_past: bool = False,
    partition_by_key: bool = False,
) -> str:
    """Compile ``query`` to one SQL statement (pure; no data, no validation).

    ``dialect`` is ``"datafusion"`` (the local engine) or ``"spark"`` (Spark SQL):
    the same plan, only identifier quoting and day arithmetic are spelled differently.

    ``all_past=True`` promises that every input row has both dates and a feature
    date on or before its application date (with a spine: always true of the
    joined rows, whose unmatched rows carry only NULLs). The ``_days_between >= 0``
    filter of basic and since aggregates is then true for every row that counts,
    so it is left out: same result, and DataFusion's unfiltered accumulators are
    cheaper (~5-10% CPU of the by-customer benchmark). :func:`execute_soa` proves the
    promise from Parquet statistics or the data before using it.

    ``partition_by_key=True`` (without a spine) routes the rows through
    ``_soa_no_keys RIGHT JOIN rows ON key``, a join with an empty table that
    keeps every row once and changes no value. It is there for its plan: with
    ``datafusion.optimizer.hash_join_single_partition_threshold(_rows) = 0`` the
    join is a partitioned hash join, so DataFusion hash-partitions the raw rows
    (key, day count, values) by key, and the aggregation on top runs in one step per
    partition (``AggregateExec mode=SinglePartitioned``). Without it DataFusion
    aggregates in two steps (partial, hash repartition, final); when nearly every
    row is a new key the partial step gives up and sends each row on as aggregate
    *states* (9 columns for the benchmark query, ~1.4 GB at 10M rows) which the
    final step merges again: ~17% more CPU there. With few keys the two-step plan
    is much better (the partial step shrinks the data), hence a choice per input
    (:func:`execute_soa` samples the keys).

    Without a spine: one row per id, columns as :func:`output_columns`. With
    ``spine_name`` (temporal SOA) the spine table must carry :data:`SPINE_ROW_COL`
    (its row number 0..n-1, which :func:`execute_soa` adds); the statement returns
    ``SPINE_ROW_COL`` then the feature columns, one row per spine row ordered by
    row number, and the executor puts the spine's id and date in front of each
    row (row i of the result belongs to spine row i). Doing that outside SQL saves
    a second hash join on the spine, which DataFusion cannot spill.

    >>> q = SOAQuery(id_col="k", feature_date_col="d", application_date_col="app",
    ...              features={"x": SOAFeature(basic=("sum",))})
    >>> print(soa_sql(q))  # doctest: +NORMALIZE_WHITESPACE
    WITH _soa_rows AS (
      SELECT "k", CAST("app" AS DATE) - CAST("d" AS DATE) AS _days_between, "x"
      FROM soa_input
    ),
    _soa_agg AS (
      SELECT "k",
        SUM("x") FILTER (WHERE _days_between >= 0) AS _soa_a0
      FROM _soa_rows
      GROUP BY "k"
    )
    SELECT "k",
      _soa_a0 AS "x_SUM"
    FROM _soa_agg
    >>> "FILTER" in soa_sql(q, all_past=True)
    False
    """
    if dialect not in _DIALECTS:
        raise EngineError(f"unknown SQL dialect {dialect!r}; valid: {', '.join(_DIALECTS)}")
    d = _DIALECTS[dialect]
    q = d.quote
    aggs = _Aggs(quote=q, all_past=all_past)
    final = _final_exprs(query, aggs)
    flags = [f"({cond}) AS {flag}" for flag, cond in _since_conditions(query)]
    agg_list = ",\n    ".join(f"{sql} AS {alias}" for sql, alias in aggs.exprs.items())
    final_list = ",\n  ".join(final)
    key = q(query.id_col)
    days = d.days.format(end=f"CAST({q(query.application_date_col)} AS DATE)",
                         start=f"CAST({q(query.feature_date_col)} AS DATE)")
    if spine_name is None:
        cols = [key, f"{days} AS {_DAYS}"]
        cols += [q(c) for c in _source_columns(query, exclude=(query.id_col,))] + flags
        rows, part = "_soa_rows", ""
        if partition_by_key:  # see the docstring: a plan shape, the rows are unchanged
            rows = "_soa_part"
            part = (
                f"_soa_part AS (\n  SELECT r.*\n  FROM {NO_KEYS_TABLE} e RIGHT JOIN _soa_rows r"
                f" ON e.{NO_KEYS_COL} = r.{key}\n),\n"
            )
        return (
            f"WITH _soa_rows AS (\n  SELECT {', '.join(cols)}\n  FROM {input_name}\n),\n{part}"
            f"_soa_agg AS (\n  SELECT {key},\n    {agg_list}\n  FROM {rows}\n  GROUP BY {key}\n)\n"
            f"SELECT {key},\n  {final_list}\nFROM _soa_agg"
        )
    spine_id = q(query.spine_id_col or query.id_col)
    spine_date = q(query.spine_date_col or query.application_date_col)
    src = _source_columns(query)
    rows = [f"{key} AS _soa_key", f"CAST({q(query.feature_date_col)} AS DATE) AS _soa_feature_day"]
    rows += [q(c) for c in src] + flags
    joined = [f"s.{SPINE_ROW_COL}", f"{d.days.format(end='s._soa_app_day', start='r._soa_feature_day')} AS {_DAYS}"]
    joined += [f"r.{q(c)}" for c in src] + [f"r.{flag}" for flag, _ in _since_conditions(query)]
    # Why the plan looks like this:
    # * the spine is the preserved side of the LEFT JOIN (and usually the smaller
    #   one), so DataFusion builds its hash table from the spine and streams the input;
    # * every aggregate needs _days_between >= 0 (windows start at 0 or later), so
    #   future rows are dropped in the join itself; spine rows stay (LEFT JOIN);
    # * grouping by the integer spine row alone is much cheaper than by (key, date);
    #   the executor zips key and date back from the spine (see docstring).
    return (
        f"WITH _soa_rows AS (\n  SELECT {', '.join(rows)}\n  FROM {input_name}\n),\n"
        f"_soa_spine AS (\n  SELECT {SPINE_ROW_COL}, {spine_id} AS _soa_spine_key,"
        f" CAST({spine_date} AS DATE) AS _soa_app_day\n  FROM {spine_name}\n),\n"
        f"_soa_joined AS (\n  SELECT {', '.join(joined)}\n"
        f"  FROM _soa_spine s LEFT JOIN _soa_rows r\n"
        f"    ON s._soa_spine_key = r._soa_key AND r._soa_feature_day <= s._soa_app_day\n),\n"
        f"_soa_agg AS (\n  SELECT {SPINE_ROW_COL},\n    {agg_list}\n"
        f"  FROM _soa_joined\n  GROUP BY {SPINE_ROW_COL}\n)\n"
        f"SELECT {SPINE_ROW_COL},\n  {final_list}\nFROM _soa_agg\nORDER BY {SPINE_ROW_COL}"
    )


# --------------------------------------------------------------------------- validation


def _is_date(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_date(t) or pa.types.is_timestamp(t)


def _key_kind(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_integer(t):
        return "integer"
    return str(t)


def _fmt_bounds(b: object) -> str:
    if isinstance(b, (tuple, list)):
        return "[" + ", ".join(str(v) for v in b) + "]"
    return repr(b)


def _bounds_problem(what: str, b: object) -> str | None:
    ok = (
        isinstance(b, (tuple, list))
        and len(b) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in b)
    )
    if not ok or b[0] > b[1]:
        return f"{what} {_fmt_bounds(b)} must be two integers with lo <= hi"
    if b[0] < 0:
        return f"{what} {_fmt_bounds(b)} starts before day 0: it would read rows dated after the application date"
    return None


# Modules of the datafusion package imported lazily by _import_datafusion: their code
# runs on first attribute access instead of at `import datafusion`.
# datafusion.functions.spark (Python wrappers of Spark functions, unused here) builds
# pyarrow scalars at import time, and pyarrow's scalar/array constructors import
# pandas (~50 MB RSS, ~0.2 s) to check for pandas objects. SQL needs none of it.
_LAZY_MODULES = frozenset({"datafusion.functions.spark"})


class _LazySubmodules(importlib.abc.MetaPathFinder):
    """Finds the modules of _LAZY_MODULES through the other finders, with a LazyLoader."""

    def find_spec(self, name, path, target=None):
        if name not in _LAZY_MODULES:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(name, path, target)
            if spec is None:
                continue
            if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = importlib.util.LazyLoader(spec.loader)
            return spec
        return None


def _import_datafusion():
    """``import datafusion`` without pulling in pandas; a no-op once datafusion is imported.

    Two process-wide effects, both only when this is the first import of datafusion:

    * ``datafusion.functions.spark`` is loaded lazily (standard ``importlib.util.LazyLoader``):
      it runs, importing pandas, the first time one of its attributes is used;
      everything else of datafusion is imported as usual;
    * ``MIMALLOC_ALLOW_THP=0`` is set unless the environment sets it: DataFusion's
      allocator (mimalloc, read at load) then does not ask for transparent huge pages,
      whose 2 MB granularity added ~30 MB peak RSS to the by-customer benchmark.

    pandas stays importable and works as before (``to_pandas`` etc. import it on use).
    """
    if "datafusion" not in sys.modules:
        os.environ.setdefault("MIMALLOC_ALLOW_THP", "0")
        finder = _LazySubmodules()
        sys.meta_path.insert(0, finder)
        try:
            import datafusion  # noqa: F401
        finally:
            sys.meta_path.remove(finder)
    return sys.modules["datafusion"]


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    """A zero-row batch of ``schema`` (``from_pylist`` would import pandas via pyarrow)."""
    try:
        return pa.RecordBatch.from_arrays([pa.nulls(0, f.type) for f in schema], schema=schema)
    except (pa.ArrowException, TypeError, ValueError):
        return pa.RecordBatch.from_pylist([], schema=schema)


def _empty_context(input_schema: pa.Schema, spine_schema: pa.Schema | None):
    """A DataFusion context over zero-row tables: planning checks types, reads no data."""
    ctx = _import_datafusion().SessionContext()
    ctx.register_record_batches("soa_input", [[_empty_batch(input_schema)]])
    if spine_schema is not None:
        spine_schema = _with_spine_row(spine_schema)
        ctx.register_record_batches("soa_spine", [[_empty_batch(spine_schema)]])
    return ctx


def _with_spine_row(schema: pa.Schema) -> pa.Schema:
    if SPINE_ROW_COL in schema.names:
        return schema
    return schema.append(pa.field(SPINE_ROW_COL, pa.int64(), nullable=False))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_soa(query: SOAQuery, input_schema: pa.Schema, spine_schema: pa.Schema | None = None) -> list[str]:
    """Every problem of ``query`` against the input (and spine) schema; ``[]`` when it can run.

    Messages are one line each and carry no node prefix (the caller adds node and file).
    Nothing is read: the ``since`` conditions and the aggregate types are checked by
    planning against empty tables.

    >>> schema = pa.schema([("region", pa.string()), ("d", pa.date32()), ("app", pa.date32())])
    >>> q = SOAQuery(id_col="regionx", feature_date_col="d", application_date_col="app",
    ...              features={"amount": SOAFeature(basic=("sum", "foo"))})
    >>> for p in check_soa(q, schema): print(p)
    Missing id column 'regionx' (input has: region, d, app)
    Missing feature columns: {'amount'} (input has: region, d, app)
    feature 'amount': unknown aggregation 'foo'; valid: count, sum, mean, avg, min, max, stddev, std, var, median, count_distinct
    """
    problems: list[str] = []
    names = input_schema.names
    has = f"(input has: {', '.join(names)})"
    temporal = spine_schema is not None

    def need(label: str, col: str, schema: pa.Schema, where: str, date: bool) -> bool:
        if col not in schema.names:
            problems.append(f"Missing {label} column {col!r} ({where} has: {', '.join(schema.names)})")
            return False
        if date and not _is_date(schema.field(col).type):
            problems.append(f"{label} column {col!r} has type {schema.field(col).type}; expected a date or timestamp")
            return False
        return True

    id_ok = need("id", query.id_col, input_schema, "input", False)
    dates_ok = need("feature date", query.feature_date_col, input_schema, "input", True)
    if temporal:
        spine_id = query.spine_id_col or query.id_col
        spine_date = query.spine_date_col or query.application_date_col
        sid_ok = need("spine id", spine_id, spine_schema, "spine", False)
        dates_ok &= need("spine date", spine_date, spine_schema, "spine", True)
        if id_ok and sid_ok:
            a, b = spine_schema.field(spine_id).type, input_schema.field(query.id_col).type
            if _key_kind(a) != _key_kind(b):
                problems.append(
                    f"spine id column {spine_id!r} has type {a} but input id column {query.id_col!r} has type {b}"
                )
                id_ok = False
        id_ok &= sid_ok
    else:
        dates_ok &= need("application date", query.application_date_col, input_schema, "input", True)

    missing = [c for c in _source_columns(query) if c not in names]
    if missing:
        problems.append(f"Missing feature columns: {{{', '.join(repr(c) for c in missing)}}} {has}")

    structure_ok = True
    for key, f in query.features.items():
        pre = f"feature {key!r}"
        before = len(problems)
        tokens = list(f.basic)
        if not (f.basic or f.ratio is not None or f.since is not None):
            problems.append(f"{pre} has no aggregation: add basic, window (with basic), ratio or since")
        if f.window is not None:
            if not f.basic:
                problems.append(f"{pre}: window {_fmt_bounds(f.window)} has no basic aggs to apply inside it")
            if p := _bounds_problem(f"{pre}: window", f.window):
                problems.append(p)
        if f.ratio is not None:
            tokens += list(f.ratio.aggs)
            if not f.ratio.aggs:
                problems.append(f"{pre}: ratio has no aggs")
            for side in ("numerator", "denominator"):
                if p := _bounds_problem(f"{pre}: ratio {side}", getattr(f.ratio, side)):
                    problems.append(p)
        if f.since is not None:
            tokens += list(f.since.aggs)
            if not f.since.aggs:
                problems.append(f"{pre}: since has no aggs")
        for t in dict.fromkeys(tokens):
            if t not in AGG_SQL:
                problems.append(f"{pre}: unknown aggregation {t!r}; valid: {VALID_AGGS}")
        structure_ok &= len(problems) == before

    seen: dict[str, str] = {}
    reserved = {query.id_col: "the id column"}
    if temporal:
        reserved[query.application_date_col] = "the application date column"
    for o in _outputs(query):
        if o.name in reserved:
            problems.append(f"output column {o.name!r} of {o.feature!r} has the same name as {reserved[o.name]}")
            structure_ok = False
        elif o.name in seen:
            other = seen[o.name]
            both = f"twice by {other!r}" if other == o.feature else f"by both {other!r} and {o.feature!r}"
            problems.append(f"output column {o.name!r} is produced {both}")
            structure_ok = False
        else:
            seen[o.name] = o.feature

    ctx = None
    conditions_ok = True
    for key, f in query.features.items():
        if f.since is None:
            continue
        ctx = ctx or _empty_context(input_schema, None)
        cond = f.since.condition
        try:
            t = ctx.sql(f"SELECT ({cond}) AS c FROM soa_input").schema().field("c").type
        except Exception as exc:  # DataFusion raises plain Exceptions for SQL errors
            conditions_ok = False
            msg = _first_line(exc)
            if "No field named" in msg:
                bad = msg.split("No field named", 1)[1].strip().rstrip(".")
                problems.append(f"feature {key!r}: since condition \"{cond}\" names unknown column {bad} {has}")
            else:
                problems.append(f"feature {key!r}: since condition \"{cond}\" does not parse: {msg}")
            continue
        if t != pa.bool_() and t != pa.null():
            conditions_ok = False
            problems.append(f"feature {key!r}: since condition \"{cond}\" is of type {t}, not a boolean")

    if problems or not (id_ok and dates_ok and structure_ok and conditions_ok):
        return problems
    # Last gate: plan the real statement (catches e.g. SUM over a string column).
    ctx = _empty_context(input_schema, spine_schema)
    spine_name = "soa_spine" if temporal else None
    try:
        ctx.sql(soa_sql(query, "soa_input", spine_name)).schema()
    except Exception:
        for key, f in query.features.items():
            sub = SOAQuery(
                id_col=query.id_col,
                feature_date_col=query.feature_date_col,
                application_date_col=query.application_date_col,
                features={key: f},
                spine_date_col=query.spine_date_col,
                spine_id_col=query.spine_id_col,
            )
            try:
                ctx.sql(soa_sql(sub, "soa_input", spine_name)).schema()
            except Exception as exc:
                col = f.source_feature or key
                problems.append(
                    f"feature {key!r}: cannot aggregate column {col!r} "
                    f"(type {input_schema.field(col).type}): {_first_line(exc)}"
                )
        if not problems:
            ctx2 = _empty_context(input_schema, spine_schema)
            try:
                ctx2.sql(soa_sql(query, "soa_input", spine_name)).schema()
            except Exception as exc:
                problems.append(f"cannot plan the aggregation: {_first_line(exc)}")
    return problems


def soa_output_schema(query: SOAQuery, input_schema: pa.Schema, spine_schema: pa.Schema | None = None) -> pa.Schema:
    """The Arrow schema :func:`execute_soa` produces, found by planning on empty tables.

    >>> s = pa.schema([("k", pa.string()), ("d", pa.date32()), ("app", pa.date32()), ("x", pa.int32())])
    >>> q = SOAQuery(id_col="k", feature_date_col="d", application_date_col="app",
    ...              features={"x": SOAFeature(basic=("sum", "mean", "max"))})
    >>> [str(f.type) for f in soa_output_schema(q, s)]
    ['string', 'int64', 'double', 'int32']
    """
    _raise_problems(query, input_schema, spine_schema)
    ctx = _empty_context(input_schema, spine_schema)
    sql = soa_sql(query, "soa_input", "soa_spine" if spine_schema is not None else None)
    planned = ctx.sql(sql).schema()
    if spine_schema is None:
        return planned
    # Temporal: the statement yields (row number, features); id and date come from the spine.
    key = spine_schema.field(query.spine_id_col or query.id_col).with_name(query.id_col)
    date = spine_schema.field(query.spine_date_col or query.application_date_col)
    return pa.schema([key, date.with_name(query.application_date_col), *list(planned)[1:]])


def _raise_problems(query: SOAQuery, input_schema: pa.Schema, spine_schema: pa.Schema | None) -> None:
    problems = check_soa(query, input_schema, spine_schema)
    if problems:
        raise EngineError("second-order aggregation: " + "; ".join(problems))


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
        raise EngineError(f"second-order aggregation: cannot read Parquet {paths}: {_first_line(exc)}") from exc


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
    k = _q(key)
    try:
        got = ctx.sql(
            f"SELECT COUNT(DISTINCT {k}) AS n, COUNT(*) AS m FROM (SELECT {k} FROM {table} LIMIT {_PROBE_ROWS})"
        ).collect()
        n, m = got[0].column(0)[0].as_py(), got[0].column(1)[0].as_py()
    except Exception:
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
    except Exception:  # unreadable metadata, odd statistics: keep the filters
        return _InputFacts()


def _register_input(
    ctx, name: str, src: SOAInput, spool: _Spool, partitions: int, query: SOAQuery | None
) -> _InputFacts:
    """Register ``src`` as table ``name``; with ``query`` (no spine), also learn :class:`_InputFacts`."""
    if isinstance(src, pa.Table):
        # Already in memory: hand DataFusion the batches, spread over partitions.
        batches = src.combine_chunks().to_batches(max_chunksize=max(1, -(-src.num_rows // partitions)))
        parts = [batches[i::partitions] for i in range(partitions)]
        parts = [p for p in parts if p] or [[_empty_batch(src.schema)]]
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
        except Exception:  # e.g. a key type DataFusion cannot join on: the two-step plan
            with contextlib.suppress(Exception):
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
    for got, want in zip(df.schema(), schema):
        name = _q(got.name)
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
    out_schema = _with_spine_row(out_schema)
    path = spool.path("spine.arrow")
    row = 0
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, out_schema) as writer:
        for b in _spine_batches(src, list(dict.fromkeys(columns))):
            n = b.num_rows
            # from_buffers, not pa.array: the latter imports pandas to check for pandas objects.
            rows = pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(np.arange(row, row + n, dtype=np.int64))])
            writer.write_batch(pa.RecordBatch.from_arrays([*b.columns, rows], schema=out_schema))
            row += n
    return path


def execute_soa(
    query: SOAQuery,
    input: SOAInput,
    *,
    spine: SOAInput | None = None,
    memory: MemoryConfig,
) -> pa.RecordBatchReader:
    """Run ``query`` on DataFusion and return the result as a lazy RecordBatchReader.

    ``input`` and ``spine`` each are a Parquet path (file or directory), a list of
    Parquet paths, a ``pa.Table`` or a ``pa.RecordBatchReader`` (spooled to an
    Arrow IPC file under ``memory.spill_dir``, removed when the result is exhausted
    or closed). Problems with the query raise :class:`EngineError` before any work.

    >>> import datetime as dt
    >>> t = pa.table({"k": ["a", "a", "b"], "x": [1.0, 2.0, 5.0],
    ...               "d": [dt.date(2026, 1, 1), dt.date(2026, 1, 9), dt.date(2026, 2, 1)],
    ...               "app": [dt.date(2026, 1, 10)] * 3})
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
        _import_datafusion()
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
    except EngineError:
        spool.cleanup()
        raise
    except Exception as exc:
        spool.cleanup()
        raise EngineError(f"second-order aggregation: {_first_line(exc)}") from exc
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
    except Exception as exc:
        msg = _first_line(exc)
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
    ) -> None:
        self.query = query
        self._input = input
        self._spine = spine
        self._memory = memory
        self._schema: pa.Schema | None = None

    @property
    def schema(self) -> pa.Schema:
        if self._schema is None:
            spine_schema = _schema_of(self._spine) if self._spine is not None else None
            self._schema = soa_output_schema(self.query, _schema_of(self._input), spine_schema)
        return self._schema

    def batches(self) -> Iterator[pa.RecordBatch]:
        schema = self.schema
        reader = execute_soa(self.query, self._input, spine=self._spine, memory=self._memory)
        with contextlib.closing(reader):
            for b in reader:
                yield b if b.schema == schema else b.cast(schema)

    def describe(self) -> str:
        cols = output_columns(self.query)
        temporal = ", temporal" if self._spine is not None else ""
        return f"SOA(by {cols[0]}{temporal}: {', '.join(cols[1:])})"
