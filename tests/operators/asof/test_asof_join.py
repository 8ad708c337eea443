"""ASOF join kernel vs a brute-force reference; bucketed path vs in-memory path; fast paths
(packed string keys, lookup-table codes, row-group streaming, threads) vs general ones."""

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.asof import join as asof_join_module
from operators.asof import kernel as asof_kernel
from operators.asof import key_encoding
from operators.asof import sources as asof_sources
from operators.asof.join import AsofJoinOperator, asof_join
from operators.asof.key_encoding import KeyCodec
from operators.base import Operator, ReaderOperator
from operators.errors import EngineError
from operators.memory import MemoryConfig

EPOCH = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
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
            value = value.replace(tzinfo=dt.UTC)
        return round(value.timestamp() * 1_000_000)
    return round(dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp() * 1e6)


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
    batches = [b for a, z in zip(edges, edges[1:], strict=False) for b in table.slice(a, z - a).to_batches()]
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


def test_right_values_of_a_file_without_nulls_are_null_for_unmatched_rows(tmp_path):
    # A writer may mark columns that hold no NULL as required (DuckDB's COPY does): a left
    # row with no match still gets NULL values, in every path (in memory, by row group, spilled).
    right = pa.table({"cid": ["a", "a", "b"], "event_time": pa.array([1, 5, 2], pa.timestamp("s")),
                      "x": [1.0, 2.0, 3.0]})
    required = pa.schema([f.with_nullable(False) for f in right.schema])
    pq.write_table(right.cast(required), tmp_path / "f.parquet", row_group_size=1)
    assert not pq.read_schema(tmp_path / "f.parquet").field("x").nullable
    left = pa.table({"cid": ["a", "c", "b", "a"], "ts": pa.array([6, 9, 1, 0], pa.timestamp("s"))})
    kwargs = dict(left_on="ts", right_on="event_time", by="cid")
    for memory in (None, MemoryConfig(memory_limit=30_000, spill_dir=tmp_path / "spill")):
        out = asof_join(left, tmp_path / "f.parquet", memory=memory, **kwargs)
        assert out.column("x").to_pylist() == [2.0, None, None, None]
        assert out.schema.field("x").nullable


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
    from operators.asof import join as mod

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(mod, "_join_in_memory", boom)
    left = pa.table({"id": [1], "ts": pa.array([1], pa.timestamp("s"))})
    right = pa.table({"id": [1], "et": pa.array([1], pa.timestamp("s"))})
    with pytest.raises(RuntimeError, match="disk full"):
        asof_join(left, right, left_on="ts", right_on="et", by="id", buckets=2,
                  memory=MemoryConfig(spill_dir=tmp_path))
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------- key encoding fast paths

_TEXT = st.one_of(
    st.text(alphabet="C0123456789", min_size=0, max_size=10),  # ids, mixed lengths, empty
    st.text(alphabet="aé日\x00z", min_size=0, max_size=4),  # non-ASCII, NUL bytes
    st.text(min_size=0, max_size=70),  # anything, some longer than the packer takes
)


def _check_codes(lvals, rvals, codec, lcodes, rcodes):
    first = {}
    for v, c in zip(lvals, lcodes.tolist(), strict=True):
        if v is None:
            assert c == -1
            continue
        assert 0 <= c < codec.n_codes
        assert first.setdefault(v, c) == c
    assert len(set(first.values())) == len(first)  # distinct keys, distinct codes
    used = set(first.values())
    for v, c in zip(rvals, rcodes.tolist(), strict=True):
        if v is not None and v in first:
            assert c == first[v], (v, c)
        else:  # absent from the left: -1, or a code no left key has
            assert c == -1 or (v is not None and 0 <= c < codec.n_codes and c not in used), (v, c)


@settings(max_examples=200, deadline=None)
@given(
    lvals=st.lists(st.one_of(st.none(), _TEXT), max_size=40),
    extra=st.lists(st.one_of(st.none(), _TEXT), max_size=40),
    fixed=st.booleans(),
    layout=st.sampled_from(["string", "large_string", "dictionary", "chunked", "sliced", "view"]),
    data=st.data(),
)
def test_text_codes_match_equality(lvals, extra, fixed, layout, data):
    """Packed (or hashed) string codes: equal codes exactly for equal strings."""
    if fixed:  # the fixed-width layout: all strings the same length
        lvals = [None if v is None else (v + "0" * 6)[:6] for v in lvals]
        extra = [None if v is None else (v + "0" * 6)[:6] for v in extra]
    rvals = extra + data.draw(st.permutations(lvals))
    codec, lcodes = KeyCodec.fit([pa.array(lvals, pa.string())])
    right = pa.array(rvals, pa.string())
    if layout == "large_string":
        right = right.cast(pa.large_string())
    elif layout == "dictionary":
        right = right.dictionary_encode()
    elif layout == "view":
        right = right.cast(pa.string_view())
    elif layout == "sliced":  # a non-zero array offset
        right = pa.array(["pad", *rvals], pa.string()).slice(1)
    if layout == "chunked":
        cut = len(rvals) // 2
        right = pa.chunked_array([pa.array(rvals[:cut], pa.string()), pa.array(rvals[cut:], pa.string())])
    _check_codes(lvals, rvals, codec, lcodes, codec.encode([right]))


