"""Spark engine vs local engine vs a DuckDB reference, on a real multi-process Spark cluster.

Opt-in marker ``spark`` (``python -m pytest -m spark``); skipped when pyspark or Java
is missing. One ``local-cluster[2,1,1024]`` session (two executor JVMs, so every
shuffle crosses processes) serves the whole module; the CLI runs join it.

Data: ~1e5 feature rows, 1e4 spine rows, 1k keys, written as two Parquet files
(ties across files), with exact timestamp ties, keys without features, spine
dates before a key's first feature, NULL keys, NULL times and NULL values.
Equality is exact (same NULLs) except floats that are sums, compared at 1e-9.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import time

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from operators.asof.join import asof_join
from operators.datasets import parquet_dataset
from operators.memory import MemoryConfig
from operators.soa.execute import execute_soa
from operators.soa.spec import SOAFeature, SOAQuery, SOARatio, SOASince
from operators.spark.available import java_executable
from operators.spark.pit import pit_join_spark
from operators.spark.session import read_parquet, start_session, write_parquet
from operators.spark.soa import soa_spark

pytestmark = pytest.mark.spark

MASTER = "local-cluster[2,1,1024]"
CONF = {
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.executor.memory": "1g",
}
SEED = 20261126
N_FEATURES, N_SPINE, N_KEYS = 100_000, 10_000, 1_000
APP = dt.date(2025, 4, 1)


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'seeknal-flow[spark]')")
    if java_executable() is None:
        pytest.skip("Java is not installed")
    previous = os.environ.get("SPARK_LOCAL_IP")
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"  # executors (child JVMs) bind to loopback too
    engine = start_session(MASTER, CONF, app_name="seeknal-flow-tests")
    status = engine.session.sparkContext._jsc.sc().getExecutorMemoryStatus
    deadline = time.monotonic() + 90
    while status().size() < 3 and time.monotonic() < deadline:  # executors register after start-up
        time.sleep(0.5)
    yield engine.session
    engine.stop()
    if previous is None:
        os.environ.pop("SPARK_LOCAL_IP", None)
    else:
        os.environ["SPARK_LOCAL_IP"] = previous


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """features/ (two files), spine.parquet."""
    root = tmp_path_factory.mktemp("spark-data")
    rng = np.random.default_rng(SEED)
    n = N_FEATURES
    keys = np.char.add("k", np.char.zfill(rng.integers(0, N_KEYS, n).astype(str), 4)).astype(object)
    keys[rng.random(n) < 0.002] = None
    # Noon or midnight of 90 days: many exact (key, time) ties, and spine dates equal to feature times.
    day = rng.integers(0, 90, n)
    times = np.datetime64("2025-01-01", "us") + day * np.timedelta64(1, "D") + \
        rng.integers(0, 2, n) * np.timedelta64(12, "h")
    times = pa.array(times, pa.timestamp("us"), mask=rng.random(n) < 0.002)
    x = rng.normal(100, 30, n).round(2)
    table = pa.table({
        "k": pa.array(keys, pa.string()),
        "event_time": times,
        "feature_date": pa.array(np.datetime64("2025-01-01") + day.astype("timedelta64[D]"), pa.date32(),
                                 mask=rng.random(n) < 0.002),
        "application_date": pa.array([APP] * n, pa.date32()),
        "x": pa.array(x, pa.float64(), mask=rng.random(n) < 0.05),
        "n": pa.array(rng.integers(0, 50, n), pa.int64(), mask=rng.random(n) < 0.05),
        "s": pa.array(rng.choice(np.array(["a", "b", "c"], dtype=object), n), pa.string(),
                      mask=rng.random(n) < 0.05),
    })
    (root / "features").mkdir()
    half = n // 2
    pq.write_table(table.slice(0, half), root / "features" / "part-0.parquet", row_group_size=20_000)
    pq.write_table(table.slice(half), root / "features" / "part-1.parquet", row_group_size=20_000)
    m = N_SPINE
    # Keys beyond N_KEYS have no features; dates from mid-December (before any feature) to April.
    spine_keys = np.char.add("k", np.char.zfill(rng.integers(0, int(N_KEYS * 1.1), m).astype(str), 4)).astype(object)
    spine_keys[rng.random(m) < 0.005] = None
    spine_days = np.datetime64("2024-12-15") + rng.integers(0, 120, m).astype("timedelta64[D]")
    spine = pa.table({
        "k": pa.array(spine_keys, pa.string()),
        "application_date": pa.array(spine_days, pa.date32(), mask=rng.random(m) < 0.005),
        "label": pa.array(rng.integers(0, 2, m), pa.int8()),
    })
    spine = pa.concat_tables([spine, spine.slice(0, 50)])  # duplicate spine rows stay duplicated
    pq.write_table(spine, root / "spine.parquet")
    return root


def test_cluster_runs_two_executor_jvms(spark):
    sc = spark.sparkContext
    assert sc.master == MASTER
    # Block managers: the driver's plus one per executor JVM (local-cluster starts them as processes).
    assert sc._jsc.sc().getExecutorMemoryStatus().size() == 3


# ------------------------------------------------------------------------------- PIT


def _duckdb_pit(data, max_days: int | None) -> pa.Table:
    """Hand-written reference: DuckDB ASOF LEFT JOIN; ties resolved to the last row read (file, row)."""
    feats = str(data / "features" / "*.parquet")
    age = f"AND s.application_date - f.event_time <= INTERVAL {max_days} DAY" if max_days else ""
    cols = ["event_time", "feature_date", "x", "n", "s"]
    picked = ", ".join(f"CASE WHEN f.k IS NOT NULL {age} THEN f.{c} END AS {c}" for c in cols)
    sql = f"""
        WITH f AS (
            SELECT * FROM read_parquet('{feats}', filename = true, file_row_number = true)
            WHERE k IS NOT NULL AND event_time IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY k, event_time ORDER BY filename DESC, file_row_number DESC) = 1
        ), sp AS (SELECT * FROM read_parquet('{data / "spine.parquet"}', file_row_number = true))
        SELECT s.k, s.application_date, s.label, {picked}
        FROM sp s ASOF LEFT JOIN f ON s.k = f.k AND s.application_date >= f.event_time
        ORDER BY s.file_row_number
    """
    return duckdb.connect().sql(sql).to_arrow_table()


@pytest.mark.parametrize("max_age", [None, "20d"])
def test_pit_spark_equals_local_and_duckdb(spark, data, tmp_path, max_age):
    spine_path, feats_path = data / "spine.parquet", data / "features"
    spine_df = read_parquet(spark, [spine_path], ordered=True)
    feats_df = read_parquet(spark, [feats_path], ordered=True)
    joined = pit_join_spark(spark, spine_df, pq.read_schema(spine_path), feats_df,
                            parquet_dataset(feats_path).schema, left_on="application_date",
                            right_on="event_time", by="k", max_age=max_age)
    out = write_parquet(joined, tmp_path / "pit.parquet")
    on_spark = parquet_dataset(out.path).to_table()
    local = asof_join(spine_path, feats_path, left_on="application_date", right_on="event_time", by="k",
                      max_age=max_age)
    reference = _duckdb_pit(data, 20 if max_age else None)
    assert on_spark.schema.equals(local.schema)
    assert on_spark.num_rows == local.num_rows == N_SPINE + 50
    assert on_spark.to_pylist() == local.to_pylist()  # spine order, duplicates, ties, NULLs: exact
    assert local.to_pylist() == reference.cast(local.schema).to_pylist()
    matched = pc.sum(pc.is_valid(on_spark["event_time"])).as_py()
    assert 0.3 * on_spark.num_rows < matched < on_spark.num_rows  # both matches and misses exercised


def test_pit_join_of_a_python_node_runs_on_spark(spark, data, tmp_path):
    # Inside a Python node under --engine spark: an in-memory pandas spine with ISO date text.
    import pandas as pd

    from seeknal_flow.frames.frame import FeatureFrame
    from seeknal_flow.run.spark.frames import SparkFeatureFrame, SparkPit

    feats = data / "features"
    meta = {"node_id": "feature_group.f", "entity": "k", "join_keys": ("k",), "event_time_col": "event_time"}
    spine = pd.DataFrame({"k": ["k0001", "k0002", "k9999", "k0001", None],
                          "when": ["2025-02-01", "2025-03-01T12:00:00", "2025-02-01", "2024-01-01", "2025-02-01"],
                          "y": [1, 2, 3, 4, 5]})
    pit = SparkPit(spark, tmp_path)
    got = SparkFeatureFrame(feats, pit=pit, **meta).pit_join(spine, "when", keep_cols=["y"], max_age="30d")
    want = FeatureFrame(feats, **meta).pit_join(spine, "when", keep_cols=["y"], max_age="30d").to_arrow()
    assert got.paths[0] in pit.outputs  # written by Spark; the Spark engine moves it into place
    # pandas 3 strings arrive as large_string; Spark's Parquet holds plain strings: the same values.
    plain = pa.schema([f.with_type(pa.string()) if pa.types.is_large_string(f.type) else f for f in want.schema])
    assert got.to_arrow().schema.equals(plain)
    assert got.to_arrow().to_pylist() == want.to_pylist()
    assert want["event_time"].null_count == 3  # unknown key, before any feature, NULL key


# ------------------------------------------------------------------------------- SOA

SOA = SOAQuery(
    id_col="k",
    feature_date_col="feature_date",
    application_date_col="application_date",
    features={
        "x": SOAFeature(basic=("sum", "mean", "max", "stddev", "count")),
        "n": SOAFeature(basic=("count_distinct", "median")),
        "recent": SOAFeature(source_feature="x", window=(1, 7), basic=("sum",)),
        "trend": SOAFeature(source_feature="x", ratio=SOARatio(numerator=(1, 7), denominator=(8, 14),
                                                                aggs=("sum", "count"))),
        "s": SOAFeature(since=SOASince(condition="s = 'a'", aggs=("count", "max"))),
    },
)
_SOA_REF = """
    {select},
      SUM(x) FILTER (WHERE d >= 0) AS x_SUM,
      AVG(x) FILTER (WHERE d >= 0) AS x_MEAN,
      MAX(x) FILTER (WHERE d >= 0) AS x_MAX,
      STDDEV_SAMP(x) FILTER (WHERE d >= 0) AS x_STDDEV,
      COUNT(x) FILTER (WHERE d >= 0) AS x_COUNT,
      COUNT(DISTINCT n) FILTER (WHERE d >= 0) AS n_COUNT_DISTINCT,
      MEDIAN(n) FILTER (WHERE d >= 0) AS n_MEDIAN,
      SUM(x) FILTER (WHERE d BETWEEN 1 AND 7) AS x_SUM_1_7,
      SUM(x) FILTER (WHERE d BETWEEN 1 AND 7)
        / NULLIF(SUM(x) FILTER (WHERE d BETWEEN 8 AND 14), 0) AS x_SUM1_7_SUM8_14,
      NULLIF(COUNT(x) FILTER (WHERE d BETWEEN 1 AND 7), 0)
        / NULLIF(COUNT(x) FILTER (WHERE d BETWEEN 8 AND 14), 0) AS x_COUNT1_7_COUNT8_14,
      COUNT(s) FILTER (WHERE s = 'a' AND d >= 0) AS SINCE_COUNT_s_GEO_D,
      MAX(s) FILTER (WHERE s = 'a' AND d >= 0) AS SINCE_MAX_s_GEO_D
