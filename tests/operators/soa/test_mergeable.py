"""Mergeable SOA state: after any sequence of partition edits, incremental == full recompute."""

from __future__ import annotations

import datetime as dt
import math
import random
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.memory import MemoryConfig
from operators.soa.execute import SOAOperator, execute_soa
from operators.soa.mergeable import IncrementalSOA, not_mergeable
from operators.soa.spec import SOAFeature, SOAQuery, SOARatio, SOASince
from seeknal_flow.run.ordering import SortedOperator

MEM = MemoryConfig(threads=1)
APP = dt.date(2026, 1, 20)
QUERY = SOAQuery(
    id_col="k", feature_date_col="d", application_date_col="app",
    features={
        "x": SOAFeature(basic=("sum", "count", "mean", "min", "max", "stddev", "var")),
        "n": SOAFeature(basic=("sum", "max", "mean", "std")),
        "recent": SOAFeature(source_feature="x", window=(0, 3), basic=("sum", "min", "stddev")),
        "trend": SOAFeature(source_feature="x", ratio=SOARatio(numerator=(0, 3), denominator=(4, 30),
                                                              aggs=("sum", "count", "max", "stddev"))),
        "big": SOAFeature(source_feature="x", since=SOASince(condition="x > 5", aggs=("count", "mean"))),
    },
)

# One row: id (a few, and NULL), a float (or NULL), an int, a feature day (some after APP: future rows).
_row = st.tuples(
    st.sampled_from(["a", "b", "B", "é", "a b", None]),
    st.one_of(st.none(), st.floats(min_value=-100, max_value=100, allow_nan=False)),
    st.integers(min_value=-1000, max_value=1000),
    st.integers(min_value=-5, max_value=30),
)
_rows = st.lists(_row, min_size=0, max_size=12)
# An edit: add or change partition p (with these rows), or remove it.
_edit = st.one_of(
    st.tuples(st.just("put"), st.integers(0, 5), _rows),
    st.tuples(st.just("remove"), st.integers(0, 5), st.just([])),
)


def _table(rows) -> pa.Table:
    return pa.table({
        "k": pa.array([r[0] for r in rows], pa.string()),
        "x": pa.array([r[1] for r in rows], pa.float64()),
        "n": pa.array([r[2] for r in rows], pa.int32()),
        "d": pa.array([APP - dt.timedelta(days=r[3]) for r in rows], pa.date32()),
        "app": pa.array([APP] * len(rows), pa.date32()),
    })


def _put(root: Path, p: int, rows) -> None:
    folder = root / f"day={p}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    # A new file name each time, as a partitioned node's writer does.
    pq.write_table(_table(rows), folder / f"part-{uuid.uuid4().hex[:6]}.parquet")


def _rows_of(t: pa.Table) -> list[dict]:
    return sorted(t.to_pylist(), key=lambda r: (r["k"] is None, (r["k"] or "").encode()))


def assert_same(got: pa.Table, want: pa.Table) -> None:
    got = got.cast(want.schema)  # the contract types (the run casts the same way)
    g, w = _rows_of(got), _rows_of(want)
    assert [r["k"] for r in g] == [r["k"] for r in w]
    for a, b in zip(g, w, strict=True):
        for col, v in b.items():
            u = a[col]
            if isinstance(v, float) and isinstance(u, float) and math.isnan(v):
                assert math.isnan(u), (col, u, v)  # 0 / 0 in both
            elif isinstance(v, float) and isinstance(u, float):
                # Sums in another order: equal within a tight relative tolerance (absolute near 0).
                assert math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-9), (col, u, v)
            else:
                assert u == v, (a["k"], col, u, v)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=st.lists(_rows, min_size=1, max_size=4), edits=st.lists(_edit, min_size=1, max_size=4))
