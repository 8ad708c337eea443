"""Problems of a second-order aggregation that need no data and no engine (the load stage's check).

Tokens, window and ratio bounds, empty features and output-name clashes: the
spec's own shape. Columns and types are checked against the input's schema by
:func:`operators.soa.check.check_soa` once the input is known.
"""

from __future__ import annotations

from operators.soa.compile import outputs
from operators.soa.spec import AGG_SQL, VALID_AGGS, SOAQuery


def structural_problems(query: SOAQuery, *, temporal: bool) -> list[str]:
    """Every problem of the spec's shape, one line each (no node prefix).

    Window bounds must satisfy ``0 <= lo <= hi``: a negative bound would read
    rows dated after the application date.

    >>> from operators.soa.spec import SOAFeature
    >>> q = SOAQuery(id_col="k", feature_date_col="d", application_date_col="app",
    ...              features={"x": SOAFeature(basic=("sum", "foo"), window=(3, 1))})
    >>> for p in structural_problems(q, temporal=False): print(p)
    feature 'x': window [3, 1] must be two integers with lo <= hi
    feature 'x': unknown aggregation 'foo'; valid: count, sum, mean, avg, min, max, stddev, std, var, median, ...
    """
    problems: list[str] = []
    for key, f in query.features.items():
        pre = f"feature {key!r}"
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

    seen: dict[str, str] = {}
    reserved = {query.id_col: "the id column"}
    if temporal:
        reserved[query.application_date_col] = "the application date column"
    for o in outputs(query):
        if o.name in reserved:
            problems.append(f"output column {o.name!r} of {o.feature!r} has the same name as {reserved[o.name]}")
        elif o.name in seen:
            other = seen[o.name]
            both = f"twice by {other!r}" if other == o.feature else f"by both {other!r} and {o.feature!r}"
            problems.append(f"output column {o.name!r} is produced {both}")
        else:
            seen[o.name] = o.feature

    return problems


# Tokens whose partial aggregates merge exactly (mean/avg compile to sum / count; stddev/var
# to count, sum and population variance): operators/soa/mergeable.py keeps them per input partition.
MERGEABLE_AGGS = frozenset({"count", "sum", "mean", "avg", "min", "max", "stddev", "std", "var"})


def not_mergeable(query: SOAQuery, *, temporal: bool) -> str | None:
    """Why ``query`` cannot be kept as partial aggregates per input partition (None: it can).

    >>> from operators.soa.spec import SOAFeature
    >>> not_mergeable(SOAQuery(id_col="k", feature_date_col="d", application_date_col="a",
    ...               features={"x": SOAFeature(basic=("median", "sum"))}), temporal=False)
    'median is not mergeable'
    """
    if temporal:
        return "a temporal SOA (spine) is not mergeable"
    tokens = {o.agg for o in outputs(query)}
    bad = sorted(tokens - MERGEABLE_AGGS)
    if bad:
        return f"{', '.join(bad)} {'is' if len(bad) == 1 else 'are'} not mergeable"
    return None


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
