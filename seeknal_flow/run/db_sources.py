"""Running a database source: the edge between a spec (with ``${VAR}``) and the ADBC scan.

Here, and only here, the connection is expanded; every message that leaves
is redacted of it and of its password. A plain source rewrites its output
file; an ``incremental`` one keeps a folder of parts and appends a part with
the rows above its watermark (or rewrites the folder on a full read). The
data hash recorded for change detection is a multiset hash of the rows
(:func:`operators.db_scan.multiset_hash`, on a DuckDB started in the background
while the database answers), so dependents re-run only when the fetched rows
changed.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from operators.atomic import replace_path
from operators.db_scan import DbRead, DbScanOperator, MultisetHasher, column_max
from operators.errors import EngineError, SeeknalError
from operators.sink import write_parquet
from seeknal_flow.authoring.specs import SourceFormat
from seeknal_flow.load.connections import expand, identity, redact, resolve_sqlite, secrets_of
from seeknal_flow.load.project import Project
from seeknal_flow.plan.fingerprint import digest
from seeknal_flow.plan.planner import DB_STATE
from seeknal_flow.run.engine import NodeJob, NodeResult, Progress, node_error

_PART = "part-{:05d}.parquet"


class RedactedScan:
    """A database scan whose error messages never carry the connection or its password.

    >>> RedactedScan.__name__
    'RedactedScan'
    """

    def __init__(self, scan: DbScanOperator, secrets: list[str]) -> None:
        self.scan, self.secrets = scan, secrets

    @property
    def schema(self) -> pa.Schema:
        try:
            return self.scan.schema
        except SeeknalError as e:
            raise EngineError(redact(str(e), self.secrets)) from None

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            yield from self.scan.batches()
        except SeeknalError as e:
            # `from None`: the driver's own exception (and its text) stays out of --debug tracebacks too.
            raise EngineError(redact(str(e), self.secrets)) from None

    def describe(self) -> str:
        return self.scan.describe()

    def close(self) -> None:
        self.scan.close()


def database_scan(spec, root: Path, watermark=None) -> RedactedScan:
    """The scan of a database source (``watermark``: read only rows above it)."""
    try:
        connection = expand(spec)
    except SeeknalError as e:
        raise EngineError(str(e)) from e
    if spec.format == SourceFormat.SQLITE:
        connection = resolve_sqlite(connection, root)
    who = identity(spec, connection)
    what = spec.table or "query"
    if spec.format == SourceFormat.SQLITE:
        where = spec.connection  # the path as written (a ${VAR} stays unexpanded)
    else:
        where = f"{who['host']}:{who['port'] or 5432}/{who['database']}"
    label = f"{spec.format.value} {where} {what}"
    read = DbRead(
        driver=spec.format.value,
        uri=connection,
        label=label,
        table=spec.table,
        query=spec.query,
        incremental_column=spec.incremental.column if spec.incremental else None,
        watermark=watermark,
        partition_column=spec.partition_on.column if spec.partition_on else None,
        partitions=spec.partition_on.partitions if spec.partition_on else 1,
    )
    return RedactedScan(DbScanOperator(read), secrets_of(connection))


def run_database_source(project: Project, job: NodeJob, progress: Progress, buffer_bytes: int) -> NodeResult:
    """Fetch the source into ``target/intermediate/`` and return what was fetched, with its data hash."""
    spec, started = job.spec, time.perf_counter()
    out = project.intermediate_path(spec.output_name)
    known = dict(job.plan.state.files.get(DB_STATE, {}))
    append = spec.incremental is not None and "watermark" in known and out.is_dir()
    hasher = MultisetHasher()  # DuckDB starts while the database connects and answers
    scan = None
    staging = None
    try:
        scan = database_scan(spec, project.root, known["watermark"] if append else None)
        schema = scan.schema
        if append and _schema_of(out) != schema:
            raise EngineError(f"the columns of {scan.scan.read.label} changed since the last run; "
                              "run with --full to re-read it")
        if spec.incremental is None:
            target = out
        elif append:
            target = out / _PART.format(_next_part(out))
        else:
            staging = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
            target = staging / _PART.format(0)
        write_parquet(schema, scan.batches(), target, progress=progress.rows, buffer_bytes=buffer_bytes)
        if append and scan.scan.rows == 0:
            target.unlink()  # nothing new: no empty part, and nothing to hash
            rows, total, top = 0, 0, None
        else:
            rows, total = hasher.hash(target)
            top = column_max(target, spec.incremental.column) if spec.incremental is not None and rows else None
        if staging is not None:
            replace_path(staging, out)
    except SeeknalError as e:
        raise node_error(job, e) from None
    finally:
        hasher.close()
        if scan is not None:
            scan.close()
        if staging is not None and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    if append:
        rows_all, total = known["rows"] + rows, (known["hashsum"] + total) % 2**64
    else:
        rows_all = rows
    record = {"rows": rows_all, "hashsum": total, "schema": schema.to_string(show_schema_metadata=False)}
    note = f"fetched {rows:,} rows"
    if spec.incremental is not None:
        new_max, text = top if top is not None else (None, "")
        # The database sent only rows above the watermark, so any maximum of them is higher;
        # physical values are not comparable here (a decimal's is its text: "10.0" < "9.5").
        if append and new_max is None:
            new_max, text = known["watermark"], known.get("watermark_text", str(known["watermark"]))
        if new_max is not None:
            record.update(watermark=new_max, watermark_text=text)
        note += (f" above {spec.incremental.column} > {known.get('watermark_text')}, appended as a new part"
                 if append else " (full read)")
        note += f"; watermark now {text or 'unset (no rows)'}"
    data = digest([record["schema"], rows_all, total])
    size = sum(p.stat().st_size for p in out.glob("*.parquet")) if out.is_dir() else out.stat().st_size
    return NodeResult(out, rows, size, time.perf_counter() - started,
                      {f.name: str(f.type) for f in schema}, note + "\n",
                      data=data, files={DB_STATE: record})


def _next_part(folder: Path) -> int:
    numbers = [int(p.stem.split("-")[1]) for p in folder.glob("part-*.parquet") if p.stem.split("-")[1].isdigit()]
    return max(numbers, default=-1) + 1


def _schema_of(folder: Path) -> pa.Schema | None:
    import pyarrow.parquet as pq

    first = min(folder.glob("part-*.parquet"), default=None)
    return None if first is None else pq.read_schema(first).remove_metadata()
