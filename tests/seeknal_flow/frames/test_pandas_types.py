"""small_pandas_frame (online lookups) gives exactly pandas_frame's result, type by type, NULLs included."""

from __future__ import annotations

import datetime as dt
import decimal

import pandas as pd
import pyarrow as pa
import pytest

from seeknal_flow.frames.pandas_types import pandas_frame, small_pandas_frame

_INTS = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()]
COLUMNS = {
    **{str(t): ([1, None, 3], t) for t in _INTS},
    "bool": ([True, None, False], pa.bool_()),
    "float32": ([0.5, None, -1.0], pa.float32()),
    "float64": ([0.5, None, float("nan")], pa.float64()),
    "date32": ([dt.date(2026, 1, 2), None, dt.date(1970, 1, 1)], pa.date32()),
    "date64": ([dt.date(2026, 1, 2), None, dt.date(1999, 12, 31)], pa.date64()),
    **{f"ts_{u}": ([dt.datetime(2026, 1, 2, 3, 4, 5), None, dt.datetime(2000, 1, 1)], pa.timestamp(u))
       for u in ("s", "ms", "us", "ns")},
    "string": (["a", None, "é"], pa.string()),
    "large_string": (["a", None, ""], pa.large_string()),
    # Not converted column by column: the whole table goes through pandas_frame.
    "ts_tz": ([dt.datetime(2026, 1, 2, tzinfo=dt.UTC), None, None], pa.timestamp("us", tz="UTC")),
    "decimal": ([decimal.Decimal("1.50"), None, decimal.Decimal("2")], pa.decimal128(5, 2)),
}


def _table(names: list[str], rows: slice) -> pa.Table:
    return pa.table({n: pa.array(COLUMNS[n][0][rows], COLUMNS[n][1]) for n in names})


@pytest.mark.parametrize("name", list(COLUMNS))
@pytest.mark.parametrize("rows", [slice(0, 1), slice(1, 2), slice(0, 3), slice(0, 0)], ids=["one", "null", "three",
                                                                                         "empty"])
def test_same_frame_as_pandas_frame(name, rows):
    table = _table(["string", name] if name != "string" else [name], rows)
    got, want = small_pandas_frame(table), pandas_frame(table)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert list(got.dtypes) == list(want.dtypes)


def test_every_type_together_chunked_and_writable():
    names = [n for n in COLUMNS if n not in ("ts_tz", "decimal")]
    table = pa.concat_tables([_table(names, slice(0, 2)), _table(names, slice(2, 3))])  # two chunks per column
    got = small_pandas_frame(table)
    pd.testing.assert_frame_equal(got, pandas_frame(table), check_exact=True)
    got.loc[0, "float64"] = 9.0  # the caller owns the frame: no read-only Arrow buffers underneath
    got.loc[1, "ts_us"] = pd.Timestamp("2026-01-01")
    assert got.loc[0, "float64"] == 9.0 and table.column("float64")[0].as_py() == 0.5


def test_supported_types_never_take_the_to_pandas_path(monkeypatch):
    from seeknal_flow.frames import pandas_types

    names = [n for n in COLUMNS if n not in ("ts_tz", "decimal")]
    small_pandas_frame(_table(names, slice(0, 1)))  # the converters are built (and cached) once

    def refuse(*args, **kwargs):
        raise AssertionError("went through Table.to_pandas")

    monkeypatch.setattr(pandas_types, "pandas_frame", refuse)
    assert len(small_pandas_frame(_table(names, slice(0, 3)))) == 3
    with pytest.raises(AssertionError, match="to_pandas"):
        small_pandas_frame(_table(["string", "decimal"], slice(0, 1)))
