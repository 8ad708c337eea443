"""write_parquet: round trip, atomic replace, empty input, schema conformance."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.sink import SinkResult, write_parquet

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("x", pa.float64())])

ROWS = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.integers(min_value=-(2**63), max_value=2**63 - 1),
            "name": st.one_of(st.none(), st.text(max_size=10)),
            "x": st.one_of(st.none(), st.floats(allow_nan=False)),
        }
    ),
    max_size=50,
)


def _split(table: pa.Table, cuts: list[int]) -> list[pa.RecordBatch]:
    bounds = sorted({0, table.num_rows, *(c % (table.num_rows + 1) for c in cuts)})
    return [table.slice(a, b - a).to_batches()[0] if b > a else pa.RecordBatch.from_pylist([], schema=table.schema)
            for a, b in zip(bounds, bounds[1:] + [bounds[-1]], strict=False)]


def _leftovers(folder: Path, keep: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != keep)


@settings(max_examples=25, deadline=None)
@given(rows=ROWS, cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=5))
def test_round_trip_for_any_batch_split(rows, cuts):
    d = Path(tempfile.mkdtemp(prefix="seeknal_sink_"))
    try:
        table = pa.Table.from_pylist(rows, schema=SCHEMA)
        out = d / "out" / "node.parquet"  # parent is created
        seen: list[int] = []
        result = write_parquet(SCHEMA, _split(table, cuts), out, progress=seen.append)
        assert isinstance(result, SinkResult)
        assert result.rows == len(rows)
        assert result.path == out
        assert result.bytes == out.stat().st_size
        assert result.schema == SCHEMA
        assert result.seconds >= 0
        back = pq.read_table(out)
        assert back.schema == SCHEMA
        assert back.to_pylist() == rows
        assert seen == sorted(seen) and (not rows or seen[-1] == len(rows))
        assert _leftovers(out.parent, "node.parquet") == []
    finally:
        shutil.rmtree(d)


def test_empty_input_writes_an_empty_file_with_the_schema(tmp_path):
    out = tmp_path / "empty.parquet"
    result = write_parquet(SCHEMA, iter(()), out)
    assert result.rows == 0
    back = pq.read_table(out)
    assert back.num_rows == 0
    assert back.schema == SCHEMA


def test_empty_batches_only_writes_an_empty_file(tmp_path):
    out = tmp_path / "empty.parquet"
    empty = pa.RecordBatch.from_pylist([], schema=SCHEMA)
    result = write_parquet(SCHEMA, [empty, empty], out)
    assert result.rows == 0
    assert pq.read_table(out).schema == SCHEMA


def test_generator_failing_mid_stream_leaves_previous_file_intact(tmp_path):
    out = tmp_path / "node.parquet"
    write_parquet(SCHEMA, pa.Table.from_pylist([{"id": 1, "name": "old", "x": 1.0}], schema=SCHEMA).to_batches(), out)
    before = out.read_bytes()

    def failing():
        yield pa.RecordBatch.from_pylist([{"id": 2, "name": "new", "x": 2.0}] * 1000, schema=SCHEMA)
        yield pa.RecordBatch.from_pylist([{"id": 3, "name": "new", "x": 3.0}] * 1000, schema=SCHEMA)
        raise RuntimeError("user code broke halfway")

    with pytest.raises(RuntimeError, match=re.escape("user code broke halfway")):
        write_parquet(SCHEMA, failing(), out)
    assert out.read_bytes() == before
    assert _leftovers(tmp_path, "node.parquet") == []


def test_failure_before_any_output_leaves_no_file(tmp_path):
    out = tmp_path / "node.parquet"

    def failing():
        raise ValueError("nothing produced")
        yield  # pragma: no cover

    with pytest.raises(ValueError, match=re.escape("nothing produced")):
        write_parquet(SCHEMA, failing(), out)
    assert list(tmp_path.iterdir()) == []


def test_keyboard_interrupt_also_cleans_up(tmp_path):
    out = tmp_path / "node.parquet"

    def interrupted():
        yield pa.RecordBatch.from_pylist([{"id": 1, "name": "a", "x": 1.0}], schema=SCHEMA)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt, match=r"^$"):
        write_parquet(SCHEMA, interrupted(), out)
    assert list(tmp_path.iterdir()) == []


def test_batches_differing_only_in_nullability_are_conformed(tmp_path):
    strict = pa.schema([pa.field("id", pa.int64(), nullable=False)])
    loose = pa.RecordBatch.from_pylist([{"id": 1}, {"id": 2}], schema=pa.schema([("id", pa.int64())]))
    out = tmp_path / "x.parquet"
    result = write_parquet(strict, [loose], out)
    assert result.rows == 2
    assert pq.read_table(out).schema.field("id").nullable is False


def test_batch_with_a_different_type_is_cast_or_rejected(tmp_path):
    target = pa.schema([("id", pa.int64())])
    out = tmp_path / "x.parquet"
    write_parquet(target, [pa.RecordBatch.from_pylist([{"id": 1}], schema=pa.schema([("id", pa.int32())]))], out)
    assert pq.read_table(out).schema == target
    bad = pa.RecordBatch.from_pylist([{"id": "not a number"}])
    with pytest.raises(pa.ArrowInvalid, match=re.escape("not a number")):
        write_parquet(target, [bad], out)
    assert pq.read_table(out).column("id").to_pylist() == [1]
    assert _leftovers(tmp_path, "x.parquet") == []


# ---- the writer thread: row groups compressed while the next is computed


def _many(n_batches: int, rows: int = 100) -> list[pa.RecordBatch]:
    return [pa.RecordBatch.from_pylist([{"id": b * rows + i, "name": f"n{b}", "x": float(i)} for i in range(rows)],
                                       schema=SCHEMA) for b in range(n_batches)]


def test_many_row_groups_on_the_writer_thread_keep_their_order(tmp_path):
    out = tmp_path / "node.parquet"
    batches = _many(12)
    # buffer_bytes=1: every batch is a row group of its own, written on the thread.
    result = write_parquet(SCHEMA, iter(batches), out, buffer_bytes=1)
    assert result.rows == 1200
    assert pq.ParquetFile(out).metadata.num_row_groups == 12
    assert pq.read_table(out).to_pylist() == pa.Table.from_batches(batches).to_pylist()


def test_failure_while_a_row_group_is_being_written_leaves_previous_file_intact(tmp_path):
    out = tmp_path / "node.parquet"
    write_parquet(SCHEMA, _many(1), out)
    before = out.read_bytes()

    def failing():
        yield from _many(5)
        raise RuntimeError("broke with a row group in flight")

    with pytest.raises(RuntimeError, match="in flight"):
        write_parquet(SCHEMA, failing(), out, buffer_bytes=1)
    assert out.read_bytes() == before
    assert _leftovers(tmp_path, "node.parquet") == []


def test_an_error_on_an_encoder_thread_reaches_the_caller(tmp_path, monkeypatch):
    import operators.sink as sink

    out = tmp_path / "node.parquet"
    write_parquet(SCHEMA, _many(1), out)
    before = out.read_bytes()
    calls = []

    def broken(table):
        calls.append(table.num_rows)
        raise OSError("disk full")

    monkeypatch.setattr(sink, "encode_part", broken)
    with pytest.raises(OSError, match="disk full"):
        write_parquet(SCHEMA, iter(_many(12)), out, buffer_bytes=1, threads=2)
    assert len(calls) <= 3  # the failure surfaces at the next wait: no more is queued after it
    assert out.read_bytes() == before
    assert _leftovers(tmp_path, "node.parquet") == []


def test_a_one_table_output_is_cut_into_row_groups_encoded_at_once(tmp_path):
    import operators.sink as sink

    n = 2 * sink.MIN_SPLIT_ROWS + 5
    table = pa.table({"id": pa.array(range(n), pa.int64()), "name": pa.array([str(i % 7) for i in range(n)])})
    out = tmp_path / "node.parquet"
    write_parquet(table.schema, table.to_batches(), out, threads=2)
    meta = pq.ParquetFile(out).metadata
    assert meta.num_row_groups == 2
    assert [meta.row_group(i).num_rows for i in range(2)] == [sink.MIN_SPLIT_ROWS + 3, sink.MIN_SPLIT_ROWS + 2]
    assert pq.read_table(out).equals(table)
    write_parquet(table.schema, table.to_batches(), out, threads=1)
    assert pq.ParquetFile(out).metadata.num_row_groups == 1