"""


def _same(a: pa.Table, b: pa.Table) -> None:
    assert a.column_names == b.column_names
    assert a.num_rows == b.num_rows
    for name in a.column_names:
        for i, (u, v) in enumerate(zip(a[name].to_pylist(), b[name].to_pylist(), strict=True)):
            if isinstance(u, float) and isinstance(v, float):
                assert math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-9), (name, i, u, v)
            else:
                assert u == v, (name, i, u, v)


def test_soa_spark_equals_local_and_duckdb(spark, data, tmp_path):
    feats = data / "features"
    schema = parquet_dataset(feats).schema
    out = write_parquet(soa_spark(spark, SOA, read_parquet(spark, [feats]), schema), tmp_path / "soa.parquet")
    order = [("k", "ascending")]
    on_spark = parquet_dataset(out.path).to_table().sort_by(order)
    local = execute_soa(SOA, str(feats), memory=MemoryConfig(threads=2)).read_all().sort_by(order)
    sql = _SOA_REF.format(select="SELECT k") + (
        f" FROM (SELECT *, application_date - feature_date AS d FROM read_parquet('{feats}/*.parquet')) GROUP BY k")
    reference = duckdb.connect().sql(sql).to_arrow_table().sort_by(order)
    assert on_spark.schema.equals(local.schema)
    assert on_spark.num_rows == N_KEYS + 1  # every key, plus the NULL key's group
    _same(on_spark, local)
    _same(local, reference.cast(local.schema))


def test_temporal_soa_spark_equals_local_and_duckdb(spark, data, tmp_path):
    feats, spine = data / "features", data / "spine.parquet"
    schema, spine_schema = parquet_dataset(feats).schema, pq.read_schema(spine)
    query = SOAQuery(id_col="k", feature_date_col="feature_date", application_date_col="application_date",
                     features=SOA.features)
    df = soa_spark(spark, query, read_parquet(spark, [feats]), schema,
                   spine_df=read_parquet(spark, [spine], ordered=True), spine_schema=spine_schema)
    on_spark = parquet_dataset(write_parquet(df, tmp_path / "tsoa.parquet").path).to_table()
    local = execute_soa(query, str(feats), spine=str(spine), memory=MemoryConfig(threads=2)).read_all()
    sql = _SOA_REF.format(select="SELECT k, application_date") + f"""
        FROM (
          SELECT sp.file_row_number AS rn, sp.k, sp.application_date, f.x, f.n, f.s,
                 sp.application_date - f.feature_date AS d
          FROM read_parquet('{spine}', file_row_number = true) sp
          LEFT JOIN read_parquet('{feats}/*.parquet') f ON sp.k = f.k AND f.feature_date <= sp.application_date
        ) GROUP BY rn, k, application_date ORDER BY rn"""
    reference = duckdb.connect().sql(sql).to_arrow_table()
    assert on_spark.schema.equals(local.schema)
    assert on_spark.num_rows == N_SPINE + 50  # one row per spine row, in spine order
    _same(on_spark, local)
    _same(local, reference.cast(local.schema))


# ---------------------------------------------------------------------- consolidation


def test_consolidation_spark_equals_duckdb(spark, tmp_path):
    from seeknal_flow.run.spark.consolidation import consolidation_spark_sql
    from seeknal_flow.store.consolidation import GroupInput, consolidation_sql

    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    t1, t2 = dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2)
    # C1 has two rows at the same latest time in group a: the one written last wins.
    pq.write_table(pa.table({"id": ["C1", "C1", "C1", "C2"], "v": [1.0, 2.0, 3.0, None],
                             "et": [t1, t2, t2, t1]}), a)
    pq.write_table(pa.table({"id": ["C2", "C3"], "w": ["x", "y"], "day": [dt.date(2026, 1, 5), None]}), b)
    groups = [GroupInput("ga", a, "et"), GroupInput("gb", b, "day")]
    schemas = {"ga": ["id", "v", "et"], "gb": ["id", "w", "day"]}
    local = duckdb.connect().sql(consolidation_sql(("id",), groups, schemas)).to_arrow_table()
    for i, g in enumerate(groups):
        read_parquet(spark, [g.path], ordered=True).createOrReplaceTempView(f"g_view_{i}")
    plan = [(g.name, f"g_view_{i}", g.event_time_col, schemas[g.name]) for i, g in enumerate(groups)]
    out = write_parquet(spark.sql(consolidation_spark_sql(("id",), plan)), tmp_path / "entity.parquet")
    on_spark = parquet_dataset(out.path).to_table()
    assert on_spark.to_pylist() == local.to_pylist()
    assert on_spark.to_pylist()[0]["ga"] == {"v": 3.0, "et": t2}
    assert [f.type for f in on_spark.schema] == [f.type for f in local.schema]


# --------------------------------------------------------------------- the walk-through


def test_walkthrough_tables_a_to_d_with_engine_spark(spark, seeknal, example_project, tmp_path):
    from test_tutorial_chapter2 import TABLE_A, TABLE_B, TABLE_D, _check
    from test_tutorial_chapter3_pit import COLS, TABLE_C

    started = time.perf_counter()
    r = seeknal("run", "--engine", "spark", cwd=example_project)
    assert r.code == 0, r.text
    assert "Consolidated and published on Spark: churn_scoring, customer" in r.out
    assert time.perf_counter() - started < 120
    _check(seeknal, example_project, "second_order_aggregation_region_metrics", TABLE_A)
    _check(seeknal, example_project, "second_order_aggregation_customer_training_features", TABLE_B)
    _check(seeknal, example_project, "second_order_aggregation_customer_spend_at_label", TABLE_D)
    r = seeknal("repl", "--format", "json", "-e", "SELECT * FROM transform_pit_training_data", cwd=example_project)
    assert [tuple(row[c] for c in COLS) for row in json.loads(r.out)] == TABLE_C  # spine order
    # Outputs are Spark-written directories at the usual paths.
    out = example_project / "target" / "intermediate"
    assert (out / "second_order_aggregation_region_metrics.parquet").is_dir()

    # Every output equals the local engine's on a second copy (types and values; row order where it is
    # contract). product_preferences is stamped CURRENT_TIMESTAMP and CUST-100's MODE is a three-way tie.
    local_project = tmp_path / "local"
    shutil.copytree(example_project, local_project, ignore=shutil.ignore_patterns("target"))
    assert seeknal("run", "--engine", "local", cwd=local_project).code == 0
    for path in sorted((local_project / "target" / "intermediate").glob("*.parquet")):
        want, got = parquet_dataset(path).to_table(), parquet_dataset(out / path.name).to_table()
        assert [(f.name, _tz_free(f.type)) for f in got.schema] == [(f.name, _tz_free(f.type)) for f in want.schema]
        if "product_preferences" in path.name:
            want, got = want.drop_columns(["top_category", "event_time"]), got.drop_columns(["top_category", "event_time"])
        if "pit_training_data" not in path.name and "spend_at_label" not in path.name:
            keys = [(c, "ascending") for c in want.column_names]
            want, got = want.sort_by(keys), got.sort_by(keys)
        _same(got, want)

    # The entity store and the online store read the Spark-written entity table.
    r = seeknal("repl", "--format", "json", "-e", "SELECT customer_id, customer_features.total_revenue AS r, "
                "product_preferences.category_count AS c FROM entity_customer ORDER BY 1", cwd=example_project)
    rows = json.loads(r.out)
    assert [(x["customer_id"], x["r"], x["c"]) for x in rows][:2] == [("CUST-100", 184.98, 3), ("CUST-101", 499.49, 2)]
    from seeknal_flow import OnlineFeaturesDuckDB

    online = OnlineFeaturesDuckDB(entity="customer", features=["customer_features.total_revenue"],
                                  project=example_project)
    got = online.get_features(keys=[{"customer_id": "CUST-100"}, {"customer_id": "CUST-999"}])
    assert list(got["total_revenue"].fillna(-1)) == [184.98, -1]


def _tz_free(t: pa.DataType) -> pa.DataType:
    # DuckDB names UTC "Etc/UTC", Spark "UTC": the same instants.
    if pa.types.is_timestamp(t) and t.tz is not None:
        return pa.timestamp(t.unit, "UTC")
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_tz_free(f.type)) for f in t])
    return t


def test_sql_outside_the_common_subset_fails_naming_node_and_construct(spark, seeknal, example_project):
    path = example_project / "seeknal" / "feature_groups" / "customer_daily_agg.yml"
    path.write_text(path.read_text().replace("CAST(COUNT(*) AS BIGINT)", "strftime(MIN(order_date), '%Y')"))
    r = seeknal("run", "--engine", "spark", cwd=example_project)
    assert r.code == 1
    assert ("error: feature_group.customer_daily_agg (seeknal/feature_groups/customer_daily_agg.yml:2) failed: "
            "SQL is not in the DuckDB/Spark common subset: function `strftime` (not in Spark SQL)") in r.err, r.err
    path.write_text(path.read_text().replace("strftime(MIN(order_date), '%Y')", "2 ^ 3"))
    r = seeknal("run", "--engine", "spark", cwd=example_project)
    assert "the ^ operator (power in DuckDB, bitwise XOR in Spark: write POWER(a, b))" in r.err, r.err
    assert "Traceback" not in r.text
