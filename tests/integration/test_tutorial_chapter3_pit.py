"""Chapter 3: point-in-time training data (table C) through `seeknal run` and the library API."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pyarrow as pa
import pytest

from seeknal_flow import FeatureLookup, FillNull, HistoricalFeaturesDuckDB
from seeknal_flow.errors import SeeknalError

# expected.md, table C (spine order)
TABLE_C = [
    ("CUST-100", 0, "2026-01-20", "2026-01-19", 35.00, 1),
    ("CUST-101", 0, "2026-01-21", "2026-01-20", 89.99, 1),
    ("CUST-102", 1, "2026-01-18", "2026-01-13", 75.25, 1),
    ("CUST-103", 1, "2026-01-17", "2026-01-14", 45.99, 1),
    ("CUST-104", 0, "2026-01-19", "2026-01-16", 199.95, 1),
    ("CUST-105", 0, "2026-01-16", "2026-01-12", 250.00, 1),
]
COLS = ["customer_id", "churned", "application_date", "order_date", "daily_amount", "daily_count"]


@pytest.fixture
def ran(seeknal, example_project):
    r = seeknal("run", cwd=example_project)
    assert r.code == 0, r.text
    return example_project


def _rows(table: pa.Table) -> list[tuple]:
    out = []
    for row in table.select(COLS).to_pylist():
        vals = []
        for c in COLS:
            v = row[c]
            vals.append(v.date().isoformat() if isinstance(v, dt.datetime) else
                        v.isoformat() if isinstance(v, dt.date) else v)
        out.append(tuple(vals))
    return out


def test_table_c_through_seeknal_run(seeknal, ran):
    r = seeknal("repl", "--format", "json", "-e", "SELECT * FROM transform_pit_training_data", cwd=ran)
    rows = json.loads(r.out)
    got = [tuple(row[c] for c in COLS) for row in rows]
    assert got == TABLE_C  # spine order, not sorted
    # spine columns first; the spine's application_date wins over the group's constant 01-21
    assert list(rows[0])[:3] == ["customer_id", "churned", "application_date"]


def test_table_c_through_historical_features(ran):
    labels = pd.read_csv(ran / "data/churn_labels.csv")
    hist = HistoricalFeaturesDuckDB(lookups=[FeatureLookup(source="feature_group.customer_daily_agg")], project=ran)
    table = hist.to_arrow(labels, "application_date", keep_cols=["churned"])
    assert _rows(table) == TABLE_C
    df = hist.to_dataframe(labels, "application_date", keep_cols=["churned"])
    assert list(df["daily_amount"]) == [r[4] for r in TABLE_C]
    # the older API
    df2 = hist.using_spine(labels, "application_date", keep_cols=["churned"]).to_dataframe_with_spine()
    assert df2.equals(df)


def test_lookups_subset_fill_null_max_age_and_duplicates(ran):
    spine = pa.table({
        "customer_id": ["CUST-100", "CUST-100", "CUST-999", "CUST-105", "CUST-104"],
        "application_date": [dt.date(2026, 1, 20), dt.date(2026, 1, 20), dt.date(2026, 1, 20),
                             dt.date(2026, 1, 11), dt.date(2026, 2, 28)],
    })
    hist = HistoricalFeaturesDuckDB(
        lookups=[FeatureLookup(source="feature_group.customer_daily_agg", features=["daily_amount"]),
                 FeatureLookup(source="feature_group.customer_features", features=["total_revenue"])],
        fill_nulls=[FillNull(value=0, columns=["daily_amount"])],
        project=ran,
    )
    t = hist.to_arrow(spine, "application_date")
    assert t.num_rows == 5  # one row per spine row, duplicates kept
    assert t.column_names == ["customer_id", "application_date", "order_date", "daily_amount",
                              "event_time", "total_revenue"]
    assert t["daily_amount"].to_pylist() == [35.0, 35.0, 0.0, 0.0, 199.95]  # unmatched -> FillNull 0
    assert t["total_revenue"].to_pylist() == [184.98, 184.98, None, None, 199.95]
    aged = HistoricalFeaturesDuckDB(lookups=[FeatureLookup(source="feature_group.customer_daily_agg",
                                                           features=["daily_amount"])], project=ran)
    t = aged.to_arrow(spine, "application_date", max_age="7d")
    assert t["daily_amount"].to_pylist() == [35.0, 35.0, None, None, None]  # 2026-02-28 is 43 days after 01-16


@pytest.mark.parametrize(
    "lookup,spine_cols,kwargs,message",
    [
        (FeatureLookup(source="feature_group.nope"), None, {}, "FeatureLookup source 'feature_group.nope' is not a node"),
        (FeatureLookup(source="feature_group.customer_daily_agg", features=["amount"]), None, {},
         "unknown feature(s) ['amount']"),
        (FeatureLookup(source="feature_group.customer_features"), {"cust": ["CUST-100"], "application_date": [dt.date(2026, 1, 20)]},
         {}, "the spine has no join key 'customer_id' (spine columns: cust, application_date; feature_group.customer_features keys: customer_id)"),
        (FeatureLookup(source="feature_group.customer_daily_agg"), {"cust": ["CUST-100"], "application_date": [dt.date(2026, 1, 20)]},
         {}, "no join key; the group has no entity and shares no column with the spine"),
        (FeatureLookup(source="feature_group.customer_features"), {"customer_id": ["CUST-100"], "day": [dt.date(2026, 1, 20)]},
         {}, "the spine has no date column 'application_date'"),
        (FeatureLookup(source="feature_group.customer_daily_agg"), {"customer_id": ["CUST-100"], "application_date": ["yesterday"]},
         {}, "date column 'application_date' holds text that is not an ISO date"),
        (FeatureLookup(source="feature_group.customer_daily_agg"), {"customer_id": ["CUST-100"], "application_date": [1.5]},
         {}, "time column 'application_date' of the left (spine) input is double"),
        (FeatureLookup(source="feature_group.customer_daily_agg"), None, {"max_age": "3 parsecs"}, "max_age '3 parsecs' is not a duration"),
    ],
)
def test_pit_errors(ran, lookup, spine_cols, kwargs, message):
    spine = pa.table(spine_cols or {"customer_id": ["CUST-100"], "application_date": [dt.date(2026, 1, 20)]})
    hist = HistoricalFeaturesDuckDB(lookups=[lookup], project=ran)
    with pytest.raises(SeeknalError, match=_escape(message)):
        hist.to_arrow(spine, "application_date", **kwargs)


def _escape(text: str) -> str:
    import re

    return re.escape(text)


def test_as_of(ran):
    from seeknal_flow.frames.frame import frame_for
    from seeknal_flow.load.workspace import Workspace

    ws = Workspace.open(ran)
    spec = ws.dag.nodes["feature_group.customer_features"]
    frame = frame_for(spec, ws.project.intermediate_path(spec.output_name))
    snap = frame.as_of("2026-01-15").to_arrow().sort_by("customer_id")
    # only customers whose (latest) event time is on or before 01-15
    assert snap["customer_id"].to_pylist() == ["CUST-102", "CUST-103", "CUST-105"]
    assert snap.column_names == frame.columns
