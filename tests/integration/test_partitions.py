"""Partitioned sources and nodes: only changed partitions are recomputed and replaced."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

DAYS = [f"2026-01-0{d}" for d in range(1, 6)]

DAILY = """from seeknal_flow import transform


@transform(name="daily", partitioned=True)
def daily(ctx):
    import os
    tx = ctx.ref("source.tx")
    day = str(tx.to_arrow()["order_date"][0])
    if os.path.exists(os.path.join("data", "fail_on_" + day)):
        raise RuntimeError("refusing " + day)
    return ctx.duckdb.sql("SELECT order_date, customer_id, SUM(revenue) AS revenue FROM tx GROUP BY ALL")
"""


def _write_day(root: Path, day: str, revenue: float) -> None:
    folder = root / "data" / "tx" / f"order_date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"customer_id": ["a", "b", "a"], "revenue": [revenue, 2.0, 3.0]}), folder / "part-0.parquet")


def _new_project(seeknal, root: Path) -> Path:
    """A project with the partitioned source ``source.tx`` (one folder per day of DAYS)."""
    root.mkdir()
    assert seeknal("init", "--name", root.name, cwd=root).code == 0
    for i, day in enumerate(DAYS):
        _write_day(root, day, float(i + 1))
    (root / "seeknal/sources/tx.yml").write_text(
        "kind: source\nname: tx\nsource: parquet\ntable: data/tx/\npartition_by: [order_date]\n")
    return root


@pytest.fixture
def project(seeknal, tmp_path):
    root = _new_project(seeknal, tmp_path / "pt")
    (root / "seeknal/transforms/daily.py").write_text(DAILY)
    (root / "seeknal/transforms/total.yml").write_text(
        "kind: transform\nname: total\nsql: SELECT customer_id, SUM(revenue) AS revenue, COUNT(DISTINCT order_date) "
        "AS days FROM ref('transform.daily') GROUP BY ALL\n")
    r = seeknal("run", cwd=root)
    assert r.code == 0, r.text
    return root


def _outputs(root: Path) -> dict[str, str]:
    out = root / "target/intermediate/transform_daily.parquet"
    return {p.parent.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*/part-0.parquet"))}


def _total(seeknal, root) -> list[str]:
    return seeknal("repl", "--format", "csv", "-e", "SELECT * FROM transform_total ORDER BY 1", cwd=root).out.splitlines()[1:]


def test_add_modify_delete_touch_exactly_those_partitions(seeknal, project):
    before = _outputs(project)
    assert len(before) == 5
    _write_day(project, "2026-01-03", 100.0)           # modify
    _write_day(project, "2026-01-06", 7.0)             # add
    shutil.rmtree(project / "data/tx/order_date=2026-01-01")  # delete
    r = seeknal("plan", cwd=project)
    assert "RUN 2/5 partitions (changed: order_date=2026-01-03, order_date=2026-01-06; removed: order_date=2026-01-01)" in r.out
    assert "RUN   transform.total" in r.out and "(upstream changed)" in r.out
    daily_line = next(ln for ln in r.out.splitlines() if "transform.daily" in ln and "RUN" in ln)
    assert "(partitions changed)" in daily_line and "engine changed" not in r.out, r.out
    r = seeknal("run", cwd=project)
    assert r.code == 0, r.text
    assert "2 partition(s) written, 1 removed, 3 unchanged" in r.out
    after = _outputs(project)
    assert set(after) == {f"order_date={d}" for d in DAYS[1:]} | {"order_date=2026-01-06"}
    for day in ("2026-01-02", "2026-01-04", "2026-01-05"):
        assert after[f"order_date={day}"] == before[f"order_date={day}"]  # byte-identical
    assert after["order_date=2026-01-03"] != before["order_date=2026-01-03"]
    assert _total(seeknal, project) == ["a,133.0,5", "b,10.0,5"]
    assert "Nothing to run" in seeknal("run", cwd=project).out


def test_full_rebuilds_every_partition(seeknal, project):
    r = seeknal("run", "--full", cwd=project)
    assert r.code == 0 and "5 partition(s) written" in r.out


def test_touched_partition_with_identical_bytes_reruns_nothing(seeknal, project):
    f = project / "data/tx/order_date=2026-01-02/part-0.parquet"
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert "Nothing to run" in seeknal("run", cwd=project).out


def test_a_failure_mid_run_keeps_the_dataset_readable_and_resumes(seeknal, project):
    before = _outputs(project)
    _write_day(project, "2026-01-02", 50.0)
    _write_day(project, "2026-01-04", 60.0)
    (project / "data/fail_on_2026-01-04").write_text("x")
    r = seeknal("run", cwd=project)
    assert r.code == 1 and "refusing 2026-01-04" in r.err
    after = _outputs(project)
    assert after["order_date=2026-01-04"] == before["order_date=2026-01-04"]  # the old partition is still there
    assert after["order_date=2026-01-02"] != before["order_date=2026-01-02"]  # the finished one was kept
    rows = seeknal("repl", "--format", "csv", "-e", "SELECT COUNT(*) FROM transform_daily", cwd=project).out
    assert rows.splitlines()[1] == "10"  # readable, complete
    (project / "data/fail_on_2026-01-04").unlink()
    r = seeknal("plan", cwd=project)
    assert "RUN 1/5 partitions (changed: order_date=2026-01-04)" in r.out
    r = seeknal("run", cwd=project)
    assert r.code == 0 and "1 partition(s) written" in r.out


def test_code_change_recomputes_all_partitions(seeknal, project):
    path = project / "seeknal/transforms/daily.py"
    path.write_text(path.read_text().replace("SUM(revenue) AS revenue", "SUM(revenue) * 2 AS revenue"))
    r = seeknal("plan", cwd=project)
    assert "(code changed) RUN 5/5 partitions" in r.out
    assert seeknal("run", cwd=project).code == 0
    assert _total(seeknal, project) == ["a,60.0,5", "b,20.0,5"]


def test_partitioned_csv_source(seeknal, tmp_path):
    root = tmp_path / "csvp"
    root.mkdir()
    assert seeknal("init", "--name", "csvp", cwd=root).code == 0
    for d in range(1, 4):
        folder = root / "data/tx" / f"day=2026-02-0{d}"
        folder.mkdir(parents=True)
        (folder / "x.csv").write_text(f"customer_id,revenue\na,{d}\nb,2\n")
    (root / "seeknal/sources/tx.yml").write_text("kind: source\nname: tx\nsource: csv\ntable: data/tx/\npartition_by: [day]\n")
    r = seeknal("run", cwd=root)
    assert r.code == 0 and "3 partition(s) written" in r.out, r.text
    (root / "data/tx/day=2026-02-02/x.csv").write_text("customer_id,revenue\na,9\n")
    r = seeknal("run", cwd=root)
    assert r.code == 0 and "1 partition(s) written, 0 removed, 2 unchanged" in r.out
    out = seeknal("repl", "--format", "csv", "-e", "SELECT day, SUM(revenue) FROM source_tx GROUP BY 1 ORDER BY 1", cwd=root)
    assert out.out.splitlines()[1:] == ["2026-02-01,3", "2026-02-02,9", "2026-02-03,5"]


def test_partitioned_node_needs_a_partitioned_input(seeknal, project):
    (project / "seeknal/transforms/bad.yml").write_text(
        "kind: transform\nname: bad\npartitioned: true\nsql: SELECT * FROM ref('transform.total')\n")
    r = seeknal("plan", cwd=project)
    assert r.code == 1 and "transform.bad (seeknal/transforms/bad.yml:2) is partitioned but none of its inputs is" in r.err


def test_file_outside_a_partition_folder_is_an_error(seeknal, project):
    pq.write_table(pa.table({"customer_id": ["z"], "revenue": [1.0]}), project / "data/tx/stray.parquet")
    r = seeknal("plan", cwd=project)
    assert r.code == 1 and "file 'stray.parquet' is not inside a order_date=VALUE folder" in r.err


_IMPORTS = """import sys
from seeknal_flow.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    assert not e.code, e.code
print(sorted(m for m in ("pandas", "pyarrow", "pyarrow.dataset", "datafusion") if m in sys.modules))
"""


def test_incremental_runs_skip_heavy_imports(seeknal, tmp_path):
    """A run with nothing to do and `plan` import no engine; a one-partition SQL re-run stays
    clear of pandas (0.3 s to import, pulled in by pyarrow.dataset and Python-object conversions)."""
    import subprocess
    import sys

    root = _new_project(seeknal, tmp_path / "inc")
    (root / "seeknal/transforms/daily.yml").write_text(
        "kind: transform\nname: daily\npartitioned: true\n"
        "sql: SELECT customer_id, SUM(revenue) AS revenue FROM ref('source.tx') GROUP BY ALL\n")
    (root / "seeknal/transforms/total.yml").write_text(
        "kind: transform\nname: total\nsql: SELECT customer_id, SUM(revenue) AS revenue FROM ref('transform.daily') "
        "GROUP BY ALL\n")
    assert seeknal("run", cwd=root).code == 0

    def imported(*args: str) -> str:
        r = subprocess.run([sys.executable, "-c", _IMPORTS, *args], cwd=root, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip().splitlines()[-1]

    assert imported("run") == "[]"  # nothing to do: not even pyarrow
    assert imported("plan") == "[]"
    _write_day(root, "2026-01-03", 100.0)
    assert imported("run") == "['pyarrow']"
    assert _total(seeknal, root) == ["a,127.0", "b,10.0"]


def test_a_damaged_partition_file_is_named(seeknal, project):
    (project / "data/tx/order_date=2026-01-04/part-0.parquet").write_text("garbage")
    r = seeknal("run", cwd=project)
    assert r.code == 1
    line = next(ln for ln in r.text.splitlines() if "cannot read" in ln)
    assert "data/tx/order_date=2026-01-04/part-0.parquet" in line, line
    assert "Traceback" not in r.text


def test_source_row_count_follows_changed_partitions(seeknal, project):
    """Row counts per file are kept in the state: a re-run reads only changed footers, and stays exact."""
    import json

    def source_rows(out: str) -> str:
        return out.split("source.tx", 1)[1].split("ok: ", 1)[1].split(" rows", 1)[0]

    state = json.loads((project / "target/run_state.json").read_text())
    assert {info["rows"] for info in state["nodes"]["source.tx"]["files"].values()} == {3}
    folder = project / "data/tx/order_date=2026-01-02"
    pq.write_table(pa.table({"customer_id": ["a", "b", "a", "c"], "revenue": [1.0, 2.0, 3.0, 4.0]}),
                   folder / "part-0.parquet")
    r = seeknal("run", cwd=project)
    assert r.code == 0 and source_rows(r.out) == "16", r.out
    shutil.rmtree(project / "data/tx/order_date=2026-01-05")
    r = seeknal("run", cwd=project)
    assert r.code == 0 and source_rows(r.out) == "13", r.out


def test_statements_beyond_a_select_do_not_leak_between_partitions(seeknal, tmp_path):
    """A partition's SQL that creates objects or changes settings runs on a database of its own."""
    root = _new_project(seeknal, tmp_path / "ddl")
    (root / "seeknal/transforms/daily.yml").write_text(
        "kind: transform\nname: daily\npartitioned: true\nsql: |\n"
        "  CREATE TABLE IF NOT EXISTS first_seen AS SELECT * FROM ref('source.tx');\n"
        "  CREATE SEQUENCE IF NOT EXISTS ids;\n"
        "  SELECT customer_id, nextval('ids') AS id, (SELECT MIN(revenue) FROM first_seen) AS seen\n"
        "  FROM ref('source.tx') ORDER BY customer_id, revenue\n")
    r = seeknal("run", cwd=root)
    assert r.code == 0, r.text
    rows = seeknal("repl", "--format", "csv", "-e",
                   "SELECT order_date, id, seen FROM transform_daily ORDER BY order_date, id", cwd=root).out.splitlines()[1:]
    assert rows == [f"{day},{i},{seen}" for day, seen in zip(DAYS, ("1.0", "2.0", "2.0", "2.0", "2.0"), strict=False)
                    for i in (1, 2, 3)], rows


