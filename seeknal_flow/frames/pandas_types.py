"""One Arrow -> pandas mapping for every feature read: offline (``HistoricalFeaturesDuckDB.to_dataframe``)
and online (``OnlineFeaturesDuckDB.get_features``) return the same dtypes for the same features,
whether or not a key is missing.

| Arrow | pandas |
|---|---|
| int8 … int64, uint8 … uint64 | nullable ``Int8`` … ``Int64``, ``UInt8`` … ``UInt64`` (missing: ``<NA>``) |
| bool | nullable ``boolean`` |
| float32, float64 | ``float32``, ``float64`` (missing: NaN) |
| date32, date64 | ``datetime64[ms]`` (not ``object``) |
| timestamp[unit, tz] | ``datetime64[unit]`` (with its time zone) |
| string, large_string | pandas' string dtype |
| decimal | ``object`` of ``Decimal`` |

>>> import pyarrow as pa
>>> df = pandas_frame(pa.table({"n": pa.array([1, None], pa.int64()), "d": pa.array([0, None], pa.date32())}))
>>> [str(t) for t in df.dtypes]
['Int64', 'datetime64[ms]']
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa


def _mapping() -> dict[pa.DataType, Any]:
    import pandas as pd

    return {
        pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(), pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(),
        pa.uint32(): pd.UInt32Dtype(), pa.uint64(): pd.UInt64Dtype(), pa.bool_(): pd.BooleanDtype(),
    }


def pandas_frame(table: pa.Table, *, use_threads: bool = True):
    """``table`` as a pandas DataFrame with the dtypes of the module docstring."""
    mapping = _mapping()
    return table.to_pandas(types_mapper=mapping.get, date_as_object=False, use_threads=use_threads)


__all__ = ["pandas_frame"]
