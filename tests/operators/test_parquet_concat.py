"""Row groups encoded apart and concatenated into one Parquet file (operators.parquet_concat)."""

from __future__ import annotations

import datetime as dt
import io

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.errors import EngineError
from operators.parquet_concat import ConcatenatedFile, _decode_struct, _encode_struct, encode_part

SCHEMA = pa.schema([
    ("id", pa.int64()),
    ("name", pa.string()),
    ("amount", pa.float64()),
    ("at", pa.timestamp("us")),
    ("day", pa.date32()),
    ("flag", pa.bool_()),
    ("tags", pa.list_(pa.string())),
    ("point", pa.struct([("x", pa.int32()), ("y", pa.float32())])),
])

_rows = st.lists(
    st.fixed_dictionaries({
        "id": st.one_of(st.none(), st.integers(-(2**62), 2**62)),
        "name": st.one_of(st.none(), st.text(max_size=12)),
        "amount": st.one_of(st.none(), st.floats(allow_nan=False, width=64)),
        "at": st.one_of(st.none(), st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2100, 1, 1))),
        "day": st.one_of(st.none(), st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2200, 1, 1))),
        "flag": st.one_of(st.none(), st.booleans()),
        "tags": st.one_of(st.none(), st.lists(st.one_of(st.none(), st.sampled_from(["a", "bb", ""])), max_size=3)),
        "point": st.one_of(st.none(), st.fixed_dictionaries({"x": st.integers(-100, 100),
                                                               "y": st.floats(-1e3, 1e3, width=32)})),
    }),
    max_size=40,
)


def _concatenated(parts: list[pa.Table]) -> bytes:
    f = io.BytesIO()
    out = ConcatenatedFile(f)
    for part in parts:
        out.append(encode_part(part))
    out.close()
    return f.getvalue()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(_rows, min_size=1, max_size=5))
def test_concatenated_parts_read_back_as_the_tables_in_order(parts, tmp_path_factory):
    tables = [pa.Table.from_pylist(rows, schema=SCHEMA) for rows in parts]
    data = _concatenated(tables)
    pf = pq.ParquetFile(io.BytesIO(data))
    want = pa.concat_tables(tables)
    assert pf.metadata.num_rows == want.num_rows
    alone = [pq.ParquetFile(io.BytesIO(encode_part(t).to_pybytes())).metadata for t in tables]
    nonempty = [(t, m.row_group(0)) for t, m in zip(tables, alone, strict=True) if m.num_row_groups]
    assert pf.metadata.num_row_groups == len(nonempty)
    assert pf.read().equals(want)
    for i, (table, part) in enumerate(nonempty):  # each row group: its part's rows and statistics
        assert pf.read_row_group(i).equals(table)
        got = pf.metadata.row_group(i)
        for c in range(got.num_columns):
            a, b = got.column(c).statistics, part.column(c).statistics
            assert (a is None) == (b is None)
            if a is not None and a.has_min_max:
                assert (a.min, a.max, a.null_count) == (b.min, b.max, b.null_count)
    # Another reader that follows the footer's offsets on its own.
    path = tmp_path_factory.mktemp("concat") / "x.parquet"
    path.write_bytes(data)
    got = duckdb.sql(f"SELECT count(*), count(id), sum(id::HUGEINT), count(name), count(tags) "
                     f"FROM read_parquet('{path}')").fetchall()[0]
    ids = [v for v in want["id"].to_pylist() if v is not None]
    assert got == (want.num_rows, len(ids), sum(ids) if ids else None,
                   want.num_rows - want["name"].null_count, want.num_rows - want["tags"].null_count)


def test_datafusion_reads_a_concatenated_file(tmp_path):
    from operators.soa.df_session import import_datafusion

    tables = [pa.table({"k": pa.array([i % 3 for i in range(a, a + 5000)], pa.int64()),
                        "v": pa.array([float(i) for i in range(a, a + 5000)])}) for a in (0, 5000, 10000)]
    path = tmp_path / "x.parquet"
    path.write_bytes(_concatenated(tables))
    ctx = import_datafusion().SessionContext()
    ctx.register_parquet("t", str(path))
    got = ctx.sql("SELECT k, sum(v) AS s, count(*) AS n FROM t GROUP BY k ORDER BY k").to_arrow_table()
    values = pa.concat_tables(tables).to_pydict()
    for k, s, n in zip(*got.to_pydict().values(), strict=True):
        picked = [v for kk, v in zip(values["k"], values["v"], strict=True) if kk == k]
        assert (s, n) == (sum(picked), len(picked))


@pytest.mark.parametrize("options", [
    {},
    {"compression": "snappy", "use_dictionary": False},
    {"write_statistics": False, "data_page_version": "2.0"},
    {"compression": "zstd", "write_page_index": True, "write_page_checksum": True},
])
def test_a_footer_decodes_and_encodes_to_the_same_bytes(options):
    table = pa.Table.from_pylist([{"id": i, "name": str(i), "amount": i / 3, "at": dt.datetime(2025, 1, 1),
                                   "day": dt.date(2025, 1, 2), "flag": i % 2 == 0, "tags": ["a"] * (i % 3),
                                   "point": {"x": i, "y": 0.5}} for i in range(300)], schema=SCHEMA)
    table = table.replace_schema_metadata({"origin": "test"})
    f = io.BytesIO()
    pq.write_table(table, f, row_group_size=100, **options)
    data = f.getvalue()
    size = int.from_bytes(data[-8:-4], "little")
    start = len(data) - 8 - size
    meta, end = _decode_struct(memoryview(data), start)
    out = bytearray()
    _encode_struct(meta, out)
    assert end == start + size
    assert bytes(out) == data[start:end]


def test_a_part_with_a_page_index_is_refused():
    f = io.BytesIO()
    pq.write_table(pa.table({"x": [1, 2]}), f, write_page_index=True)
    with pytest.raises(EngineError, match="page index"):
        ConcatenatedFile(io.BytesIO()).append(f.getvalue())
    with pytest.raises(EngineError, match="not a Parquet file"):
        ConcatenatedFile(io.BytesIO()).append(b"PAR1 not really")
