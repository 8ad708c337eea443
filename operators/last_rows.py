"""The last row of each key in a stream of rows sorted by key: latest rows without a hash table.

A feature group's rows are written sorted by its join keys, then its event time (then every
other column: ``seeknal_flow/run/ordering.py``). The latest row of a key is then the last
row of that key's run in the stream, and the rows a consolidation would pick by
``arg_max`` over (event time, file row number) are found by comparing each row's keys with
the next row's: no hashing, no second read of the file. :class:`LastRowPerKey` watches the
batches on their way to the sink and keeps only those rows (one per key), each with its row
number in the stream (its file row number once written).

Rows with a NULL key or event time are left out first, as a consolidation leaves them out;
equal keys stay contiguous (a sort puts NULL times at one end of their key's run).

>>> t = pa.table({"k": ["a", "a", "b", "b", "c"], "t": [1, 2, 1, None, 5], "x": [10, 20, 30, 40, 50]})
>>> last = LastRowPerKey(["k"], "t")
>>> for b in t.to_batches(max_chunksize=2):
...     last.observe(b)
>>> last.table().to_pydict()
{'k': ['a', 'b', 'c'], 't': [2, 1, 5], 'x': [20, 30, 50], '__seeknal_row': [1, 2, 4]}
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from operators.arrays import arrow_array, bool_array, unpack_bits, validity

__all__ = ["ROW_COL", "LastRowPerKey", "comparable_key"]

ROW_COL = "__seeknal_row"  # each kept row's number in the stream (0-based)


def comparable_key(t: pa.DataType) -> bool:
    """Types whose equality is plain value equality (no NaN, no nesting): keys this kernel handles."""
    return (pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t)
            or pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_date(t)
            or pa.types.is_timestamp(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t))


class LastRowPerKey:
    """Watches batches sorted by ``keys``; :meth:`table` gives the last row of each key (and ``ROW_COL``)."""

    def __init__(self, keys: list[str], time_col: str) -> None:
        self.keys, self.time_col = list(keys), time_col
        self._seen = 0  # rows observed so far (the next batch's first row number)
        self._parts: list[pa.RecordBatch] = []
        self._pending: pa.RecordBatch | None = None  # the last row so far: its key may go on

    def observe(self, batch: pa.RecordBatch) -> None:
        import pyarrow.compute as pc

        n = batch.num_rows
        rows = np.arange(self._seen, self._seen + n, dtype=np.int64)
        self._seen += n
        keep = None
        for name in (*self.keys, self.time_col):
            col = batch.column(name)
            if col.null_count:
                valid = validity(col)
                keep = valid if keep is None else keep & valid
        if keep is not None:
            batch, rows = batch.filter(bool_array(keep)), rows[keep]
        m = batch.num_rows
        if m == 0:
            return
        batch = batch.append_column(ROW_COL, arrow_array(rows))
        first = self._key(batch, 0)
        if self._pending is not None and self._key(self._pending, 0) != first:
            self._parts.append(self._pending)
        # Row i ends its key's run when row i + 1 has another key (the last row waits for the next batch).
        ends = np.zeros(m - 1, dtype=bool)
        for name in self.keys if m > 1 else ():
            col = batch.column(name)
            differ = pc.not_equal(col.slice(0, m - 1), col.slice(1))  # no NULLs left: a plain bitmap
            ends |= unpack_bits(differ.buffers()[1], differ.offset, len(differ))
        if ends.any():
            self._parts.append(batch.take(arrow_array(np.flatnonzero(ends).astype(np.int64))))
        self._pending = batch.slice(m - 1)

    def _key(self, batch: pa.RecordBatch, i: int) -> tuple:
        return tuple(batch.column(name)[i].as_py() for name in self.keys)

    def table(self) -> pa.Table | None:
        """The kept rows, in stream order (None before any batch with a non-NULL key and time)."""
        parts = self._parts + ([self._pending] if self._pending is not None else [])
        if not parts:
            return None
        return pa.Table.from_batches(parts)
