"""The inputs of the ASOF join: in-memory tables, one-shot streams and Parquet paths, read in chunks.

A right input is processed in :class:`Chunk` units (a Parquet row group or a
slice of a table) so the kernel can fold them on several threads; a Parquet
file's value columns are read later, only for the row groups that hold a match.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from operators.base import to_reader
from operators.errors import EngineError

WHOLE_ROW_GROUP = 1 << 22  # larger row groups are read in batches of BATCH rows
BATCH = 1 << 20
TABLE_CHUNK = 1 << 20  # rows per unit of work when the right side is in memory
SLICE = 1 << 18  # rows encoded at a time


class Source:
    """One input: an in-memory table, a one-shot stream, or a Parquet path."""

    def __init__(self, side: str, table=None, reader=None, path=None) -> None:
        self.side, self._table, self._reader, self.path = side, table, reader, path
        self._buffered: list[pa.RecordBatch] = []
        self._files: dict = {}
        self._lock = threading.Lock()
        self.dataset = None
        if path is not None and not self.single_file:
            import pyarrow.dataset as ds  # ~0.2 s to import: only for directories

            self.dataset = ds.dataset(path, format="parquet", partitioning="hive")
        src = table if table is not None else reader
        if src is not None:
            self.schema = src.schema
        else:
            self.schema = self._file().schema_arrow if self.dataset is None else self.dataset.schema

    @classmethod
    def of(cls, obj, side: str) -> Source:
        if isinstance(obj, pa.Table):
            return cls(side, table=obj)
        if isinstance(obj, (str, os.PathLike)):
            return cls(side, path=Path(obj))
        return cls(side, reader=maybe_reader(obj))

    @property
    def single_file(self) -> bool:
        return self.path is not None and self.path.is_file()

    def num_rows(self) -> int:
        if self._table is not None:
            return self._table.num_rows
        if self.single_file:
            return self._file().metadata.num_rows
        return self.table().num_rows if self.path is None else self.dataset.count_rows()

    def estimate(self, budget: int) -> int:
        """Bytes in memory; a stream is buffered only until it exceeds ``budget``."""
        if self._table is not None:
            return self._table.nbytes
        if self.path is not None:
            metas = [self._file().metadata] if self.single_file else \
                [frag.metadata for frag in self.dataset.get_fragments()]
            return sum(m.row_group(i).total_byte_size for m in metas for i in range(m.num_row_groups))
        size = sum(b.nbytes for b in self._buffered)
        while size <= budget:
            batch = next_batch(self._reader)
            if batch is None:
                self._table = pa.Table.from_batches(self._buffered, self.schema)
                self._buffered = []
                return self._table.nbytes
            self._buffered.append(batch)
            size += batch.nbytes
        return size

    def read(self, columns: list[str] | None, dictionary: list[str] | None = None) -> pa.Table:
        if self.single_file:  # the single-file reader is faster than a dataset scan
            return self._file(tuple(dictionary or ())).read(columns=columns, use_threads=True)
        import pyarrow.dataset as ds

        fmt = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=dictionary or []))
        return ds.dataset(self.path, format=fmt, partitioning="hive").to_table(columns=columns)

    def batches(self, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        if self.single_file:
            # Row group by row group: over a whole file, iter_batches pre-buffers all of it.
            pf = self._file()
            for i in range(pf.metadata.num_row_groups):
                yield from pf.iter_batches(262_144, row_groups=[i], columns=columns)
            return
        if self.path is not None:
            yield from self.dataset.to_batches(columns=columns, batch_size=262_144,
                                               batch_readahead=2, fragment_readahead=1)
            return
        if self._table is not None:
            src: Iterator[pa.RecordBatch] = iter(self._table.to_batches())
        else:
            src = chain(self._buffered, self._reader)
        for batch in src:
            yield batch.select(columns) if columns is not None else batch

    def table(self, columns: list[str] | None = None) -> pa.Table:
        if self.path is not None:
            return self.read(columns)
        if self._table is None:
            self._table = pa.Table.from_batches(list(self.batches()), self.schema)
            self._buffered, self._reader = [], None
        return self._table.select(columns) if columns is not None else self._table

    # Units of work for the in-memory join: row groups of one Parquet file, else slices.

    def chunks(self, columns: list[str]) -> list[Chunk]:
        """Consecutive pieces of the input, each readable on its own (from any thread)."""
        if self.single_file:
            meta = self._file().metadata
            out, start = [], 0
            for i in range(meta.num_row_groups):
                n = meta.row_group(i).num_rows
                out.append(Chunk(self, start, n, row_group=i))
                start += n
            return out
        table = self.table(columns if self.path is not None else None)
        return [Chunk(self, s, min(TABLE_CHUNK, table.num_rows - s), table=table)
                for s in range(0, table.num_rows, TABLE_CHUNK)]

    def _file(self, dictionary: tuple[str, ...] = ()):
        """This thread's open ``ParquetFile`` (a file object is not shared between threads)."""
        import pyarrow.parquet as pq

        key = (threading.get_ident(), dictionary)
        with self._lock:
            pf = self._files.get(key)
        if pf is None:
            pf = pq.ParquetFile(self.path, read_dictionary=list(dictionary) or None)
            with self._lock:
                self._files[key] = pf
        return pf

    def close(self) -> None:
        with self._lock:
            files, self._files = list(self._files.values()), {}
        for pf in files:
            pf.close()

    def dictionary_worthy(self, names: list[str]) -> list[str]:
        """Text columns stored dictionary-encoded (cheap to read as dictionaries).

        Plain-encoded strings take at least 4 bytes per value (the length), so
        fewer bytes per value means the pages hold dictionary indices.
        """
        meta = self._file().metadata
        if not meta.num_row_groups:
            return []
        index = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
        out = []
        for name in names:
            t = self.schema.field(name).type
            if not (pa.types.is_string(t) or pa.types.is_large_string(t)) or name not in index:
                continue
            col = meta.row_group(0).column(index[name])
            if col.has_dictionary_page and col.total_uncompressed_size < 4 * max(col.num_values, 1):
                out.append(name)
        return out


