"""Chapter 2 (second-order aggregations) and the temporal SOA of Chapter 3, through the CLI."""

from __future__ import annotations

import json
import math

import pyarrow.parquet as pq
import pytest

NULL = None
# expected.md, table A
TABLE_A = {
    "columns": ["region", "daily_amount_SUM", "daily_amount_MEAN", "daily_amount_MAX", "daily_amount_STDDEV",
                "daily_count_SUM", "daily_count_MEAN", "daily_amount_SUM_1_7", "daily_amount_SUM1_7_SUM8_14"],
    "rows": [
        ("east", 75.25, 75.25, 75.25, NULL, 1, 1.0, NULL, NULL),
        ("north", 384.93, 96.2325, 199.95, 74.518961, 4, 1.0, 334.94, 6.700140),
        ("south", 749.49, 187.3725, 250.00, 68.470517, 4, 1.0, 299.99, 0.667386),
        ("west", 45.99, 45.99, 45.99, NULL, 1, 1.0, 45.99, NULL),
    ],
}
# table B
TABLE_B = {
    "columns": ["customer_id", "daily_amount_SUM", "daily_amount_MEAN", "daily_amount_MAX", "daily_count_SUM",
                "daily_count_MEAN", "daily_amount_SUM_1_7", "daily_amount_SUM1_7_SUM8_14"],
    "rows": [
        ("CUST-100", 184.98, 61.66, 99.99, 3, 1.0, 134.99, 2.700340),
        ("CUST-101", 499.49, 166.496667, 210.00, 3, 1.0, 299.99, 1.503709),
        ("CUST-102", 75.25, 75.25, 75.25, 1, 1.0, NULL, NULL),
        ("CUST-103", 45.99, 45.99, 45.99, 1, 1.0, 45.99, NULL),
        ("CUST-104", 199.95, 199.95, 199.95, 1, 1.0, 199.95, NULL),
        ("CUST-105", 250.00, 250.00, 250.00, 1, 1.0, NULL, NULL),
    ],
}
# table D (temporal SOA over the churn_labels spine)
TABLE_D = {
    "columns": ["customer_id", "application_date", "daily_amount_SUM", "daily_amount_SUM_1_7",
                "daily_amount_SUM1_7_SUM8_14"],
    "rows": [
        ("CUST-100", "2026-01-20", 184.98, 134.99, 2.700340),
        ("CUST-101", "2026-01-21", 499.49, 299.99, 1.503709),
        ("CUST-102", "2026-01-18", 75.25, 75.25, NULL),
        ("CUST-103", "2026-01-17", 45.99, 45.99, NULL),
        ("CUST-104", "2026-01-19", 199.95, 199.95, NULL),
        ("CUST-105", "2026-01-16", 250.00, 250.00, NULL),
    ],
}


def _same(got, want) -> bool:
    if want is None or got is None:
        return got is want
    if isinstance(want, float):
        return math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9)
    return got == want


def _check(seeknal, project, view, table, order="1"):
    r = seeknal("repl", "--format", "json", "-e", f"SELECT * FROM {view} ORDER BY {order}", cwd=project)
    assert r.code == 0, r.text
    rows = json.loads(r.out)
    assert list(rows[0].keys()) == table["columns"]  # exactly these columns, in this order
    assert len(rows) == len(table["rows"])
    for got, want in zip(rows, table["rows"], strict=True):
        for col, w in zip(table["columns"], want, strict=True):
            assert _same(got[col], w), (view, got, col, w)


def test_tables_a_b_d(seeknal, example_project):
    r = seeknal("run", cwd=example_project)
    assert r.code == 0, r.text
    _check(seeknal, example_project, "second_order_aggregation_region_metrics", TABLE_A)
    _check(seeknal, example_project, "second_order_aggregation_customer_training_features", TABLE_B)
    _check(seeknal, example_project, "second_order_aggregation_customer_spend_at_label", TABLE_D)
    # Integer sums stay integers, dates stay dates.
    schema = pq.read_schema(example_project / "target/intermediate/second_order_aggregation_region_metrics.parquet")
    assert str(schema.field("daily_count_SUM").type) == "int64"
    schema = pq.read_schema(example_project / "target/intermediate/second_order_aggregation_customer_spend_at_label.parquet")
    assert str(schema.field("application_date").type) == "date32[day]"


