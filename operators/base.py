"""The operator protocol: a schema plus a pull-based stream of RecordBatches.

Operators form chains: each one pulls batches from its inputs only when its own
consumer asks for the next batch, so a chain scan -> sql -> sink holds at most a
few batches in memory at a time (DuckDB / DataFusion may buffer internally under
their own memory limits).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import pyarrow as pa

from operators.errors import EngineError


@runtime_checkable
class Operator(Protocol):
    """Anything with an Arrow schema that yields RecordBatches on demand."""

    @property
    def schema(self) -> pa.Schema: ...

    def batches(self) -> Iterator[pa.RecordBatch]: ...

    def describe(self) -> str: ...


class ReaderOperator:
    """Wraps an already-open ``pa.RecordBatchReader`` as an operator.

    >>> op = ReaderOperator(pa.table({"a": [1, 2]}).to_reader(), "example")
    >>> [b.num_rows for b in op.batches()]
    [2]
    """

    def __init__(self, reader: pa.RecordBatchReader, label: str) -> None:
        self._reader = reader
        self._label = label

    @property
    def schema(self) -> pa.Schema:
        return self._reader.schema

    def batches(self) -> Iterator[pa.RecordBatch]:
        yield from self._reader

    def describe(self) -> str:
        return f"Reader({self._label})"


def with_constant_columns(
    schema: pa.Schema, batches: Iterator[pa.RecordBatch], pairs: list[tuple[str, str]]
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """Append ``(name, value)`` string columns (e.g. Hive partition values) the batches lack.

    >>> batches = iter([pa.record_batch({"x": [1]})])
    >>> s, bs = with_constant_columns(pa.schema([("x", pa.int64())]), batches, [("day", "1")])
    >>> next(bs).to_pylist()
    [{'x': 1, 'day': '1'}]
    """
    missing = [(k, v) for k, v in pairs if k not in schema.names]
    if not missing:
        return schema, batches
    for k, _ in missing:
        schema = schema.append(pa.field(k, pa.string()))

    def extend() -> Iterator[pa.RecordBatch]:
        for batch in batches:
            extra = [constant_strings(v, batch.num_rows) for _, v in missing]
            yield pa.RecordBatch.from_arrays([*batch.columns, *extra], schema=schema)

    return schema, extend()


def constant_strings(value: str, n: int) -> pa.Array:
    """``n`` copies of ``value`` as a string array, built from buffers.

    pyarrow imports pandas (0.3 s) on its first conversion of Python objects; a
    run that only copies partition values into batches should not pay for that.

    >>> constant_strings("2025-01-02", 2).to_pylist()
    ['2025-01-02', '2025-01-02']
    """
    import numpy as np

    data = value.encode()
    if len(data) * n >= 2**31:
        raise EngineError(f"partition value {value[:40]!r}... is too long to repeat on {n:,} rows")
    offsets = np.arange(n + 1, dtype=np.int32) * len(data)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data * n))


def to_reader(op: Operator) -> pa.RecordBatchReader:
    """Expose an operator as a ``pa.RecordBatchReader`` (lazy: pulls on demand).

    >>> to_reader(ReaderOperator(pa.table({"a": [1]}).to_reader(), "t")).read_all().num_rows
    1
    """
    return pa.RecordBatchReader.from_batches(op.schema, op.batches())
