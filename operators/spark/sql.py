"""SQL nodes under ``--engine spark``: the user's DuckDB SQL, run as Spark SQL when both agree.

User SQL is DuckDB's dialect everywhere (docs/yaml-reference.md). On Spark a node's SQL runs
unchanged when it is in the common subset of both dialects; otherwise the node
fails with one line naming the construct. Three gates, cheapest first:

1. a scan for DuckDB-only syntax that Spark would reject obscurely or, worse,
   accept with another meaning (``^`` is power in DuckDB, XOR in Spark);
2. Spark's own parser and analyzer (unknown functions, syntax);
3. the output types: DuckDB plans the same SQL on the same inputs (metadata
   only) and Spark's columns must agree with it. Exact widenings (INT -> BIGINT,
   BIGINT -> DECIMAL(38,0), timestamp flavours) are cast; a difference that
   changes values (e.g. AVG of a DECIMAL: DOUBLE in DuckDB, rounded DECIMAL in
   Spark) is an error. Columns get DuckDB's names, so ``COUNT(*)`` is
   ``count_star()`` on both engines.

The session settings that make the rest agree (UTC, ``"x"`` as identifier,
naive ``TIMESTAMP``, literal backslashes) are in :mod:`operators.spark.session`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from operators.errors import EngineError
from operators.memory import MemoryConfig
from operators.spark.session import read_parquet, spark_error, spark_errors, spark_type
from operators.sql import SqlOperator, rewrite_refs
from operators.sql_text import quote_spark_ident

NOT_COMMON = "SQL is not in the DuckDB/Spark common subset"

_LINT = [
    (re.compile(r"\*\s*EXCLUDE\s*\(", re.I), "SELECT * EXCLUDE (...) (list the columns instead)"),
    (re.compile(r"\*\s*REPLACE\s*\(", re.I), "SELECT * REPLACE (...) (list the columns instead)"),
    (re.compile(r"//"), "the // operator (write FLOOR(a / b))"),
    (re.compile(r"\^"), "the ^ operator (power in DuckDB, bitwise XOR in Spark: write POWER(a, b))"),
    (re.compile(r"\bUSING\s+SAMPLE\b", re.I), "USING SAMPLE"),
    (re.compile(r"\bASOF\b", re.I), "ASOF JOIN (use FeatureFrame.pit_join in a Python node)"),
    (re.compile(r"\bPOSITIONAL\s+JOIN\b", re.I), "POSITIONAL JOIN"),
    (re.compile(r"\bCOLUMNS\s*\(", re.I), "the COLUMNS(...) expression"),
    (re.compile(r"\b(read_parquet|read_csv|read_csv_auto|read_json|read_json_auto|read_ndjson|parquet_scan)\s*\(",
                re.I), "the table function {0}(...) (read inputs with ref('kind.name'))"),
]
_MASK = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.S)


def duckdb_only(sql: str) -> str | None:
    """The first DuckDB-only construct in ``sql`` (outside strings and comments), or None.

    >>> duckdb_only("SELECT 2 ^ 3, '^' AS caret")
    'the ^ operator (power in DuckDB, bitwise XOR in Spark: write POWER(a, b))'
    >>> duckdb_only("SELECT * EXCLUDE (x) FROM t")
    'SELECT * EXCLUDE (...) (list the columns instead)'
    >>> duckdb_only("SELECT a -- x ^ y\\nFROM t") is None
    True
    """
    code = _MASK.sub(lambda m: " " * len(m.group(0)), sql)
    for pattern, message in _LINT:
        m = pattern.search(code)
        if m:
            return message.format(*m.groups())
    return None


def spark_sql_frame(spark, sql: str, inputs: dict[str, tuple[str, Path | list[Path]]], memory: MemoryConfig):
    """Run a node's DuckDB ``sql`` on Spark; ``inputs`` maps ``kind.name`` -> (view, Parquet path(s)).

    Returns a Spark DataFrame with DuckDB's column names and types. Raises
    :class:`EngineError` (``SQL error: ...`` when DuckDB itself rejects the SQL,
    ``SQL is not in the DuckDB/Spark common subset: ...`` when only Spark does).
    """
    text = rewrite_refs(sql, {ref: view for ref, (view, _) in inputs.items()})
    construct = duckdb_only(text)
    if construct:
        raise EngineError(f"{NOT_COMMON}: {construct}")
    expected = _duckdb_schema(sql, inputs, memory)  # DuckDB's plan; its errors are the user's
    for ref, (view, data) in inputs.items():
        seen = _duckdb_schema(f"SELECT * FROM ref('{ref}')", {ref: (view, data)}, memory)
        paths = data if isinstance(data, list) else [data]
        read_parquet(spark, paths, schema=seen).createOrReplaceTempView(view)
    try:
        df = spark.sql(text)
        actual = df.schema
    except spark_errors() as e:  # AnalysisException, ParseException
        raise EngineError(f"{NOT_COMMON}: {_construct(e)}") from e
    return _reconcile(df, actual, expected)


def _duckdb_schema(sql: str, inputs, memory) -> pa.Schema:
    op = SqlOperator(sql, inputs, memory=memory)
    try:
        return op.schema
    finally:
        op.close()


def _construct(error: BaseException) -> str:
    condition = _call(error, "getCondition") or _call(error, "getErrorClass") or ""
    params = _call(error, "getMessageParameters") or {}
    if condition.startswith("UNRESOLVED_ROUTINE"):
        return f"function {params.get('routineName', '?')} (not in Spark SQL)"
    if condition.startswith("UNRESOLVABLE_TABLE_VALUED_FUNCTION"):
        return f"table function {params.get('name', '?')}"
    if condition.startswith("PARSE_SYNTAX_ERROR"):
        return f"syntax Spark cannot parse near {params.get('error', '?')}"
    if condition.startswith("UNRESOLVED_COLUMN"):
        return f"reference {params.get('objectName', '?')}, which Spark cannot resolve there"
    text = spark_error(error)
    return f"{condition}: {text}" if condition and condition not in text else text


def _call(obj, name: str):
    fn = getattr(obj, name, None)
    try:
        return fn() if callable(fn) else None
    except spark_errors():  # a getter of a py4j-backed error may fail in its turn
        return None


# ------------------------------------------------------------------------------ types


def _kind(spark_or_arrow) -> str:
    """A coarse type class shared by Spark and Arrow types."""
    t = spark_or_arrow
    if isinstance(t, pa.DataType):
        if pa.types.is_dictionary(t):
            t = t.value_type
        checks = [
            (pa.types.is_integer, "integral"), (pa.types.is_floating, "floating"), (pa.types.is_boolean, "boolean"),
            (pa.types.is_date, "date"), (pa.types.is_timestamp, "timestamp"), (pa.types.is_null, "null"),
            (lambda x: pa.types.is_string(x) or pa.types.is_large_string(x) or pa.types.is_string_view(x), "string"),
            (lambda x: pa.types.is_binary(x) or pa.types.is_large_binary(x), "binary"),
            (pa.types.is_struct, "struct"), (pa.types.is_map, "map"),
            (lambda x: pa.types.is_list(x) or pa.types.is_large_list(x), "array"),
        ]
        if pa.types.is_decimal(t):
            return f"decimal:{t.scale}"
        return next((name for check, name in checks if check(t)), str(t))
    name = type(t).__name__
    mapping = {
        "ByteType": "integral", "ShortType": "integral", "IntegerType": "integral", "LongType": "integral",
        "FloatType": "floating", "DoubleType": "floating", "BooleanType": "boolean", "DateType": "date",
        "TimestampType": "timestamp", "TimestampNTZType": "timestamp", "NullType": "null",
        "StringType": "string", "CharType": "string", "VarcharType": "string", "BinaryType": "binary",
        "StructType": "struct", "MapType": "map", "ArrayType": "array",
    }
    if name == "DecimalType":
        return f"decimal:{t.scale}"
    return mapping.get(name, name)


def _compatible(spark_kind: str, duck_kind: str) -> bool:
    if spark_kind == duck_kind or spark_kind == "null":
        return True
    exact_ints = {"integral", "decimal:0"}
    return spark_kind in exact_ints and duck_kind in exact_ints


def _reconcile(df, actual, expected: pa.Schema):
    from pyspark.sql import functions as F

    if len(actual.fields) != len(expected):
        raise EngineError(
            f"{NOT_COMMON}: Spark returns {len(actual.fields)} columns {actual.fieldNames()} but DuckDB "
            f"{len(expected)} {expected.names}"
        )
    columns = []
    for i, (field, want) in enumerate(zip(actual.fields, expected, strict=True)):
        have_kind, want_kind = _kind(field.dataType), _kind(want.type)
        if not _compatible(have_kind, want_kind):
            decimal = "decimal" in have_kind + want_kind
            hint = " (decimal arithmetic differs: CAST the expression to DOUBLE)" if decimal else ""
            raise EngineError(
                f"{NOT_COMMON}: column '{want.name}' is {want.type} in DuckDB but "
                f"{field.dataType.simpleString()} in Spark SQL{hint}"
            )
        # By position: DuckDB and Spark name unnamed expressions differently.
        col = F.col(quote_spark_ident(field.name)) if actual.fieldNames().count(field.name) == 1 else df[i]
        columns.append(col.cast(spark_type(want.type, want.name)).alias(want.name))
    return df.select(columns)