def test_a_multi_statement_sql_node_runs_its_statements_once(seeknal, tmp_path):
    """The schema probe ran them already: the query itself starts on a fresh connection."""
    root = tmp_path / "multi"
    root.mkdir()
    assert seeknal("init", "--name", "multi", cwd=root).code == 0
    (root / "seeknal/transforms/t.yml").write_text(
        "kind: transform\nname: t\nsql: |\n  CREATE TABLE x AS SELECT 1 AS a;\n  CREATE SEQUENCE s;\n"
        "  SELECT a, nextval('s') AS id FROM x\n")
    r = seeknal("run", cwd=root)
    assert r.code == 0, r.text
    assert seeknal("repl", "--format", "csv", "-e", "SELECT * FROM transform_t", cwd=root).out.splitlines()[1:] == ["1,1"]


SOA_DAILY = """kind: transform
name: daily
partitioned: true
sql: |
  SELECT customer_id, order_date, DATE '2026-02-01' AS application_date,
         COUNT(*) AS orders, SUM(revenue) AS revenue
  FROM ref('source.tx') GROUP BY ALL
"""

SOA_SPEND = """kind: second_order_aggregation
name: spend
source: transform.daily
id_col: customer_id
feature_date_col: order_date
application_date_col: application_date
features:
  revenue:
    basic: [sum, mean, min, max, count]
  orders:
    basic: [sum]
  recent:
    source_feature: revenue
    window: [0, 27]
    basic: [sum]
  trend:
    source_feature: revenue
    ratio:
      numerator: [0, 27]
      denominator: [28, 40]
"""