def test_fixed_width_ids_are_packed_without_hashing():
    ids = pa.array([f"C{i:08d}" for i in range(0, 50_000, 2)])
    codec, lcodes = KeyCodec.fit([ids])
    assert isinstance(codec._first, key_encoding._PackedText)
    assert codec.n_codes <= 2 * len(ids) + 1024
    others = ["C0000000", "C000000001", "X00000000", "C0000000é"]
    right = pa.array([f"C{i:08d}" for i in range(0, 50_000)] + others)
    rcodes = codec.encode([right])
    _check_codes(ids.to_pylist(), right.to_pylist(), codec, lcodes, rcodes)
    # Sparse packed ranges (hex-like ids) are hashed as int64 instead of as strings.
    rng = np.random.default_rng(1)
    hexes = pa.array([f"{v:012x}" for v in rng.integers(0, 2**47, 2_000)])
    codec, lcodes = KeyCodec.fit([hexes])
    assert isinstance(codec._first, key_encoding._Then)
    probe = pa.array(hexes.to_pylist()[::7] + ["zzzzzzzzzzzz", ""])
    _check_codes(hexes.to_pylist(), probe.to_pylist(), codec, lcodes, codec.encode([probe]))


def test_sparse_ids_are_remapped_through_a_table():
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 10**6, 2_000)  # range far wider than 4 x rows, below the table limit
    for left in (pa.array([f"C{i:06d}" for i in ids]), pa.array(ids), pa.array(ids.astype(np.int32))):
        codec, lcodes = KeyCodec.fit([left])
        assert isinstance(codec._first, key_encoding._Then)
        assert isinstance(codec._first.ints, key_encoding._Remap)
        assert codec.n_codes == len(np.unique(ids))
        text = pa.types.is_string(left.type)
        probe = left.to_pylist()[::3] + (["C999999", "C1000000", None] if text else [10**6 - 1, 10**7, -5, None])
        _check_codes(left.to_pylist(), probe, codec, lcodes, codec.encode([pa.array(probe, left.type)]))


def test_multi_key_codes_with_densify():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 10**12, 3_000)  # wide ints: hashed
    b = [f"s{v}" for v in rng.integers(0, 50, 3_000)]
    c = rng.integers(0, 7, 3_000)
    left = [pa.array(a), pa.array(b), pa.array(c)]
    codec, lcodes = KeyCodec.fit(left)
    keys = list(zip(a.tolist(), b, c.tolist(), strict=True))
    ra = np.concatenate([a[::2], [1]])
    rb = [*b[::2], "s1"]
    rc = np.concatenate([c[::2], [0]])
    rcodes = codec.encode([pa.array(ra), pa.array(rb), pa.array(rc)])
    _check_codes(keys, list(zip(ra.tolist(), rb, rc.tolist(), strict=True)), codec, lcodes, rcodes)


# ------------------------------------------------------------------------ kernel directly


def _brute(lc, lt, rc, rt, max_age):
    out = []
    for c, t in zip(lc, lt, strict=True):
        cand = np.flatnonzero((rc == c) & (rt <= t) & (c >= 0))
        if not len(cand):
            out.append(-1)
            continue
        best = cand[rt[cand] == rt[cand].max()].max()
        out.append(int(best) if max_age is None or t - rt[best] <= max_age else -1)
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), keys=st.integers(1, 40), max_age=st.sampled_from([None, 0, 5, 30]),
       chunks=st.integers(1, 4), threads=st.integers(1, 3),
       mode=st.sampled_from(["packed", "exact", "few age bits", "coarse left times"]))