def test_incremental_equals_full_recompute(first, edits):
    tmp = Path(tempfile.mkdtemp())
    try:
        root, state = tmp / "in", tmp / "state"
        for p, rows in enumerate(first):
            _put(root, p, rows)
        IncrementalSOA(QUERY, root, state, memory=MEM).update()
        for op, p, rows in edits:
            if op == "put":
                _put(root, p, rows)
            else:
                shutil.rmtree(root / f"day={p}", ignore_errors=True)
            if not any(root.rglob("*.parquet")):
                continue  # no input at all: nothing to aggregate (the run refuses it)
            soa = IncrementalSOA(QUERY, root, state, memory=MEM)
            soa.update()
            want = execute_soa(QUERY, str(root), memory=MEM).read_all()
            got = soa.result().read_all()
            assert_same(got, want)
            # Rows in the order the run defines for a full SOA (SortedOperator: ids, NULL last).
            op = SortedOperator(SOAOperator(QUERY, str(root), memory=MEM), ["k"], MEM)
            ordered = pa.Table.from_batches(list(op.batches()), schema=op.schema)
            assert got.column("k").to_pylist() == ordered.column("k").to_pylist()
            # ... and what a full run writes: the plan sorted by id (run/chains.py).
            by_id = SOAOperator(QUERY, str(root), memory=MEM, by_id=True)
            assert pa.Table.from_batches(list(by_id.batches()), schema=by_id.schema).equals(ordered)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_new_partitions_are_merged_and_changes_recompute(tmp_path):
    root, state = tmp_path / "in", tmp_path / "state"
    for p in range(3):
        _put(root, p, [("a", 1.0, 1, 1), ("b", 2.0, 2, 2)])
    msg = IncrementalSOA(QUERY, root, state, memory=MEM).update()
    assert msg == "3 input partitions aggregated in full (no earlier state)"
    _put(root, 3, [("a", 4.0, 1, 1)])
    msg = IncrementalSOA(QUERY, root, state, memory=MEM).update()
    assert msg == "1 new of 4 input partitions merged into the totals"
    _put(root, 1, [("c", 4.0, 1, 1)])
    shutil.rmtree(root / "day=0")
    msg = IncrementalSOA(QUERY, root, state, memory=MEM).update()
    assert msg == "3 input partitions aggregated in full (1 changed, 1 removed: min/max cannot be taken back)"
    soa = IncrementalSOA(QUERY, root, state, memory=MEM)
    assert soa.update() == "0 of 3 input partitions changed"
    assert_same(soa.result().read_all(), execute_soa(QUERY, str(root), memory=MEM).read_all())
    assert len(list(state.glob("totals-*.arrow"))) == 1  # replaced totals are gone


def test_a_run_killed_before_the_manifest_keeps_the_previous_state(tmp_path, monkeypatch):
    root, state = tmp_path / "in", tmp_path / "state"
    _put(root, 0, [("a", 1.0, 1, 1)])
    IncrementalSOA(QUERY, root, state, memory=MEM).update()
    manifest = (state / "manifest.json").read_text()
    _put(root, 1, [("a", 2.0, 1, 1)])

    def killed(*_a):
        raise KeyboardInterrupt

    monkeypatch.setattr("operators.soa.mergeable.os.replace", killed)
    with pytest.raises(KeyboardInterrupt):
        IncrementalSOA(QUERY, root, state, memory=MEM).update()
    monkeypatch.undo()
    assert (state / "manifest.json").read_text() == manifest
    assert len(list(state.glob("totals-*.arrow"))) == 1
    soa = IncrementalSOA(QUERY, root, state, memory=MEM)
    assert soa.update() == "1 new of 2 input partitions merged into the totals"
    assert_same(soa.result().read_all(), execute_soa(QUERY, str(root), memory=MEM).read_all())


def test_not_mergeable_aggregates_are_named():
    q = SOAQuery(id_col="k", feature_date_col="d", application_date_col="app",
                 features={"x": SOAFeature(basic=("count_distinct", "median", "stddev", "sum"))})
    assert not_mergeable(q, temporal=False) == "count_distinct, median are not mergeable"
    assert not_mergeable(QUERY, temporal=True) == "a temporal SOA (spine) is not mergeable"
    assert not_mergeable(QUERY, temporal=False) is None


def test_a_damaged_totals_file_is_rebuilt_from_the_input(tmp_path):
    root, state = tmp_path / "in", tmp_path / "state"
    _put(root, 0, [("a", 1.0, 1, 1)])
    IncrementalSOA(QUERY, root, state, memory=MEM).update()
    next(state.glob("totals-*.arrow")).write_bytes(b"garbage")
    _put(root, 1, [("a", 2.0, 1, 1)])
    soa = IncrementalSOA(QUERY, root, state, memory=MEM)
    assert soa.update() == "2 input partitions aggregated in full (the kept totals did not fit)"
    assert_same(soa.result().read_all(), execute_soa(QUERY, str(root), memory=MEM).read_all())