def _soa_project(seeknal, root: Path) -> Path:
    root = _new_project(seeknal, root)
    for day in DAYS:  # the date as a column of the files, for the daily transform
        f = root / "data" / "tx" / f"order_date={day}" / "part-0.parquet"
        t = pq.read_table(f, partitioning=None)
        pq.write_table(t.append_column("order_date", pa.array([day] * t.num_rows).cast(pa.date32())), f)
    (root / "seeknal/transforms/daily.yml").write_text(SOA_DAILY)
    (root / "seeknal/second_order_aggregations").mkdir(exist_ok=True)
    (root / "seeknal/second_order_aggregations/spend.yml").write_text(SOA_SPEND)
    return root


def _write_soa_day(root: Path, day: str, revenue: float, customers=("a", "b", "c")) -> None:
    folder = root / "data" / "tx" / f"order_date={day}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    n = len(customers)
    pq.write_table(pa.table({"customer_id": list(customers), "revenue": [revenue + i for i in range(n)],
                             "order_date": pa.array([day] * n).cast(pa.date32())}), folder / "part-0.parquet")


def _soa_output(root: Path) -> list[dict]:
    return pq.read_table(root / "target/intermediate/second_order_aggregation_spend.parquet").to_pylist()


def test_soa_over_partitions_merges_partial_aggregates_like_a_full_recompute(seeknal, tmp_path):
    root = _soa_project(seeknal, tmp_path / "soa")
    r = seeknal("run", cwd=root)
    assert r.code == 0, r.text
    assert "5 input partitions aggregated in full (no earlier state)" in r.out
    assert (root / "target/state/soa/second_order_aggregation_spend/manifest.json").is_file()
    _write_soa_day(root, "2026-01-09", 5.0, ("a", "d"))  # a new day
    r = seeknal("plan", cwd=root)
    assert "merges the partial aggregates of new input partitions into its totals" in r.out, r.out
    r = seeknal("run", cwd=root)
    assert r.code == 0 and "1 new of 6 input partitions merged into the totals" in r.out, r.text
    _write_soa_day(root, "2026-01-03", 100.0, ("b",))  # changed: a leaves the day
    shutil.rmtree(root / "data/tx/order_date=2026-01-04")  # removed
    r = seeknal("run", cwd=root)
    assert r.code == 0 and "5 input partitions aggregated in full (1 changed, 1 removed" in r.out, r.text
    incremental = _soa_output(root)
    r = seeknal("run", "--full", cwd=root)
    assert r.code == 0 and "5 input partitions aggregated in full (no earlier state)" in r.out, r.text
    full = _soa_output(root)
    assert [row["customer_id"] for row in incremental] == ["a", "b", "d"]  # the run's defined order
    assert len(incremental) == len(full)
    for got, want in zip(incremental, full, strict=True):
        assert got.keys() == want.keys()
        for col, v in want.items():
            assert got[col] == pytest.approx(v, rel=1e-12), (got["customer_id"], col)


