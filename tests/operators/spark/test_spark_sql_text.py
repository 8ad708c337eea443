"""The Spark SQL the engine generates, as text (no Spark needed): golden files in tests/fixtures/spark/.

To update after a deliberate change: write the generator's output + "\\n" to the
fixture and review the diff.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pyarrow as pa
import pytest

from operators.errors import EngineError
from operators.soa.compile import soa_sql
from operators.soa.spec import SOAFeature, SOAQuery, SOARatio, SOASince
from operators.spark.pit import pit_output_schema, pit_sql
from operators.spark.session import spark_ddl, spark_type

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "spark"

# A small spec touching every SOA feature type, and a mixed-case, quoted column.
QUERY = SOAQuery(
    id_col="region",
    feature_date_col="order_date",
    application_date_col="application_date",
    features={
        "daily_amount": SOAFeature(basic=("sum", "mean")),
        "recent": SOAFeature(source_feature="daily_amount", window=(1, 7), basic=("sum",)),
        "trend": SOAFeature(source_feature="daily_amount",
                            ratio=SOARatio(numerator=(1, 7), denominator=(8, 14), aggs=("count",))),
        "Status": SOAFeature(since=SOASince(condition="\"Status\" = 'returned'", aggs=("count",))),
    },
)


@pytest.mark.parametrize(("fixture", "spine"), [("soa.sql", None), ("soa_temporal.sql", "soa_spine")])
def test_soa_spark_sql_golden(fixture, spine):
    assert soa_sql(QUERY, "soa_input", spine, dialect="spark") + "\n" == (FIXTURES / fixture).read_text()


def test_soa_dialects_differ_only_in_quoting_and_day_arithmetic():
    local = soa_sql(QUERY, "soa_input", "soa_spine")
    spark = soa_sql(QUERY, "soa_input", "soa_spine", dialect="spark")
    # Undo the two spellings: backtick quoting and DATEDIFF; what is left is the same plan.
    spark = re.sub(r"`((?:[^`]|``)*)`", lambda m: '"' + m.group(1).replace("``", "`") + '"', spark)
    spark = re.sub(r"DATEDIFF\(([^,]+), ([^)]+\)?)\)", r"\1 - \2", spark)
    assert spark == local


def test_soa_unknown_dialect():
    with pytest.raises(EngineError, match=re.escape("unknown SQL dialect 'flink'; valid: datafusion, spark")):
        soa_sql(QUERY, dialect="flink")


def test_pit_spark_sql_golden():
    sql = pit_sql("pit_spine", "pit_features", by=["customer_id"], spine_time="application_date",
                  feature_time="event_time", spine_cols=["customer_id", "application_date", "churned"],
                  feature_cols=["event_time", "daily amount"], max_age=dt.timedelta(days=30))
    assert sql + "\n" == (FIXTURES / "pit.sql").read_text()


def test_pit_output_schema_is_the_local_engines():
    spine = pa.schema([("id", pa.string()), ("ts", pa.date32()), ("x", pa.int64())])
    feats = pa.schema([("id", pa.string()), ("at", pa.timestamp("us")), ("x", pa.float64()), ("y", pa.string())])
    schema = pit_output_schema(spine, feats, left_on="ts", right_on="at", by="id")
    assert schema.names == ["id", "ts", "x", "at", "y"]  # spine first; the spine's x wins
    with pytest.raises(EngineError, match=re.escape("join key 'k' is missing from the left (spine) input")):
        pit_output_schema(spine, feats, left_on="ts", right_on="at", by="k")


def test_arrow_types_map_to_spark_without_loss():
    schema = pa.schema([
        ("a", pa.int8()), ("b", pa.uint64()), ("c", pa.dictionary(pa.int32(), pa.string())),
        ("d", pa.timestamp("ns", "Europe/Paris")), ("e", pa.decimal128(38, 0)),
        ("f", pa.map_(pa.string(), pa.list_(pa.date32()))),
    ])
    assert spark_ddl(schema) == ("`a` TINYINT, `b` DECIMAL(20,0), `c` STRING, `d` TIMESTAMP_LTZ, "
                                 "`e` DECIMAL(38,0), `f` MAP<STRING, ARRAY<DATE>>")
    with pytest.raises(EngineError, match=re.escape("column 'dur' has type duration[s], which Spark cannot hold")):
        spark_type(pa.duration("s"), "dur")