def test_kernel_long_runs_chunks_and_threads(seed, keys, max_age, chunks, threads, mode, monkeypatch):
    """Long left runs (binary search past the probes), chunked adds from threads, ties;
    rows packed as (age, row), folded exactly, or both (too old to pack, off the time step)."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(seed)
    nl, nr = int(rng.integers(0, 300)), int(rng.integers(0, 600))
    lc, lt = rng.integers(-1, keys, nl), rng.integers(0, 60, nl)
    rc, rt = rng.integers(-1, keys, nr), rng.integers(0, 60, nr)
    if mode == "coarse left times":  # step 1000 on the left; right blocks on and off it
        lt, rt = lt * 1000, rt * 1000
        rt[: nr // 2] += rng.integers(0, 2, nr // 2) * 7
    with monkeypatch.context() as m:
        m.setattr(asof_kernel, "FORCE_EXACT", mode == "exact")
        m.setattr(asof_kernel, "_MAX_AGE_BITS", 3 if mode == "few age bits" else 62)
        m.setattr(asof_kernel, "_BLOCK", 64)
        age = None if max_age is None else max_age * (1000 if mode == "coarse left times" else 1)
        plan = asof_kernel.AsofPlan(lc, lt, None, keys, age, n_right=nr)
        edges = np.linspace(0, nr, chunks + 1).astype(int)
        parts = [(rc[a:b], rt[a:b], None, a) for a, b in zip(edges, edges[1:], strict=False)]
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda p: plan.add(*p), parts))
        got = plan.solve()
    assert got.tolist() == _brute(lc, lt, rc, rt, age)


def test_kernel_blocks_and_deep_runs(monkeypatch):
    monkeypatch.setattr(asof_kernel, "_BLOCK", 64)
    rng = np.random.default_rng(5)
    lc, lt = rng.integers(0, 3, 2_000), rng.integers(0, 10**6, 2_000)  # runs of ~700 rows
    rc, rt = rng.integers(0, 4, 5_000), rng.integers(0, 10**6, 5_000)
    rt[::10] = rt[1::10]  # equal times: the last row must win
    rc[::10] = rc[1::10]
    got = asof_kernel.match_rows(lc, lt, None, rc, rt, None, 3)
    assert got.tolist() == _brute(lc, lt, rc, rt, None)


# ---------------------------------------------------------------- Parquet, row group by row group


@pytest.mark.parametrize("time_type", ["date32", "ts_us", "ts_ms_tz", "ts_ns", "date64"])
def test_parquet_row_groups_threads_and_reused_times(tmp_path, monkeypatch, time_type):
    rng = np.random.default_rng(11)
    n = 4_000
    hours = rng.integers(0, 24 * 200, n).tolist()
    right = pa.table({
        "cid": pa.array([f"C{i:05d}" for i in rng.integers(0, 400, n)]),
        "event_time": _time_array(hours, time_type),
        "cat": pa.array(rng.choice(["a", "b", None], n)),
        "note": pa.array([f"note {i}" for i in range(n)]),  # plain-encoded text
        "x": rng.normal(size=n),
    })
    left = pa.table({"cid": pa.array([f"C{i:05d}" for i in rng.integers(0, 420, 900)]),
                     "ts": _time_array(rng.integers(0, 24 * 220, 900).tolist(), "ts_us")})
    path = tmp_path / "f.parquet"
    pq.write_table(right, path, row_group_size=700)
    right = pq.read_table(path)  # as stored (date64 reads back as date32)
    for max_age in (None, "20d"):
        kwargs = dict(left_on="ts", right_on="event_time", by="cid", max_age=max_age)
        want = asof_join(left, right, **kwargs)
        assert asof_join(left, path, **kwargs).equals(want)
        assert asof_join(left, path, memory=MemoryConfig(threads=1), **kwargs).equals(want)
        # Huge row groups are read batch by batch.
        monkeypatch.setattr(asof_sources, "WHOLE_ROW_GROUP", 100)
        monkeypatch.setattr(asof_sources, "BATCH", 128)
        assert asof_join(left, path, **kwargs).equals(want)
        monkeypatch.undo()
    # Only the time column as value, and no matches at all.
    only_time = right.select(["cid", "event_time"])
    pq.write_table(only_time, tmp_path / "t.parquet", row_group_size=999)
    kwargs = dict(left_on="ts", right_on="event_time", by="cid")
    assert asof_join(left, tmp_path / "t.parquet", **kwargs).equals(asof_join(left, only_time, **kwargs))
    nobody = left.set_column(0, "cid", pa.array(["nobody"] * left.num_rows))
    assert asof_join(nobody, path, **kwargs).equals(asof_join(nobody, right, **kwargs))


def test_many_table_chunks_match_one(monkeypatch):
    rng = np.random.default_rng(4)
    n = 20_000
    right = pa.table({"k": rng.integers(0, 3_000, n),
                      "t": pa.array(rng.integers(0, 10**5, n), pa.timestamp("s")), "v": np.arange(n)})
    left = pa.table({"k": rng.integers(0, 3_100, 5_000),
                     "t": pa.array(rng.integers(0, 10**5, 5_000), pa.timestamp("s"))})
    kwargs = dict(left_on="t", right_on="t", by="k")
    want = asof_join(left, right, memory=MemoryConfig(threads=1), **kwargs)
    monkeypatch.setattr(asof_sources, "TABLE_CHUNK", 777)
    assert asof_join(left, right, memory=MemoryConfig(threads=2), **kwargs).equals(want)
    assert asof_join(left, right.to_reader(max_chunksize=1000), **kwargs).equals(want)


@settings(max_examples=100, deadline=None)
@given(vals=st.lists(_TEXT, min_size=1, max_size=30), width=st.integers(0, 20))
def test_bucket_hash_depends_only_on_the_string(vals, width):
    """Equal strings hash equal whatever array holds them (fixed width, mixed, sliced, large)."""
    from operators.asof.key_encoding import key_hash

    same = [(v.encode() + b"x" * width)[:width].decode("utf-8", "ignore") for v in vals]
    same = [v for v in same if len(v.encode()) == width] or ["x" * width]
    fixed = key_hash([pa.array(same)])
    mixed = key_hash([pa.array([*same, "y" * (width + 9), ""])])[: len(same)]
    sliced = key_hash([pa.array(["pad", *same], pa.large_string()).slice(1)])
    assert fixed.tolist() == mixed.tolist() == sliced.tolist()
    assert (key_hash([pa.array(vals)]) == key_hash([pa.array(vals).dictionary_encode()])).all()


def test_memory_limit_streams_a_parquet_right_side(tmp_path):
    """A small spine and a large Parquet file: no buckets needed, same result as in memory."""
    rng = np.random.default_rng(8)
    n = 60_000
    right = pa.table({"k": pa.array([f"K{i:04d}" for i in rng.integers(0, 2_000, n)]),
                      "t": pa.array(rng.integers(0, 10**6, n), pa.timestamp("s")), "v": rng.normal(size=n)})
    pq.write_table(right, tmp_path / "r.parquet", row_group_size=10_000)
    left = pa.table({"k": pa.array([f"K{i:04d}" for i in rng.integers(0, 2_100, 200)]),
                     "t": pa.array(rng.integers(0, 10**6, 200), pa.timestamp("s"))})
    kwargs = dict(left_on="t", right_on="t", by="k")
    want = asof_join(left, right, **kwargs)
    spill = tmp_path / "spill"
    mem = MemoryConfig(memory_limit=3 * 1_000_000, spill_dir=spill)  # budget 1 MB < the file
    assert right.nbytes > 1_000_000
    assert asof_join(left, tmp_path / "r.parquet", memory=mem, **kwargs).equals(want)
    assert not spill.exists()  # streamed, not bucketed
    assert asof_join(left, tmp_path / "r.parquet", memory=mem, buckets=3, **kwargs).equals(want)


def test_a_join_that_fits_three_quarters_of_the_limit_streams(tmp_path, monkeypatch):
    """Between a third and three quarters of the limit the streaming path is chosen: bucketing
    would hold ~a whole limit (buckets of a third, joined at ~3x) where streaming holds less."""
    rng = np.random.default_rng(9)
    n, m = 40_000, 5_000
    right = pa.table({"k": pa.array(rng.integers(0, 500, n)), "t": pa.array(rng.integers(0, 10**6, n),
                      pa.timestamp("s")), "v": rng.normal(size=n)})
    pq.write_table(right, tmp_path / "r.parquet", row_group_size=8_000)
    left = pa.table({"k": pa.array(rng.integers(0, 550, m)), "t": pa.array(rng.integers(0, 10**6, m), pa.timestamp("s"))})
    kwargs = dict(left_on="t", right_on="t", by="k")
    lsrc = asof_sources.Source.of(left, "left")
    rsrc = asof_sources.Source.of(tmp_path / "r.parquet", "right")
    need = asof_join_module._streaming_need(lsrc, rsrc, asof_join_module._Spec("t", "t", "k", None), 10**9, 2)
    rsrc.close()
    limit = int(need * 1.5)  # need = 2/3 of the limit: above the old third
    assert need > limit // 3

    def no_buckets(*a, **k):
        raise AssertionError("bucketed although the streaming path fits")

    monkeypatch.setattr(asof_join_module, "_join_bucketed", no_buckets)
    mem = MemoryConfig(memory_limit=limit, spill_dir=tmp_path / "spill", threads=2)
    got = asof_join(left, tmp_path / "r.parquet", memory=mem, **kwargs)
    assert got.equals(asof_join(left, right, **kwargs))
