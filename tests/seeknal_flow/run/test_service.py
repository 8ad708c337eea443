"""The run service drives any Engine: order, skips after a failure, state, post-run steps, cleanup."""

from __future__ import annotations

import re

import pytest

from operators.errors import EngineError
from seeknal_flow.errors import NodeExecutionError
from seeknal_flow.load.workspace import Workspace
from seeknal_flow.plan.plan_project import plan_project
from seeknal_flow.plan.run_state import NodeStatus, RunState
from seeknal_flow.run.engine import NodeJob, NodeResult, Progress, node_error
from seeknal_flow.run.local import LocalEngine
from seeknal_flow.run.service import run_project


class Recorder:
    """A Reporter that keeps what it is told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def note(self, text: str) -> None:
        self.events.append(("note", text))

    def start(self, index: int, total: int, node_id: str) -> None:
        self.events.append(("start", node_id))

    def progress(self, node_id: str, rows: int) -> None:
        pass

    def partitions(self, node_id: str, done: int, total: int) -> None:
        pass

    def done(self, node_id: str, result: NodeResult) -> None:
        self.events.append(("done", node_id))

    def failed(self, node_id: str, error: NodeExecutionError) -> None:
        self.events.append(("failed", node_id))

    def skipped(self, node_id: str, reason: str) -> None:
        self.events.append(("skipped", node_id))


class CountingEngine:
    """A new engine is the protocol and nothing else: this one delegates to the local engine,
    counts the calls and can be told to fail one node."""

    name = "counting"

    def __init__(self, ws: Workspace, fail: str | None = None) -> None:
        self.local = LocalEngine(ws.project, ws.dag, ws.memory())
        self.fail = fail
        self.calls: list[str] = []

    def start(self) -> str | None:
        self.calls.append("start")
        self.local.start()
        return "counting engine ready"

    def compute(self, job: NodeJob, progress: Progress) -> NodeResult:
        self.calls.append(job.node_id)
        if job.node_id == self.fail:
            raise node_error(job, EngineError("told to fail"), "printed before failing\n")
        return self.local.compute(job, progress)

    def consolidate(self, entities, on_built) -> list[str]:
        self.calls.extend(f"consolidate {e}" for e in entities)
        return self.local.consolidate(entities, on_built)

    def close(self) -> None:
        self.calls.append("close")


def test_a_new_engine_runs_the_whole_project(example_project):
    ws = Workspace.open(example_project)
    engine, reporter = CountingEngine(ws), Recorder()
    summary = run_project(ws, plan_project(ws), lambda: engine, reporter)
    assert summary.engine == "counting" and not summary.errors
    # every node once, in DAG order; then each entity once, as a planned step; then close
    assert engine.calls == ["start", *ws.dag.order, "consolidate churn_scoring", "consolidate customer", "close"]
    assert reporter.events[0] == ("note", "counting engine ready")
    assert summary.consolidated == ["churn_scoring", "customer"]
    assert (ws.project.online_dir("customer") / "CURRENT").exists()  # published by the service
    state = RunState.load(ws.project.state_path)
    assert {n.status for n in state.nodes.values()} == {NodeStatus.OK}
    assert ws.project.manifest_path.exists() and not ws.project.tmp.exists()


def test_a_failed_node_skips_its_downstream_and_is_retried(example_project):
    ws = Workspace.open(example_project)
    failing = "feature_group.customer_daily_agg"
    downstream = ws.dag.descendants(failing)
    engine, reporter = CountingEngine(ws, fail=failing), Recorder()
    summary = run_project(ws, plan_project(ws), lambda: engine, reporter, continue_on_error=True)
    assert summary.failed == [failing]
    assert set(summary.skipped) == downstream and downstream
    assert not downstream & set(engine.calls)  # never handed to the engine
    error = summary.errors[0]
    assert re.fullmatch(rf"{re.escape(failing)} \(seeknal/feature_groups/\S+:\d+\) failed: told to fail", str(error))
    assert error.output == "printed before failing\n"
    assert engine.calls[-1] == "close" and not ws.project.tmp.exists()
    state = RunState.load(ws.project.state_path)
    assert state.nodes[failing].status == NodeStatus.FAILED
    plan = plan_project(ws)
    assert {n.node_id for n in plan.to_run} == {failing, *downstream}  # the next run retries them


def test_nothing_to_run_builds_no_engine(example_project):
    ws = Workspace.open(example_project)
    run_project(ws, plan_project(ws), lambda: CountingEngine(ws), Recorder())

    def refuse():
        raise AssertionError("an engine was built for a run with nothing to do")

    summary = run_project(ws, plan_project(ws), refuse, Recorder())
    assert summary.nothing_to_run and summary.up_to_date == len(ws.dag.nodes)


def test_an_engine_that_cannot_start_is_closed_and_leaves_no_tmp(example_project):
    ws = Workspace.open(example_project)

    class NoStart(CountingEngine):
        def start(self) -> str | None:
            ws.project.tmp.mkdir(parents=True, exist_ok=True)
            raise EngineError("cannot start")

    engine = NoStart(ws)
    with pytest.raises(EngineError, match="^cannot start$"):
        run_project(ws, plan_project(ws), lambda: engine, Recorder())
    assert engine.calls == ["close"] and not ws.project.tmp.exists()


def test_an_entity_built_before_a_failing_one_is_published(example_project, monkeypatch):
    """Entities are published one by one as they are built: `churn_scoring` (built first) is
    online even though `customer` then fails to consolidate."""
    from seeknal_flow.errors import StoreError
    from seeknal_flow.store import consolidation

    real = consolidation.build_entity

    def build(project, entity, *args, **kwargs):
        if entity == "customer":
            raise StoreError("consolidating entity 'customer' failed: disk full")
        return real(project, entity, *args, **kwargs)

    monkeypatch.setattr(consolidation, "build_entity", build)
    ws = Workspace.open(example_project)
    with pytest.raises(StoreError, match=re.escape("consolidating entity 'customer' failed: disk full")):
        run_project(ws, plan_project(ws), lambda: CountingEngine(ws), Recorder())
    assert (ws.project.online_dir("churn_scoring") / "CURRENT").exists()
    assert not (ws.project.online_dir("customer") / "CURRENT").exists()
    assert not ws.project.tmp.exists()


@pytest.mark.parametrize("where", ["node", "consolidation"])
def test_an_engines_own_error_after_ctrl_c_is_an_interrupt(example_project, where):
    # DuckDB answers Ctrl-C inside its call with RuntimeError("Query interrupted"): with the
    # interrupt flag set, that is the run being interrupted, not an internal error.
    from seeknal_flow.plan.run_state import RunState as State
    from seeknal_flow.run.interrupt import InterruptFlag
    from seeknal_flow.run.results import NodeOutcome, RunStatus

    ws = Workspace.open(example_project)
    flag = InterruptFlag()
    first = ws.dag.order[0]

    class InterruptedEngine(CountingEngine):
        def compute(self, job: NodeJob, progress: Progress) -> NodeResult:
            if where == "node" and job.node_id == first:
                flag.set()
                raise RuntimeError("Query interrupted")
            return super().compute(job, progress)

        def consolidate(self, entities, on_built) -> list[str]:
            flag.set()
            raise RuntimeError("Query interrupted")

    summary = run_project(ws, plan_project(ws), lambda: InterruptedEngine(ws), Recorder(), interrupted=flag)
    assert summary.interrupted and not summary.errors
    assert summary.results.status == RunStatus.INTERRUPTED and summary.results.error is None
    if where == "node":
        assert summary.cancelled[0] == first
        assert {n.status for n in summary.results.nodes} == {NodeOutcome.CANCELLED}
        assert first not in State.load(ws.project.state_path).nodes
    else:
        assert not summary.cancelled and not summary.consolidated
