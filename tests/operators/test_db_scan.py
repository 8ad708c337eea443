"""Kernels of the database scan that need no server: the watermark's maximum and its bound value."""

from __future__ import annotations

import datetime
import decimal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.db_scan import _fixed_width_value, _physical, column_max

_STAMP = st.datetimes(min_value=datetime.datetime(1900, 1, 1), max_value=datetime.datetime(2200, 1, 1))
_COLUMNS = {
    "int64": (pa.int64(), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    "int32": (pa.int32(), st.integers(min_value=-(2**31), max_value=2**31 - 1)),
    "float64": (pa.float64(), st.floats(allow_nan=False, allow_infinity=False)),
    "date": (pa.date32(), st.dates(min_value=datetime.date(1, 1, 1))),
    "ts_utc": (pa.timestamp("us", tz="UTC"), _STAMP),
    "ts_naive": (pa.timestamp("us"), _STAMP),
    "ts_ms": (pa.timestamp("ms"), _STAMP.map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))),
    "ts_ns": (pa.timestamp("ns"), st.integers(min_value=-(2**62), max_value=2**62)),
    "decimal": (pa.decimal128(12, 2), st.decimals(min_value=-(10**9), max_value=10**9, places=2)),
    "text": (pa.string(), st.text(max_size=12)),
    "bool": (pa.bool_(), st.booleans()),
}


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(_COLUMNS)), data=st.data(), row_group=st.integers(min_value=1, max_value=7))
def test_column_max_equals_a_scan_of_the_column(tmp_path_factory, name, data, row_group):
    kind, values = _COLUMNS[name]
    rows = data.draw(st.lists(st.one_of(st.none(), values), max_size=25))
    column = pa.array(rows, type=kind)
    path = tmp_path_factory.mktemp("max") / "part.parquet"
    pq.write_table(pa.table({"c": column}), path, row_group_size=row_group)
    top = pc.max(pq.read_table(path).column("c"))  # the reference: what the reader gives back
    expected = (_physical(top), str(top.as_py())) if top.is_valid else None
    assert column_max(path, "c") == expected


def test_column_max_orders_decimals_as_numbers(tmp_path):
    path = tmp_path / "p.parquet"
    values = [decimal.Decimal("9.75"), decimal.Decimal("10.25")]
    pq.write_table(pa.table({"c": pa.array(values, pa.decimal128(6, 2))}), path, row_group_size=1)
    assert column_max(path, "c") == ("10.25", "10.25")


@given(name=st.sampled_from(["int64", "int32", "float64", "date", "ts_utc", "ts_naive", "ts_ms", "bool"]),
       data=st.data())
def test_fixed_width_value_holds_the_physical_watermark(name, data):
    kind, values = _COLUMNS[name]
    scalar = pa.array([data.draw(values)], type=kind)[0]
    built = _fixed_width_value(_physical(scalar), kind)
    assert built.type == kind and built.to_pylist() == [scalar.as_py()]


def test_fixed_width_value_leaves_text_and_decimals_to_a_cast():
    assert _fixed_width_value("abc", pa.string()) is None
    assert _fixed_width_value("1.50", pa.decimal128(4, 2)) is None
    assert _fixed_width_value(2**40, pa.int32()) is None  # does not fit: the caller reports --full
