"""Parquet sink: stream batches into a temp file, rename into place on success.

A failed or interrupted run never leaves a half-written output: the previous
file stays readable until the new one is complete.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from operators.atomic import replace_path
from operators.parquet_concat import ConcatenatedFile, encode_part

ROW_GROUP_ROWS = 1 << 20
# Batches are buffered into row groups of ROW_GROUP_ROWS rows (ParquetWriter
# makes one row group per written batch otherwise) but never beyond this many
# bytes, so wide rows do not inflate memory.
ROW_GROUP_BYTES = 64 << 20
MAX_THREADS = 4  # encoders at most: each holds a row group (up to ROW_GROUP_BYTES)
MIN_SPLIT_ROWS = 1 << 17  # the last table is cut into row groups of at least this many rows


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
    threads: int | None = None,
) -> SinkResult:
    """Write ``batches`` to ``path`` atomically and return what was written.

    ``before_commit(tmp_path)`` may inspect the finished file and raise to
    reject it; the previous ``path`` then stays as it was. Row groups are encoded on
    ``threads`` threads (default: the cores; at most ``MAX_THREADS``), each holding
    one row group of at most ``buffer_bytes``.

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
    encoders = max(1, min(threads or os.cpu_count() or 1, MAX_THREADS))
    try:
        # The encoders exit (join their threads) before the file closes.
        with open(tmp, "wb") as f, _ParallelRowGroups(f, schema, encoders) as writer:
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


class _ParallelRowGroups:
    """Encode row groups on up to ``threads`` threads while the caller computes the next one.

    Each row group becomes a small Parquet file in memory on a worker thread
    (:func:`operators.parquet_concat.encode_part`: encoding and zstd release the GIL,
    and so do the producers: DuckDB, DataFusion, the Arrow kernels), then its bytes
    are appended to the output in order. A node takes about max(compute, write /
    threads) instead of their sum. At most ``threads`` row groups are being encoded
    while the next one is buffered. The last table is cut into row groups of at
    least ``MIN_SPLIT_ROWS`` rows so that a one-row-group output is encoded on
    several threads too; a small one is encoded here, starting no thread.
    """

    def __init__(self, f, schema: pa.Schema, threads: int) -> None:
        self._out = ConcatenatedFile(f)
        self._schema = schema
        self._threads = max(1, threads)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[Future] = deque()

    def write_table(self, table: pa.Table) -> None:
        """Queue one row group (a table of at most about ``ROW_GROUP_ROWS`` rows) behind the others."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="parquet-sink")
        while len(self._pending) >= self._threads:
            self._out.append(self._pending.popleft().result())
        self._pending.append(self._pool.submit(encode_part, table))

    def finish(self, last: pa.Table | None) -> None:
        """Encode ``last``, append every queued row group, write the footer; raises the encoders' error."""
        pieces = _split(last, self._threads) if last is not None else []
        if len(pieces) == 1 and not self._pending:
            self._out.append(encode_part(pieces[0]))
        else:
            for piece in pieces:
                self.write_table(piece)
        while self._pending:
            self._out.append(self._pending.popleft().result())
        if not self._out.rows:
            self._out.append(encode_part(self._schema.empty_table()))
        self._out.close()

    def __enter__(self) -> _ParallelRowGroups:
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            # On an error or Ctrl-C the row groups being encoded finish (a C++ call
            # cannot be interrupted) before the file is closed and removed.
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _split(table: pa.Table, threads: int) -> list[pa.Table]:
    n = min(threads, table.num_rows // MIN_SPLIT_ROWS)
    if n <= 1:
        return [table]
    size = -(-table.num_rows // n)
    return [table.slice(a, size) for a in range(0, table.num_rows, size)]


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    # Producers (pandas chunks, user generators) may differ in nullability or
    # metadata only; a real type change is the user's bug and pyarrow says so.
    return pa.RecordBatch.from_arrays(
        [batch.column(i).cast(field.type) for i, field in enumerate(schema)], schema=schema
    )
