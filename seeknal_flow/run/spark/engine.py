"""``seeknal run --engine spark``: a plan's nodes on Apache Spark, from the same specs.

What runs where:

* Parquet sources are read in place, as on the local engine; CSV/JSON/JSONL
  sources are read by Spark with the schema the local reader infers and
  written to ``target/intermediate/`` (Hive layout when partitioned).
* SQL nodes run as Spark SQL when written in the DuckDB/Spark common subset
  (:mod:`operators.spark.sql`); otherwise the node fails naming the construct.
* Second-order aggregations run on Spark (:mod:`operators.spark.soa`).
* Python nodes run on the driver, exchanging Arrow with Spark; ``pit_join`` on
  the frames they get runs on Spark (:mod:`seeknal_flow.run.spark.frames`). A large
  Python node is the user's to keep small: its result passes through the driver.
* Entities are consolidated on Spark (:mod:`seeknal_flow.run.spark.consolidation`)
  and published to the online store as by the local engine.

Outputs are Parquet directories at the local engine's paths (Spark writes a
directory), written to a hidden temp directory and renamed into place, so the
REPL, FeatureFrames, the entity store and the online store read them unchanged.
Run state, fingerprints and the manifest are shared with the local engine:
results are the same, so switching engines re-runs nothing by itself.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from operators.atomic import replace_path
from operators.datasets import parquet_dataset
from operators.errors import EngineError
from operators.memory import MemoryConfig
from operators.python_call import PythonCallOperator, UserCodeError, load_function
from operators.scan import ScanOperator
from operators.sink import SinkResult
from operators.spark.session import (
    SparkEngine,
    check_available,
    describe_output,
    read_parquet,
    read_source,
    spark_error,
    start_session,
    write_parquet,
)
from operators.spark.soa import soa_spark
from seeknal_flow.run.context import Context
from seeknal_flow.load.dag import Dag
from seeknal_flow.errors import NodeExecutionError, SeeknalError
from seeknal_flow.frames.frame import FeatureFrame
from seeknal_flow.run.isolation import IsolatedCallOperator, should_isolate
from seeknal_flow.plan.manifest import write_manifest
from seeknal_flow.plan.partitions import is_partitioned
from seeknal_flow.plan.planner import Plan
from seeknal_flow.load.project import Project
from seeknal_flow.plan.run_state import RunState
from seeknal_flow.run.local import Reporter, RunSummary, register_in_place
from seeknal_flow.run.spark.frames import SparkPit, spark_frame_for
from operators.spark.sql import spark_sql_frame
from seeknal_flow.authoring.specs import Kind
from seeknal_flow.run.checks import apply_on_run_checks, output_schema


@dataclass
class SparkRun:
    """What :func:`run_on_spark` did: the node summary and the entities it consolidated."""

    summary: RunSummary
    consolidated: list[str] = field(default_factory=list)
    consolidation_seconds: float = 0.0
    startup_seconds: float = 0.0


def run_on_spark(project: Project, dag: Dag, plan: Plan, state: RunState, *, memory: MemoryConfig,
                 reporter: Reporter, continue_on_error: bool = False, master: str | None = None,
                 on_start: Callable[[str, float], None] | None = None) -> SparkRun:
    """Run ``plan`` on Spark, write the manifest, consolidate and publish updated entities.

    ``master`` (``--spark-master``) wins over ``spark.master`` in ``seeknal_project.yml``.
    The session starts before the first node (so node times exclude it);
    ``on_start(master, seconds)`` is told how long that took.
    """
    check_available()
    runner = SparkRunner(project, dag, memory, master=master or project.config.spark.master,
                         conf=dict(project.config.spark.conf))
    try:
        runner.spark  # noqa: B018 - start the session now
        if on_start is not None:
            on_start(runner.master or "local[*]", runner.startup_seconds)
        summary = runner.run_plan(plan, state, reporter=reporter, continue_on_error=continue_on_error)
        write_manifest(project, dag)
        run = SparkRun(summary, startup_seconds=runner.startup_seconds)
        if any(dag.nodes[n].kind == Kind.FEATURE_GROUP for n in summary.succeeded):
            from seeknal_flow.run.spark.consolidation import consolidate_spark

            started = time.perf_counter()
            run.consolidated = consolidate_spark(runner.spark, project, dag)
            run.consolidation_seconds = time.perf_counter() - started
        return run
    finally:
        runner.close()
        shutil.rmtree(project.tmp, ignore_errors=True)


class SparkRunner:
    """Runs nodes on one Spark session, started on first use and stopped by :meth:`close`."""

    def __init__(self, project: Project, dag: Dag, memory: MemoryConfig, *, master: str | None = None,
                 conf: dict[str, Any] | None = None) -> None:
        self.project, self.dag, self.memory = project, dag, memory
        self.master, self.conf = master, conf or {}
        self._engine: SparkEngine | None = None
        self._pit: SparkPit | None = None
        self.startup_seconds = 0.0

    @property
    def spark(self):
        if self._engine is None:
            started = time.perf_counter()
            self._engine = start_session(self.master, self.conf)
            self.startup_seconds = time.perf_counter() - started
        return self._engine.session

    @property
    def pit(self) -> SparkPit:
        if self._pit is None:
            self._pit = SparkPit(self.spark, self.project.tmp)
        return self._pit

    def close(self) -> None:
        if self._engine is not None:
            self._engine.stop()
            self._engine = None

    # -------------------------------------------------------------------------- plan

    def run_plan(self, plan: Plan, state: RunState, *, reporter: Reporter,
                 continue_on_error: bool = False) -> RunSummary:
        """Execute every RUN node of ``plan`` (bookkeeping as in :func:`seeknal_flow.run.local.run_plan`)."""
        from seeknal_flow.run.local import run_plan

        def run_node(node_plan, state, previous_schema):
            spec = self.dag.nodes[node_plan.node_id]
            if is_partitioned(spec) and spec.kind != Kind.SOURCE:
                return self._run_partitioned_locally(node_plan, state)
            return self.run_node(node_plan, previous_schema)

        # Spark keeps its scratch files (logs, warehouse, spills) under target/tmp until close().
        return run_plan(self.project, self.dag, plan, state, memory=self.memory, reporter=reporter,
                        continue_on_error=continue_on_error, run_node=run_node, keep_tmp=True)

    def run_node(self, node_plan, previous_schema: dict | None) -> tuple[SinkResult, str, dict]:
        """Compute one node and replace its output; failures become :class:`NodeExecutionError`."""
        spec = self.dag.nodes[node_plan.node_id]
        where = f"{spec.id} ({spec.location})"
        started = time.perf_counter()
        if self.project.reads_in_place(spec):  # the same registration as the local engine
            return register_in_place(self.project, spec, started, node_plan.state.files)
        node = _Node(spec, node_plan.params, _partition_keys(spec), previous_schema)
        try:
            written = self._compute(node)
        except UserCodeError as e:
            error = NodeExecutionError(where, str(e), tail=e.tail)
            error.output = node.output
            raise error from e
        except (EngineError, SeeknalError) as e:
            error = NodeExecutionError(where, str(e))
            error.output = node.output
            raise error from e
        except _spark_errors() as e:
            error = NodeExecutionError(where, f"Spark: {spark_error(e)}")
            error.output = node.output
            raise error from e
        finally:
            if node.context is not None:
                node.context.close()
        output = node.output + "".join(line + "\n" for line in node.check_lines)
        result = SinkResult(written.path, written.rows, written.bytes, written.schema, time.perf_counter() - started)
        return result, output, node.schema

    def _run_partitioned_locally(self, node_plan, state: RunState) -> tuple[SinkResult, str, dict]:
        """A ``partitioned: true`` node runs on the local engine, partition by partition.

        Its function is written for one partition at a time (and only changed
        partitions are recomputed), which is what the local scheduler does.
        """
        from seeknal_flow.run.local import run_plan

        quiet = _Capture()
        run_plan(self.project, self.dag, Plan(nodes=[node_plan]), state, memory=self.memory, reporter=quiet)
        if quiet.error is not None:
            raise quiet.error
        note = "partitioned node: ran on the local engine, one partition at a time\n"
        return quiet.result, note + quiet.output, dict(node_plan.state.schema)

    # ------------------------------------------------------------------------- kinds

    def _compute(self, node: _Node):
        spec = node.spec
        out = self.project.intermediate_path(spec.output_name)
        if spec.kind == Kind.SOURCE:
            path = self.project.root / spec.table
            local = ScanOperator(spec.format.value, path, params=node.params, partition_by=spec.partition_by,
                                 memory=self.memory, display_path=spec.table).schema
            df = read_source(self.spark, spec.format.value, path, local, node.params)
            return self._write(df, out, node)
        if spec.kind == Kind.SECOND_ORDER_AGGREGATION:
            return self._write(self._soa(node), out, node)
        if getattr(spec, "sql", None) is not None:
            inputs = {up: (up.replace(".", "_"), self._output(up)) for up in self.dag.upstream[spec.id]}
            return self._write(spark_sql_frame(self.spark, spec.sql, inputs, self.memory), out, node)
        op, result = self._call(node)
        return self._write_result(op, result, out, node)

    def _soa(self, node: _Node):
        spec = node.spec
        if spec.python is None:
            paths = self._paths(spec.source)
        else:
            op, result = self._call(node)
            paths = _frame_paths(result)
            if paths is None:  # an in-memory result: spool it where Spark can read it
                paths = [self._spool(op.schema, op.batches())]
        input_schema = parquet_dataset(paths[0] if len(paths) == 1 else paths).schema
        input_df = read_parquet(self.spark, paths, schema=input_schema)
        if spec.spine is None:
            return soa_spark(self.spark, spec.query, input_df, input_schema)
        spine_paths = self._paths(spec.spine)
        spine_schema = parquet_dataset(spine_paths[0] if len(spine_paths) == 1 else spine_paths).schema
        spine_df = read_parquet(self.spark, spine_paths, ordered=True, schema=spine_schema)
        return soa_spark(self.spark, spec.query, input_df, input_schema, spine_df=spine_df, spine_schema=spine_schema)

    def _call(self, node: _Node):
        """Run a Python node's function on the driver; returns its operator and the raw return value."""
        spec = node.spec
        code = spec.python
        inputs = {up: spark_frame_for(self.dag.nodes[up], self._output(up), self.memory, self.pit)
                  for up in self.dag.upstream[spec.id]}
        target = self.project.target
        if should_isolate(code, getattr(spec, "isolation", None) or self.project.config.isolation):
            op = IsolatedCallOperator(code, node_id=spec.id, inputs=inputs, params=node.params,
                                      cache_dir=target / "isolated", target=target,
                                      memory_limit=self.memory.memory_limit, threads=self.memory.threads)
            node.operator = op
            return op, None
        fn = load_function(Path(code.path), code.function)
        node.context = Context(spec.id, inputs, node.params, self.memory, target=target)
        returned: dict[str, Any] = {}

        def keep_result(ctx):
            returned["value"] = fn(ctx)
            return returned["value"]

        op = PythonCallOperator(keep_result, node.context, label=spec.id, path=Path(code.path))
        node.operator = op
        op.schema  # noqa: B018 - runs the function (output and errors are captured by the operator)
        return op, returned.get("value")

    # ------------------------------------------------------------------------ writing

    def _write(self, df, out: Path, node: _Node):
        return write_parquet(df, out, partition_by=node.partition_keys, before_commit=node.before_commit(self.memory))

    def _write_result(self, op, result, out: Path, node: _Node):
        paths = _frame_paths(result)
        if paths is not None and len(paths) == 1 and paths[0] in self.pit.outputs:
            # A pit_join result Spark already wrote: move it into place.
            node.before_commit(self.memory)(paths[0])
            replace_path(paths[0], out)
            return describe_output(out)
        if paths is not None:
            return self._write(read_parquet(self.spark, paths), out, node)
        spooled = self._spool(op.schema, op.batches())
        node.before_commit(self.memory)(spooled)
        replace_path(spooled, out)
        return describe_output(out)

    def _spool(self, schema: pa.Schema, batches) -> Path:
        """Write driver-side Arrow batches as a Parquet directory under target/tmp/ (timestamps in us)."""
        folder = self.project.tmp / f"spark-driver-{uuid.uuid4().hex[:12]}.parquet"
        folder.mkdir(parents=True)
        # Spark cannot read nanosecond timestamps (pandas' default): store microseconds.
        with pq.ParquetWriter(folder / "part-00000.parquet", schema, compression="zstd", coerce_timestamps="us",
                              allow_truncated_timestamps=True) as writer:
            for batch in batches:
                if batch.num_rows:
                    writer.write_batch(batch if batch.schema == schema else batch.cast(schema))
        return folder

    # ------------------------------------------------------------------------ inputs

    def _output(self, node_id: str) -> Path:
        return self.project.output_of(self.dag.nodes[node_id])

    def _paths(self, node_id: str) -> list[Path]:
        return [self._output(node_id)]

