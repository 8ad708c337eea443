"""Source scans: CSV, Parquet (file, directory, Hive partitions), JSON and JSONL.

All scans stream: batches are read from disk only when the consumer pulls.
CSV goes through pyarrow's streaming reader (it reports the line of a bad row,
where DuckDB's sniffer silently falls back to a one-column table); Parquet
through ``pyarrow.dataset`` (projection and predicate pushdown); JSON through
DuckDB, which understands both arrays of objects and newline-delimited files.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from operators.base import with_constant_columns
from operators.datasets import HIVE_SEGMENT, footer_summary, parquet_dataset
from operators.errors import EngineError
from operators.memory import MemoryConfig, duckdb_connection

BATCH_ROWS = 128 * 1024
_CSV_OPTIONS = {
    "delimiter", "quote_char", "escape_char", "header", "skip_rows", "null_values", "column_types", "encoding",
}


class ScanOperator:
    """Stream one source file or directory as RecordBatches.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "x.csv")
    >>> _ = open(p, "w").write("a,b\\n1,x\\n2,y\\n")
    >>> ScanOperator("csv", Path(p)).read_all().num_rows
    2
    """

    def __init__(
        self,
        fmt: str,
        path: Path,
        *,
        params: dict[str, Any] | None = None,
        partition_by: tuple[str, ...] = (),
        memory: MemoryConfig | None = None,
        display_path: str | None = None,
    ) -> None:
        self.fmt = fmt
        self.path = path
        self.params = dict(params or {})
        self.partition_by = tuple(partition_by)
        self.memory = memory or MemoryConfig()
        self.display_path = display_path or str(path)
        self._schema: pa.Schema | None = None
        self._footer: tuple[pa.Schema, int] | None = None

    def describe(self) -> str:
        return f"Scan[{self.fmt}]({self.display_path})"

    @property
    def schema(self) -> pa.Schema:
        if self._schema is None and self.fmt == "parquet":
            # From the footers: opening a scanner would start reading row groups.
            self._schema = self._footers()[0]
        if self._schema is None:
            reader = self._open()
            self._schema = reader.schema
            reader.close() if hasattr(reader, "close") else None
        return self._schema

    def batches(self) -> Iterator[pa.RecordBatch]:
        reader = self._open()
        try:
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except pa.ArrowInvalid as e:
                    raise EngineError(self._explain(e, reader.schema)) from e
                yield batch
        finally:
            if hasattr(reader, "close"):
                reader.close()

    def read_all(self) -> pa.Table:
        return pa.Table.from_batches(list(self.batches()), schema=self.schema)

    def _open(self):
        if not self.path.exists():
            raise EngineError(f"data file '{self.display_path}' does not exist; check the source's `table` path")
        try:
            if self.fmt in ("csv", "json", "jsonl") and self.path.is_dir():
                return _DirectoryReader(self)
            if self.fmt == "csv":
                return self._open_csv()
            if self.fmt == "parquet":
                return self._open_parquet()
            if self.fmt in ("json", "jsonl"):
                return self._open_json()
        except pa.ArrowInvalid as e:
            raise EngineError(self._explain(e)) from e
        raise EngineError(f"unsupported source format '{self.fmt}'; use csv, parquet, json or jsonl")

    def _open_csv(self):
        import pyarrow.csv as csv

        unknown = set(self.params) - _CSV_OPTIONS
        if unknown:
            raise EngineError(
                f"unknown CSV param(s) {sorted(unknown)} for '{self.display_path}'; "
                f"valid: {', '.join(sorted(_CSV_OPTIONS))}"
            )
        p = self.params
        header = p.get("header", True)
        read = csv.ReadOptions(
            use_threads=False,  # keeps row numbers in parse errors
            # Types are inferred from the first block: a large one sees most
            # files whole, so a late "2.5" in an integer column is rare.
            block_size=64 << 20,
            skip_rows=int(p.get("skip_rows", 0)),
            autogenerate_column_names=not header,
            encoding=p.get("encoding", "utf8"),
        )
        parse = csv.ParseOptions(
            delimiter=p.get("delimiter", ","),
            quote_char=p.get("quote_char", '"'),
            escape_char=p.get("escape_char", False),
        )
        convert = csv.ConvertOptions(
            null_values=p.get("null_values", ["", "NULL", "null", "NA", "N/A"]),
            strings_can_be_null=True,
            column_types={k: _type_from_name(v, k, self.display_path) for k, v in p.get("column_types", {}).items()},
        )
        return csv.open_csv(self.path, read_options=read, parse_options=parse, convert_options=convert)

    def _parquet_dataset(self):

        if not self.path.exists():
            raise EngineError(f"data file '{self.display_path}' does not exist; check the source's `table` path")
        try:
            return parquet_dataset(self.path)
        except FileNotFoundError as e:
            raise EngineError(f"no Parquet files under '{self.display_path}'") from e
        except (pa.ArrowInvalid, OSError) as e:
            raise EngineError(f"cannot read '{self.display_path}' as Parquet: {first_line(str(e))}") from e

    def count_rows(self) -> int:
        """Rows of a Parquet source, from its footers (no data read)."""
        return self._footers()[1]

    def _footers(self) -> tuple[pa.Schema, int]:
        if self._footer is None:
            self._footer = self.footers()
        return self._footer

    def footers(self, *, files: list[Path] | None = None, known_rows: dict[str, int] | None = None,
                ) -> tuple[pa.Schema, int]:
        """Schema and row count of a Parquet source from its footers (see ``datasets.footer_summary``)."""

        if not self.path.exists():
            raise EngineError(f"data file '{self.display_path}' does not exist; check the source's `table` path")
        try:
            return footer_summary(self.path, files=files, known_rows=known_rows)
        except FileNotFoundError as e:
            raise EngineError(f"no Parquet files under '{self.display_path}'") from e
        except (pa.ArrowInvalid, OSError) as e:
            # The damaged file, as the user wrote its folder: `data/tx/order_date=.../part-0.parquet: ...`
            text = first_line(str(e)).replace(str(self.path), self.display_path.rstrip("/"))
            raise EngineError(f"cannot read '{self.display_path}' as Parquet: {text}") from e

    def _open_parquet(self):
        dataset = self._parquet_dataset()
        if self.partition_by:
            missing = [c for c in self.partition_by if c not in dataset.schema.names]
            if missing:
                raise EngineError(
                    f"partition column(s) {missing} not found in '{self.display_path}'; "
                    f"expected Hive folders like {missing[0]}=VALUE/"
                )
        # Bounded read-ahead: the default keeps many batches of many files in flight.
        return dataset.scanner(batch_size=BATCH_ROWS, batch_readahead=2, fragment_readahead=1).to_reader()

    def _open_json(self):
        import duckdb  # JSON is read by DuckDB: loaded only for JSON sources

        fmt = "newline_delimited" if self.fmt == "jsonl" else "auto"
        con = duckdb_connection(self.memory, shared=True)
        try:
            rel = con.sql(
                "SELECT * FROM read_json(?, format = ?)", params=[str(self.path), fmt]
            )
            return _ClosingReader(rel.to_arrow_reader(BATCH_ROWS), con)
        except duckdb.Error as e:
            con.close()
            raise EngineError(f"cannot read JSON '{self.display_path}': {first_line(str(e))}") from e

    def _explain(self, error: Exception, schema: pa.Schema | None = None) -> str:
        text = first_line(str(error))
        conversion = re.match(r"In CSV column #(\d+): Row #(\d+): (CSV conversion error to \w+: .*)", text)
        names = schema.names if schema is not None else self._csv_header()
        if conversion and int(conversion.group(1)) < len(names):
            col = names[int(conversion.group(1))]
            return (
                f"'{self.display_path}' line {conversion.group(2)}, column '{col}': {conversion.group(3)}; "
                f"set params: column_types: {{{col}: string}} (or the type that fits)"
            )
        if "CSV parse error" in text:
            where = text.removeprefix("CSV parse error: ").replace("Row #", "line ")
            return (f"malformed CSV row in '{self.display_path}': {where}; "
                    "fix the row or set params (delimiter, quote_char)")
        if "CSV conversion error" in text:
            return f"'{self.display_path}': {text}; set params.column_types for that column"
        return f"cannot read '{self.display_path}': {text}"


    def _csv_header(self) -> list[str]:
        import csv as pycsv

        try:
            with open(self.path, newline="", encoding=self.params.get("encoding", "utf8")) as f:
                return next(pycsv.reader(f, delimiter=self.params.get("delimiter", ",")))
        except (OSError, StopIteration, UnicodeDecodeError, pycsv.Error):
            return []


class _DirectoryReader:
    """A folder of CSV/JSON files (Hive ``key=value`` folders become string columns), one file at a time."""

    _SUFFIXES = {"csv": (".csv", ".tsv", ".txt"), "json": (".json",), "jsonl": (".jsonl", ".ndjson", ".json")}

    def __init__(self, scan: ScanOperator) -> None:

        self._scan = scan
        base = scan.path
        while HIVE_SEGMENT.match(base.name):
            base = base.parent
        self._files = sorted(
            p for p in scan.path.rglob("*")
            if p.is_file() and p.suffix.lower() in self._SUFFIXES[scan.fmt]
            and not any(part.startswith((".", "_")) for part in p.relative_to(scan.path).parts)
        )
        if not self._files:
            raise EngineError(f"no {scan.fmt} files under '{scan.display_path}'")
        self._keys = [
            [tuple(part.split("=", 1)) for part in f.relative_to(base).parts[:-1] if HIVE_SEGMENT.match(part)]
            for f in self._files
        ]
        self._index = -1
        self._reader = None
        first = self._open(0)
        self.schema = first.schema
        self._reader, self._index = first, 0

    def _open(self, i: int):
        part = ScanOperator(self._scan.fmt, self._files[i], params=self._scan.params, memory=self._scan.memory,
                            display_path=str(self._files[i]))
        reader = part._open()
        return _WithColumns(reader, self._keys[i])

    def read_next_batch(self) -> pa.RecordBatch:
        while True:
            try:
                batch = self._reader.read_next_batch()
            except StopIteration:
                self._reader.close()
                if self._index + 1 >= len(self._files):
                    raise
                self._index += 1
                self._reader = self._open(self._index)
                continue
            if batch.schema != self.schema:
                try:
                    batch = batch.cast(self.schema)
                except (pa.ArrowInvalid, ValueError, TypeError) as e:
                    raise EngineError(
                        f"'{self._files[self._index]}' has columns {batch.schema.names} of other types than the "
                        f"first file's; set params.column_types"
                    ) from e
            return batch

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()


class _WithColumns:
    """A reader whose batches carry the partition values of its file's folders as columns."""

    def __init__(self, reader, pairs: list[tuple[str, str]]) -> None:

        self._reader = reader
        self.schema, self._batches = with_constant_columns(reader.schema, self._pull(), pairs)

    def _pull(self):
        while True:
            try:
                yield self._reader.read_next_batch()
            except StopIteration:
                return

    def read_next_batch(self) -> pa.RecordBatch:
        return next(self._batches)

    def close(self) -> None:
        if hasattr(self._reader, "close"):
            self._reader.close()