DECORATOR_REGION_METRICS = '''
from seeknal_flow import second_order_aggregation


@second_order_aggregation(
    name="region_metrics_py",
    id_col="region",
    feature_date_col="order_date",
    application_date_col="application_date",
    features={
        "daily_amount": {"basic": ["sum", "mean", "max", "stddev"]},
        "daily_count": {"basic": ["sum", "mean"]},
        "recent_spending": {"source_feature": "daily_amount", "window": [1, 7], "basic": ["sum"]},
        "spending_trend": {"source_feature": "daily_amount",
                           "ratio": {"numerator": [1, 7], "denominator": [8, 14], "aggs": ["sum"]}},
    },
)
def region_metrics_py(ctx):
    return ctx.ref("feature_group.customer_daily_agg")
'''


def test_yaml_and_decorator_forms_give_identical_output(seeknal, example_project):
    (example_project / "seeknal/second_order_aggregations/region_metrics_py.py").write_text(DECORATOR_REGION_METRICS)
    r = seeknal("run", cwd=example_project)
    assert r.code == 0, r.text
    out = example_project / "target/intermediate"
    yaml_table = pq.read_table(out / "second_order_aggregation_region_metrics.parquet").sort_by("region")
    py_table = pq.read_table(out / "second_order_aggregation_region_metrics_py.parquet").sort_by("region")
    assert yaml_table.equals(py_table)


def test_draft_soa_templates_run_after_filling_in(seeknal, example_project):
    seeknal("run", cwd=example_project)
    for extra, suffix in (((), "yml"), (("--python",), "py")):
        name = f"soa_{suffix}"
        r = seeknal("draft", "second-order-aggregation", name, *extra, cwd=example_project)
        assert r.code == 0, r.text
        draft = example_project / f"draft_second_order_aggregation_{name}.{suffix}"
        r = seeknal("dry-run", draft.name, cwd=example_project)
        assert r.code == 1 and "feature_group.TODO" in r.err  # the TODOs must be filled in
        text = draft.read_text()
        for old, new in (("feature_group.TODO", "feature_group.customer_daily_agg"), ("TODO_id", "region"),
                         ("TODO_date", "order_date"), ("TODO_amount", "daily_amount")):
            text = text.replace(old, new)
        draft.write_text(text)
        r = seeknal("dry-run", draft.name, cwd=example_project)
        assert r.code == 0, r.text
        assert "daily_amount_SUM" in r.out and "north" in r.out
        r = seeknal("apply", draft.name, cwd=example_project)
        assert r.code == 0, r.text
    r = seeknal("run", cwd=example_project)
    assert r.code == 0, r.text
    assert "second_order_aggregation.soa_yml" in r.out and "second_order_aggregation.soa_py" in r.out


@pytest.mark.parametrize(
    "edit",
    [
        ("basic: [sum, mean, max, stddev]", "basic: [sum, mean, max]"),
        ("window: [1, 7]", "window: [1, 6]"),
        ("denominator: [8, 14]", "denominator: [8, 15]"),
        ("id_col: region", "id_col: customer_id"),
    ],
)
def test_plan_detects_soa_edits(seeknal, example_project, edit):
    assert seeknal("run", cwd=example_project).code == 0
    path = example_project / "seeknal/second_order_aggregations/region_metrics.yml"
    path.write_text(path.read_text().replace(*edit))
    r = seeknal("plan", cwd=example_project)
    assert r.code == 0, r.text
    run_lines = [ln for ln in r.out.splitlines() if ln.strip().startswith("RUN")]
    assert len(run_lines) == 1 and "second_order_aggregation.region_metrics" in run_lines[0], r.out


