"""ASOF join kernel vs a brute-force reference; bucketed path vs in-memory path."""

import datetime as dt
import os
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators import asof_kernel
from operators.asof_join import AsofJoinOperator, asof_join
from operators.base import Operator, ReaderOperator
from operators.errors import EngineError
from operators.memory import MemoryConfig

EPOCH = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
TIME_TYPES = ["date32", "ts_us", "ts_ms_tz", "ts_ns", "date64"]


def _time_array(hours: list[int | None], kind: str) -> pa.Array:
    """Hours since EPOCH as an Arrow column of ``kind`` (dates keep whole days)."""
    if kind in ("date32", "date64"):
        vals = [None if h is None else (EPOCH + dt.timedelta(hours=h)).date() for h in hours]
        return pa.array(vals, pa.date32() if kind == "date32" else pa.date64())
    unit, tz = {"ts_us": ("us", None), "ts_ms_tz": ("ms", "Asia/Tokyo"), "ts_ns": ("ns", None)}[kind]
    per_hour = {"us": 3_600_000_000, "ms": 3_600_000, "ns": 3_600_000_000_000}[unit]
    base = int(EPOCH.timestamp()) * (per_hour // 3600)
    ints = [None if h is None else base + h * per_hour for h in hours]
    return pa.array(ints, pa.int64()).cast(pa.timestamp(unit, tz=tz))


def _utc_us(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return round(value.timestamp() * 1_000_000)
    return round(dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc).timestamp() * 1e6)


def reference(left: pa.Table, right: pa.Table, left_on, right_on, by, max_age):
    lrows, rrows = left.to_pylist(), right.to_pylist()
    values = [n for n in right.column_names if n not in by and n not in left.column_names]
    out = []
    for lrow in lrows:
        lt = _utc_us(lrow[left_on])
        best, best_t = None, None
        if lt is not None and all(lrow[k] is not None for k in by):
            for j, rrow in enumerate(rrows):
                rt = _utc_us(rrow[right_on])
                if rt is None or rt > lt or any(rrow[k] != lrow[k] for k in by):
                    continue
                if best is None or rt >= best_t:  # >=: the last of equal times wins
                    best, best_t = j, rt
        if best is not None and max_age is not None and lt - best_t > max_age // dt.timedelta(microseconds=1):
            best = None
        out.append({**lrow, **{n: (rrows[best][n] if best is not None else None) for n in values}})
    return out


@st.composite
def cases(draw):
    n_keys = draw(st.integers(1, 2))
    key_kinds = [draw(st.sampled_from(["str", "int", "dict"])) for _ in range(n_keys)]
    key_pool = st.one_of(st.none(), st.integers(0, 4)) if draw(st.booleans()) else st.integers(0, 4)
    hours = st.one_of(st.none(), st.integers(0, 120)) if draw(st.booleans()) else st.integers(0, 120)
    # Coarse times make ties (equal times) common.
    hours = hours.map(lambda h: h if h is None else h - h % draw(st.sampled_from([1, 6, 24])))
    nl, nr = draw(st.integers(0, 25)), draw(st.integers(0, 40))
    lkeys = [[draw(key_pool) for _ in range(nl)] for _ in range(n_keys)]
    rkeys = [[draw(key_pool) for _ in range(nr)] for _ in range(n_keys)]
    if nl and draw(st.booleans()):  # duplicate spine rows
        dup = draw(st.integers(0, nl - 1))
        for col in lkeys:
            col.append(col[dup])
    ltimes = [draw(hours) for _ in range(len(lkeys[0]))]
    if len(ltimes) > nl:
        ltimes[-1] = ltimes[draw(st.integers(0, nl - 1))]
    rtimes = [draw(hours) for _ in range(nr)]
    lkind, rkind = draw(st.sampled_from(TIME_TYPES)), draw(st.sampled_from(TIME_TYPES))
    left = {"id": pa.array(np.arange(len(ltimes)), pa.int64())}
    right = {}
    for i, kind in enumerate(key_kinds):
        lk, rk = _key_array(lkeys[i], kind, "left"), _key_array(rkeys[i], kind, "right")
        left[f"k{i}"], right[f"k{i}"] = lk, rk
    left["at"] = _time_array(ltimes, lkind)
    right["event_time"] = _time_array(rtimes, rkind)
    right["value"] = pa.array(np.arange(nr) * 10, pa.int64())
    right["at"] = _time_array(rtimes, rkind)  # clashes with the spine's: spine wins
    max_age = draw(st.one_of(st.none(), st.sampled_from([dt.timedelta(0), dt.timedelta(hours=6), "2d"])))
    return pa.table(left), pa.table(right), [f"k{i}" for i in range(n_keys)], max_age, draw(st.randoms())


def _key_array(values, kind, side):
    if kind == "int":
        return pa.array(values, pa.int32() if side == "left" else pa.int64())
    strs = pa.array([None if v is None else f"key-{v}" for v in values], pa.string())
    if kind == "dict":
        return strs.dictionary_encode() if side == "right" else strs.cast(pa.large_string())
    return strs


def _split(table: pa.Table, rnd) -> pa.RecordBatchReader:
    cuts = sorted(rnd.randint(0, table.num_rows) for _ in range(rnd.randint(0, 3)))
    edges = [0, *cuts, table.num_rows]
    batches = [b for a, z in zip(edges, edges[1:]) for b in table.slice(a, z - a).to_batches()]
    return pa.RecordBatchReader.from_batches(table.schema, batches)


def _expected_age(max_age):
    return None if max_age is None else (dt.timedelta(days=2) if max_age == "2d" else max_age)


def _norm(rows):
    # Keys may come back dictionary/large_string typed; compare values only.
    return [{k: v for k, v in r.items()} for r in rows]


@settings(max_examples=150, deadline=None)
@given(case=cases())
def test_matches_reference(case):
    left, right, by, max_age, rnd = case
    kwargs = dict(left_on="at", right_on="event_time", by=by, max_age=max_age)
    expected = reference(left, right, "at", "event_time", by, _expected_age(max_age))
    got = asof_join(_split(left, rnd), _split(right, rnd), **kwargs)
    assert got.num_rows == left.num_rows
    assert got.column_names == [*left.column_names, "event_time", "value"]
    assert _norm(got.to_pylist()) == expected
    assert got.schema.field("at").type == left.schema.field("at").type


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_bucketed_path_is_identical(case, tmp_path):
    left, right, by, max_age, rnd = case
    kwargs = dict(left_on="at", right_on="event_time", by=by, max_age=max_age)
    in_memory = asof_join(left, right, **kwargs)
    spill = tmp_path / "spill"
    bucketed = asof_join(_split(left, rnd), _split(right, rnd), buckets=3,
                         memory=MemoryConfig(spill_dir=spill), **kwargs)
    assert bucketed.equals(in_memory)
    assert list(spill.iterdir()) == []


@settings(max_examples=40, deadline=None)
@given(case=cases())
def test_argsort_fallback_is_identical(case):
    left, right, by, max_age, _ = case
    kwargs = dict(left_on="at", right_on="event_time", by=by, max_age=max_age)
    packed = asof_join(left, right, **kwargs)
    asof_kernel.FORCE_ARGSORT = True
    try:
        fallback = asof_join(left, right, **kwargs)
    finally:
        asof_kernel.FORCE_ARGSORT = False
    assert fallback.equals(packed)


def test_partitioned_packing_on_wide_times():
    """Many keys and ns times spanning centuries need the key-range partition path."""
    rng = np.random.default_rng(7)
    n, keys = 30_000, 6_000
    times = rng.integers(-(2**62), 2**62, n)
    right = pa.table({"k": rng.integers(0, keys, n), "t": pa.array(times, pa.timestamp("ns")),
                      "v": np.arange(n)})
    ltimes = np.concatenate([rng.integers(-(2**62), 2**62, 3_000), times[:1_000]])
    left = pa.table({"k": np.concatenate([rng.integers(0, keys + 50, 3_000), right["k"].to_numpy()[:1_000]]),
                     "t": pa.array(ltimes, pa.timestamp("ns"))})
    packed = asof_join(left, right, left_on="t", right_on="t", by="k")
    asof_kernel.FORCE_ARGSORT = True
    try:
        fallback = asof_join(left, right, left_on="t", right_on="t", by="k")
    finally:
        asof_kernel.FORCE_ARGSORT = False
    assert packed.equals(fallback)
    # Spot-check against a direct numpy answer for a sample of spine rows.
    rk, rt, lk = right["k"].to_numpy(), times, left["k"].to_numpy()
    for i in range(0, len(left), 97):
        cand = np.flatnonzero((rk == lk[i]) & (rt <= ltimes[i]))
        want = None if not len(cand) else int(cand[np.argmax(rt[cand])])
        assert packed["v"][i].as_py() == want
    assert packed["v"].null_count < len(left)


def test_parquet_path_input_matches_table(tmp_path):
    rng = np.random.default_rng(3)
    n = 5_000
    right = pa.table({
        "cid": pa.array([f"C{i:04d}" for i in rng.integers(0, 300, n)]),
        "event_time": pa.array(rng.integers(0, 10**9, n) * 1_000_000, pa.timestamp("us")),
        "cat": pa.array(rng.choice(["a", "b", None], n)),
        "x": rng.normal(size=n),
    })
    left = pa.table({"cid": pa.array([f"C{i:04d}" for i in rng.integers(0, 320, 700)]),
                     "ts": pa.array(rng.integers(0, 10**9, 700) * 1_000_000, pa.timestamp("us"))})
    pq.write_table(right, tmp_path / "f.parquet", row_group_size=1_000)
    (tmp_path / "dir").mkdir()
    pq.write_table(right, tmp_path / "dir" / "part-0.parquet")
    kwargs = dict(left_on="ts", right_on="event_time", by="cid", max_age="30d")
    want = asof_join(left, right, **kwargs)
    assert asof_join(left, tmp_path / "f.parquet", **kwargs).equals(want)
    assert asof_join(left, str(tmp_path / "dir"), **kwargs).equals(want)
    mem = MemoryConfig(memory_limit=30_000, spill_dir=tmp_path / "spill")
    assert asof_join(left, tmp_path / "f.parquet", memory=mem, **kwargs).equals(want)
    assert asof_join(left, right.to_reader(max_chunksize=500), memory=mem, **kwargs).equals(want)


def test_operator_protocol_and_schema():
    left = pa.table({"id": ["a", "b"], "ts": pa.array([5, 5], pa.timestamp("s"))})
    right = pa.table({"id": ["a"], "et": pa.array([1], pa.timestamp("s")), "ts": [9], "x": [1.0]})
    op = AsofJoinOperator(ReaderOperator(left.to_reader(), "spine"), right, left_on="ts",
                          right_on="et", by=["id"], max_age="1h")
    assert isinstance(op, Operator)
    assert op.schema.names == ["id", "ts", "et", "x"]
    table = pa.Table.from_batches(list(op.batches()), op.schema)
    assert table["x"].to_pylist() == [1.0, None]
    assert "max_age=1h" in op.describe()


@pytest.mark.parametrize(
    ("side", "kwargs", "pattern"),
    [
        ("left", dict(left_on="nope", right_on="et", by="id"),
         r"time column 'nope' is missing from the left \(spine\) input; available columns: id, ts"),
        ("right", dict(left_on="ts", right_on="et", by="cust"),
         r"join key 'cust' is missing from the left \(spine\) input"),
        ("right", dict(left_on="ts", right_on="zzz", by="id"),
         r"time column 'zzz' is missing from the right \(features\) input; available columns: id, et, s"),
        ("right", dict(left_on="ts", right_on="s", by="id"),
         r"time column 's' of the right \(features\) input is string; expected date or timestamp"),
        ("left", dict(left_on="ts", right_on="et", by="id", max_age="3 parsecs"),
         r"max_age '3 parsecs' is not a duration"),
    ],
)
def test_errors(side, kwargs, pattern):
    left = pa.table({"id": [1], "ts": pa.array([1], pa.timestamp("s"))})
    right = pa.table({"id": [1], "et": pa.array([1], pa.timestamp("s")), "s": ["x"]})
    with pytest.raises(EngineError, match=pattern):
        asof_join(left, right, **kwargs)


def test_key_type_mismatch_names_both_inputs():
    left = pa.table({"id": [1], "ts": pa.array([1], pa.timestamp("s"))})
    right = pa.table({"id": [[1]], "et": pa.array([1], pa.timestamp("s"))})
    with pytest.raises(EngineError, match=r"join key 'id' is int64 in the left \(spine\) input but list"):
        asof_join(left, right, left_on="ts", right_on="et", by="id")


def test_spill_dir_cleaned_on_error(tmp_path, monkeypatch):
    from operators import asof_join as mod

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(mod, "_join_in_memory", boom)
    left = pa.table({"id": [1], "ts": pa.array([1], pa.timestamp("s"))})
    right = pa.table({"id": [1], "et": pa.array([1], pa.timestamp("s"))})
    with pytest.raises(RuntimeError, match="disk full"):
        asof_join(left, right, left_on="ts", right_on="et", by="id", buckets=2,
                  memory=MemoryConfig(spill_dir=tmp_path))
    assert list(tmp_path.iterdir()) == []
