"""Vectorized encodings for join kernels: keys -> dense int64 codes, times -> int64.

Codes are built from the *left* (spine) side: a right row whose key never occurs
on the left can never match, so it gets code -1 and is dropped before sorting.
NULL keys or times encode as -1 / invalid on either side.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.errors import EngineError

_INT64_SAFE = 1 << 62
_MIN_SLICE = 1 << 20  # below this, thread hand-off costs more than index_in itself


def unify_key_types(left: pa.ChunkedArray, right: pa.ChunkedArray, name: str):
    """Cast a key column pair to one common type (dictionaries decoded, ints widened).

    >>> l, r = unify_key_types(pa.chunked_array([pa.array([1], pa.int32())]),
    ...                        pa.chunked_array([pa.array([1], pa.int64())]), "k")
    >>> (l.type, r.type)
    (DataType(int64), DataType(int64))
    """
    left, right = _decode(left), _decode(right)
    lt, rt = left.type, right.type
    if lt == rt:
        return left, right
    if _is_text(lt) and _is_text(rt):
        return left.cast(pa.large_string()), right.cast(pa.large_string())
    if pa.types.is_integer(lt) and pa.types.is_integer(rt):
        return left.cast(pa.int64()), right.cast(pa.int64())
    try:
        return left.cast(rt), right
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise EngineError(
            f"join key '{name}' is {lt} in the left (spine) input but {rt} in the right "
            f"(features) input; cast one side so both have the same type"
        ) from exc


def encode_keys(
    left_cols: list[pa.ChunkedArray], right_cols: list[pa.ChunkedArray], threads: int = 1
) -> tuple[np.ndarray, np.ndarray, int]:
    """Encode key column(s) of both sides to one int64 code per row.

    Returns ``(left_codes, right_codes, n_codes)``; equal codes mean equal keys,
    -1 means NULL (or, on the right, a key absent from the left).

    >>> lc, rc, n = encode_keys([pa.chunked_array([["a", "b", None]])],
    ...                         [pa.chunked_array([["b", "z", "a"]])])
    >>> lc.tolist(), rc.tolist(), n
    ([0, 1, -1], [1, -1, 0], 2)
    """
    lcodes = rcodes = None
    n_codes = 1
    for lcol, rcol in zip(left_cols, right_cols, strict=True):
        lc, rc, k = _encode_one(lcol, rcol, threads)
        if lcodes is None:
            lcodes, rcodes, n_codes = lc, rc, k
            continue
        if n_codes >= _INT64_SAFE // max(k, 1):
            lcodes, rcodes, n_codes = _densify(lcodes, rcodes, threads)
        lcodes, rcodes = _combine(lcodes, lc, k), _combine(rcodes, rc, k)
        n_codes *= k
        if n_codes > 4 * len(lcodes) + 1024:
            # Re-densify so the next column (and the sort key) stays far from int64 overflow.
            lcodes, rcodes, n_codes = _densify(lcodes, rcodes, threads)
    return lcodes, rcodes, n_codes


def _encode_one(lcol: pa.ChunkedArray, rcol: pa.ChunkedArray, threads: int):
    if pa.types.is_integer(lcol.type) or pa.types.is_date(lcol.type):
        dense = _dense_int_codes(lcol, rcol)
        if dense is not None:
            return dense
    enc = pc.dictionary_encode(lcol.combine_chunks())
    lcodes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    rcodes = _lookup(rcol, enc.dictionary, threads)
    return lcodes, rcodes, len(enc.dictionary)


def _dense_int_codes(lcol: pa.ChunkedArray, rcol: pa.ChunkedArray):
    # Small-range integer ids need no hashing: code = value - min.
    int_type = pa.int64()
    lvals = pc.cast(lcol, int_type) if not pa.types.is_date(lcol.type) else _date_ints(lcol)
    lo_hi = pc.min_max(lvals)
    lo, hi = lo_hi["min"].as_py(), lo_hi["max"].as_py()
    if lo is None:
        return np.full(len(lcol), -1, np.int64), np.full(len(rcol), -1, np.int64), 1
    if hi - lo > 4 * len(lcol) + 1024 or lo <= -(1 << 62):
        return None
    rvals = pc.cast(rcol, int_type) if not pa.types.is_date(rcol.type) else _date_ints(rcol)
    lc = _null_to(lvals, lo - 1) - lo
    rraw = _null_to(rvals, lo - 1)
    # Range-check before subtracting: far-off right ids must not wrap into range.
    outside = (rraw < lo) | (rraw > hi)
    rc = rraw - lo
    rc[outside] = -1
    lc[lc < 0] = -1
    return lc, rc, hi - lo + 1


def _date_ints(col: pa.ChunkedArray) -> pa.ChunkedArray:
    width = pa.int32() if col.type == pa.date32() else pa.int64()
    return pc.cast(pc.cast(col, width), pa.int64())


def _null_to(col: pa.ChunkedArray, fill: int) -> np.ndarray:
    return col.fill_null(fill).to_numpy().astype(np.int64, copy=True)


def _lookup(rcol: pa.ChunkedArray, dictionary: pa.Array, threads: int) -> np.ndarray:
    # index_in releases the GIL: big slices in parallel beat one long call.
    n = len(rcol)
    parts = max(1, min(threads, n // _MIN_SLICE))
    bounds = np.linspace(0, n, parts + 1).astype(np.int64)

    def one(i: int) -> np.ndarray:
        piece = rcol.slice(bounds[i], bounds[i + 1] - bounds[i])
        return pc.index_in(piece, value_set=dictionary).fill_null(-1).to_numpy().astype(np.int64)

    if parts == 1:
        return one(0)
    with ThreadPoolExecutor(parts) as pool:
        return np.concatenate(list(pool.map(one, range(parts))))


def _combine(codes: np.ndarray, more: np.ndarray, k: int) -> np.ndarray:
    out = codes * k + more
    out[(codes < 0) | (more < 0)] = -1
    return out


def _densify(lcodes: np.ndarray, rcodes: np.ndarray, threads: int):
    lcol = pa.chunked_array([pa.array(lcodes, mask=lcodes < 0)])
    rcol = pa.chunked_array([pa.array(rcodes, mask=rcodes < 0)])
    return _encode_one_hashed(lcol, rcol, threads)


def _encode_one_hashed(lcol, rcol, threads):
    enc = pc.dictionary_encode(lcol.combine_chunks())
    lc = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return lc, _lookup(rcol, enc.dictionary, threads), len(enc.dictionary)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _decode(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(col.type):
        return col.cast(col.type.value_type)
    return col


# --------------------------------------------------------------------------- times

_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def time_unit(*types: pa.DataType) -> str:
    """The unit both sides are compared in: ns if either side has ns, else us.

    >>> time_unit(pa.date32(), pa.timestamp("ns", tz="UTC"))
    'ns'
    """
    return "ns" if any(pa.types.is_timestamp(t) and t.unit == "ns" for t in types) else "us"


def check_time_type(t: pa.DataType, name: str, side: str) -> None:
    """Raise unless ``t`` is a date or timestamp type."""
    if not (pa.types.is_date(t) or pa.types.is_timestamp(t)):
        raise EngineError(
            f"time column '{name}' of the {side} input is {t}; expected date or timestamp"
        )


def time_values(col: pa.ChunkedArray, unit: str, name: str, side: str):
    """Times as int64 counts of ``unit`` since the epoch (UTC), plus a validity mask.

    Timestamps with a time zone are stored as UTC instants already; naive ones
    are taken as UTC, dates as midnight UTC.

    >>> v, ok = time_values(pa.chunked_array([pa.array([1, None], pa.date32())]), "us", "d", "left")
    >>> v.tolist(), ok.tolist()
    ([86400000000, 0], [True, False])
    """
    t = col.type
    check_time_type(t, name, side)
    target = _PER_SECOND[unit]
    if pa.types.is_date32(t):
        ints, factor = pc.cast(pc.cast(col, pa.int32()), pa.int64()), 86_400 * target
    elif pa.types.is_date64(t):
        ints, factor = pc.cast(col, pa.int64()), target // 1_000
    else:
        ints, factor = pc.cast(col, pa.int64()), target // _PER_SECOND[t.unit]
    if factor != 1:
        try:
            ints = pc.multiply_checked(ints, factor)
        except pa.ArrowInvalid as exc:
            raise EngineError(
                f"time column '{name}' of the {side} input has values outside the "
                f"nanosecond timestamp range; cast it to timestamp[us]"
            ) from exc
    valid = ints.is_valid().to_numpy(zero_copy_only=False) if ints.null_count else None
    values = ints.fill_null(0).to_numpy() if ints.null_count else ints.to_numpy()
    if valid is None:
        valid = np.ones(len(values), dtype=bool)
    return np.asarray(values, dtype=np.int64), valid


# ---------------------------------------------------------------------- partitioning

_MULT = np.uint64(0x9E3779B97F4A7C15)


def key_hash(cols: list[pa.ChunkedArray | pa.Array]) -> np.ndarray:
    """A deterministic uint64 hash of key column(s), equal for equal keys.

    Used to hash-partition both sides into buckets; columns must already be
    unified with :func:`unify_key_types` (integers and dates are hashed by value,
    text by its UTF-8 bytes).

    >>> a = key_hash([pa.array(["x", "yy", "x"])])
    >>> bool(a[0] == a[2]), bool(a[0] != a[1])
    (True, True)
    """
    h = None
    for col in cols:
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        col = _decode(col)
        one = _text_hash(col) if _is_text(col.type) else _int_hash(col)
        h = one if h is None else _mix(h * _MULT + one)
    return h


def _int_hash(arr: pa.Array) -> np.ndarray:
    if pa.types.is_date(arr.type):
        arr = _date_ints(pa.chunked_array([arr])).combine_chunks()
    vals = pc.cast(arr, pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    return _mix(vals.astype(np.uint64))


def _text_hash(arr: pa.Array) -> np.ndarray:
    arr = arr.cast(pa.large_string())
    n = len(arr)
    if n == 0:
        return np.zeros(0, np.uint64)
    _, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, np.int64, n + 1, arr.offset * 8)
    start, end = offsets[0], offsets[-1]
    data = np.frombuffer(data_buf, np.uint8, end - start, start) if end > start else None
    lengths = np.diff(offsets)
    h = np.zeros(n, np.uint64)
    if data is not None:
        pos = np.arange(end - start, dtype=np.uint64) - np.repeat(
            (offsets[:-1] - start).astype(np.uint64), lengths
        )
        # Byte value times a position-dependent odd multiplier, summed per string.
        weighted = (data.astype(np.uint64) + np.uint64(1)) * _mix(pos + np.uint64(1))
        nonempty = lengths > 0
        sums = np.add.reduceat(weighted, (offsets[:-1] - start)[nonempty])
        h[nonempty] = sums
    return _mix(h ^ lengths.astype(np.uint64))


def _mix(x: np.ndarray) -> np.ndarray:
    # splitmix64 finalizer: spreads low-entropy ints across all 64 bits.
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))