@dataclass
class _Node:
    """One node being run: its spec, and what the run collects (output, checks, schema)."""

    spec: Any
    params: dict
    partition_keys: list[str]
    previous_schema: dict | None
    operator: Any = None
    context: Context | None = None
    check_lines: list[str] = field(default_factory=list)
    schema: dict[str, str] = field(default_factory=dict)

    @property
    def output(self) -> str:
        return getattr(self.operator, "output", "") or ""

    def before_commit(self, memory: MemoryConfig):
        def check(tmp: Path) -> None:
            self.schema.update(output_schema(tmp))
            self.check_lines.extend(apply_on_run_checks(self.spec, tmp, self.previous_schema, memory))

        return check


class _Capture:
    """A reporter that keeps the one node's result instead of printing it."""

    def __init__(self) -> None:
        self.result: SinkResult | None = None
        self.output = ""
        self.error: NodeExecutionError | None = None

    def start(self, index: int, total: int, node_id: str) -> None:
        pass

    def progress(self, node_id: str, rows: int) -> None:
        pass

    def done(self, node_id: str, result: SinkResult, output: str) -> None:
        self.result, self.output = result, output

    def failed(self, node_id: str, error: NodeExecutionError, output: str) -> None:
        self.error, self.output = error, output
        error.output = output

    def skipped(self, node_id: str, reason: str) -> None:
        pass


def _partition_keys(spec) -> list[str]:
    # Partitioned sources are read whole by Spark and written in the local Hive layout;
    # partitioned nodes do not get here (they run on the local engine).
    return list(spec.partition_by) if spec.kind == Kind.SOURCE else []


def _frame_paths(result) -> list[Path] | None:
    if isinstance(result, FeatureFrame):
        return result.paths
    return None


def _spark_errors() -> tuple[type[BaseException], ...]:
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    return (PySparkException, Py4JError)


__all__ = ["SparkRun", "SparkRunner", "run_on_spark"]
