"""Issue 14, item 2: one writer at a time, real `seeknal run` processes (and temp files of killed writers)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO

SLOW = '''
import time

from seeknal_flow import transform


@transform(name="slow")
def slow(ctx):
    time.sleep({seconds})
    return ctx.ref("source.churn_labels").to_arrow()
'''


def _start(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "seeknal_flow.cli.main", *args], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def _wait_for_holder(root: Path, proc: subprocess.Popen, timeout: float = 60) -> dict:
    holder = root / "target/.seeknal.lock.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if holder.exists():
            try:
                return json.loads(holder.read_text())
            except ValueError:
                pass
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the first run never took the lock")


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.fixture
def slow_project(example_project):
    (example_project / "seeknal/transforms/slow.py").write_text(SLOW.format(seconds=2))
    return example_project


def test_two_concurrent_full_runs_both_succeed_one_waits(slow_project):
    first = _start(slow_project, "run", "--full")
    holder = _wait_for_holder(slow_project, first)
    assert holder["pid"] == first.pid and holder["command"] == "seeknal run"
    second = _start(slow_project, "run", "--full")
    out1, err1 = first.communicate(timeout=300)
    out2, err2 = second.communicate(timeout=300)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert f"waiting for the project lock: held by seeknal run (pid {first.pid}, started " in err2
    assert "Done in" in out1 and "Done in" in out2
    for table in (slow_project / "target/intermediate").glob("*.parquet"):
        assert pq.read_table(table).num_rows > 0
    assert not list((slow_project / "target/tmp").iterdir())  # each run removed its own temp folder
    state = json.loads((slow_project / "target/run_state.json").read_text())
    assert all(n["status"] == "ok" for n in state["nodes"].values())


def test_no_wait_exits_1_at_once_naming_the_holder(slow_project):
    first = _start(slow_project, "run")
    _wait_for_holder(slow_project, first)
    began = time.monotonic()
    second = subprocess.run([sys.executable, "-m", "seeknal_flow.cli.main", "run", "--no-wait"], cwd=slow_project,
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert second.returncode == 1
    assert time.monotonic() - began < 30
    assert f"is held by seeknal run (pid {first.pid}, started " in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1, second.stderr
    first.communicate(timeout=300)
    assert first.returncode == 0


def test_concurrent_runs_of_different_nodes_keep_both_state_updates(slow_project, seeknal):
    assert seeknal("run", cwd=slow_project).code == 0
    (slow_project / "seeknal/transforms/slow.py").write_text(SLOW.format(seconds=1.5))  # code changed
    (slow_project / "seeknal/sources/churn_labels.yml").write_text(
        (slow_project / "seeknal/sources/churn_labels.yml").read_text() + "\n# touched\n")
    before = json.loads((slow_project / "target/run_state.json").read_text())["nodes"]
    a = _start(slow_project, "run", "--nodes", "transform.slow")
    _wait_for_holder(slow_project, a)
    b = _start(slow_project, "run", "--nodes", "feature_group.customer_features")
    for p in (a, b):
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    after = json.loads((slow_project / "target/run_state.json").read_text())["nodes"]
    assert after["transform.slow"]["code"] != before["transform.slow"]["code"]
    assert after["feature_group.customer_features"]["finished_at"] >= before["feature_group.customer_features"]["finished_at"]
    plan = {n["id"]: n["action"] for n in json.loads(seeknal("plan", "--format", "json", cwd=slow_project).out)["nodes"]}
    assert plan["transform.slow"] == "SKIP" and plan["feature_group.customer_features"] == "SKIP"


def test_a_killed_run_lock_and_temp_files_are_taken_over(slow_project, seeknal):
    assert seeknal("run", cwd=slow_project).code == 0
    (slow_project / "seeknal/transforms/slow.py").write_text(SLOW.format(seconds=30))
    first = _start(slow_project, "run")
    _wait_for_holder(slow_project, first)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    # what a killed writer leaves: a half-written sink, a state temp file, its temp/spill folder
    dead = _dead_pid()
    inter = slow_project / "target/intermediate"
    leftovers = [inter / f".transform_slow.parquet.{dead}.tmp", slow_project / f"target/.run_state.json.{dead}.tmp",
                 slow_project / f"target/tmp/run-{dead}/spill.bin",
                 slow_project / f"target/feature_store/customer/.features.parquet.{dead}.tmp"]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    alive = slow_project / f"target/intermediate/.x.parquet.{os.getppid()}.tmp"  # a live process's file stays
    alive.write_bytes(b"in flight")
    (slow_project / "seeknal/transforms/slow.py").write_text(SLOW.format(seconds=0))
    r = subprocess.run([sys.executable, "-m", "seeknal_flow.cli.main", "run"], cwd=slow_project, capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"took over the project lock left by seeknal run (pid {first.pid}" in r.stderr
    assert not any(p.exists() for p in leftovers)
    assert not (slow_project / f"target/tmp/run-{dead}").exists()
    assert alive.exists()


def test_clean_removes_temp_files_of_dead_processes(example_project, seeknal):
    assert seeknal("run", cwd=example_project).code == 0
    dead = _dead_pid()
    stale = example_project / f"target/intermediate/.source_transactions.parquet.{dead}.tmp"
    stale.write_bytes(b"partial")
    folder = example_project / f"target/tmp/run-{dead}"
    folder.mkdir(parents=True)
    r = seeknal("clean", "--dry-run", cwd=example_project)
    assert r.code == 0 and f"Would delete target/intermediate/.source_transactions.parquet.{dead}.tmp" in r.out
    assert stale.exists() and folder.exists()
    r = seeknal("clean", cwd=example_project)
    assert r.code == 0 and f"Deleted target/tmp/run-{dead}" in r.out
    assert not stale.exists() and not folder.exists()
    assert seeknal("clean", cwd=example_project).out.strip() == "Nothing to clean."


def test_online_readers_see_a_whole_version_while_runs_publish(example_project, seeknal):
    """A reader polling during runs that flip the data sees the old or the new values, never a mix."""
    from seeknal_flow import OnlineFeaturesDuckDB

    root = example_project
    assert seeknal("run", cwd=root).code == 0
    csv = root / "data/transactions.csv"
    original = csv.read_text()
    lines = original.splitlines()
    i = lines[0].split(",").index("revenue")
    doubled = [lines[0]] + [",".join(c if n != i else str(round(float(c) * 2, 2)) for n, c in enumerate(line.split(",")))
                            for line in lines[1:]]
    keys = [{"customer_id": f"CUST-{n}"} for n in range(100, 106)]
    online = OnlineFeaturesDuckDB(entity="customer", features=["customer_features.total_revenue"], project=root)
    base = online.get_features_arrow(keys).column("total_revenue").to_pylist()
    versions = {tuple(base), tuple(round(v * 2, 2) for v in base)}
    seen = set()
    for text in ("\n".join(doubled) + "\n", original, "\n".join(doubled) + "\n"):
        csv.write_text(text)
        proc = _start(root, "run")
        while proc.poll() is None:
            got = tuple(round(v, 2) for v in online.get_features_arrow(keys).column("total_revenue").to_pylist())
            assert got in versions, got
            seen.add(got)
            time.sleep(0.01)
        assert proc.returncode == 0, proc.communicate()
    got = tuple(round(v, 2) for v in online.get_features_arrow(keys).column("total_revenue").to_pylist())
    assert got == tuple(round(v * 2, 2) for v in base) and len(seen) == 2
