"""Machine-readable results: --format json, run_results.json and its history, Ctrl-C, --quiet/-v."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from seeknal_flow.cli.main import cli
from seeknal_flow.plan.planner import PlanReport
from seeknal_flow.run.results import HISTORY_SIZE, NodeOutcome, RunHistory, RunResults, RunStatus

SLOW_NODE = '''
import time
from pathlib import Path

from seeknal_flow import transform


@transform(name="slow_step", description="waits while a file 'slow' exists in the project")
def slow_step(ctx):
    df = ctx.ref("feature_group.customer_features").to_pandas()
    root = Path(__file__).resolve().parents[2]
    (root / "started").write_text("yes")
    while (root / "slow").exists():
        time.sleep(0.05)
    return df
'''


def _edit_customer_features(root: Path) -> None:
    path = root / "seeknal/feature_groups/customer_features.py"
    path.write_text(path.read_text().replace("COUNT(*)     ", "COUNT(1)     "))


def _json(text: str, shape):
    return msgspec.json.decode(text.encode(), type=shape)


def test_run_json_is_one_document_matching_its_struct(seeknal, example_project):
    r = seeknal("run", "--format", "json", cwd=example_project)
    assert r.code == 0, r.text
    results = _json(r.out, RunResults)  # stdout holds the document and nothing else
    assert results.status == RunStatus.OK and results.project == "ml_path"
    assert results.command[:2] == ["seeknal", "run"] or results.command  # the command line is recorded
    ran = {n.id: n for n in results.nodes}
    assert len(ran) == 11 and all(n.status == NodeOutcome.RAN for n in results.nodes)
    fg = ran["feature_group.customer_features"]
    assert fg.rows_out == 6 and fg.kind == "feature_group" and fg.duration_s >= 0
    assert fg.output == "target/intermediate/feature_group_customer_features.parquet"
    assert results.consolidated == ["churn_scoring", "customer"]
    assert "[1/11] source.churn_labels" in r.err  # progress went to stderr
    # the same document is on disk, and in the history
    on_disk = msgspec.json.decode((example_project / "target/run_results.json").read_bytes(), type=RunResults)
    assert on_disk == results
    assert (example_project / "target/runs" / f"{results.run_id}.json").is_file()


def test_second_run_records_skips_with_reasons_and_runs_lists_history(seeknal, example_project):
    assert seeknal("run", cwd=example_project).code == 0
    _edit_customer_features(example_project)
    r = seeknal("run", "--format", "json", cwd=example_project)
    results = _json(r.out, RunResults)
    by_id = {n.id: n for n in results.nodes}
    assert by_id["source.transactions"].status == NodeOutcome.SKIPPED
    assert by_id["source.transactions"].reason == "unchanged"
    assert by_id["feature_group.customer_features"].status == NodeOutcome.RAN
    assert by_id["feature_group.customer_features"].reason == "code changed"
    h = seeknal("runs", "--format", "json", cwd=example_project)
    history = _json(h.out, RunHistory)
    assert [run.run_id for run in history.runs][0] == results.run_id and len(history.runs) == 2
    text = seeknal("runs", "--last", "1", cwd=example_project)
    assert text.code == 0 and results.run_id in text.out and len(text.out.strip().splitlines()) == 1


def test_failed_run_is_recorded_with_the_error(seeknal, example_project):
    bad = example_project / "seeknal/transforms/broken.py"
    bad.write_text("from seeknal_flow import transform\n\n\n@transform(name='broken')\ndef broken(ctx):\n"
                   "    raise ValueError('no good')\n")
    r = seeknal("run", "--format", "json", cwd=example_project)
    assert r.code == 1
    results = _json(r.out, RunResults)
    assert results.status == RunStatus.FAILED
    broken = next(n for n in results.nodes if n.id == "transform.broken")
    assert broken.status == NodeOutcome.FAILED and "no good" in broken.error
    assert "error: transform.broken" in r.err


def test_history_keeps_the_last_hundred(example_project):
    from seeknal_flow.load.project import Project
    from seeknal_flow.run.results import RunResults, record_run, run_history

    project = Project(example_project)
    for i in range(HISTORY_SIZE + 3):
        record_run(project, RunResults(run_id=f"20260101T000000.{i:03d}Z-0000", project="p", command=[],
                                       started_at="x"))
    kept = run_history(project)
    assert len(kept) == HISTORY_SIZE and kept[0].run_id.startswith("20260101T000000.102Z")


def test_plan_json_matches_its_struct(seeknal, example_project):
    r = seeknal("plan", "--format", "json", cwd=example_project)
    report = _json(r.out, PlanReport)
    assert report.to_run == 11 and report.to_skip == 0
    assert report.nodes[0].reasons == ["new"] and report.nodes[0].action.value == "RUN"


def test_quiet_prints_nothing_on_success_and_verbose_adds_reasons(seeknal, example_project):
    r = seeknal("run", "--quiet", cwd=example_project)
    assert r.code == 0 and r.out == "" and r.err == ""
    _edit_customer_features(example_project)
    v = seeknal("run", "-v", cwd=example_project)
    assert "feature_group.customer_features  ok: 6 rows in " in v.out and "(code changed)" in v.out


def test_ctrl_c_stops_keeps_finished_work_and_the_next_run_resumes(example_project):
    (example_project / "seeknal/transforms/slow_step.py").write_text(SLOW_NODE)
    (example_project / "slow").write_text("1")
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "seeknal_flow.cli.main", "run"], cwd=example_project,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not (example_project / "started").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the slow node never started"
        time.sleep(0.05)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    stopped_in = time.monotonic() - sent
    assert proc.returncode == 130, err
    assert stopped_in < 3, f"took {stopped_in:.1f}s to stop"
    assert "interrupted:" in err and "Traceback" not in err
    results = msgspec.json.decode((example_project / "target/run_results.json").read_bytes(), type=RunResults)
    assert results.status == RunStatus.INTERRUPTED
    by_id = {n.id: n for n in results.nodes}
    assert by_id["transform.slow_step"].status == NodeOutcome.CANCELLED
    finished = [n.id for n in results.nodes if n.status == NodeOutcome.RAN]
    assert "feature_group.customer_features" in finished
    for node_id in finished:  # every finished node's output is in place
        assert (example_project / by_id[node_id].output).is_file()
    # the next run does only what did not finish
    (example_project / "slow").unlink()
    plan = subprocess.run([sys.executable, "-m", "seeknal_flow.cli.main", "plan", "--format", "json"],
                          cwd=example_project, capture_output=True, text=True, check=True)
    report = msgspec.json.decode(plan.stdout.encode(), type=PlanReport)
    again = {n.id for n in report.nodes if n.action.value == "RUN"}
    assert "transform.slow_step" in again and not again & set(finished)
    # groups ran, entities not yet built: the plan shows the consolidation steps stale, saying why
    steps = {s.id: s for s in report.steps}
    assert steps["consolidate.customer"].action.value == "RUN"
    assert steps["consolidate.customer"].reasons == ["new"]  # never consolidated (see tests/integration/test_crash.py)
    assert steps["publish.customer"].action.value == "RUN"
    rerun = subprocess.run([sys.executable, "-m", "seeknal_flow.cli.main", "run"], cwd=example_project,
                           capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    # the resumed run also rebuilds and publishes what the interrupted one never consolidated
    assert "Consolidated and published: churn_scoring, customer" in rerun.stdout
    assert not (example_project / "target/consolidation_pending").exists()  # the old stopgap marker is gone
    assert (example_project / "target/feature_store/customer/features.parquet").is_file()


def test_ctrl_c_stops_a_long_sql_node_and_keeps_its_previous_output(example_project):
    # Ctrl-C while DuckDB computes a SQL node's rows: the run stops at once and the node's
    # previous output stays.
    node = example_project / "seeknal/transforms/big.yml"
    sql = "kind: transform\nname: big\nsql: |\n  SELECT i, md5(CAST(i AS VARCHAR)) AS h FROM range({n}) t(i)\n"
    node.write_text(sql.format(n=10))
    cli = [sys.executable, "-m", "seeknal_flow.cli.main", "run", "--nodes", "transform.big"]
    subprocess.run(cli, cwd=example_project, capture_output=True, text=True, check=True)
    out_file = example_project / "target/intermediate/transform_big.parquet"
    before = out_file.read_bytes()
    node.write_text(sql.format(n=2_000_000_000))  # minutes of work
    proc = subprocess.Popen(cli, cwd=example_project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NO_COLOR": "1"})
    try:
        deadline = time.monotonic() + 60
        while not list(out_file.parent.glob(".transform_big.parquet.*.tmp")):  # the sink is open
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the node never started"
            time.sleep(0.05)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("Ctrl-C did not stop the node within 10 s")
        stopped_in = time.monotonic() - sent
    finally:
        if proc.poll() is None:  # never leave minutes of DuckDB work running after a failure
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert stopped_in < 3, f"took {stopped_in:.1f}s to stop"
    assert "interrupted:" in err and "Traceback" not in err and "internal error" not in err
    assert out_file.read_bytes() == before
    assert not list(out_file.parent.glob(".transform_big.parquet.*"))


def test_every_json_command_prints_one_parseable_document(seeknal, example_project):
    assert seeknal("run", "--quiet", cwd=example_project).code == 0
    for args in (["entity", "list"], ["entity", "show", "customer"], ["lineage", "feature_group.customer_features"],
                 ["validate-features", "customer_features"], ["plan"], ["runs"]):
        r = seeknal(*args, "--format", "json", cwd=example_project)
        assert r.code == 0, (args, r.text)
        json.loads(r.out)


def _commands_with_format():
    found = []

    def walk(group, prefix):
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                walk(cmd, prefix + [name])
            elif any(p.name == "output_format" for p in cmd.params):
                found.append(" ".join(prefix + [name]))

    walk(cli, [])
    return found


def test_the_issue_commands_all_take_format_json():
    have = set(_commands_with_format())
    assert {"plan", "run", "dry-run", "entity list", "entity show", "lineage", "validate-features",
            "runs"} <= have


@pytest.mark.parametrize("value", ["1", "yes"])
def test_no_color_is_respected(value, monkeypatch):
    from seeknal_flow.cli.output import use_color

    class Tty:
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_color(Tty())
    monkeypatch.setenv("NO_COLOR", value)
    assert not use_color(Tty())


def test_results_paths_are_relative_to_the_project(seeknal, example_project):
    r = seeknal("run", "--format", "json", cwd=example_project)
    for n in _json(r.out, RunResults).nodes:
        assert n.output is None or not Path(n.output).is_absolute()


def test_a_crash_is_recorded_as_failed_and_json_still_gets_its_document(seeknal, example_project, monkeypatch):
    from seeknal_flow.run.local import LocalEngine

    def crash(self, job, progress):  # a bug (an environment failure is a node failure: test_environment_errors)
        raise RuntimeError("engine bug")

    monkeypatch.setattr(LocalEngine, "compute", crash)
    r = seeknal("run", "--format", "json", cwd=example_project)
    assert r.code == 2 and "internal error: RuntimeError" in r.err
    results = _json(r.out, RunResults)
    assert results.status == RunStatus.FAILED and "engine bug" in results.error


def test_unicode_digit_threads_is_a_user_error(seeknal, example_project, monkeypatch):
    monkeypatch.setenv("SEEKNAL_THREADS", "²")
    r = seeknal("plan", cwd=example_project)
    assert r.code == 1 and "SEEKNAL_THREADS" in r.err


def test_init_leaves_an_odd_vscode_settings_alone(seeknal, tmp_path):
    (tmp_path / "p/.vscode").mkdir(parents=True)
    (tmp_path / "p/.vscode/settings.json").write_text("[]")
    r = seeknal("init", "--name", "p", "--path", str(tmp_path / "p"), cwd=tmp_path)
    assert r.code == 0, r.text
    assert (tmp_path / "p/.vscode/settings.json").read_text() == "[]"


def test_a_truncated_history_file_does_not_hide_the_others(seeknal, example_project):
    assert seeknal("run", "--quiet", cwd=example_project).code == 0
    (example_project / "target/runs/29990101T000000.000Z-dead.json").write_text('{"version": 1, "run')
    history = _json(seeknal("runs", "--format", "json", cwd=example_project).out, RunHistory)
    assert len(history.runs) == 1
