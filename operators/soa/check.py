"""Second-order aggregation against its input's schema: every problem before any data is read.

Columns and their types are checked directly; ``since`` conditions and the
aggregate types are checked by planning on DataFusion against empty tables
(imported only then).
"""

from __future__ import annotations

import pyarrow as pa

from operators.errors import DATAFUSION_ERRORS, EngineError
from operators.soa.compile import soa_sql, source_columns
from operators.soa.df_session import empty_context, error_line
from operators.soa.spec import SOAQuery
from operators.soa.validate import structural_problems

__all__ = ["check_soa", "raise_problems", "soa_output_schema"]


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


def check_soa(query: SOAQuery, input_schema: pa.Schema, spine_schema: pa.Schema | None = None) -> list[str]:
    """Every problem of ``query`` against the input (and spine) schema; ``[]`` when it can run.

    Messages are one line each and carry no node prefix (the caller adds node and file).
    Nothing is read: the ``since`` conditions and the aggregate types are checked by
    planning against empty tables.

    >>> schema = pa.schema([("region", pa.string()), ("d", pa.date32()), ("app", pa.date32())])
    >>> from operators.soa.spec import SOAFeature
    >>> q = SOAQuery(id_col="regionx", feature_date_col="d", application_date_col="app",
    ...              features={"amount": SOAFeature(basic=("sum", "foo"))})
    >>> for p in check_soa(q, schema): print(p)
    Missing id column 'regionx' (input has: region, d, app)
    Missing feature columns: {'amount'} (input has: region, d, app)
    feature 'amount': unknown aggregation 'foo'; valid: count, sum, mean, avg, min, max, stddev, std, var, median, ...
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

    missing = [c for c in source_columns(query) if c not in names]
    if missing:
        problems.append(f"Missing feature columns: {{{', '.join(repr(c) for c in missing)}}} {has}")

    structural = structural_problems(query, temporal=temporal)
    problems += structural
    structure_ok = not structural

    ctx = None
    conditions_ok = True
    for key, f in query.features.items():
        if f.since is None:
            continue
        ctx = ctx or empty_context(input_schema, None)
        cond = f.since.condition
        try:
            t = ctx.sql(f"SELECT ({cond}) AS c FROM soa_input").schema().field("c").type
        except DATAFUSION_ERRORS as exc:
            conditions_ok = False
            msg = error_line(exc)
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
    ctx = empty_context(input_schema, spine_schema)
    spine_name = "soa_spine" if temporal else None
    try:
        ctx.sql(soa_sql(query, "soa_input", spine_name)).schema()
    except DATAFUSION_ERRORS:
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
            except DATAFUSION_ERRORS as exc:
                col = f.source_feature or key
                problems.append(
                    f"feature {key!r}: cannot aggregate column {col!r} "
                    f"(type {input_schema.field(col).type}): {error_line(exc)}"
                )
        if not problems:
            ctx2 = empty_context(input_schema, spine_schema)
            try:
                ctx2.sql(soa_sql(query, "soa_input", spine_name)).schema()
            except DATAFUSION_ERRORS as exc:
                problems.append(f"cannot plan the aggregation: {error_line(exc)}")
    return problems


def soa_output_schema(query: SOAQuery, input_schema: pa.Schema, spine_schema: pa.Schema | None = None) -> pa.Schema:
    """The Arrow schema :func:`execute_soa` produces, found by planning on empty tables.

    >>> s = pa.schema([("k", pa.string()), ("d", pa.date32()), ("app", pa.date32()), ("x", pa.int32())])
    >>> from operators.soa.spec import SOAFeature
    >>> q = SOAQuery(id_col="k", feature_date_col="d", application_date_col="app",
    ...              features={"x": SOAFeature(basic=("sum", "mean", "max"))})
    >>> [str(f.type) for f in soa_output_schema(q, s)]
    ['string', 'int64', 'double', 'int32']
    """
    raise_problems(query, input_schema, spine_schema)
    ctx = empty_context(input_schema, spine_schema)
    sql = soa_sql(query, "soa_input", "soa_spine" if spine_schema is not None else None)
    planned = ctx.sql(sql).schema()
    if spine_schema is None:
        return planned
    # Temporal: the statement yields (row number, features); id and date come from the spine.
    key = spine_schema.field(query.spine_id_col or query.id_col).with_name(query.id_col)
    date = spine_schema.field(query.spine_date_col or query.application_date_col)
    return pa.schema([key, date.with_name(query.application_date_col), *list(planned)[1:]])


def raise_problems(query: SOAQuery, input_schema: pa.Schema, spine_schema: pa.Schema | None) -> None:
    problems = check_soa(query, input_schema, spine_schema)
    if problems:
        raise EngineError("second-order aggregation: " + "; ".join(problems))
