"""Second-order aggregation compiled to SQL: output names and one aggregate statement (pure).

Semantics decided here (beyond docs/yaml-reference.md#second_order_aggregation):

* Each distinct id of the input gives one output row, including ids whose rows
  are all in the future or have NULL dates (a NULL id is a group of its own).
  Over such an empty filter ``count``/``count_distinct`` give 0 and every other
  aggregate gives NULL (plain SQL ``FILTER`` semantics); ratios are then NULL.
* A ratio is NULL when its numerator aggregate is NULL (empty window), or is 0
  for ``count``/``count_distinct`` (the window had no non-null value), or when
  the denominator is NULL or 0.
* Temporal SOA keeps the spine's application date value as is (its own type)
  and outputs rows in spine order; spine rows without input rows (or with a
  NULL date) still get a row.
* Unquoted identifiers in a ``since`` condition are lower-cased by DataFusion's
  SQL parser: quote mixed-case column names (``"Status" = 'x'``).

The same statement runs on DataFusion (:mod:`operators.soa.execute`) and, with
``dialect="spark"``, on Spark (:mod:`operators.spark.soa`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from operators.errors import EngineError
from operators.soa.spec import AGG_SQL, COUNT_LIKE, SOAQuery
from operators.sql_text import quote_ident, quote_spark_ident

__all__ = ["NO_KEYS_COL", "NO_KEYS_TABLE", "SPINE_ROW_COL", "output_columns", "outputs", "soa_sql",
           "source_columns"]

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


@dataclass(frozen=True)
class _Dialect:
    """What differs between the engines :func:`soa_sql` compiles to; the plan itself does not."""

    quote: Callable[[str], str]
    days: str  # whole days from DATE {start} to DATE {end}


_DIALECTS = {
    "datafusion": _Dialect(quote_ident, "{end} - {start}"),
    # Spark: DATE - DATE is an INTERVAL there (not comparable to integers); DATEDIFF is whole days.
    "spark": _Dialect(quote_spark_ident, "DATEDIFF({end}, {start})"),
}


@dataclass(frozen=True)
class Output:
    """One output column: its name, the feature it comes from and how to compute it."""

    name: str
    feature: str
    kind: str  # basic | window | ratio | since
    agg: str
    col: str
    filters: tuple[str, ...]  # one per aggregate (two for a ratio: numerator, denominator)


def _window_filter(lo: int, hi: int) -> str:
    return f"{_DAYS} BETWEEN {lo} AND {hi}"


def outputs(query: SOAQuery) -> list[Output]:
    outs: list[Output] = []
    since_idx = 0
    for key, f in query.features.items():
        col = f.source_feature or key
        if f.window is not None:
            lo, hi = f.window
            for a in f.basic:
                outs.append(Output(f"{col}_{a.upper()}_{lo}_{hi}", key, "window", a, col, (_window_filter(lo, hi),)))
        else:
            for a in f.basic:
                outs.append(Output(f"{col}_{a.upper()}", key, "basic", a, col, (_PAST,)))
        if f.ratio is not None:
            (l1, u1), (l2, u2) = f.ratio.numerator, f.ratio.denominator
            for a in f.ratio.aggs:
                A = a.upper()
                outs.append(
                    Output(
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
                outs.append(Output(f"SINCE_{a.upper()}_{col}_GEO_D", key, "since", a, col, (f"{flag} AND {_PAST}",)))
    return outs


def output_columns(query: SOAQuery) -> list[str]:
    """Names of the output columns, in order (id first; temporal SOA adds the application date).

    >>> from operators.soa.spec import SOAFeature, SOARatio, SOASince
    >>> q = SOAQuery(id_col="region", feature_date_col="d", application_date_col="app", features={
    ...     "amount": SOAFeature(basic=("sum", "mean")),
    ...     "recent": SOAFeature(source_feature="amount", window=(1, 7), basic=("sum",)),
    ...     "trend": SOAFeature(source_feature="amount", ratio=SOARatio(numerator=(1, 7), denominator=(8, 14))),
    ...     "returns": SOAFeature(since=SOASince(condition="returns > 0")),
    ... })
    >>> output_columns(q)
    ['region', 'amount_SUM', 'amount_MEAN', 'amount_SUM_1_7', 'amount_SUM1_7_SUM8_14', 'SINCE_COUNT_returns_GEO_D']
    """
    return [query.id_col] + [o.name for o in outputs(query)]


# --------------------------------------------------------------------------- SQL


def since_conditions(query: SOAQuery) -> list[tuple[str, str]]:
    flags = []
    for f in query.features.values():
        if f.since is not None:
            flags.append((f"_soa_since_{len(flags)}", f.since.condition))
    return flags


def source_columns(query: SOAQuery, exclude: tuple[str, ...] = ()) -> list[str]:
    cols: list[str] = []
    for o in outputs(query):
        if o.col not in cols and o.col not in exclude:
            cols.append(o.col)
    return cols


@dataclass
class _Aggs:
    """Filtered aggregates, deduplicated: a window sum reused by a ratio is computed once."""

    exprs: dict[str, str] = field(default_factory=dict)  # SQL -> alias
    quote: Callable[[str], str] = quote_ident
    all_past: bool = False  # every row has _days_between >= 0 (or only NULL values): see soa_sql
    # Partials that merge across input partitions (operators/soa/mergeable.py): a sample
    # stddev/var is then kept as (count, sum, population variance) per id, which merge
    # exactly (Chan et al.), instead of STDDEV_SAMP/VAR_SAMP, which do not.
    mergeable: bool = False
    # Alias of each VAR_POP partial -> the aliases of its SUM and COUNT (same column, same filter).
    variances: dict[str, tuple[str, str]] = field(default_factory=dict)

    def _filter(self, flt: str) -> str | None:
        if self.all_past:
            if flt == _PAST:
                return None
            if flt.endswith(f" AND {_PAST}"):
                return flt[: -len(f" AND {_PAST}")]
        return flt

    def alias(self, agg: str, col: str, flt: str) -> str:
        return self._register(AGG_SQL[agg].format(x=self.quote(col)), flt)

    def _register(self, sql: str, flt: str) -> str:
        """The alias of aggregate ``sql`` under filter ``flt``, added on first use."""
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
            # many groups); the result is DOUBLE, as the SOA reference promises for mean.
            total, n = self.alias("sum", col, flt), self.alias("count", col, flt)
            return f"CAST({total} AS DOUBLE) / CAST(NULLIF({n}, 0) AS DOUBLE)"
        if self.mergeable and agg in _SAMPLE_SPREAD:
            total, n = self.alias("sum", col, flt), self.alias("count", col, flt)
            var_pop = self._register(f"VAR_POP(CAST({self.quote(col)} AS DOUBLE))", flt)
            self.variances[var_pop] = (total, n)
            # Sample variance from the population one: n / (n - 1); NULL below two values, as VAR_SAMP.
            var = f"CASE WHEN {n} > 1 THEN {var_pop} * CAST({n} AS DOUBLE) / CAST({n} - 1 AS DOUBLE) END"
            return f"SQRT({var})" if _SAMPLE_SPREAD[agg] == "stddev" else var
        return self.alias(agg, col, flt)


_SAMPLE_SPREAD = {"stddev": "stddev", "std": "stddev", "var": "var"}


def _final_exprs(query: SOAQuery, aggs: _Aggs) -> list[str]:
    exprs = []
    for o in outputs(query):
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

    >>> from operators.soa.spec import SOAFeature
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
    flags = [f"({cond}) AS {flag}" for flag, cond in since_conditions(query)]
    agg_list = ",\n    ".join(f"{sql} AS {alias}" for sql, alias in aggs.exprs.items())
    final_list = ",\n  ".join(final)
    key = q(query.id_col)
    days = d.days.format(end=f"CAST({q(query.application_date_col)} AS DATE)",
                         start=f"CAST({q(query.feature_date_col)} AS DATE)")
    if spine_name is None:
        cols = [key, f"{days} AS {_DAYS}"]
        cols += [q(c) for c in source_columns(query, exclude=(query.id_col,))] + flags
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
    src = source_columns(query)
    rows = [f"{key} AS _soa_key", f"CAST({q(query.feature_date_col)} AS DATE) AS _soa_feature_day"]
    rows += [q(c) for c in src] + flags
    joined = [f"s.{SPINE_ROW_COL}", f"{d.days.format(end='s._soa_app_day', start='r._soa_feature_day')} AS {_DAYS}"]
    joined += [f"r.{q(c)}" for c in src] + [f"r.{flag}" for flag, _ in since_conditions(query)]
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
