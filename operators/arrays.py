"""numpy <-> Arrow by their buffers, without pandas.

``pa.array(ndarray)``, ``pa.scalar`` and ``Array.to_numpy`` can import pandas (~0.2-0.3 s)
the first time they meet an array; kernels that hand numpy results to Arrow (the ASOF
join, the SOA state) build and read the buffers directly instead.

>>> arrow_array(np.array([1, 2, 3]), mask=np.array([False, True, False])).to_pylist()
[1, None, 3]
>>> unpack_bits(pack_bits(np.array([True, False, True])), 0, 3).tolist()
[True, False, True]
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def pack_bits(flags: np.ndarray) -> pa.Buffer:
    """A bool numpy array as an Arrow bitmap (least significant bit first)."""
    return pa.py_buffer(np.packbits(np.asarray(flags, bool), bitorder="little"))


def unpack_bits(bitmap: pa.Buffer, offset: int, length: int) -> np.ndarray:
    """Bits ``offset .. offset + length`` of an Arrow bitmap as a numpy bool array."""
    bits = np.frombuffer(bitmap, np.uint8)
    first, last = offset // 8, (offset + length + 7) // 8
    flat = np.unpackbits(bits[first:last], bitorder="little")
    return flat[offset - 8 * first: offset - 8 * first + length].astype(bool)


def arrow_array(values: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """A numeric numpy array as an Arrow array, zero-copy; ``mask`` marks nulls."""
    values = np.ascontiguousarray(values)
    validity, nulls = None, 0
    if mask is not None:
        nulls = int(np.count_nonzero(mask))
        if nulls:
            validity = pack_bits(~np.asarray(mask, bool))
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values),
                                 [validity, pa.py_buffer(values)], null_count=nulls)


def bool_array(flags: np.ndarray) -> pa.BooleanArray:
    """A bool numpy array (no nulls) as an Arrow boolean array."""
    return pa.Array.from_buffers(pa.bool_(), len(flags), [None, pack_bits(flags)])


def validity(arr: pa.Array) -> np.ndarray:
    """Which values of ``arr`` are not null, as a numpy bool array."""
    if arr.null_count == 0 or arr.buffers()[0] is None:
        return np.ones(len(arr), bool)
    return unpack_bits(arr.buffers()[0], arr.offset, len(arr))