@pytest.mark.parametrize("new_ids", [False, True])
def test_many_ids_on_two_threads_stay_in_id_order(tmp_path, new_ids):
    # Large enough for several batches and partitions: the merged rows are put in place
    # (or, with new ids, sorted again) and the output keeps the full run's order.
    mem = MemoryConfig(threads=2)
    rng = random.Random(7)
    ids = [f"c{i:05d}" for i in range(20_000)]
    root, state = tmp_path / "in", tmp_path / "state"

    def rows(keys):
        return [(k, rng.uniform(-50, 50), rng.randint(-9, 9), rng.randint(0, 29)) for k in keys]

    _put(root, 0, rows(ids + [None]))
    IncrementalSOA(QUERY, root, state, memory=mem).update()
    touched = rng.sample(ids, 3_000) + ([f"new{i}" for i in range(50)] if new_ids else []) + [None]
    _put(root, 1, rows(touched))
    soa = IncrementalSOA(QUERY, root, state, memory=mem)
    assert soa.update() == "1 new of 2 input partitions merged into the totals"
    got = soa.result().read_all()
    op = SortedOperator(SOAOperator(QUERY, str(root), memory=mem), ["k"], mem)
    want = pa.Table.from_batches(list(op.batches()), schema=op.schema)
    assert got.column("k").to_pylist() == want.column("k").to_pylist()
    assert_same(got, want)


@pytest.mark.parametrize("values, new", [
    (pa.array([1.5, None, 3.0, 4.0]), pa.array([None, 9.0])),
    (pa.array([1, 2, None, 4], pa.int32()), pa.array([7, None], pa.int32())),
    (pa.array([dt.date(2026, 1, d) for d in (1, 2, 3, 4)]), pa.array([None, dt.date(2027, 1, 1)])),
    (pa.array(["a", None, "c", "d"]), pa.array(["x", None])),
    (pa.array([True, None, False, True]), pa.array([None, False])),
    (pa.array([1, 2, 3, 4], pa.decimal128(5, 2)), pa.array([None, 7], pa.decimal128(5, 2))),
])
def test_replaced_rows_keep_every_other_value_and_null(values, new):
    from operators.soa.mergeable import _scatter, replace_rows

    totals = pa.table({"k": ["a", "b", "c", None], "v": values})
    touched = pa.table({"k": ["b", None], "v": new.take(pa.array([1, 0]))})  # in position order
    got = replace_rows(totals, touched, np.array([1, 3]), "k").column("v").to_pylist()
    want = values.to_pylist()
    want[3], want[1] = new.to_pylist()
    assert got == want
    # Arrays that start inside their buffers (a slice).
    shifted = pa.concat_arrays([values.slice(0, 1), values]).slice(1)
    new_shifted = pa.concat_arrays([new.slice(0, 1), new]).slice(1)
    assert _scatter(shifted, np.array([1, 3]), new_shifted.take(pa.array([1, 0]))).to_pylist() == want


def test_the_operator_ends_only_once_the_state_is_saved(tmp_path, monkeypatch):
    from operators.soa.mergeable import IncrementalSOAOperator

    root, state = tmp_path / "in", tmp_path / "state"
    _put(root, 0, [("a", 1.0, 1, 1), ("b", 2.0, 2, 2)])
    IncrementalSOA(QUERY, root, state, memory=MEM).update()
    manifest = (state / "manifest.json").read_text()
    _put(root, 1, [("a", 3.0, 3, 3)])
    schema = execute_soa(QUERY, str(root), memory=MEM).schema

    def disk_full(*_a):
        raise OSError("No space left on device")

    monkeypatch.setattr("operators.soa.mergeable._write", disk_full)
    op = IncrementalSOAOperator(IncrementalSOA(QUERY, root, state, memory=MEM), schema)
    with pytest.raises(OSError, match="No space"):
        list(op.batches())  # the rows came; the failed save still fails the node
    assert (state / "manifest.json").read_text() == manifest
    monkeypatch.undo()
    op = IncrementalSOAOperator(IncrementalSOA(QUERY, root, state, memory=MEM), schema)
    got = pa.Table.from_batches(list(op.batches()), schema=schema)
    assert op.output == "1 new of 2 input partitions merged into the totals\n"
    assert (state / "manifest.json").read_text() != manifest
    assert_same(got, execute_soa(QUERY, str(root), memory=MEM).read_all())
