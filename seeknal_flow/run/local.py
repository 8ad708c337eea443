"""Run a plan: pull each node's operator chain into its Parquet sink, in DAG order.

A node that fails keeps its previous output (the sink writes a temp file and
renames only on success) and is marked failed in ``run_state.json`` so the
next run retries it. State is saved after every node, so an interrupted run
loses at most the node in flight.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from collections.abc import Callable
from typing import Protocol

import msgspec

from operators.base import with_constant_columns
from operators.errors import EngineError
from operators.memory import MemoryConfig, budget_left, resident_bytes, shared_duckdb
from operators.python_call import UserCodeError
from operators.sink import SinkResult, write_parquet
from seeknal_flow.run.chains import build_chain, frame_for
from seeknal_flow.load.dag import Dag
from seeknal_flow.errors import NodeExecutionError, SeeknalError
from seeknal_flow.plan.planner import Plan
from seeknal_flow.load.project import Project
from seeknal_flow.plan.partitions import (
    is_partitioned,
    partition_path,
    partition_values,
    remove_partition,
    replace_partition,
)
from seeknal_flow.plan.run_state import NodeState, RunState
from seeknal_flow.authoring.specs import Kind
from seeknal_flow.run.checks import apply_on_run_checks


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
    run_node: Callable | None = None,
    keep_tmp: bool = False,
) -> RunSummary:
    """Execute every RUN node of ``plan``; returns what happened.

    ``run_node(node_plan, state, previous_schema) -> (SinkResult, output, schema)``
    computes one node (default: the local engine); the bookkeeping here —
    skipping downstream of failures, state, reporting — is the same for every engine.
    """
    if run_node is None:
        baseline = resident_bytes()

        def run_node(node_plan, state, previous_schema):
            spec = dag.nodes[node_plan.node_id]
            budget = budget_left(memory, baseline)
            note = "" if budget is memory else (
                f"memory budget {budget.memory_limit / 2**20:,.0f} MB of {memory.memory_limit / 2**20:,.0f} MB: "
                "earlier nodes of this run still hold the rest\n")
            try:
                with shared_duckdb(budget):  # one DuckDB database for all queries of this node
                    if is_partitioned(spec) and not project.reads_in_place(spec):
                        result, output, schema = _run_partitioned(project, dag, node_plan, state, budget, reporter,
                                                                  previous_schema)
                    else:
                        result, output, schema = _run_node(project, dag, node_plan.node_id, node_plan.params,
                                                           budget, reporter, previous_schema,
                                                           files=node_plan.state.files)
            except NodeExecutionError as error:
                error.output = note + error.output  # an out-of-memory error then says why
                raise
            return result, note + output, schema

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
            previous_schema = previous.schema if previous is not None and previous.status == "ok" else None
            try:
                result, output, schema = run_node(node_plan, state, previous_schema)
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
        if not keep_tmp:
            shutil.rmtree(project.tmp, ignore_errors=True)
    summary.seconds = time.perf_counter() - started
    return summary


def _run_node(project, dag, node_id, params, memory, reporter, previous_schema,
              *, inputs=None, out_path: Path | None = None, extra_columns=None,
              source_path: Path | None = None, files: dict[str, dict] | None = None,
              ) -> tuple[SinkResult, str, dict]:
    spec = dag.nodes[node_id]
    if inputs is None:
        inputs = {
            up: frame_for(dag.nodes[up], project.output_of(dag.nodes[up]), memory)
            for up in dag.upstream[node_id]
        }
    chain = None
    started = time.perf_counter()
    if project.reads_in_place(spec):
        return register_in_place(project, spec, started, files or {})
    try:
        chain = build_chain(spec, inputs, root=project.root, params=params, memory=memory,
                            isolation=project.config.isolation, source_path=source_path)
        op = chain.operator
        schema_out, batches = op.schema, op.batches()
        if extra_columns:  # a partition's values, when the node's result does not carry them
            schema_out, batches = with_constant_columns(schema_out, batches, extra_columns)
        check_lines: list[str] = []
        schema: dict[str, str] = {}

        def before_commit(tmp: Path) -> None:
            schema.update({f.name: str(f.type) for f in schema_out})
            check_lines.extend(apply_on_run_checks(spec, tmp, previous_schema, memory))

        result = write_parquet(
            schema_out,
            batches,
            out_path or project.intermediate_path(spec.output_name),
            progress=lambda rows: reporter.progress(node_id, rows),
            before_commit=before_commit,
            buffer_bytes=memory.sink_buffer_bytes,
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


def _run_partitioned(project, dag, node_plan, state, memory, reporter, previous_schema):
    """Recompute the plan's partitions one by one; each replaces its output folder atomically.

    State is saved after every partition, so a failure keeps the finished ones
    and the next run recomputes only the rest.
    """
    node_id = node_plan.node_id
    spec = dag.nodes[node_id]
    new = node_plan.state
    out_dir = project.intermediate_path(spec.output_name)
    old = state.nodes.get(node_id)
    todo = node_plan.partitions_run
    if todo is None or not out_dir.is_dir():
        todo = list(new.partitions)
        if out_dir.is_file():
            out_dir.unlink()  # was written unpartitioned before
    remove = node_plan.partitions_remove if node_plan.partitions_run is not None else [
        p for p in (old.partitions if old else {}) if p not in new.partitions
    ]
    done = {p: fp for p, fp in (old.partitions if old else {}).items() if p in new.partitions and p not in todo}
    record = msgspec.structs.replace(new, partitions=done, status="failed", error="interrupted")
    out_dir.mkdir(parents=True, exist_ok=True)
    started, rows, written, outputs, schema = time.perf_counter(), 0, 0, [], {}
    saved = started
    is_source = spec.kind == Kind.SOURCE
    for partition in todo:
        inputs = {}
        for up in dag.upstream[node_id]:
            up_spec = dag.nodes[up]
            data = project.output_of(up_spec)
            if is_partitioned(up_spec):
                data = partition_path(data, partition)
                if not data.exists():
                    data = empty_like(project.output_of(up_spec))
            inputs[up] = frame_for(up_spec, data, memory)
        staging = out_dir / f".tmp-{uuid.uuid4().hex[:12]}"
        try:
            result, output, schema = _run_node(
                project, dag, node_id, node_plan.params, memory, reporter, previous_schema,
                inputs=inputs, out_path=staging / "part-0.parquet",
                extra_columns=list(partition_values(partition).items()),
                source_path=partition_path(project.root / spec.table, partition) if is_source else None,
            )
            replace_partition(out_dir, partition, staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        rows += result.rows
        written += result.bytes
        if output.strip():
            outputs.append(f"[{partition}] {output.rstrip()}")
        record.partitions[partition] = new.partitions[partition]
        state.nodes[node_id] = record
        if time.perf_counter() - saved > 1.0:  # a failure loses at most a second of finished partitions
            state.save(project.state_path)
            saved = time.perf_counter()
    for partition in remove:
        remove_partition(out_dir, partition)
    outputs.append(f"{len(todo)} partition(s) written, {len(remove)} removed, "
                   f"{len(new.partitions) - len(todo)} unchanged")
    sink = SinkResult(out_dir, rows, written, None, time.perf_counter() - started)  # rows/bytes of this run
    return sink, "\n".join(outputs) + "\n", schema


def empty_like(path: Path):
    """An empty table with the schema of a (partitioned) output, for a partition one input lacks."""
    from operators.datasets import parquet_dataset

    return parquet_dataset(path).schema.empty_table()


def register_in_place(project: Project, spec, started: float, files: dict[str, dict]
                      ) -> tuple[SinkResult, str, dict]:
    """A Parquet source: check it opens and count its rows from the footers; nothing is copied.

    ``files`` is the plan's fingerprint of the source's files: its listing is
    reused, and each entry keeps its file's row count, so a later run reads the
    footers of new or changed files only (one of 365 partitions, say).
    """
    from operators.scan import ScanOperator

    node = f"{spec.id} ({spec.location})"
    root = project.root / spec.table
    base = root if root.is_dir() else root.parent
    known = {str(base / rel): info["rows"] for rel, info in files.items() if "rows" in info}
    scan = ScanOperator("parquet", root, partition_by=spec.partition_by, display_path=spec.table)
    try:
        schema, rows = scan.footers(files=[base / rel for rel in files] if files else None, known_rows=known)
        for rel, info in files.items():
            if str(base / rel) in known:
                info["rows"] = known[str(base / rel)]
        missing = [c for c in spec.partition_by if c not in schema.names]
        if missing:
            raise EngineError(f"partition column(s) {missing} not found in '{spec.table}'; "
                              f"expected Hive folders like {missing[0]}=VALUE/")
    except EngineError as e:
        raise NodeExecutionError(node, str(e)) from e
    types = {f.name: str(f.type) for f in schema}
    path = project.output_of(spec)
    size = (sum(info["size"] for info in files.values() if "rows" in info) if files else
            sum(p.stat().st_size for p in ([path] if path.is_file() else path.rglob("*.parquet"))))
    return SinkResult(path, rows, size, schema, time.perf_counter() - started), "read in place (no copy)\n", types


def _mark_failed(state: RunState, node_id: str, attempted: NodeState, message: str) -> None:
    old = state.nodes.get(node_id)
    if old is None:
        # Never succeeded: remember only the failure, so the next plan says "new".
        state.nodes[node_id] = NodeState(status="failed", error=message, files=attempted.files)
    else:
        old.status = "failed"
        old.error = message
