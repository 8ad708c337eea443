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


_MAPPING: dict[pa.DataType, Any] | None = None


def _cached_mapping() -> dict[pa.DataType, Any]:
    global _MAPPING
    if _MAPPING is None:
        _MAPPING = _mapping()
    return _MAPPING


def pandas_frame(table: pa.Table, *, use_threads: bool = True):
    """``table`` as a pandas DataFrame with the dtypes of the module docstring."""
    mapping = _cached_mapping()
    return table.to_pandas(types_mapper=mapping.get, date_as_object=False, use_threads=use_threads)


def small_pandas_frame(table: pa.Table):
    """:func:`pandas_frame` of a table of a few rows (an online lookup), in about half the time.

    ``Table.to_pandas`` spends ~0.15 ms per call on bookkeeping that a few rows never
    amortise; here each column is converted by its own rule (the same dtypes, checked
    against :func:`pandas_frame` type by type in the tests) and handed to pandas as one
    block each, as pyarrow itself does. A table with a type outside those rules, or a
    pandas without ``create_dataframe_from_blocks`` (before 3.0), goes through
    :func:`pandas_frame`.

    >>> df = small_pandas_frame(pa.table({"n": pa.array([1, None], pa.int64()), "x": [0.5, None]}))
    >>> [str(t) for t in df.dtypes], df["n"].isna().tolist()
    (['Int64', 'float64'], [False, True])
    """
    converters = _small_converters()
    if converters is None:
        return pandas_frame(table, use_threads=False)
    import numpy as np
    import pandas as pd
    from pandas.api.internals import create_dataframe_from_blocks

    blocks = []
    for j, column in enumerate(table.columns):
        convert = converters.get(column.type)
        if convert is None:
            return pandas_frame(table, use_threads=False)
        values = convert(column)
        if isinstance(values, np.ndarray):  # numpy blocks are 2-D: (columns, rows)
            values = values.reshape(1, -1)
        blocks.append((values, np.array([j], dtype=np.intp)))
    names = tuple(table.column_names)
    columns = _COLUMN_INDEXES.get(names)
    if columns is None:  # building the Index infers its string dtype: a third of the call; Indexes are immutable
        if len(_COLUMN_INDEXES) >= 256:
            _COLUMN_INDEXES.clear()
        columns = _COLUMN_INDEXES[names] = pd.Index(list(names))
    return create_dataframe_from_blocks(blocks, index=pd.RangeIndex(table.num_rows), columns=columns)


_SMALL: dict[pa.DataType, Any] | None = None
_COLUMN_INDEXES: dict[tuple[str, ...], Any] = {}  # column names -> pandas Index (a lookup asks the same ones)


def _small_converters() -> dict[pa.DataType, Any] | None:
    """Arrow type -> (ChunkedArray -> pandas ExtensionArray or writable 1-D numpy array), or None."""
    global _SMALL
    if _SMALL is not None:
        return _SMALL or None
    try:
        from pandas.api.internals import create_dataframe_from_blocks  # noqa: F401  (pandas >= 3.0)
    except ImportError:
        _SMALL = {}
        return None

    def numpy(column: pa.ChunkedArray):  # floats (NULL -> NaN) and naive timestamps (NULL -> NaT)
        return column.to_numpy().copy()  # writable, as to_pandas leaves it

    def dates(column: pa.ChunkedArray):  # date32/64 -> datetime64[ms], as date_as_object=False does
        return column.cast(pa.timestamp("ms")).to_numpy().copy()

    converters: dict[pa.DataType, Any] = {}
    for arrow_type, dtype in _cached_mapping().items():  # nullable integers and booleans
        converters[arrow_type] = dtype.__from_arrow__
    for arrow_type in (pa.float32(), pa.float64()):
        converters[arrow_type] = numpy
    for unit in ("s", "ms", "us", "ns"):
        converters[pa.timestamp(unit)] = numpy
    converters[pa.date32()] = converters[pa.date64()] = dates
    for arrow_type in (pa.string(), pa.large_string()):
        # Whatever string dtype this pandas gives (pandas 3: "str"), from an empty column of that type.
        dtype = pandas_frame(pa.table({"s": pa.array([], arrow_type)}), use_threads=False).dtypes["s"]
        if hasattr(dtype, "__from_arrow__"):
            converters[arrow_type] = dtype.__from_arrow__
    _SMALL = converters
    return converters


__all__ = ["pandas_frame", "small_pandas_frame"]