def test_soa_with_an_aggregate_that_does_not_merge_says_so_and_recomputes(seeknal, tmp_path):
    root = _soa_project(seeknal, tmp_path / "soa2")
    path = root / "seeknal/second_order_aggregations/spend.yml"
    path.write_text(path.read_text().replace("basic: [sum, mean, min, max, count]", "basic: [sum, median]"))
    r = seeknal("plan", cwd=root)
    assert "full recompute: median is not mergeable" in r.out, r.out
    r = seeknal("run", cwd=root)
    assert r.code == 0, r.text
    assert not (root / "target/state/soa").exists()


def test_removing_an_incremental_soa_removes_its_state(seeknal, tmp_path):
    root = _soa_project(seeknal, tmp_path / "soa3")
    assert seeknal("run", cwd=root).code == 0
    state = root / "target/state/soa/second_order_aggregation_spend"
    assert (state / "manifest.json").is_file()
    (root / "seeknal/second_order_aggregations/spend.yml").unlink()
    r = seeknal("run", cwd=root)
    assert r.code == 0, r.text
    assert not state.exists()


def test_soa_planned_for_spark_says_it_recomputes(seeknal, tmp_path):
    # The Spark engine keeps no partial aggregates: the plan must not promise a merge there.
    root = _soa_project(seeknal, tmp_path / "soa3")
    config = root / "seeknal_project.yml"
    config.write_text(config.read_text() + "engine: spark\n")
    r = seeknal("plan", cwd=root)
    assert "full recompute: the Spark engine keeps no partial aggregates" in r.out, r.out
    assert "merges the partial aggregates" not in r.out
