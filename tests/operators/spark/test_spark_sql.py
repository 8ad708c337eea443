"""Which DuckDB SQL runs on Spark: the syntax scan and the type agreement rules (no Spark needed)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from operators.spark.sql import _compatible, _kind, duckdb_only


@pytest.mark.parametrize(
    ("sql", "construct"),
    [
        ("SELECT 2 ^ 3 FROM t", "the ^ operator (power in DuckDB, bitwise XOR in Spark: write POWER(a, b))"),
        ("SELECT a // 2 FROM t", "the // operator (write FLOOR(a / b))"),
        ("SELECT * EXCLUDE (a) FROM t", "SELECT * EXCLUDE (...) (list the columns instead)"),
        ("SELECT * replace (a + 1 AS a) FROM t", "SELECT * REPLACE (...) (list the columns instead)"),
        ("SELECT * FROM read_parquet('x.parquet')", "the table function read_parquet(...) (read inputs with ref('kind.name'))"),
        ("SELECT * FROM t USING SAMPLE 10%", "USING SAMPLE"),
        ("SELECT * FROM a ASOF JOIN b ON a.k = b.k AND a.t >= b.t", "ASOF JOIN (use FeatureFrame.pit_join in a Python node)"),
        ("SELECT COLUMNS('x_.*') FROM t", "the COLUMNS(...) expression"),
    ],
)
def test_duckdb_only_constructs_are_named(sql, construct):
    assert duckdb_only(sql) == construct


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT '2 ^ 3', \"a^b\" FROM t -- x ^ y",
        "SELECT a /* // */ FROM t",
        "SELECT CAST(a AS DOUBLE), a::BIGINT, COUNT(*) FROM t GROUP BY ALL QUALIFY ROW_NUMBER() OVER (ORDER BY a) = 1",
    ],
)
def test_common_subset_passes(sql):
    assert duckdb_only(sql) is None


@pytest.mark.parametrize(
    ("arrow", "spark_kind", "ok"),
    [
        (pa.decimal128(38, 0), "integral", True),  # DuckDB SUM(INTEGER) is HUGEINT; Spark's is BIGINT
        (pa.int64(), "integral", True),
        (pa.float64(), "decimal:5", False),  # AVG of a DECIMAL: DOUBLE in DuckDB, rounded DECIMAL in Spark
        (pa.float64(), "integral", False),  # e.g. 2 ^ 3: 8.0 in DuckDB, XOR in Spark
        (pa.decimal128(10, 2), "decimal:2", True),
        (pa.timestamp("us", "UTC"), "timestamp", True),
        (pa.date32(), "timestamp", False),
        (pa.string(), "null", True),
    ],
)
def test_type_agreement(arrow, spark_kind, ok):
    assert _compatible(spark_kind, _kind(arrow)) is ok
