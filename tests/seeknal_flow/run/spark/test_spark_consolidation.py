"""The Spark SQL of entity consolidation, as text (golden; no Spark needed).

tests/integration/test_spark_engine.py runs it on Spark against consolidation_sql on DuckDB.
"""

from __future__ import annotations

from pathlib import Path

from seeknal_flow.run.spark.consolidation import consolidation_spark_sql

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "spark"


def test_two_groups_golden():
    # To update after a deliberate change: write the output + "\n" to the fixture and review the diff.
    sql = consolidation_spark_sql(("customer_id",), [
        ("customer_features", "entity_group_0", "event_time", ["customer_id", "total_revenue", "event_time"]),
        ("product_preferences", "entity_group_1", "ts", ["customer_id", "category_count", "top category", "ts"]),
    ])
    assert sql + "\n" == (FIXTURES / "consolidation.sql").read_text(encoding="utf-8")
