"""Chapter 4 (entity consolidation) and Chapter 3's serving part: the entity table, its catalog,
`seeknal entity`/`consolidate`, the online store, ctx.features and `seeknal serve`."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seeknal_flow import FeatureLookup, HistoricalFeaturesDuckDB, OnlineFeaturesDuckDB
from seeknal_flow.errors import SeeknalError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ml-path"

CUSTOMERS = ["CUST-100", "CUST-101", "CUST-102", "CUST-103", "CUST-104", "CUST-105"]
# expected.md, table E: total_orders, total_revenue, avg_order_value, first_order_date, last_order_date
TABLE_E = {
    "CUST-100": (3, 184.98, 61.66, "2026-01-10", "2026-01-19"),
    "CUST-101": (3, 499.49, 166.496667, "2026-01-11", "2026-01-20"),
    "CUST-102": (1, 75.25, 75.25, "2026-01-13", "2026-01-13"),
    "CUST-103": (1, 45.99, 45.99, "2026-01-14", "2026-01-14"),
    "CUST-104": (1, 199.95, 199.95, "2026-01-16", "2026-01-16"),
    "CUST-105": (1, 250.00, 250.00, "2026-01-12", "2026-01-12"),
}
# table F: category_count, electronics_ratio (CUST-100's top category is a three-way tie, broken alphabetically)
TABLE_F = {
    "CUST-100": (3, 0.333333), "CUST-101": (2, 0.666667), "CUST-102": (1, 0.0),
    "CUST-103": (1, 0.0), "CUST-104": (1, 1.0), "CUST-105": (1, 1.0),
}
TOP_CATEGORY = {"CUST-100": "clothing", "CUST-101": "electronics", "CUST-102": "food", "CUST-103": "clothing",
                "CUST-104": "electronics", "CUST-105": "electronics"}
CF_FEATURES = ["total_orders", "total_revenue", "avg_order_value", "first_order_date", "last_order_date"]
PP_FEATURES = ["top_category", "category_count", "electronics_ratio"]
FEATURES_FILE = Path("target/feature_store/customer/features.parquet")
CATALOG_FILE = Path("target/feature_store/customer/_entity_catalog.json")


def _run_cli(*args: str, project: Path) -> None:
    from seeknal_flow.cli.main import main

    try:
        main([*args, "--project", str(project)])
    except SystemExit as e:
        assert not e.code, f"seeknal {' '.join(args)} exited {e.code}"


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    """One run of the walk-through project, shared by the tests that only read it."""
    dest = tmp_path_factory.mktemp("entities") / "ml-path"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("target", "__pycache__"))
    _run_cli("run", project=dest)
    return dest


@pytest.fixture
def ran(shared, tmp_path) -> Path:
    """A private copy of the run project (target/ and file times included: nothing is out of date)."""
    dest = tmp_path / "ml-path"
    shutil.copytree(shared, dest)
    return dest


def _entity_rows(project: Path) -> dict[str, dict]:
    return {r["customer_id"]: r for r in pq.read_table(project / FEATURES_FILE).to_pylist()}


def _utc(value: dt.datetime) -> dt.datetime:
    """A timestamp as an aware UTC instant (naive timestamps are UTC, as everywhere in the project)."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _mtime(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_ino


# ------------------------------------------------------------------ Chapter 4: the entity table


def test_entity_table_columns_rows_and_values(shared):
    table = pq.read_table(shared / FEATURES_FILE)
    assert table.column_names == ["customer_id", "event_time", "customer_features", "product_preferences"]
    assert pa.types.is_struct(table.schema.field("customer_features").type)
    assert pa.types.is_struct(table.schema.field("product_preferences").type)
    cf_fields = [f.name for f in table.schema.field("customer_features").type]
    pp_fields = [f.name for f in table.schema.field("product_preferences").type]
    assert cf_fields[:5] == CF_FEATURES and pp_fields[:3] == PP_FEATURES
    assert table.num_rows == 6
    rows = _entity_rows(shared)
    assert sorted(rows) == CUSTOMERS
    for cid, row in rows.items():
        cf, pp = row["customer_features"], row["product_preferences"]
        assert cf is not None and pp is not None, cid  # both structs filled for every customer
        orders, revenue, avg, first, last = TABLE_E[cid]
        assert cf["total_orders"] == orders
        assert cf["total_revenue"] == pytest.approx(revenue, rel=1e-6)
        assert cf["avg_order_value"] == pytest.approx(avg, rel=1e-6)
        assert (cf["first_order_date"].isoformat(), cf["last_order_date"].isoformat()) == (first, last)
        count, ratio = TABLE_F[cid]
        assert pp["category_count"] == count
        assert pp["electronics_ratio"] == pytest.approx(ratio, abs=1e-6)
        assert pp["top_category"] == TOP_CATEGORY.get(cid, pp["top_category"])


