"""Run a plan: pull each node's operator chain into its Parquet sink, in DAG order.

A node that fails keeps its previous output (the sink writes a temp file and
renames only on success) and is marked failed in ``run_state.json`` so the
next run retries it. State is saved after every node, so an interrupted run
loses at most the node in flight.
"""

from __future__ import annotations

import shutil
from pathlib import Path
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Protocol

from operators.errors import EngineError
from operators.memory import MemoryConfig
from operators.python_call import UserCodeError
from operators.sink import SinkResult, write_parquet
from seeknal_flow.chains import build_chain, frame_for
from seeknal_flow.dag import Dag
from seeknal_flow.errors import NodeExecutionError, SeeknalError
from seeknal_flow.planner import Plan
from seeknal_flow.project import Project
from seeknal_flow.run_state import NodeState, RunState
from seeknal_flow.validation import apply_on_run_checks, output_schema


class Reporter(Protocol):
    def start(self, index: int, total: int, node_id: str) -> None: ...
    def progress(self, node_id: str, rows: int) -> None: ...
    def done(self, node_id: str, result: SinkResult, output: str) -> None: ...
    def failed(self, node_id: str, error: NodeExecutionError, output: str) -> None: ...
    def skipped(self, node_id: str, reason: str) -> None: ...


@dataclass
class RunSummary:
    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    rows: int = 0
    seconds: float = 0.0
    errors: list[NodeExecutionError] = field(default_factory=list)


def run_plan(
    project: Project,
    dag: Dag,
    plan: Plan,
    state: RunState,
    *,
    memory: MemoryConfig,
    reporter: Reporter,
    continue_on_error: bool = False,
) -> RunSummary:
    """Execute every RUN node of ``plan``; returns what happened."""
    summary = RunSummary()
    started = time.perf_counter()
    todo = plan.to_run
    blocked: set[str] = set()
    try:
        for index, node_plan in enumerate(todo, start=1):
            node_id = node_plan.node_id
            if blocked & set(dag.upstream[node_id]):
                blocked.add(node_id)
                summary.skipped.append(node_id)
                reporter.skipped(node_id, "an upstream node failed")
                continue
            reporter.start(index, len(todo), node_id)
            previous = state.nodes.get(node_id)
            try:
                result, output, schema = _run_node(
                    project, dag, node_id, node_plan.params, memory, reporter,
                    previous.schema if previous is not None and previous.status == "ok" else None,
                )
            except NodeExecutionError as error:
                blocked.add(node_id)
                summary.failed.append(node_id)
                summary.errors.append(error)
                _mark_failed(state, node_id, node_plan.state, str(error))
                state.save(project.state_path)
                reporter.failed(node_id, error, error.output)
                if not continue_on_error:
                    break
                continue
            new = node_plan.state
            new.status = "ok"
            new.rows = result.rows
            new.seconds = round(result.seconds, 4)
            new.finished_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
            new.schema = schema
            state.nodes[node_id] = new
            state.save(project.state_path)
            summary.succeeded.append(node_id)
            summary.rows += result.rows
            reporter.done(node_id, result, output)
    finally:
        shutil.rmtree(project.tmp, ignore_errors=True)
    summary.seconds = time.perf_counter() - started
    return summary


def _run_node(project, dag, node_id, params, memory, reporter, previous_schema) -> tuple[SinkResult, str, dict]:
    spec = dag.nodes[node_id]
    inputs = {
        up: frame_for(dag.nodes[up], project.output_of(dag.nodes[up]), memory)
        for up in dag.upstream[node_id]
    }
    chain = None
    started = time.perf_counter()
    if project.reads_in_place(spec):
        return _register_in_place(project, spec, started)
    try:
        chain = build_chain(spec, inputs, root=project.root, params=params, memory=memory,
                            isolation=project.config.isolation)
        op = chain.operator
        check_lines: list[str] = []
        schema: dict[str, str] = {}

        def before_commit(tmp: Path) -> None:
            schema.update(output_schema(tmp))
            check_lines.extend(apply_on_run_checks(spec, tmp, previous_schema, memory))

        result = write_parquet(
            op.schema,
            op.batches(),
            project.intermediate_path(spec.output_name),
            progress=lambda rows: reporter.progress(node_id, rows),
            before_commit=before_commit,
        )
        output = chain.output + "".join(line + "\n" for line in check_lines)
        return replace(result, seconds=time.perf_counter() - started), output, schema
    except UserCodeError as e:
        error = NodeExecutionError(f"{node_id} ({spec.location})", str(e), tail=e.tail)
        error.output = chain.output if chain else ""
        raise error from e
    except (EngineError, SeeknalError) as e:
        error = NodeExecutionError(f"{node_id} ({spec.location})", str(e))
        error.output = chain.output if chain else ""
        raise error from e
    finally:
        if chain is not None:
            chain.close()


def _register_in_place(project: Project, spec, started: float) -> tuple[SinkResult, str, dict]:
    """A Parquet source: check it opens and count its rows from the footers; nothing is copied."""
    import pyarrow.dataset as ds

    from operators.scan import ScanOperator

    node = f"{spec.id} ({spec.location})"
    scan = ScanOperator("parquet", project.root / spec.table, partition_by=spec.partition_by, display_path=spec.table)
    try:
        schema = scan.schema
        rows = ds.dataset(project.root / spec.table, format="parquet", partitioning="hive").count_rows()
    except EngineError as e:
        raise NodeExecutionError(node, str(e)) from e
    except (OSError, ValueError) as e:  # pyarrow: not Parquet, unreadable footer
        raise NodeExecutionError(node, f"cannot read '{spec.table}' as Parquet: {e}") from e
    types = {f.name: str(f.type) for f in schema}
    path = project.output_of(spec)
    size = sum(p.stat().st_size for p in ([path] if path.is_file() else path.rglob("*.parquet")))
    return SinkResult(path, rows, size, schema, time.perf_counter() - started), "read in place (no copy)\n", types


def _mark_failed(state: RunState, node_id: str, attempted: NodeState, message: str) -> None:
    old = state.nodes.get(node_id)
    if old is None:
        # Never succeeded: remember only the failure, so the next plan says "new".
        state.nodes[node_id] = NodeState(status="failed", error=message, files=attempted.files)
    else:
        old.status = "failed"
        old.error = message
