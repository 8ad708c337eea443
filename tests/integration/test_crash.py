"""Crash consistency: `seeknal run` killed with SIGKILL at controlled and at random points.

A killed run may lose the work in flight, never the consistency of what it leaves: the
next `seeknal plan` shows the stale post-run steps (consolidation, publish) with their
reason, and the next `seeknal run` repairs them so that entity and online values equal
those of a clean run.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seeknal_flow.plan.planner import PlanReport
from seeknal_flow.store.online import OnlineFeaturesDuckDB

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1"}

SLOW = '''
import time
from pathlib import Path

from seeknal_flow import transform


@transform(name="after_groups", description="signals once the feature groups are done, then waits")
def after_groups(ctx):
    df = ctx.ref("feature_group.spend").to_pandas()
    root = Path(__file__).resolve().parents[2]
    (root / "groups_done").write_text("yes")
    while (root / "hold").exists():
        time.sleep(0.05)
    return df
'''


def make_project(root: Path, amounts: tuple[int, int, int] = (10, 20, 30), slow: bool = True) -> Path:
    """A small project: one CSV source, three groups over two entities, a transform after the groups."""
    (root / "data").mkdir(parents=True)
    (root / "seeknal/sources").mkdir(parents=True)
    (root / "seeknal/feature_groups").mkdir(parents=True)
    (root / "seeknal/transforms").mkdir(parents=True)
    (root / "seeknal_project.yml").write_text("name: crashy\n")
    write_orders(root, amounts)
    (root / "seeknal/sources/orders.yml").write_text(
        "kind: source\nname: orders\nsource: csv\ntable: data/orders.csv\n")
    (root / "seeknal/feature_groups/spend.yml").write_text(
        "kind: feature_group\nname: spend\nentity: {name: customer, join_keys: [customer_id]}\nsql: |\n"
        "  SELECT customer_id, SUM(amount) AS total, CAST(MAX(ts) AS TIMESTAMP) AS event_time\n"
        "  FROM ref('source.orders') GROUP BY customer_id\n")
    (root / "seeknal/feature_groups/visits.yml").write_text(
        "kind: feature_group\nname: visits\nentity: {name: customer, join_keys: [customer_id]}\nsql: |\n"
        "  SELECT customer_id, COUNT(*) AS orders, CAST(MAX(ts) AS TIMESTAMP) AS event_time\n"
        "  FROM ref('source.orders') GROUP BY customer_id\n")
    (root / "seeknal/feature_groups/regions.yml").write_text(
        "kind: feature_group\nname: regions\nentity: {name: region, join_keys: [region]}\nsql: |\n"
        "  SELECT region, SUM(amount) AS revenue, CAST(MAX(ts) AS TIMESTAMP) AS event_time\n"
        "  FROM ref('source.orders') GROUP BY region\n")
    if slow:
        (root / "seeknal/transforms/after_groups.py").write_text(SLOW)
    return root


def write_orders(root: Path, amounts: tuple[int, int, int]) -> None:
    a, b, c = amounts
    (root / "data/orders.csv").write_text(
        "customer_id,region,amount,ts\n"
        f"C1,north,{a},2026-01-01 10:00:00\nC1,north,{b},2026-01-02 10:00:00\nC2,south,{c},2026-01-03 10:00:00\n")


def cli(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "seeknal_flow.cli.main", *args], cwd=root, env=ENV,
                       capture_output=True, text=True, timeout=120)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def online_values(root: Path) -> dict:
    customer = OnlineFeaturesDuckDB("customer", project=root).get_features_arrow(
        [{"customer_id": "C1"}, {"customer_id": "C2"}])
    region = OnlineFeaturesDuckDB("region", project=root).get_features_arrow([{"region": "north"}, {"region": "south"}])
    return {"customer": customer.select(["customer_id", "total", "orders"]).to_pylist(),
            "region": region.select(["region", "revenue"]).to_pylist()}


def entity_values(root: Path, entity: str, key: str) -> list[dict]:
    return pq.read_table(root / f"target/feature_store/{entity}/features.parquet").sort_by(key).to_pylist()


def outputs(root: Path) -> dict:
    """Everything a run leaves for readers, as plain values (no file times)."""
    # Rows sorted: a GROUP BY may emit them in any order, run to run.
    inter = {p.name: sorted(pq.read_table(p).to_pylist(), key=repr)
             for p in sorted((root / "target/intermediate").glob("*.parquet"))}
    return {"intermediate": inter, "customer": entity_values(root, "customer", "customer_id"),
            "region": entity_values(root, "region", "region"), "online": online_values(root)}


def plan_steps(root: Path) -> dict:
    report = msgspec.json.decode(cli(root, "plan", "--format", "json").stdout.encode(), type=PlanReport)
    return {s.id: s for s in report.steps}, {n.id: n for n in report.nodes}


def test_kill_9_after_the_groups_leaves_steps_stale_and_the_next_run_repairs_them(tmp_path):
    root = make_project(tmp_path / "p")
    cli(root, "run")
    assert online_values(root)["customer"][0]["total"] == 30
    write_orders(root, (100, 200, 300))
    (root / "groups_done").unlink()
    (root / "hold").write_text("1")
    proc = subprocess.Popen([sys.executable, "-m", "seeknal_flow.cli.main", "run"], cwd=root, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (root / "groups_done").exists():
        assert proc.poll() is None, "the run ended before the transform after the groups started"
        assert time.monotonic() < deadline, "the transform after the groups never started"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # no handler, no clean-up: as a crash or the OOM killer
    proc.wait(timeout=30)
    # the groups finished (their state says so) but the entity and online store are the old ones
    assert online_values(root)["customer"][0]["total"] == 30
    steps, nodes = plan_steps(root)
    assert nodes["feature_group.spend"].action.value == "SKIP"
    assert nodes["transform.after_groups"].action.value == "RUN"
    assert steps["consolidate.customer"].action.value == "RUN"
    assert "group spend changed" in steps["consolidate.customer"].reasons
    assert steps["publish.customer"].action.value == "RUN"
    assert steps["consolidate.region"].action.value == "RUN"
    text = cli(root, "plan").stdout
    assert "consolidate.customer" in text and "group spend changed" in text
    (root / "hold").unlink()
    run = cli(root, "run")
    assert "Consolidated and published: customer, region" in run.stdout
    assert online_values(root)["customer"] == [{"customer_id": "C1", "total": 300, "orders": 2},
                                               {"customer_id": "C2", "total": 300, "orders": 1}]
    assert [r["spend"]["total"] for r in entity_values(root, "customer", "customer_id")] == [300, 300]
    # and now everything is up to date, steps included
    steps, _ = plan_steps(root)
    assert {s.action.value for s in steps.values()} == {"SKIP"}
    assert "Nothing to run" in cli(root, "run").stdout


def test_steps_left_running_by_a_killed_run_say_so_and_are_repaired_without_any_node(tmp_path):
    root = make_project(tmp_path / "p", slow=False)
    cli(root, "run")
    state_path = root / "target/run_state.json"
    state = msgspec.json.decode(state_path.read_bytes())
    state["steps"]["publish.region"]["status"] = "running"  # what a kill inside the publish leaves
    state_path.write_bytes(msgspec.json.encode(state))
    shutil.rmtree(root / "target/online/region")
    steps, nodes = plan_steps(root)
    assert {n.action.value for n in nodes.values()} == {"SKIP"}
    assert steps["publish.region"].action.value == "RUN"
    assert steps["publish.region"].reasons == ["interrupted last time", "not published"]
    assert steps["consolidate.region"].action.value == "SKIP"  # only what is stale
    assert steps["publish.customer"].action.value == "SKIP"
    run = cli(root, "run")
    assert "Consolidated and published: region" in run.stdout
    assert online_values(root)["region"] == [{"region": "north", "revenue": 30}, {"region": "south", "revenue": 30}]


def test_a_group_output_rewritten_behind_the_planners_back_reruns_it(tmp_path):
    root = make_project(tmp_path / "p", slow=False)
    cli(root, "run")
    out = root / "target/intermediate/feature_group_spend.parquet"
    if not out.exists():
        out = next((root / "target/intermediate").glob("*spend*.parquet"))
    table = pq.read_table(out)
    pq.write_table(table.slice(0, 1), out)  # e.g. another tool, or a copy from elsewhere
    _, nodes = plan_steps(root)
    assert nodes["feature_group.spend"].reasons == ["output changed outside seeknal"]
    cli(root, "run")
    assert pq.read_table(out).num_rows == 2


@pytest.fixture(scope="module")
def clean_outputs(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("clean") / "p", slow=False)
    write_orders(root, (5, 6, 7))
    began = time.monotonic()
    cli(root, "run")
    return outputs(root), time.monotonic() - began, root


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fraction=st.floats(min_value=0.0, max_value=1.0), seed=st.integers(0, 2**16))
def test_kill_9_at_a_random_point_then_rerun_equals_a_clean_run(clean_outputs, fraction, seed):
    expected, clean_seconds, _ = clean_outputs
    with tempfile.TemporaryDirectory() as tmp:
        root = make_project(Path(tmp) / "p", slow=False)
        cli(root, "run")  # a first run with other data, so the killed run has old outputs to keep
        write_orders(root, (5, 6, 7))
        proc = subprocess.Popen([sys.executable, "-m", "seeknal_flow.cli.main", "run"], cwd=root, env=ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(fraction * clean_seconds * random.Random(seed).uniform(0.8, 1.2))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        cli(root, "run")
        assert outputs(root) == expected
        assert "Nothing to run" in cli(root, "run").stdout


def test_an_entity_table_rewritten_behind_the_planners_back_is_rebuilt(tmp_path):
    root = make_project(tmp_path / "p", slow=False)
    cli(root, "run")
    table = root / "target/feature_store/customer/features.parquet"
    pq.write_table(pq.read_table(table).slice(0, 1), table)
    steps, _ = plan_steps(root)
    assert steps["consolidate.customer"].reasons == ["entity table changed outside seeknal"]
    assert steps["publish.customer"].action.value == "RUN"
    cli(root, "run")
    assert pq.read_table(table).num_rows == 2
    steps, _ = plan_steps(root)
    assert {s.action.value for s in steps.values()} == {"SKIP"}


def test_seeknal_consolidate_records_its_steps_so_the_next_run_does_not_redo_them(tmp_path):
    root = make_project(tmp_path / "p", slow=False)
    cli(root, "run")
    assert "Consolidated: customer, region" in cli(root, "consolidate", "--force").stdout
    steps, _ = plan_steps(root)
    assert {s.action.value for s in steps.values()} == {"SKIP"}
    assert "Nothing to run" in cli(root, "run").stdout
