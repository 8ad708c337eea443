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
* ``partitioned: true`` nodes are handed to the local engine (one partition at a time).
* Entities are consolidated on Spark (:mod:`seeknal_flow.run.spark.consolidation`);
  the run service publishes them online, as for the local engine.

The run service (:mod:`seeknal_flow.run.service`) drives this engine exactly as
it drives :class:`~seeknal_flow.run.local.LocalEngine`.

Outputs are Parquet directories at the local engine's paths (Spark writes a
directory), written to a hidden temp directory and renamed into place, so the
REPL, FeatureFrames, the entity store and the online store read them unchanged.
Run state, fingerprints and the manifest are shared with the local engine:
results are the same, so switching engines re-runs nothing by itself.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from operators.atomic import replace_path
from operators.datasets import parquet_dataset
from operators.errors import EngineError, SeeknalError
from operators.memory import MemoryConfig
from operators.python_call import PythonCallOperator, load_function
from operators.scan import ScanOperator
from operators.spark.session import (
    SparkSession,
    check_available,
    describe_output,
    read_parquet,
    read_source,
    spark_error,
    spark_errors,
    start_session,
    write_parquet,
)
from operators.spark.soa import soa_spark
from operators.spark.sql import spark_sql_frame
from seeknal_flow.authoring.specs import Kind
from seeknal_flow.frames.frame import FeatureFrame
from seeknal_flow.load.dag import Dag
from seeknal_flow.load.project import Project
from seeknal_flow.plan.partitions import is_partitioned
from seeknal_flow.run.checks import apply_on_run_checks, output_schema
from seeknal_flow.run.context import Context
from seeknal_flow.run.data_checks import check_group_output
from seeknal_flow.run.engine import NodeJob, NodeResult, Progress, node_error
from seeknal_flow.run.isolation import IsolatedCallOperator, should_isolate
from seeknal_flow.run.local import LocalEngine, register_in_place
from seeknal_flow.run.spark.consolidation import consolidate_spark
from seeknal_flow.run.spark.frames import SparkPit, spark_frame_for


class SparkEngine:
    """Runs nodes on one Spark session, started by :meth:`start` and stopped by :meth:`close`.

    A ``partitioned: true`` node runs on the local engine, partition by partition:
    its function is written for one partition at a time, and only changed
    partitions are recomputed, which is what the local engine does.
    """

    name = "spark"

    def __init__(self, project: Project, dag: Dag, memory: MemoryConfig, *, master: str | None = None,
                 conf: dict[str, Any] | None = None) -> None:
        self.project, self.dag, self.memory = project, dag, memory
        self.master = master or project.config.spark.master
        self.conf = dict(project.config.spark.conf if conf is None else conf)
        self._session: SparkSession | None = None
        self._pit: SparkPit | None = None
        self._local = LocalEngine(project, dag, memory)
        self.startup_seconds = 0.0

    @property
    def spark(self):
        if self._session is None:
            started = time.perf_counter()
            self._session = start_session(self.master, self.conf)
            self.startup_seconds = time.perf_counter() - started
        return self._session.session

    @property
    def pit(self) -> SparkPit:
        if self._pit is None:
            self._pit = SparkPit(self.spark, self.project.tmp)
        return self._pit

    def start(self) -> str | None:
        check_available()
        self.spark  # noqa: B018 - start the session now, so node times exclude it
        return f"Spark session ({self.master or 'local[*]'}) started in {self.startup_seconds:.2f}s"

    def close(self) -> None:
        if self._session is not None:
            self._session.stop()
            self._session = None

    def consolidate(self, entities: Sequence[str], on_built: Callable[[str, dict], None]) -> list[str]:
        return consolidate_spark(self.spark, self.project, self.dag, entities, on_built)

    def compute(self, job: NodeJob, progress: Progress) -> NodeResult:
        """Compute one node and replace its output; failures become :class:`NodeExecutionError`."""
        spec = job.spec
        if spec.kind == Kind.SOURCE and spec.is_database:
            # ADBC streams the rows into Parquet in this process; Spark then reads that output.
            self._local.start()
            return self._local.compute(job, progress)
        if is_partitioned(spec) and spec.kind != Kind.SOURCE:
            self._local.start()  # its memory budget counts from here, as for a local run of this node
            result = self._local.compute(job, progress)
            note = "partitioned node: ran on the local engine, one partition at a time\n"
            return replace(result, output=note + result.output)
        started = time.perf_counter()
        if self.project.reads_in_place(spec):  # the same registration as the local engine
            return register_in_place(self.project, job, started)
        node = _Node(spec, job.plan.params, _partition_keys(spec), job.previous_schema)
        try:
            written = self._compute(node)
        except SeeknalError as e:  # a failing node function (UserCodeError) included
            raise node_error(job, e, node.output) from e
        except spark_errors() as e:
            raise node_error(job, EngineError(f"Spark: {spark_error(e)}"), node.output) from e
        finally:
            if node.context is not None:
                node.context.close()
        output = node.output + "".join(line + "\n" for line in node.check_lines)
        return NodeResult(written.path, written.rows, written.bytes, time.perf_counter() - started, node.schema,
                          output)

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
                                      memory=self.memory)
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
            if self.spec.kind == Kind.FEATURE_GROUP:  # event time type, NULL keys/times (run/data_checks.py)
                self.check_lines.extend(check_group_output(self.spec, tmp, memory))
            self.check_lines.extend(apply_on_run_checks(self.spec, tmp, self.previous_schema, memory))

        return check


def _partition_keys(spec) -> list[str]:
    # Partitioned sources are read whole by Spark and written in the local Hive layout;
    # partitioned nodes do not get here (they run on the local engine).
    return list(spec.partition_by) if spec.kind == Kind.SOURCE else []


def _frame_paths(result) -> list[Path] | None:
    if isinstance(result, FeatureFrame):
        return result.paths
    return None


__all__ = ["SparkEngine"]