def test_event_times_come_from_the_data_and_the_latest_wins(shared):
    # both groups take event_time from the data (the last order), never from the clock
    for cid, row in _entity_rows(shared).items():
        cf_time = _utc(row["customer_features"]["event_time"])
        pp_time = _utc(row["product_preferences"]["event_time"])
        assert cf_time == pp_time == _utc(dt.datetime.fromisoformat(TABLE_E[cid][4])), cid
        assert _utc(row["event_time"]) == max(cf_time, pp_time), cid


def test_event_time_does_not_depend_on_machine_time_zone(ran):
    env = {**os.environ, "TZ": "America/New_York"}
    proc = subprocess.run([sys.executable, "-m", "seeknal_flow.cli.main", "run", "--project", str(ran),
                           "--nodes", "feature_group.product_preferences"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and "Consolidated and published: customer" in proc.stdout, proc.stderr
    for cid, row in _entity_rows(ran).items():
        pp_time = _utc(row["product_preferences"]["event_time"])
        assert _utc(row["event_time"]) == pp_time, cid  # the latest instant, not New York wall time


def test_entity_list_and_show(seeknal, shared):
    r = seeknal("entity", "list", cwd=shared)
    assert r.code == 0, r.text
    lines = [line for line in r.out.splitlines() if line.strip()]
    # one line per entity (the example also publishes the churn model's inputs as entity churn_scoring)
    assert [line.split()[0] for line in lines] == sorted(line.split()[0] for line in lines)
    customer = [line for line in lines if line.split()[0] == "customer"]
    assert len(customer) == 1, r.out
    assert re.fullmatch(r"customer\s+2 FGs\s+8 features\s+ready\s+\d{4}-\d\d-\d\dT\S+", customer[0]), customer[0]

    r = seeknal("entity", "show", "customer", cwd=shared)
    assert r.code == 0, r.text
    assert "join keys: customer_id" in r.out
    assert "rows: 6" in r.out and "schema version: 1" in r.out and "consolidated at: " in r.out
    assert "customer_features: 6 rows, event time column event_time" in r.out
    assert "product_preferences: 6 rows, event time column event_time" in r.out
    assert f"features: {', '.join(CF_FEATURES)}" in r.out
    assert f"features: {', '.join(PP_FEATURES)}" in r.out


def test_entity_show_unknown_is_one_line_error(seeknal, shared):
    r = seeknal("entity", "show", "shopper", cwd=shared)
    assert r.code == 1
    assert r.out == ""
    lines = r.err.strip().splitlines()
    assert len(lines) == 1
    assert re.fullmatch(r"error: unknown entity 'shopper'; consolidated entities: (\w+, )*customer(, \w+)*", lines[0])


def test_entity_list_before_any_run_and_unpublished_entity(seeknal, example_project):
    r = seeknal("entity", "list", cwd=example_project)
    assert r.code == 0, r.text
    assert r.out.strip() == "No entities yet: declare a feature group with entity=..., then `seeknal run`."
    with pytest.raises(SeeknalError, match=r"entity 'customer' has no published features; run `seeknal run`"):
        OnlineFeaturesDuckDB(entity="customer", project=example_project)


def test_repl_entity_view(seeknal, shared):
    sql = ("SELECT customer_id, customer_features.total_revenue, product_preferences.category_count "
           "FROM entity_customer ORDER BY 1")
    r = seeknal("repl", "-e", sql, cwd=shared)
    assert r.code == 0, r.text
    lines = r.out.strip().splitlines()
    assert lines[0].split() == ["customer_id", "total_revenue", "category_count"]
    assert lines[2].split() == ["CUST-100", "184.98", "3"]
    assert lines[-1].split() == ["CUST-105", "250", "1"]
    r = seeknal("repl", "--format", "json", "-e", sql, cwd=shared)
    got = [(row["customer_id"], row["total_revenue"], row["category_count"]) for row in json.loads(r.out)]
    assert got == [(c, TABLE_E[c][1], TABLE_F[c][0]) for c in CUSTOMERS]


def test_entity_catalog_fields(shared):
    catalog = json.loads((shared / CATALOG_FILE).read_text())
    assert catalog["entity"] == "customer"
    assert catalog["join_keys"] == ["customer_id"]
    assert sorted(catalog["groups"]) == ["customer_features", "product_preferences"]
    assert catalog["schema_version"] == 1
    assert dt.datetime.fromisoformat(catalog["consolidated_at"]).tzinfo is not None
    for group, features in (("customer_features", CF_FEATURES), ("product_preferences", PP_FEATURES)):
        info = catalog["groups"][group]
        assert info["features"] == features
        assert info["event_time_col"] == "event_time"
        assert info["row_count"] == 6
        assert list(info["schema"]) == ["customer_id", *features, "event_time"]
        assert info["schema"]["customer_id"] == "string"
        dt.datetime.fromisoformat(info["last_updated"])
    assert catalog["groups"]["customer_features"]["schema"]["total_orders"] == "int64"


# ------------------------------------------------------------------ incremental, prune, join keys


def test_incremental_consolidation(seeknal, ran):
    features = ran / FEATURES_FILE
    before = _mtime(features)
    before_rows = _entity_rows(ran)

    r = seeknal("run", cwd=ran)
    assert r.code == 0 and "Nothing to run" in r.out, r.text
    assert _mtime(features) == before  # nothing changed: not rewritten

    r = seeknal("consolidate", cwd=ran)
    assert r.code == 0 and r.out.strip() == "Every entity is up to date.", r.text
    assert _mtime(features) == before

    # change one group's code: only it re-runs, and the entity is rebuilt around it
    path = ran / "seeknal/feature_groups/customer_features.py"
    path.write_text(path.read_text().replace("SUM(revenue)                       AS total_revenue,",
                                             "SUM(revenue) AS total_revenue, MAX(revenue) AS max_order,"))
    r = seeknal("run", cwd=ran)
    assert r.code == 0, r.text
    assert "feature_group.customer_features" in r.out and "feature_group.product_preferences" not in r.out
    assert "Consolidated and published: customer" in r.out
    assert _mtime(features) != before
    rows = _entity_rows(ran)
    assert rows["CUST-101"]["customer_features"]["max_order"] == 210.0
    for cid in CUSTOMERS:  # the untouched group's struct is carried over as it was
        assert rows[cid]["product_preferences"] == before_rows[cid]["product_preferences"]
    catalog = json.loads((ran / CATALOG_FILE).read_text())
    assert "max_order" in catalog["groups"]["customer_features"]["features"]
    assert catalog["schema_version"] == 2  # the layout changed
    online = OnlineFeaturesDuckDB(entity="customer", features=["customer_features.max_order"], project=ran)
    assert online.get_features_arrow([{"customer_id": "CUST-101"}])["max_order"].to_pylist() == [210.0]

    r = seeknal("consolidate", cwd=ran)
    assert r.out.strip() == "Every entity is up to date."


def test_prune_removes_groups_then_the_entity(seeknal, ran):
    (ran / "seeknal/feature_groups/product_preferences.yml").unlink()
    r = seeknal("consolidate", cwd=ran)
    assert r.code == 0 and r.out.strip() == "Every entity is up to date.", r.text
    table = pq.read_table(ran / FEATURES_FILE)
    assert "product_preferences" in table.column_names  # kept without --prune

    r = seeknal("consolidate", "--prune", cwd=ran)
    assert r.code == 0 and r.out.splitlines()[0] == "Consolidated: customer", r.text
    table = pq.read_table(ran / FEATURES_FILE)
    assert table.column_names == ["customer_id", "event_time", "customer_features"]
    assert table.num_rows == 6
    catalog = json.loads((ran / CATALOG_FILE).read_text())
    assert list(catalog["groups"]) == ["customer_features"]
    # the pruned group's kept latest rows went too (one single-file group left: nothing is kept)
    assert not list((ran / FEATURES_FILE.parent).rglob("product_preferences-*.parquet"))
    with pytest.raises(SeeknalError, match=r"unknown group 'product_preferences' of entity 'customer'"):
        OnlineFeaturesDuckDB(entity="customer", features=["product_preferences.category_count"], project=ran)
    online = OnlineFeaturesDuckDB(entity="customer", project=ran)
    assert online.get_features_arrow([{"customer_id": "CUST-100"}]).column_names == ["customer_id", *CF_FEATURES]

    (ran / "seeknal/feature_groups/customer_features.py").unlink()
    r = seeknal("consolidate", cwd=ran)
    assert (ran / FEATURES_FILE).exists()  # still not pruned
    r = seeknal("consolidate", "--prune", cwd=ran)
    assert r.code == 0, r.text
    assert not (ran / "target/feature_store/customer").exists()
    assert not (ran / "target/online/customer").exists()
    r = seeknal("entity", "list", cwd=ran)
    assert r.code == 0 and "customer" not in [line.split()[0] for line in r.out.splitlines() if line.strip()]
    with pytest.raises(SeeknalError, match=r"entity 'customer' has no published features"):
        OnlineFeaturesDuckDB(entity="customer", project=ran)


_REGIONS = """\
kind: feature_group
name: customer_regions
entity:
  name: customer
  join_keys: [customer_id, region]
sql: |
  SELECT customer_id, region, COUNT(*) AS orders_in_region, CURRENT_TIMESTAMP AS event_time
  FROM ref('source.transactions') GROUP BY 1, 2
"""


def _assert_join_key_error(text: str) -> None:
    lines = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, text
    line = lines[0]
    assert "entity 'customer'" in line
    assert "feature_group.customer_features" in line and "feature_group.customer_regions" in line
    assert "['customer_id']" in line and "['customer_id', 'region']" in line


def test_join_key_mismatch_names_both_groups(seeknal, ran):
    (ran / "seeknal/feature_groups/customer_regions.yml").write_text(_REGIONS)
    before = _mtime(ran / FEATURES_FILE)
    r = seeknal("run", cwd=ran)
    assert r.code == 1
    _assert_join_key_error(r.err)
    r = seeknal("consolidate", cwd=ran)
    assert r.code == 1
    _assert_join_key_error(r.err)
    assert _mtime(ran / FEATURES_FILE) == before  # the previous entity table is left alone


def test_join_key_mismatch_is_still_an_error_on_the_next_run(seeknal, ran):
    (ran / "seeknal/feature_groups/customer_regions.yml").write_text(_REGIONS)
    assert seeknal("run", cwd=ran).code == 1
    r = seeknal("run", cwd=ran)
    assert r.code == 1, r.text
    _assert_join_key_error(r.err)


# ------------------------------------------------------------------ the online store


def test_get_features_request_order_nulls_and_offline_values(shared):
    online = OnlineFeaturesDuckDB(entity="customer",
                                  features=["product_preferences.category_count", "customer_features.total_revenue"],
                                  project=shared)
    keys = [{"customer_id": "CUST-104"}, {"customer_id": "CUST-999"}, {"customer_id": "CUST-100"},
            {"customer_id": "CUST-104"}]
    df = online.get_features(keys=keys)
    assert list(df.columns) == ["customer_id", "category_count", "total_revenue"]
    assert list(df["customer_id"]) == ["CUST-104", "CUST-999", "CUST-100", "CUST-104"]
    assert df["total_revenue"].tolist()[0] == 199.95 and df["total_revenue"].tolist()[2] == 184.98
    assert df.iloc[1][["category_count", "total_revenue"]].isna().all()
    table = online.get_features_arrow(keys)
    assert table["category_count"].to_pylist() == [1, None, 3, 1]
    assert table.schema.field("category_count").type == pa.int64()

    everything = OnlineFeaturesDuckDB(entity="customer", features=None, project=shared)
    rows = _entity_rows(shared)
    got = everything.get_features_arrow([{"customer_id": c} for c in reversed(CUSTOMERS)])
    assert got.column_names == ["customer_id", *CF_FEATURES, *PP_FEATURES]
    for row in got.to_pylist():
        expected = {k: v for k, v in rows[row["customer_id"]]["customer_features"].items() if k in CF_FEATURES}
        expected |= {k: v for k, v in rows[row["customer_id"]]["product_preferences"].items() if k in PP_FEATURES}
        assert row == {"customer_id": row["customer_id"], **expected}
    assert everything.get_features_arrow([]).num_rows == 0


def test_injection_like_key_is_just_an_unknown_key(shared):
    online = OnlineFeaturesDuckDB(entity="customer", features=["customer_features.total_revenue"], project=shared)
    got = online.get_features_arrow([{"customer_id": "x' OR '1'='1"}, {"customer_id": "CUST-102"},
                                     {"customer_id": "CUST-1%"}, {"customer_id": "cust-102"}])
    assert got.to_pylist() == [
        {"customer_id": "x' OR '1'='1", "total_revenue": None},
        {"customer_id": "CUST-102", "total_revenue": 75.25},
        {"customer_id": "CUST-1%", "total_revenue": None},
        {"customer_id": "cust-102", "total_revenue": None},
    ]


@pytest.mark.parametrize(
    "features,keys,message",
    [
        (["loyalty.points"], [{"customer_id": "CUST-100"}],
         "feature 'loyalty.points': unknown group 'loyalty' of entity 'customer'; "
         "groups: customer_features, product_preferences"),
        (["customer_features.lifetime_value"], [{"customer_id": "CUST-100"}],
         "feature 'customer_features.lifetime_value': group 'customer_features' has no feature 'lifetime_value'"),
        (["total_revenue"], [{"customer_id": "CUST-100"}], "(write group.feature)"),
        (["customer_features.event_time"], [{"customer_id": "CUST-100"}], "has no feature 'event_time'"),
        (None, [{"cust": "CUST-100"}], "key #0 {'cust': 'CUST-100'} lacks join key(s) ['customer_id']"),
        (None, [{"customer_id": "CUST-100"}, {}], "key #1 {} lacks join key(s) ['customer_id']"),
        (None, ["CUST-100"], "key #0 must be a mapping like {'customer_id': ...}, got 'CUST-100'"),
    ],
)
def test_online_errors(shared, features, keys, message):
    with pytest.raises(SeeknalError, match=re.escape(message)):
        OnlineFeaturesDuckDB(entity="customer", features=features, project=shared).get_features(keys=keys)


def test_unknown_entity_online(shared):
    with pytest.raises(SeeknalError, match=r"entity 'shopper' has no published features"):
        OnlineFeaturesDuckDB(entity="shopper", project=shared)


def test_key_of_another_type_is_an_unknown_key(shared):
    online = OnlineFeaturesDuckDB(entity="customer", features=["customer_features.total_revenue"], project=shared)
    got = online.get_features_arrow([{"customer_id": "CUST-100"}, {"customer_id": 100}])
    assert got["total_revenue"].to_pylist() == [184.98, None]


def test_feature_listed_twice(shared):
    online = OnlineFeaturesDuckDB(entity="customer", features=["customer_features.total_revenue"] * 2,
                                  project=shared)
    try:
        got = online.get_features_arrow([{"customer_id": "CUST-100"}])
    except SeeknalError as e:  # rejecting the request in plain words would be fine too
        assert "customer_features.total_revenue" in str(e)
        return
    assert set(got.column_names) == {"customer_id", "total_revenue"}
    assert all(got[i].to_pylist() == [184.98] for i, n in enumerate(got.column_names) if n == "total_revenue")


def test_parity_online_offline_pit_and_snapshot(shared):
    online = OnlineFeaturesDuckDB(entity="customer", project=shared)
    keys = [*CUSTOMERS, "CUST-999"]
    got = online.get_features_arrow([{"customer_id": c} for c in keys]).to_pylist()

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    spine = pa.table({"customer_id": keys, "request_time": pa.array([now] * len(keys), pa.timestamp("us"))})
    hist = HistoricalFeaturesDuckDB(lookups=[FeatureLookup(source="feature_group.customer_features"),
                                             FeatureLookup(source="feature_group.product_preferences")],
                                    project=shared)
    pit = hist.to_arrow(spine, "request_time").to_pylist()
    snapshot = _entity_rows(shared)
    assert len(pit) == len(got) == len(keys)
    for key, online_row, pit_row in zip(keys, got, pit, strict=True):
        assert online_row["customer_id"] == pit_row["customer_id"] == key
        for feature in CF_FEATURES + PP_FEATURES:
            assert online_row[feature] == pit_row[feature], (key, feature)
        if key in snapshot:
            for group, feats in (("customer_features", CF_FEATURES), ("product_preferences", PP_FEATURES)):
                for feature in feats:
                    assert online_row[feature] == snapshot[key][group][feature], (key, feature)
        else:
            assert all(online_row[f] is None for f in CF_FEATURES + PP_FEATURES)


def _with_ttl(project: Path) -> None:
    path = project / "seeknal/feature_groups/customer_features.py"
    path.write_text(path.read_text().replace('entity="customer",', 'entity="customer", ttl="1d",'))


def test_ttl_expires_old_rows(seeknal, ran):
    _with_ttl(ran)
    r = seeknal("run", cwd=ran)
    assert r.code == 0, r.text
    catalog = json.loads((ran / CATALOG_FILE).read_text())
    assert catalog["groups"]["customer_features"]["ttl"] == "1d"
    assert "ttl 1d" in seeknal("entity", "show", "customer", cwd=ran).out
    online = OnlineFeaturesDuckDB(entity="customer", features=["customer_features.total_revenue",
                                                                "product_preferences.category_count"],
                                  project=ran)
    keys = [{"customer_id": c} for c in CUSTOMERS]
    # the last orders are from January 2026, older than a day: expired; the other group has no ttl
    got = online.get_features_arrow(keys)
    assert got["total_revenue"].to_pylist() == [None] * 6
    assert got["category_count"].to_pylist() == [3, 2, 1, 1, 1, 1]
    # a day before 2026-01-20: CUST-100 (01-19) and CUST-101 (01-20) are fresh, the rest expired
    for now in (dt.datetime(2026, 1, 20, tzinfo=dt.UTC), dt.datetime(2026, 1, 20)):
        got = online.get_features_arrow(keys, now=now)
        assert got["total_revenue"].to_pylist() == [184.98, 499.49, None, None, None, None]
        assert got["category_count"].to_pylist() == [3, 2, 1, 1, 1, 1]
    df = online.get_features(keys, now=dt.datetime(2026, 1, 20, tzinfo=dt.UTC))
    assert df["total_revenue"].isna().tolist() == [False, False, True, True, True, True]


def test_ttl_with_aware_non_utc_now(seeknal, ran):
    _with_ttl(ran)
    assert seeknal("run", cwd=ran).code == 0
    online = OnlineFeaturesDuckDB(entity="customer", features=["customer_features.total_revenue"],
                                  project=ran)
    now = dt.datetime(2026, 1, 20, 8, tzinfo=ZoneInfo("Asia/Tokyo"))  # 2026-01-19 23:00 UTC
    got = online.get_features_arrow([{"customer_id": "CUST-100"}], now=now)
    assert got["total_revenue"].to_pylist() == [184.98]  # 01-19 00:00 UTC is within a day of 01-19 23:00 UTC


_READER = """
import sys
from seeknal_flow import OnlineFeaturesDuckDB
online = OnlineFeaturesDuckDB(entity="customer", features=["customer_features.total_revenue"], project=sys.argv[1])
key = [{"customer_id": "CUST-102"}]
print(online.get_features_arrow(key)["total_revenue"][0].as_py(), flush=True)
sys.stdin.readline()
print(online.get_features_arrow(key)["total_revenue"][0].as_py(), flush=True)
"""


def test_reader_sees_republished_values_without_restart(seeknal, ran):
    online = OnlineFeaturesDuckDB(entity="customer", features=["customer_features.total_revenue",
                                                                "customer_features.total_orders"], project=ran)
    key = [{"customer_id": "CUST-102"}]
    assert online.get_features_arrow(key).to_pylist()[0]["total_revenue"] == 75.25
    other = subprocess.Popen([sys.executable, "-c", _READER, str(ran)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "75.25", other.stderr.read()
        path = ran / "seeknal/feature_groups/customer_features.py"
        path.write_text(path.read_text().replace("SUM(revenue)                       AS total_revenue",
                                                 "SUM(revenue) * 10 AS total_revenue"))
        r = seeknal("run", cwd=ran)
        assert r.code == 0 and "Consolidated and published: customer" in r.out, r.text
        assert online.get_features_arrow(key).to_pylist() == [
            {"customer_id": "CUST-102", "total_revenue": 752.5, "total_orders": 1}]
        out, err = other.communicate("\n", timeout=60)
        assert out.strip() == "752.5", err
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()
    assert len(list((ran / "target/online/customer").glob("snapshot-*.arrow"))) == 1  # old versions cleaned up


def test_reader_of_a_pruned_group_gets_a_seeknal_error(seeknal, ran):
    online = OnlineFeaturesDuckDB(entity="customer", features=["product_preferences.category_count"], project=ran)
    assert online.get_features_arrow([{"customer_id": "CUST-100"}])["category_count"].to_pylist() == [3]
    (ran / "seeknal/feature_groups/product_preferences.yml").unlink()
    assert seeknal("consolidate", "--prune", cwd=ran).code == 0
    with pytest.raises(SeeknalError, match=r"product_preferences"):
        online.get_features_arrow([{"customer_id": "CUST-100"}])


# ------------------------------------------------------------------ ctx.features

_FEATS = '''\
"""ctx.features in its three forms."""

import datetime as dt

import pyarrow as pa

from seeknal_flow import transform


@transform(name="feats_latest")
def feats_latest(ctx):
    return ctx.features("customer", ["customer_features.total_revenue", "product_preferences.category_count"])


@transform(name="feats_keys")
def feats_keys(ctx):
    return ctx.features("customer", ["customer_features.total_revenue"],
                        keys=[{"customer_id": "CUST-105"}, {"customer_id": "CUST-999"}, {"customer_id": "CUST-100"}])


@transform(name="feats_as_of")
def feats_as_of(ctx):
    return ctx.features("customer", ["customer_features.total_revenue", "product_preferences.category_count"],
                        as_of="2026-01-15")


@transform(name="feats_spine")
def feats_spine(ctx):
    spine = pa.table({"customer_id": ["CUST-100", "CUST-100", "CUST-105", "CUST-999"],
                      "d": [dt.date(2026, 1, 18), dt.date(2026, 1, 19), dt.date(2026, 1, 12), dt.date(2026, 1, 20)]})
    return ctx.features("customer", ["customer_features.total_revenue"], spine=spine, date_col="d")
'''


def test_ctx_features_forms_and_discovery(seeknal, ran):
    (ran / "seeknal/transforms/feats.py").write_text(_FEATS)
    r = seeknal("plan", cwd=ran)
    assert r.code == 0, r.text
    plan = {line.split()[1]: line for line in r.out.splitlines() if line.strip().startswith(("RUN", "SKIP"))}
    # the only link to the groups is the literal feature list: discovery made them inputs
    assert plan["transform.feats_latest"].endswith(
        "<- feature_group.customer_features, feature_group.product_preferences")
    assert plan["transform.feats_spine"].endswith("<- feature_group.customer_features")
    r = seeknal("run", cwd=ran)
    assert r.code == 0, r.text

    def read(name):
        return pq.read_table(ran / f"target/intermediate/transform_{name}.parquet")

    latest = read("feats_latest").sort_by("customer_id")
    assert latest.column_names == ["customer_id", "total_revenue", "category_count"]
    assert latest.to_pylist() == [{"customer_id": c, "total_revenue": TABLE_E[c][1], "category_count": TABLE_F[c][0]}
                                  for c in CUSTOMERS]
    assert read("feats_keys").to_pylist() == [  # request order, unknown key -> NULL
        {"customer_id": "CUST-105", "total_revenue": 250.0},
        {"customer_id": "CUST-999", "total_revenue": None},
        {"customer_id": "CUST-100", "total_revenue": 184.98},
    ]
    as_of = read("feats_as_of").sort_by("customer_id")
    # known by 2026-01-15: customers whose last order was on or before it (both groups take that time from the data)
    assert as_of.to_pylist() == [
        {"customer_id": "CUST-102", "total_revenue": 75.25, "category_count": 1},
        {"customer_id": "CUST-103", "total_revenue": 45.99, "category_count": 1},
        {"customer_id": "CUST-105", "total_revenue": 250.0, "category_count": 1},
    ]
    spine = read("feats_spine")
    assert spine.column_names == ["customer_id", "d", "total_revenue"]
    assert spine["total_revenue"].to_pylist() == [None, 184.98, 250.0, None]  # PIT, spine order


def test_ctx_features_unknown_group_or_feature(seeknal, ran):
    path = ran / "seeknal/transforms/bad.py"
    body = ('from seeknal_flow import transform\n\n\n@transform(name="bad")\ndef bad(ctx):\n'
            '    return ctx.features("customer", ["{ref}"])\n')
    path.write_text(body.replace("{ref}", "loyalty.points"))
    r = seeknal("run", cwd=ran)
    assert r.code == 1
    assert "transform.bad refers to unknown node 'feature_group.loyalty'" in r.err
    path.write_text(body.replace("{ref}", "customer_features.lifetime_value"))
    r = seeknal("run", cwd=ran)
    assert r.code == 1
    assert "ctx.features: feature_group.customer_features has no feature(s) ['lifetime_value']" in r.err

# `seeknal serve` is tested against a real server process in test_serve.py.