class _ClosingReader:
    """A reader that closes its DuckDB connection when exhausted."""

    def __init__(self, reader: pa.RecordBatchReader, con) -> None:
        self._reader, self._con = reader, con
        self.schema = reader.schema

    def read_next_batch(self) -> pa.RecordBatch:
        return self._reader.read_next_batch()

    def close(self) -> None:
        self._reader.close()
        self._con.close()


def _type_from_name(name: str, column: str, path: str) -> pa.DataType:
    try:
        return pa.type_for_alias(name)
    except ValueError as e:
        raise EngineError(
            f"'{path}': unknown column type {name!r} for column '{column}' in params.column_types; "
            "use e.g. string, int64, double, date32, timestamp[us]"
        ) from e


def first_line(text: str) -> str:
    r"""Collapse an engine message to one line, dropping SQL excerpts and caret markers.

    >>> first_line('Binder Error: column "x" not found\nCandidate bindings: "a"\n\nLINE 1: SELECT x\n       ^')
    'Binder Error: column "x" not found; Candidate bindings: "a"'
    """
    kept = []
    for line in str(text).strip().splitlines():
        line = line.strip()
        if line.startswith("LINE ") or set(line) <= {"^", " "}:
            break
        kept.append(line)
    return "; ".join(kept[:3])[:400]
