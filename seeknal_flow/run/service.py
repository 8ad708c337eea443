"""The run service: the one place that turns a plan into work, for every engine.

:func:`run_project` walks the plan in DAG order, skips what is up to date (and
what depends on a failure), asks the engine to compute each node, records run
state after every node, writes the manifest, then runs the post-run steps
(``run/post_run.py``): consolidation of the stale entities (by the engine) and
online publishing, each a planned step recorded in run state as it finishes. A node that fails
keeps its previous output (engines write atomically) and is marked failed, so
the next run retries it; state is saved after every node, so an interrupted run
loses at most the node in flight.

Example (what ``seeknal run`` does)::

    ws = Workspace.open("examples/ml-path")
    plan = plan_project(ws, full=True)
    summary = run_project(ws, plan, choose_engine(ws, ws.memory()), reporter)
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import msgspec

from seeknal_flow.errors import NodeExecutionError, SeeknalError, os_error_text
from seeknal_flow.load.workspace import Workspace
from seeknal_flow.plan.manifest import write_manifest
from seeknal_flow.plan.outputs import output_signature
from seeknal_flow.plan.planner import Action, Plan, seal
from seeknal_flow.plan.run_state import NodeState, NodeStatus, RunState
from seeknal_flow.run.engine import Engine, NodeJob, NodeResult
from seeknal_flow.run.interrupt import InterruptFlag
from seeknal_flow.run.post_run import run_post_steps
from seeknal_flow.run.removal import delete_paths, remove_nodes, stale_temp_files
from seeknal_flow.run.results import (
    NodeOutcome,
    NodeRunResult,
    RunResults,
    RunStatus,
    new_run_id,
    record_run,
    utc_now,
)

# A partitioned node saves state at most this often: a failure loses at most this
# much finished work, and a 365-partition run does not rewrite the state 365 times.
_PARTITION_SAVE_SECONDS = 1.0


class Reporter(Protocol):
    """What the service tells its caller (the CLI prints it; tests may record it)."""

    def note(self, text: str) -> None: ...
    def start(self, index: int, total: int, node_id: str) -> None: ...
    def progress(self, node_id: str, rows: int) -> None: ...
    def partitions(self, node_id: str, done: int, total: int) -> None: ...
    def done(self, node_id: str, result: NodeResult) -> None: ...
    def failed(self, node_id: str, error: NodeExecutionError) -> None: ...
    def skipped(self, node_id: str, reason: str) -> None: ...


@dataclass
class RunSummary:
    """What a run did, node by node, and what it consolidated."""

    engine: str = ""
    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    up_to_date: int = 0
    rows: int = 0
    seconds: float = 0.0  # the whole run's wall time: start-up, nodes, consolidation and publish
    node_seconds: float = 0.0  # the nodes' wall time alone
    errors: list[NodeExecutionError] = field(default_factory=list)
    consolidated: list[str] = field(default_factory=list)
    consolidation_notes: dict[str, str] = field(default_factory=dict)  # entity -> "1 of 3 groups recomputed"
    consolidation_seconds: float = 0.0
    interrupted: bool = False
    results: RunResults | None = None  # what was written to target/run_results.json

    @property
    def nothing_to_run(self) -> bool:
        return not (self.succeeded or self.failed or self.skipped or self.cancelled or self.consolidated)


def run_project(ws: Workspace, plan: Plan, open_engine: Callable[[], Engine], reporter: Reporter, *,
                continue_on_error: bool = False, command: Sequence[str] = (),
                started: float | None = None, interrupted: InterruptFlag | None = None) -> RunSummary:
    """Execute every RUN node of ``plan`` on the engine, then consolidate and publish.

    ``open_engine`` builds the engine (see :func:`seeknal_flow.run.engines.choose_engine`);
    it is called only when there is work. Returns the summary; node failures are in
    ``summary.errors`` (the caller raises them as it sees fit). A ``KeyboardInterrupt``
    (Ctrl-C) stops the run: finished nodes keep their outputs and state, the rest are
    ``cancelled`` and ``summary.interrupted`` is set. ``target/run_results.json`` and
    ``target/runs/`` record the run in every case. ``started`` (a ``time.perf_counter()``
    value) lets the caller count its own start-up in the run's time; ``interrupted`` is
    the flag of :func:`seeknal_flow.run.interrupt.interrupt_guard`.
    """
    began = time.perf_counter() if started is None else started
    project, dag = ws.project, ws.dag
    state = RunState.load(project.state_path)
    summary = RunSummary(up_to_date=len(plan.nodes) - len(plan.to_run))
    results = RunResults(run_id=new_run_id(), project=project.config.name, command=list(command),
                         started_at=utc_now())
    summary.results = results
    flag = interrupted or InterruptFlag()
    outcomes: dict[str, NodeRunResult] = {}
    for n in plan.nodes:
        if n.action != Action.RUN:
            outcomes[n.node_id] = NodeRunResult(id=n.node_id, kind=dag.nodes[n.node_id].kind.value,
                                                status=NodeOutcome.SKIPPED, reason=", ".join(n.reasons))
    try:
        # The caller holds the project lock: no other writer runs, so what a killed one left goes now.
        delete_paths(stale_temp_files(project))
        if plan.removed:  # a removed group leaves its entity: the post-run steps rebuild it
            _remove(ws, plan, reporter, results)
            state = RunState.load(project.state_path)
        if not plan.to_run and not plan.steps_to_run:
            _refresh_file_stats(project.state_path, plan, state)
            if plan.removed:
                write_manifest(project, dag)
            return summary
        engine = open_engine()
        summary.engine = results.engine = engine.name
        try:
            line = engine.start()
            if line:
                reporter.note(line)
            nodes_began = time.perf_counter()
            _run_nodes(ws, plan, state, engine, reporter, summary, outcomes, continue_on_error, flag)
            summary.node_seconds = time.perf_counter() - nodes_began
            write_manifest(project, dag)
            post = time.perf_counter()
            try:
                # Planned steps, re-planned on what the nodes left: each stale entity is rebuilt and
                # published as soon as it is built (a later entity failing leaves none built but
                # unpublished), and each step is recorded in run_state.json as it finishes.
                run_post_steps(project, dag, state, engine, summary,
                               full=any("--full" in s.reasons for s in plan.steps))
            except Exception as e:
                if flag.is_set():  # an engine's own form of Ctrl-C (DuckDB: "Query interrupted")
                    raise KeyboardInterrupt from e
                raise
            finally:
                summary.consolidation_seconds = time.perf_counter() - post
        finally:
            flag.shielded = True  # from here on a Ctrl-C only sets the flag: the write-up completes
            engine.close()
            shutil.rmtree(project.tmp, ignore_errors=True)
    except KeyboardInterrupt:
        summary.interrupted = True
    except SeeknalError as e:
        if flag.is_set() and not flag.shielded:  # an engine reporting Ctrl-C as its own error (DuckDB)
            summary.interrupted = True
        else:
            results.error = str(e)
            raise
    except BaseException as e:  # recorded as a failure, then raised on: the CLI reports it
        results.error = f"{type(e).__name__}: {e}"
        raise
    finally:
        flag.shielded = True
        summary.seconds = time.perf_counter() - began
        _finish(results, summary, plan, dag, outcomes, project)
        try:
            record_run(project, results)
        except OSError as e:
            # A full or read-only disk fails the record too: say so, without hiding the run's
            # own outcome (a node's error, raised on from here, is the one the user must see).
            reporter.note(f"warning: the run was not recorded in target/run_results.json: {os_error_text(e)}")
    return summary


def _remove(ws: Workspace, plan: Plan, reporter: Reporter, results: RunResults) -> None:
    """Delete what the REMOVE nodes left (outputs, entity membership, online copy, state)."""
    removal = remove_nodes(ws.project, ws.dag, [n.node_id for n in plan.removed])
    results.removed = list(removal.nodes)
    if removal.nodes:
        dropped = f"; entities dropped: {', '.join(removal.entities_dropped)}" if removal.entities_dropped else ""
        reporter.note(f"removed {', '.join(removal.nodes)} (node file gone){dropped}")


def _finish(results: RunResults, summary: RunSummary, plan: Plan, dag, outcomes: dict, project) -> None:
    for n in plan.to_run:
        if n.node_id not in outcomes:  # never reached: the run was interrupted (or stopped at a failure)
            kind = dag.nodes[n.node_id].kind.value
            if summary.interrupted:
                outcomes[n.node_id] = NodeRunResult(id=n.node_id, kind=kind, status=NodeOutcome.CANCELLED,
                                                    reason="run interrupted")
                summary.cancelled.append(n.node_id)
            else:
                outcomes[n.node_id] = NodeRunResult(id=n.node_id, kind=kind, status=NodeOutcome.SKIPPED,
                                                    reason="the run stopped at an earlier failure")
                summary.skipped.append(n.node_id)
    results.nodes = [outcomes[n.node_id] for n in plan.nodes]
    results.consolidated = list(summary.consolidated)
    results.consolidation_notes = {e: summary.consolidation_notes[e] for e in summary.consolidated
                                   if e in summary.consolidation_notes}
    results.consolidation_s = round(summary.consolidation_seconds, 4) if summary.consolidated else None
    results.finished_at = utc_now()
    results.elapsed_s = round(summary.seconds, 4)
    if summary.interrupted:
        results.status = RunStatus.INTERRUPTED
    elif summary.failed or results.error:
        results.status = RunStatus.FAILED
    else:
        results.status = RunStatus.OK


def _run_nodes(ws: Workspace, plan: Plan, state: RunState, engine: Engine, reporter: Reporter,
               summary: RunSummary, outcomes: dict[str, NodeRunResult], continue_on_error: bool,
               interrupted: InterruptFlag) -> None:
    dag, project = ws.dag, ws.project
    state_path = project.state_path
    todo = plan.to_run
    blocked: set[str] = set()
    # Database sources learn whether their data changed only when they run: `changed` holds
    # the nodes whose fingerprint moved from the plan's; a node planned to run only if its
    # inputs change (NodePlan.conditional) is up to date when none of them is in it.
    states = {n.node_id: n.state for n in plan.nodes}
    planned = {n.node_id: n.state.fingerprint for n in plan.nodes}
    changed: set[str] = set()
    for index, node_plan in enumerate(todo, start=1):
        if interrupted.is_set():  # the KeyboardInterrupt was swallowed somewhere: stop all the same
            raise KeyboardInterrupt
        node_id = node_plan.node_id
        spec = dag.nodes[node_id]
        kind = spec.kind.value
        if blocked & set(dag.upstream[node_id]):
            blocked.add(node_id)
            summary.skipped.append(node_id)
            outcomes[node_id] = NodeRunResult(id=node_id, kind=kind, status=NodeOutcome.SKIPPED,
                                              reason="an upstream node failed")
            reporter.skipped(node_id, "an upstream node failed")
            continue
        moved = changed & set(dag.upstream[node_id])
        if node_plan.conditional and not moved:
            summary.up_to_date += 1
            why = f"up to date ({', '.join(node_plan.conditional)}: same data as last run)"
            outcomes[node_id] = NodeRunResult(id=node_id, kind=kind, status=NodeOutcome.SKIPPED, reason=why)
            reporter.skipped(node_id, why)
            continue
        if moved:
            seal(node_id, dag.nodes[node_id], node_plan.state, dag, states)
            node_plan.partitions_run, node_plan.partitions_remove = None, []  # its inputs changed whole
        reporter.start(index, len(todo), node_id)
        job = NodeJob(spec=dag.nodes[node_id], plan=node_plan, previous=state.nodes.get(node_id))
        progress = _Recorder(state, state_path, job, reporter)
        began = time.perf_counter()
        try:
            try:
                result = engine.compute(job, progress)
            except OSError as e:  # disk full, read-only target, permissions: this node's failure, said as such
                # Paths relative to the project, as every other message names files.
                raise NodeExecutionError(job.where, os_error_text(e).replace(f"{project.root}/", "")) from e
        except KeyboardInterrupt:
            _cancel(state, state_path, summary, outcomes, node_id, kind, began, progress)
            raise
        except Exception as error:
            if interrupted.is_set():
                # Whatever the engine made of Ctrl-C (DuckDB: its own error, or RuntimeError "Query
                # interrupted" when it lands inside a call): the run was interrupted, not broken.
                _cancel(state, state_path, summary, outcomes, node_id, kind, began, progress)
                raise KeyboardInterrupt from error
            if not isinstance(error, NodeExecutionError):
                raise
            blocked.add(node_id)
            summary.failed.append(node_id)
            summary.errors.append(error)
            outcomes[node_id] = NodeRunResult(id=node_id, kind=kind, status=NodeOutcome.FAILED,
                                              reason=", ".join(node_plan.reasons), error=str(error),
                                              duration_s=round(time.perf_counter() - began, 4))
            _mark_failed(state, node_id, node_plan.state, str(error))
            state.save(state_path)
            reporter.failed(node_id, error)
            if not continue_on_error:
                break
            continue
        new = node_plan.state
        if result.files is not None:  # a database source: what it fetched decides its fingerprint
            new.files, new.data = result.files, result.data
            seal(node_id, dag.nodes[node_id], new, dag, states)
        if new.fingerprint != planned[node_id]:
            changed.add(node_id)
        new.status = NodeStatus.OK
        new.rows = result.rows
        new.seconds = round(result.seconds, 4)
        new.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
        new.schema = result.schema
        if not project.reads_in_place(spec):
            new.output = output_signature(project.output_of(spec))
        state.nodes[node_id] = new
        state.save(state_path)
        summary.succeeded.append(node_id)
        summary.rows += result.rows
        outcomes[node_id] = NodeRunResult(
            id=node_id, kind=kind, status=NodeOutcome.RAN, reason=", ".join(node_plan.reasons),
            duration_s=round(result.seconds, 4), rows_out=result.rows,
            partitions=_touched(node_plan), output=_relative(result.path, project.root))
        reporter.done(node_id, result)


def _cancel(state: RunState, state_path, summary: RunSummary, outcomes: dict, node_id: str, kind: str,
            began: float, progress: _Recorder) -> None:
    """The node in flight when Ctrl-C came: keep its previous output and any finished partitions."""
    summary.cancelled.append(node_id)
    finished = progress.finished_partitions()
    outcomes[node_id] = NodeRunResult(id=node_id, kind=kind, status=NodeOutcome.CANCELLED,
                                      reason="run interrupted", duration_s=round(time.perf_counter() - began, 4),
                                      partitions=finished)
    if finished is not None:
        state.save(state_path)  # the partitions finished before the interrupt count for the next run


def _touched(node_plan) -> list[str] | None:
    if node_plan.partitions_run is None:
        return list(node_plan.state.partitions) if node_plan.state.partitions else None
    return list(node_plan.partitions_run)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


class _Recorder:
    """The service's side of :class:`~seeknal_flow.run.engine.Progress` for one node."""

    def __init__(self, state: RunState, state_path, job: NodeJob, reporter: Reporter) -> None:
        self._state, self._path, self._job, self._reporter = state, state_path, job, reporter
        self._record: NodeState | None = None
        self._saved = time.perf_counter()
        self._done = 0

    def rows(self, rows: int) -> None:
        self._reporter.progress(self._job.node_id, rows)

    def partitions_kept(self, partitions: dict[str, str]) -> None:
        # Until the node finishes, its record says "failed: interrupted" and lists only
        # the partitions in place: the next run recomputes exactly the rest.
        self._record = msgspec.structs.replace(self._job.plan.state, partitions=dict(partitions),
                                               status=NodeStatus.FAILED, error="interrupted")

    def finished_partitions(self) -> list[str] | None:
        """Partitions in place so far (None: not a partitioned node, or none finished)."""
        return sorted(self._record.partitions) if self._record is not None else None

    def partition_done(self, partition: str) -> None:
        if self._record is None:
            self.partitions_kept({})
        self._record.partitions[partition] = self._job.plan.state.partitions[partition]
        self._done += 1
        todo = self._job.plan.partitions_run
        self._reporter.partitions(self._job.node_id, self._done,
                                  len(todo) if todo is not None else len(self._job.plan.state.partitions))
        self._state.nodes[self._job.node_id] = self._record
        if time.perf_counter() - self._saved > _PARTITION_SAVE_SECONDS:
            self._state.save(self._path)
            self._saved = time.perf_counter()


def _mark_failed(state: RunState, node_id: str, attempted: NodeState, message: str) -> None:
    old = state.nodes.get(node_id)
    if old is None:
        # Never succeeded: remember only the failure, so the next plan says "new".
        state.nodes[node_id] = NodeState(status=NodeStatus.FAILED, error=message, files=attempted.files)
    else:
        old.status = NodeStatus.FAILED
        old.error = message


def _refresh_file_stats(state_path, plan: Plan, state: RunState) -> None:
    # A touched-but-identical source file was re-hashed by the planner; keep its
    # new size/mtime so the next plan does not hash it again.
    changed = False
    for n in plan.nodes:
        old = state.nodes.get(n.node_id)
        if old is not None and n.state.files and old.files != n.state.files and old.data == n.state.data:
            old.files = n.state.files
            changed = True
    if changed:
        state.save(state_path)


__all__ = ["Reporter", "RunSummary", "run_project"]
