"""Parquet sink: stream batches into a temp file, rename into place on success.

A failed or interrupted run never leaves a half-written output: the previous
file stays readable until the new one is complete.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from operators.atomic import replace_path

ROW_GROUP_ROWS = 1 << 20
# Batches are buffered into row groups of ROW_GROUP_ROWS rows (ParquetWriter
# makes one row group per written batch otherwise) but never beyond this many
# bytes, so wide rows do not inflate memory.
ROW_GROUP_BYTES = 64 << 20


@dataclass(frozen=True)
class SinkResult:
    path: Path
    rows: int
    bytes: int
    schema: pa.Schema
    seconds: float


def write_parquet(
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    path: Path,
    *,
    progress: Callable[[int], None] | None = None,
    before_commit: Callable[[Path], None] | None = None,
    buffer_bytes: int = ROW_GROUP_BYTES,
) -> SinkResult:
    """Write ``batches`` to ``path`` atomically and return what was written.

    ``before_commit(tmp_path)`` may inspect the finished file and raise to
    reject it; the previous ``path`` then stays as it was.

    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "x.parquet"
    >>> t = pa.table({"a": [1, 2, 3]})
    >>> write_parquet(t.schema, t.to_batches(), out).rows
    3
    """
    start = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    rows = 0
    try:
        # The background writer exits (joins its thread) before the ParquetWriter closes.
        with pq.ParquetWriter(tmp, schema, compression="zstd") as pq_writer, _BackgroundWriter(pq_writer) as writer:
            buffer: list[pa.RecordBatch] = []
            buffered_rows = buffered_bytes = 0
            for batch in batches:
                if batch.schema != schema:
                    batch = _conform(batch, schema)
                if not batch.num_rows:
                    continue
                buffer.append(batch)
                buffered_rows += batch.num_rows
                buffered_bytes += batch.nbytes
                rows += batch.num_rows
                if buffered_rows >= ROW_GROUP_ROWS or buffered_bytes >= buffer_bytes:
                    writer.write_table(pa.Table.from_batches(buffer, schema))
                    buffer, buffered_rows, buffered_bytes = [], 0, 0
                if progress is not None:
                    progress(rows)
            writer.finish(pa.Table.from_batches(buffer, schema) if buffer else None)
        if before_commit is not None:
            before_commit(tmp)
        replace_path(tmp, path)  # atomic for file over file; also replaces a directory (Spark output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return SinkResult(path, rows, path.stat().st_size, schema, time.perf_counter() - start)


class _BackgroundWriter:
    """Compress and write row groups on one thread while the caller computes the next one.

    Parquet encoding and zstd release the GIL, and so do the producers (DuckDB,
    DataFusion, the Arrow kernels), so the two overlap: a node takes about
    max(compute, write) instead of their sum. At most one row group is being written
    while the next one is buffered (one row group more in memory than writing inline).
    The last row group is written inline, so a one-row-group output starts no thread.
    """

    def __init__(self, writer: pq.ParquetWriter) -> None:
        self._writer = writer
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future | None = None

    def write_table(self, table: pa.Table) -> None:
        """Queue one row group (a table of at most ``ROW_GROUP_ROWS`` rows) behind the previous one."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="parquet-sink")
        self._wait()  # in order, and at most one in flight
        self._pending = self._pool.submit(self._writer.write_table, table, row_group_size=ROW_GROUP_ROWS)

    def finish(self, last: pa.Table | None) -> None:
        """Wait for the queued row group, then write ``last`` here; raises the writer's error."""
        self._wait()
        if last is not None:
            self._writer.write_table(last, row_group_size=ROW_GROUP_ROWS)

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> _BackgroundWriter:
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            # On an error or Ctrl-C the row group being written finishes (a C++ call
            # cannot be interrupted) before the file is closed and removed.
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    # Producers (pandas chunks, user generators) may differ in nullability or
    # metadata only; a real type change is the user's bug and pyarrow says so.
    return pa.RecordBatch.from_arrays(
        [batch.column(i).cast(field.type) for i, field in enumerate(schema)], schema=schema
    )