SOA_ERRORS = [
    ("id_col: region", "id_col: regionx", "Missing id column 'regionx'"),
    ("feature_date_col: order_date", "feature_date_col: order_day", "Missing feature date column 'order_day'"),
    ("application_date_col: application_date", "application_date_col: app_date", "Missing application date column 'app_date'"),
    ("  daily_count:\n    basic: [sum, mean]", "  daily_counts:\n    basic: [sum, mean]", "Missing feature columns: {'daily_counts'}"),
    ("basic: [sum, mean]", "basic: [sum, average]", "unknown aggregation 'average'; valid: count, sum, mean"),
    ("window: [1, 7]", "window: [7, 1]", "window [7, 1] must be two integers with lo <= hi"),
    ("window: [1, 7]", "window: [1, x]", "field 'features.recent_spending.window[1]'"),
    ("denominator: [8, 14]", "denominator: [8]", "field 'features.spending_trend.ratio.denominator'"),
    ("    basic: [sum, mean]\n", "    {}\n", "feature 'daily_count' has no aggregation"),
    ("    source_feature: daily_amount\n    window", "    source_feature: daily_count\n    window", None),
    ("source: feature_group.customer_daily_agg", "source: customer_daily_agg", "field 'source': 'customer_daily_agg' is not of the form kind.name"),
    ("source: feature_group.customer_daily_agg", "source: feature_group.nope", "unknown node 'feature_group.nope'"),
]


@pytest.mark.parametrize("old,new,message", SOA_ERRORS)
def test_soa_validation_errors(seeknal, example_project, old, new, message):
    assert seeknal("run", cwd=example_project).code == 0
    path = example_project / "seeknal/second_order_aggregations/region_metrics.yml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    r = seeknal("plan", cwd=example_project)
    if message is None:  # a valid edit: no error
        assert r.code == 0, r.text
        return
    assert r.code == 1, r.text
    assert "Traceback" not in r.text
    assert "seeknal/second_order_aggregations/region_metrics.yml:" in r.err
    assert message in r.err, r.err


def test_duplicate_output_column_and_since_errors(seeknal, example_project):
    assert seeknal("run", cwd=example_project).code == 0
    path = example_project / "seeknal/second_order_aggregations/region_metrics.yml"
    path.write_text(path.read_text() + "  daily_amount_again:\n    source_feature: daily_amount\n    basic: [sum]\n")
    r = seeknal("plan", cwd=example_project)
    assert r.code == 1 and "output column 'daily_amount_SUM' is produced by both 'daily_amount' and 'daily_amount_again'" in r.err
    text = path.read_text().replace("  daily_amount_again:\n    source_feature: daily_amount\n    basic: [sum]\n", "")
    path.write_text(text + "  returns:\n    source_feature: daily_amount\n    since: {condition: \"status = 'returned'\"}\n")
    r = seeknal("plan", cwd=example_project)
    assert r.code == 1 and "since condition \"status = 'returned'\" names unknown column status" in r.err, r.err
    path.write_text(text + "  returns:\n    source_feature: daily_amount\n    since: {condition: \"daily_amount >\"}\n")
    r = seeknal("plan", cwd=example_project)
    assert r.code == 1 and "does not parse" in r.err, r.err
    path.write_text(text + "  big:\n    source_feature: daily_amount\n    since: {condition: \"daily_amount > 100\", aggs: [count]}\n")
    r = seeknal("run", cwd=example_project)
    assert r.code == 0, r.text
    r = seeknal("repl", "--format", "csv", "-e",
                "SELECT region, SINCE_COUNT_daily_amount_GEO_D FROM second_order_aggregation_region_metrics ORDER BY 1",
                cwd=example_project)
    assert r.out.splitlines()[1:] == ["east,0", "north,1", "south,3", "west,0"]
