"""operators/last_rows.py: the last row per key of a sorted stream, against a plain reference."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.last_rows import ROW_COL, LastRowPerKey

KEYS = st.one_of(st.none(), st.sampled_from(["a", "b", "bb", "c", ""]))
TIMES = st.one_of(st.none(), st.integers(0, 3))
ROWS = st.lists(st.tuples(KEYS, st.integers(0, 2), TIMES), max_size=60)


def _sort_key(row):  # as DuckDB's ORDER BY: keys, then time, NULLs last
    k, k2, t, _ = row
    return (k is None, k or "", k2, t is None, t or 0)


def _reference(rows):
    """Per (k, k2): the last row in stream order among those with no NULL key or time."""
    last = {}
    for i, (k, k2, t, x) in enumerate(rows):
        if k is not None and t is not None:
            last[(k, k2)] = (k, k2, t, x, i)
    return sorted(last.values(), key=lambda r: r[4])


@settings(max_examples=150, deadline=None)
@given(ROWS, st.lists(st.integers(1, 7), min_size=1, max_size=12))
def test_last_row_of_each_key_run(raw, cuts):
    rows = sorted([(k, k2, t, i) for i, (k, k2, t) in enumerate(raw)], key=_sort_key)
    base = dt.datetime(2026, 1, 1)
    table = pa.table({
        "k": pa.array([r[0] for r in rows], pa.string()),
        "k2": pa.array([r[1] for r in rows], pa.int64()),
        "t": pa.array([None if r[2] is None else base + dt.timedelta(days=r[2]) for r in rows], pa.timestamp("us")),
        "x": pa.array([r[3] for r in rows], pa.int64()),
    })
    whole = pa.RecordBatch.from_arrays([c.combine_chunks() for c in table.columns], schema=table.schema)
    last = LastRowPerKey(["k", "k2"], "t")
    start, i = 0, 0
    while start < whole.num_rows:  # batches of the drawn sizes, an empty one between some
        size = cuts[i % len(cuts)]
        last.observe(whole.slice(start, size))
        if size % 3 == 0:
            last.observe(whole.slice(start + size, 0))
        start, i = start + size, i + 1
    got = last.table()
    want = _reference([(r[0], r[1], r[2], r[3]) for r in rows])
    if not want:
        assert got is None or got.num_rows == 0
        return
    assert got.column_names == ["k", "k2", "t", "x", ROW_COL]
    assert [(k, k2, x, n) for k, k2, x, n in zip(*(got.column(c).to_pylist() for c in ("k", "k2", "x", ROW_COL)),
                                                strict=True)] == [(k, k2, x, n) for k, k2, _t, x, n in want]


def test_a_key_that_spans_batches_keeps_its_last_row():
    t = pa.table({"k": [1] * 5 + [2], "t": [1, 2, 3, 4, 5, 1], "x": list(range(6))})
    last = LastRowPerKey(["k"], "t")
    for b in t.to_batches(max_chunksize=2):
        last.observe(b)
    assert last.table().to_pydict() == {"k": [1, 2], "t": [5, 1], "x": [4, 5], ROW_COL: [4, 5]}