class Chunk:
    """Rows ``start .. start + num_rows`` of a right input: a Parquet row group or a table slice."""

    def __init__(self, src: Source, start: int, num_rows: int, row_group: int | None = None,
                 table: pa.Table | None = None) -> None:
        self.src, self.start, self.num_rows = src, start, num_rows
        self.row_group, self._table = row_group, table

    def read(self, columns: list[str]) -> pa.Table:
        """The whole row group (Parquet chunks only)."""
        return self.src._file().read_row_group(self.row_group, columns=columns, use_threads=False)

    def batches(self, columns: list[str], dictionary: tuple[str, ...] = ()) -> Iterator[pa.RecordBatch]:
        if self._table is not None:
            yield from self._table.slice(self.start, self.num_rows).select(columns).to_batches()
            return
        pf = self.src._file(dictionary)
        if self.num_rows <= WHOLE_ROW_GROUP:
            yield from pf.read_row_group(self.row_group, columns=columns, use_threads=False).to_batches()
        else:
            yield from pf.iter_batches(BATCH, row_groups=[self.row_group], columns=columns,
                                       use_threads=False)


def next_batch(reader: pa.RecordBatchReader):
    try:
        return reader.read_next_batch()
    except StopIteration:
        return None


def chain(first: list[pa.RecordBatch], reader) -> Iterator[pa.RecordBatch]:
    yield from first
    if reader is not None:
        yield from reader


def maybe_reader(obj):
    if isinstance(obj, (pa.Table, pa.RecordBatchReader, str, os.PathLike)):
        return obj
    if hasattr(obj, "batches") and hasattr(obj, "schema"):
        return to_reader(obj)
    if hasattr(obj, "__arrow_c_stream__"):
        return pa.RecordBatchReader.from_stream(obj)
    raise EngineError(f"asof join input {type(obj).__name__} is not Arrow data")


def schema_of(obj) -> pa.Schema:
    if isinstance(obj, (str, os.PathLike)):
        src = Source.of(obj, "right")
        src.close()
        return src.schema
    if hasattr(obj, "schema"):
        return obj.schema
    return pa.RecordBatchReader.from_stream(obj).schema
