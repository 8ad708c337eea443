"""Chapter 1 of the walk-through, typed as a user would, through the CLI."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import TUTORIAL_DATA

CUSTOMER_FEATURES = '''# /// script
# dependencies = ["pandas", "duckdb"]
# ///
"""Per-customer order totals."""

from seeknal_flow import feature_group


@feature_group(name="customer_features", entity="customer", description="Per-customer order totals")
def customer_features(ctx):
    txn = ctx.ref("source.transactions")
    return ctx.duckdb.sql(
        """
        SELECT customer_id,
               COUNT(*)                           AS total_orders,
               SUM(revenue)                       AS total_revenue,
               AVG(revenue)                       AS avg_order_value,
               MIN(order_date)                    AS first_order_date,
               MAX(order_date)                    AS last_order_date,
               CAST(MAX(order_date) AS TIMESTAMP) AS event_time
        FROM txn
        GROUP BY customer_id
        """
    )
'''

# Table E of the walk-through's expected results.
TABLE_E = [
    ("CUST-100", 3, 184.98, 61.66, "2026-01-10", "2026-01-19"),
    ("CUST-101", 3, 499.49, 166.496667, "2026-01-11", "2026-01-20"),
    ("CUST-102", 1, 75.25, 75.25, "2026-01-13", "2026-01-13"),
    ("CUST-103", 1, 45.99, 45.99, "2026-01-14", "2026-01-14"),
    ("CUST-104", 1, 199.95, 199.95, "2026-01-16", "2026-01-16"),
    ("CUST-105", 1, 250.00, 250.00, "2026-01-12", "2026-01-12"),
]


def test_chapter_1_end_to_end(seeknal, tmp_path):
    shop = tmp_path / "shop"
    shop.mkdir()
    r = seeknal("init", "--name", "shop", "--description", "Customer features", cwd=shop)
    assert r.code == 0, r.text
    for f in TUTORIAL_DATA.glob("*.csv"):
        shutil.copy(f, shop / "data")

    r = seeknal("draft", "source", "transactions", "--python", "--deps", "pandas", cwd=shop)
    assert r.code == 0, r.text
    draft = shop / "draft_source_transactions.py"
    text = draft.read_text()
    assert '# dependencies = ["pandas"]' in text
    # The tutorial's edit: the template's defaults already say csv + data/transactions.csv.
    assert 'source="csv"' in text and 'table="data/transactions.csv"' in text

    r = seeknal("dry-run", "draft_source_transactions.py", cwd=shop)
    assert r.code == 0, r.text
    assert "CUST-100" in r.out and "ORD-1001" in r.out
    assert not (shop / "target" / "intermediate").exists()  # dry-run writes nothing

    r = seeknal("apply", "draft_source_transactions.py", cwd=shop)
    assert r.code == 0, r.text
    assert (shop / "seeknal/sources/transactions.py").exists() and not draft.exists()
    assert "customer_id: string" in r.out and "revenue: double" in r.out

    r = seeknal("draft", "feature-group", "customer_features", "--python", "--deps", "pandas,duckdb", cwd=shop)
    assert r.code == 0, r.text
    (shop / "draft_feature_group_customer_features.py").write_text(CUSTOMER_FEATURES)
    r = seeknal("apply", "draft_feature_group_customer_features.py", cwd=shop)
    assert r.code == 0, r.text
    assert "total_orders: int64" in r.out

    r = seeknal("plan", cwd=shop)
    assert r.code == 0, r.text
    assert "RUN   source.transactions" in r.out and "RUN   feature_group.customer_features" in r.out

    r = seeknal("run", cwd=shop)
    assert r.code == 0, r.text
    assert "[1/2] source.transactions" in r.out and "ok: 10 rows" in r.out
    assert "[2/2] feature_group.customer_features" in r.out and "ok: 6 rows" in r.out

    r = seeknal("repl", "--format", "json", "-e",
                "SELECT * FROM feature_group_customer_features ORDER BY customer_id", cwd=shop)
    assert r.code == 0, r.text
    rows = json.loads(r.out)
    got = [(x["customer_id"], x["total_orders"], x["total_revenue"], x["avg_order_value"],
            x["first_order_date"], x["last_order_date"]) for x in rows]
    assert len(got) == len(TABLE_E)
    for g, e in zip(got, TABLE_E, strict=True):
        assert g[0] == e[0] and g[1] == e[1] and g[4:] == e[4:]
        assert g[2] == pytest.approx(e[2], rel=1e-6) and g[3] == pytest.approx(e[3], rel=1e-6)

    # Add days_since_first_order: only the feature group re-runs.
    fg = shop / "seeknal/feature_groups/customer_features.py"
    fg.write_text(fg.read_text().replace(
        "MAX(order_date)                    AS last_order_date,",
        "MAX(order_date)                    AS last_order_date,\n"
        "               DATE '2026-01-21' - MIN(order_date) AS days_since_first_order,",
    ))
    r = seeknal("plan", cwd=shop)
    assert "SKIP  source.transactions" in r.out
    assert "RUN   feature_group.customer_features  (code changed)" in r.out
    r = seeknal("run", cwd=shop)
    assert r.code == 0, r.text
    assert "[1/1] feature_group.customer_features" in r.out and "source.transactions" not in r.out.split("\n")[0]
    r = seeknal("repl", "--format", "csv", "-e",
                "SELECT customer_id, days_since_first_order FROM feature_group_customer_features ORDER BY 1", cwd=shop)
    assert r.out.splitlines()[1] == "CUST-100,11"

    r = seeknal("run", cwd=shop)
    assert r.code == 0 and "Nothing to run" in r.out

    r = seeknal("lineage", "feature_group.customer_features", "--ascii", cwd=shop)
    assert r.code == 0, r.text
    assert "`-- source.transactions" in r.out


def test_example_project_runs_as_shipped(seeknal, example_project):
    r = seeknal("run", cwd=example_project)
    assert r.code == 0, r.text
    assert "feature_group.customer_daily_agg" in r.out and "ok: 10 rows" in r.out
    r = seeknal("repl", "--format", "csv", "-e",
                "SELECT COUNT(*) AS n, SUM(daily_count) AS c FROM feature_group_customer_daily_agg", cwd=example_project)
    assert r.out.splitlines()[1] == "10,10"
