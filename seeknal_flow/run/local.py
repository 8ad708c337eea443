"""The local engine: each node's operator chain pulled into its Parquet sink, in this process.

Arrow throughout; SOA on DataFusion, user SQL on DuckDB, PIT on our ASOF kernel.
The sink writes a temp file and renames it only on success, so a failed node
keeps its previous output. A ``partitioned`` node is recomputed partition by
partition, each replacing its output folder atomically.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from operators.base import with_constant_columns
from operators.datasets import parquet_dataset
from operators.errors import EngineError, SeeknalError
from operators.last_rows import LastRowPerKey, comparable_key
from operators.memory import (
    MemoryConfig,
    budget_left,
    duckdb_connection,
    release_arrow_pool,
    resident_bytes,
    shared_duckdb,
)
from operators.scan import ScanOperator
from operators.sink import write_parquet
from operators.soa.check import soa_output_schema
from operators.soa.mergeable import IncrementalSOA, IncrementalSOAOperator
from seeknal_flow.authoring.specs import Kind
from seeknal_flow.errors import NodeExecutionError, RunError
from seeknal_flow.frames.frame import frame_for
from seeknal_flow.load.dag import Dag
from seeknal_flow.load.project import Project
from seeknal_flow.plan.partitions import (
    incremental_soa_blocker,
    is_partitioned,
    partition_path,
    partition_values,
    remove_partition,
    replace_partition,
)
from seeknal_flow.run.chains import Chain, build_chain
from seeknal_flow.run.checks import apply_on_run_checks
from seeknal_flow.run.data_checks import (
    check_group_output,
    check_parquet_files,
    check_partition_types,
    check_source_output,
)
from seeknal_flow.run.db_sources import run_database_source
from seeknal_flow.run.engine import NodeJob, NodeResult, Progress, node_error

if TYPE_CHECKING:
    from seeknal_flow.store.latest import HandedRows


class LocalEngine:
    """Arrow, DataFusion and DuckDB in this process, under one memory budget.

    Built by :func:`seeknal_flow.run.engines.choose_engine`; ``tests/seeknal_flow/run/test_service.py``
    drives it through the run service from a new engine of its own.
    """

    name = "local"

    def __init__(self, project: Project, dag: Dag, memory: MemoryConfig) -> None:
        self.project, self.dag, self.memory = project, dag, memory
        self._baseline: int | None = None
        # Feature group -> its latest rows, found as its node wrote it this run (see _latest_tap).
        self._handed: dict[str, HandedRows] = {}

    def start(self) -> str | None:
        # Memory an earlier node's engine still holds comes out of the next node's share.
        self._baseline = resident_bytes()
        return None

    def compute(self, job: NodeJob, progress: Progress) -> NodeResult:
        release_arrow_pool()  # an earlier node's cached blocks would otherwise sit under this node's peak
        memory = self.memory
        budget = budget_left(memory, self._baseline)
        note = "" if budget is memory else (
            f"memory budget {budget.memory_limit / 2**20:,.0f} MB of {memory.memory_limit / 2**20:,.0f} MB: "
            "earlier nodes of this run still hold the rest\n")
        try:
            with shared_duckdb(budget):  # one DuckDB database for all queries of this node
                if is_partitioned(job.spec) and not self.project.reads_in_place(job.spec):
                    result = self._run_partitioned(job, budget, progress)
                else:
                    result = self._run_node(job, budget, progress)
        except NodeExecutionError as error:
            error.output = note + error.output  # an out-of-memory error then says why
            raise
        return replace(result, output=note + result.output) if note else result

    def consolidate(self, entities: Sequence[str], on_built: Callable[[str, dict], None]) -> list[str]:
        # Imported here: consolidation brings DuckDB and the online store's pyarrow.compute,
        # which a run that changed no feature group never needs.
        from seeknal_flow.store.consolidation import consolidate

        release_arrow_pool()  # what the nodes left cached would add to consolidation's peak
        return consolidate(self.project, self.dag, self.memory, entities=entities, on_built=on_built,
                           handed=self._handed)

    def close(self) -> None:
        pass

    # ------------------------------------------------------------------------ nodes

    def _run_node(self, job: NodeJob, memory: MemoryConfig, progress: Progress, *, inputs=None,
                  out_path: Path | None = None, extra_columns=None, source_path: Path | None = None,
                  partition: str | None = None) -> NodeResult:
        project, dag, spec = self.project, self.dag, job.spec
        started = time.perf_counter()
        if project.reads_in_place(spec):
            return register_in_place(project, job, started)
        if spec.kind == Kind.SOURCE and spec.is_database:
            return run_database_source(project, job, progress, memory.sink_buffer_bytes)
        if inputs is None:
            inputs = {up: frame_for(dag.nodes[up], project.output_of(dag.nodes[up]), memory)
                      for up in dag.upstream[job.node_id]}
        chain = None
        try:
            chain = incremental_soa_chain(project, dag, job, memory) if partition is None else None
            if chain is None:
                chain = build_chain(spec, inputs, root=project.root, params=job.plan.params, memory=memory,
                                    isolation=project.config.isolation, source_path=source_path)
            op = chain.operator
            schema_out, batches = op.schema, op.batches()
            if extra_columns:  # a partition's values, when the node's result does not carry them
                schema_out, batches = with_constant_columns(schema_out, batches, extra_columns)
            self._handed.pop(spec.name, None)
            last = _latest_tap(spec, chain, schema_out) if partition is None and out_path is None else None
            if last is not None:
                batches = _watched(batches, last)
            check_lines: list[str] = []

            def before_commit(tmp: Path) -> None:
                # Bad data stops here, at the node that meets it; the previous output stays.
                if spec.kind == Kind.SOURCE:
                    display = spec.table if partition is None else f"{spec.table.rstrip('/')}/{partition}"
                    # The last successful run's rows: a failed attempt since keeps them in its record.
                    previous = job.previous.rows if job.previous and partition is None else 0
                    check_lines.extend(check_source_output(spec, tmp, source_path or project.root / spec.table,
                                                           display, previous))
                    if partition is not None:
                        check_partition_types(project.intermediate_path(spec.output_name), partition, tmp,
                                              spec.table)
                elif spec.kind == Kind.FEATURE_GROUP:
                    check_lines.extend(check_group_output(spec, tmp, memory))
                check_lines.extend(apply_on_run_checks(spec, tmp, job.previous_schema, memory))

            sink = write_parquet(
                schema_out,
                batches,
                out_path or project.intermediate_path(spec.output_name),
                progress=progress.rows,
                before_commit=before_commit,
                buffer_bytes=memory.sink_buffer_bytes,
                threads=memory.effective_threads,
            )
            if last is not None:
                self._hand_over(spec, last, sink.path, memory)
            output = chain.output + "".join(line + "\n" for line in check_lines)
            return NodeResult(sink.path, sink.rows, sink.bytes, time.perf_counter() - started,
                              {f.name: str(f.type) for f in schema_out}, output)
        except SeeknalError as e:  # a failing node function (UserCodeError) included
            raise node_error(job, e, chain.output if chain else "") from e
        finally:
            if chain is not None:
                chain.close()

    def _hand_over(self, spec, last: LastRowPerKey, output: Path, memory: MemoryConfig) -> None:
        """Keep the group's latest rows for this run's consolidation (which then never reads the group again)."""
        import duckdb

        from seeknal_flow.store.latest import hand_over  # as consolidate(): the store loads after the nodes

        rows = last.table()
        if rows is None:
            return
        folder = self.project.tmp  # this run's: removed when the run ends, used or not
        folder.mkdir(parents=True, exist_ok=True)
        file = folder / f"latest-{spec.name}-{uuid.uuid4().hex[:8]}.parquet"
        con = duckdb_connection(memory)
        try:
            self._handed[spec.name] = hand_over(con, tuple(spec.entity.join_keys), rows, output,
                                                spec.event_time_col, file)
        except (duckdb.Error, OSError):
            pass  # the consolidation reads the group itself, as without this
        finally:
            con.close()

    def _run_partitioned(self, job: NodeJob, memory: MemoryConfig, progress: Progress) -> NodeResult:
        """Recompute the plan's partitions one by one; each replaces its output folder atomically.

        Every finished partition is reported to ``progress``, so a failure keeps
        the finished ones and the next run recomputes only the rest.
        """
        project, dag, spec = self.project, self.dag, job.spec
        node_plan, old = job.plan, job.previous
        new = node_plan.state
        out_dir = project.intermediate_path(spec.output_name)
        todo = node_plan.partitions_run
        if todo is None or not out_dir.is_dir():
            todo = list(new.partitions)
            if out_dir.is_file():
                out_dir.unlink()  # was written unpartitioned before
        remove = node_plan.partitions_remove if node_plan.partitions_run is not None else [
            p for p in (old.partitions if old else {}) if p not in new.partitions
        ]
        progress.partitions_kept({p: fp for p, fp in (old.partitions if old else {}).items()
                                  if p in new.partitions and p not in todo})
        out_dir.mkdir(parents=True, exist_ok=True)
        started, rows, written, outputs, schema = time.perf_counter(), 0, 0, [], {}
        is_source = spec.kind == Kind.SOURCE
        for partition in todo:
            inputs = {}
            for up in dag.upstream[job.node_id]:
                up_spec = dag.nodes[up]
                data = project.output_of(up_spec)
                if is_partitioned(up_spec):
                    data = partition_path(data, partition)
                    if not data.exists():
                        data = empty_like(project.output_of(up_spec))
                inputs[up] = frame_for(up_spec, data, memory)
            staging = out_dir / f".tmp-{uuid.uuid4().hex[:12]}"
            try:
                result = self._run_node(
                    job, memory, progress, inputs=inputs, out_path=staging / "part-0.parquet",
                    extra_columns=list(partition_values(partition).items()),
                    source_path=partition_path(project.root / spec.table, partition) if is_source else None,
                    partition=partition,
                )
                replace_partition(out_dir, partition, staging)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            rows += result.rows
            written += result.bytes
            schema = result.schema
            if result.output.strip():
                outputs.append(f"[{partition}] {result.output.rstrip()}")
            progress.partition_done(partition)
        for partition in remove:
            remove_partition(out_dir, partition)
        outputs.append(f"{len(todo)} partition(s) written, {len(remove)} removed, "
                       f"{len(new.partitions) - len(todo)} unchanged")
        return NodeResult(out_dir, rows, written, time.perf_counter() - started, schema, "\n".join(outputs) + "\n")


def incremental_soa_chain(project: Project, dag: Dag, job: NodeJob, memory: MemoryConfig) -> Chain | None:
    """The chain of a YAML, non-temporal SOA over a partitioned input whose aggregates merge; else None.

    Such an SOA keeps the totals of its partial aggregates (operators/soa/mergeable.py),
    merges new input partitions into them and recomputes them in one pass when a
    partition changed or went; ``--full`` rebuilds the state.
    """
    spec = job.spec
    if (spec.kind != Kind.SECOND_ORDER_AGGREGATION or spec.python is not None or spec.spine
            or spec.source is None or incremental_soa_blocker(spec, dag) is not None):
        return None
    root = project.output_of(dag.nodes[spec.source])
    if not root.is_dir():
        return None
    schema = soa_output_schema(spec.query, partitioned_input_schema(root))
    soa = IncrementalSOA(spec.query, root, project.soa_states / spec.output_name, memory=memory,
                         rebuild="--full" in job.plan.reasons)
    # Rows come out in id order, one per id: the run's defined order, without SortedOperator's sort.
    return Chain(IncrementalSOAOperator(soa, schema))


def partitioned_input_schema(root: Path) -> pa.Schema:
    """The schema of a partitioned Parquet output from one file's footer (no ``pyarrow.dataset``).

    Every partition of an output has the same column types (``check_partition_types``);
    a column that is all NULL in one file (type null) is not proof of its type, so the
    first file without such a column is taken.
    """
    import pyarrow.parquet as pq

    first = None
    for f in sorted(root.rglob("*.parquet")):
        if any(part.startswith(".") for part in f.relative_to(root).parts):
            continue
        try:
            schema = pq.read_schema(f)
        except (OSError, pa.ArrowException) as e:
            raise RunError(f"{f}: not a readable Parquet file ({str(e).splitlines()[0]}); "
                           "re-run its node with `seeknal run --full`") from e
        if not any(pa.types.is_null(t) for t in schema.types):
            return schema
        first = first or schema
    if first is None:
        raise RunError(f"{root}: no Parquet files to aggregate")
    return first


def empty_like(path: Path) -> pa.Table:
    """An empty table with the schema of a (partitioned) output, for a partition one input lacks."""
    return parquet_dataset(path).schema.empty_table()


def register_in_place(project: Project, job: NodeJob, started: float) -> NodeResult:
    """A Parquet source: check it opens and count its rows from the footers; nothing is copied.

    The plan's fingerprint of the source's files (``job.plan.state.files``) gives the
    listing, and each entry keeps its file's row count, so a later run reads the
    footers of new or changed files only (one of 365 partitions, say).
    """
    spec, files = job.spec, job.plan.state.files
    root = project.root / spec.table
    base = root if root.is_dir() else root.parent
    known = {str(base / rel): info["rows"] for rel, info in files.items() if "rows" in info}
    seen = set(known)
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
        if root.is_dir():  # partitions whose column types disagree make every reader fail later
            listed = [base / rel for rel in files] if files else sorted(root.rglob("*.parquet"))
            # The first file against those read for the first time (the rest were checked when they were).
            fresh = [f for f in listed[1:] if str(f) not in seen]
            check_parquet_files(base, listed[:1] + fresh, spec.table)
    except (EngineError, RunError) as e:
        raise node_error(job, e) from e
    path = project.output_of(spec)
    size = (sum(info["size"] for info in files.values() if "rows" in info) if files else
            sum(p.stat().st_size for p in ([path] if path.is_file() else path.rglob("*.parquet"))))
    return NodeResult(path, rows, size, time.perf_counter() - started, {f.name: str(f.type) for f in schema},
                      "read in place (no copy)\n")


__all__ = ["LocalEngine", "empty_like", "register_in_place"]


def _latest_tap(spec, chain: Chain, schema: pa.Schema) -> LastRowPerKey | None:
    """A watcher of a one-file feature group's rows that finds each key's latest row, when their order allows.

    The rows must come sorted by the entity's join keys, then the event time (the order
    ``run/ordering.py`` gives a group; not a query's own ``ORDER BY``), with keys whose
    equality is plain (no floats: NaN).
    """
    entity = getattr(spec, "entity", None)
    if spec.kind != Kind.FEATURE_GROUP or entity is None or is_partitioned(spec):
        return None
    first = (*entity.join_keys, spec.event_time_col)
    if chain.sorted_by[:len(first)] != first or len(set(schema.names)) != len(schema.names):
        return None
    if not all(k in schema.names and comparable_key(schema.field(k).type) for k in entity.join_keys):
        return None
    return LastRowPerKey(list(entity.join_keys), spec.event_time_col)


def _watched(batches, last: LastRowPerKey):
    for batch in batches:
        last.observe(batch)
        yield batch
