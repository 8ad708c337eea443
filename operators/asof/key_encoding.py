"""Vectorized encodings for join kernels: keys -> dense int64 codes, times -> int64.

Codes are fitted on the *left* (spine) side: a right row whose key never occurs
on the left can never match, so it gets code -1 (or a code no left row has) and
is dropped before matching. NULL keys or times encode as -1 / invalid on either side.

Key columns are encoded without hashing when they allow it:

* integers and dates whose range is small: ``code = value - min``;
* strings (and binary) whose bytes vary little per position, e.g. fixed-width
  ids such as ``C00012345``: each byte position is one digit of a mixed-radix
  number over the bytes the left side has at that position, computed with one
  256-entry lookup table per position (no per-string Python, no hashing). When
  these numbers are dense they are the codes; otherwise the int64 numbers are
  hashed instead of the strings. A right string with any other byte, or
  longer than every left string, gets -1.

Anything else is dictionary-encoded on the left and looked up with
``pyarrow.compute.index_in``. The right side can be encoded chunk by chunk, from
several threads, with :meth:`KeyCodec.encode`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.lib.stride_tricks import as_strided

from operators.arrays import arrow_array, unpack_bits
from operators.errors import EngineError

_INT64_SAFE = 1 << 62
_BLOCK = 1 << 16  # rows per step of the string packer: its temporaries stay in cache
_MAX_WIDTH = 64  # longest string (bytes) the packer considers
_PAD = 256  # lookup-table slot for "past the end of the string"


def _dense_limit(n: int) -> int:
    """Largest code range used as is for ``n`` left rows; wider ranges are re-densified."""
    return 2 * n + 1024


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


def unified_key_type(lt: pa.DataType, rt: pa.DataType, name: str) -> pa.DataType:
    """The type :func:`unify_key_types` casts both sides to (raises like it does).

    >>> unified_key_type(pa.string(), pa.dictionary(pa.int32(), pa.string()), "k")
    DataType(string)
    """
    return unify_key_types(pa.chunked_array([], lt), pa.chunked_array([], rt), name)[0].type


def cast_key(col, target: pa.DataType):
    """Decode a dictionary column and cast it to ``target`` (the unified key type)."""
    col = _decode(col)
    return col if col.type == target else col.cast(target)


# ------------------------------------------------------------------------------ codec


class KeyCodec:
    """Key column(s) -> one int64 code per row; fitted on the left, applied to right chunks.

    Equal codes mean equal keys; codes are in ``range(n_codes)``; -1 means NULL.
    A right key absent from the left gets -1 or a code no left row has.
    :meth:`encode` keeps no state, so right chunks can be encoded concurrently.

    >>> codec, lcodes = KeyCodec.fit([pa.array(["a", "b", None])])
    >>> lcodes.tolist(), codec.encode([pa.array(["b", "z", "a", "ab"])]).tolist(), codec.n_codes
    ([0, 1, -1], [1, -1, 0, -1], 2)
    """

    def __init__(self, first, rest: list, n_codes: int) -> None:
        self._first, self._rest, self.n_codes = first, rest, n_codes

    @classmethod
    def fit(cls, left_cols: list) -> tuple[KeyCodec, np.ndarray]:
        """Fit on the left key column(s) (already unified); return the codec and left codes."""
        first, codes, n_codes = _fit_column(_one_array(left_cols[0]))
        rest = []
        for col in left_cols[1:]:
            enc, more, k = _fit_column(_one_array(col))
            pre = post = None
            if n_codes >= _INT64_SAFE // max(k, 1):
                pre, codes, n_codes = _fit_codes(codes, n_codes)
            codes = _combine(codes, more, k)
            n_codes *= k
            if n_codes > _dense_limit(len(codes)):
                # Re-densify so the next column (and the sort key) stays far from int64 overflow.
                post, codes, n_codes = _fit_codes(codes, n_codes)
            rest.append((enc, k, pre, post))
        return cls(first, rest, max(n_codes, 1)), codes

    def encode(self, cols: list) -> np.ndarray:
        """Codes of right key column(s) (same types as fitted; dictionaries are fine).

        int64, or int32 when a lookup table gives them.
        """
        codes = _encode_column(self._first, cols[0])
        for (enc, k, pre, post), col in zip(self._rest, cols[1:], strict=True):
            if pre is not None:
                codes = pre.encode_codes(codes)
            codes = _combine(codes, _encode_column(enc, col), k)
            if post is not None:
                codes = post.encode_codes(codes)
        return codes


def encode_keys(
    left_cols: list[pa.ChunkedArray], right_cols: list[pa.ChunkedArray], threads: int = 1
) -> tuple[np.ndarray, np.ndarray, int]:
    """Encode key column(s) of both sides to one int64 code per row.

    Returns ``(left_codes, right_codes, n_codes)``; equal codes mean equal keys,
    -1 means NULL; a right key absent from the left gets -1 or a code unused on the left.

    >>> lc, rc, n = encode_keys([pa.chunked_array([["a", "b", None]])],
    ...                         [pa.chunked_array([["b", "z", "a"]])])
    >>> lc.tolist(), rc.tolist(), n
    ([0, 1, -1], [1, -1, 0], 2)
    """
    del threads  # kept for callers; to use threads, call KeyCodec.encode on chunks from each
    codec, lcodes = KeyCodec.fit(left_cols)
    return lcodes, codec.encode(right_cols), codec.n_codes


def _one_array(col) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def _encode_column(enc, col) -> np.ndarray:
    if isinstance(col, pa.ChunkedArray):
        if col.num_chunks == 1:
            return _encode_column(enc, col.chunk(0))
        if col.num_chunks == 0:
            return np.zeros(0, np.int64)
        return np.concatenate([_encode_column(enc, c) for c in col.chunks])
    if pa.types.is_dictionary(col.type):
        # Encode the dictionary once, then map the indices.
        dict_codes = np.append(enc.encode(col.dictionary), -1)
        idx = _ints(col.indices.fill_null(-1))
        return dict_codes[idx]
    return enc.encode(col)


def _fit_column(col: pa.Array):
    """Pick an encoder for one left key column: (encoder, left codes, n_codes)."""
    t = col.type
    if col.null_count == len(col):
        return _NoKeys(), np.full(len(col), -1, np.int64), 1
    if pa.types.is_integer(t) or pa.types.is_date(t):
        found = _IntRange.fit(col)
        if found is not None:
            enc, codes, n = found
            if n <= _dense_limit(len(col)):
                return found
            remap, codes, n = _fit_codes(codes, n)
            return _Then(enc, remap), codes, n
    if _is_text(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        packer = _PackedText.fit(col)
        if packer is not None:
            codes = packer.encode(col)
            if packer.n_codes <= _dense_limit(len(col)):
                return packer, codes, packer.n_codes
            remap, codes, n = _fit_codes(codes, packer.n_codes)
            return _Then(packer, remap), codes, n
    return _Hashed.fit(col)


def _remap_limit(n: int) -> int:
    """Largest code range re-densified through an int32 lookup table (<= 256 MB), ``n`` rows."""
    return min(max(8 * n, 1 << 24), 1 << 26)


def _fit_codes(codes: np.ndarray, size: int):
    """Re-encode codes in ``range(size)`` (-1 = none) densely: (encoder, codes, n_codes).

    Through a lookup table indexed by code when the range is moderate, else by hashing.
    """
    if size <= _remap_limit(len(codes)):
        return _Remap.fit(codes, size)
    enc, dense, n = _Hashed.fit(arrow_array(codes, codes < 0))
    return _IntCodes(enc), dense, n


class _Remap:
    """Sparse codes -> dense ones through a table (one gather per row).

    The table has one entry per possible code plus a last one, read by code -1.
    Codes come back as int32 when that is enough.
    """

    def __init__(self, table: np.ndarray) -> None:
        self.table = table

    @classmethod
    def fit(cls, codes: np.ndarray, size: int):
        seen = np.zeros(size + 1, bool)
        seen[codes] = True  # code -1 marks the extra last entry
        seen[-1] = False
        table = np.cumsum(seen, dtype=np.int64)
        n = int(table[-1])
        table -= 1
        table = table.astype(np.int32 if n < (1 << 31) else np.int64)
        table[~seen] = -1
        enc = cls(table)
        return enc, enc.encode_codes(codes).astype(np.int64), max(n, 1)

    def encode_codes(self, codes: np.ndarray) -> np.ndarray:
        return self.table[codes]


def _combine(codes: np.ndarray, more: np.ndarray, k: int) -> np.ndarray:
    out = codes.astype(np.int64) * k + more
    out[(codes < 0) | (more < 0)] = -1
    return out


class _NoKeys:
    """The left column is all NULL: nothing can match."""

    def encode(self, col) -> np.ndarray:
        return np.full(len(col), -1, np.int64)


class _Hashed:
    """Dictionary of the left values; right values are looked up with ``index_in``."""

    def __init__(self, dictionary: pa.Array) -> None:
        self.dictionary = dictionary

    @classmethod
    def fit(cls, col: pa.Array):
        enc = pc.dictionary_encode(col)
        codes = _ints(enc.indices.fill_null(-1))
        return cls(enc.dictionary), codes, max(len(enc.dictionary), 1)

    def encode(self, col) -> np.ndarray:
        if col.type != self.dictionary.type:
            col = col.cast(self.dictionary.type)
        found = pc.index_in(col, value_set=self.dictionary)
        return _ints(found.fill_null(-1))


class _IntCodes:
    """Re-densify int64 codes (-1 = none) through a fitted :class:`_Hashed`."""

    def __init__(self, hashed: _Hashed) -> None:
        self.hashed = hashed

    def encode_codes(self, codes: np.ndarray) -> np.ndarray:
        return self.hashed.encode(arrow_array(codes, codes < 0))


class _Then:
    """Sparse codes (packed strings, wide int ranges), then re-densified."""

    def __init__(self, first, ints) -> None:
        self.first, self.ints = first, ints

    def encode(self, col) -> np.ndarray:
        return self.ints.encode_codes(self.first.encode(col))


class _IntRange:
    """Small-range integer or date ids need no hashing: ``code = value - min``."""

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi

    @classmethod
    def fit(cls, col: pa.Array):
        vals = _int_values(col)
        lo_hi = pc.min_max(vals)
        lo, hi = lo_hi["min"].as_py(), lo_hi["max"].as_py()
        if hi - lo >= _remap_limit(len(col)) or lo <= -(1 << 62):
            return None
        enc = cls(lo, hi)
        return enc, enc._codes(vals), hi - lo + 1

    def encode(self, col) -> np.ndarray:
        return self._codes(_int_values(col))

    def _codes(self, vals: pa.Array) -> np.ndarray:
        raw = _ints(vals.fill_null(self.lo - 1))
        # Range-check before subtracting: far-off right ids must not wrap into range.
        return np.where((raw >= self.lo) & (raw <= self.hi), raw - self.lo, -1).astype(np.int64, copy=False)


def _int_values(col) -> pa.Array:
    if pa.types.is_date32(col.type):
        return pc.cast(pc.cast(col, pa.int32()), pa.int64())
    if pa.types.is_date64(col.type):
        return pc.cast(col, pa.int64())
    return pc.cast(col, pa.int64())


class _PackedText:
    """Strings as mixed-radix numbers: byte ``p`` is a digit over the left's alphabet at ``p``.

    Position ``p`` has one digit per distinct byte the left strings longer than
    ``p`` have there, plus an "ended" digit (0) when some left string is that
    short. The number is injective on strings over those alphabets; any other
    byte or a longer string adds a large negative table entry, so the sum is
    negative and becomes code -1.
    """

    def __init__(self, luts: np.ndarray, n_codes: int) -> None:
        self.luts, self.n_codes, self.width = luts, n_codes, luts.shape[0]
        self._pair_luts: list[np.ndarray] | None = None

    @classmethod
    def fit(cls, col: pa.Array) -> _PackedText | None:
        col = _offset_layout(col)
        if col is None:
            return None
        offsets, data, valid = _text_buffers(col)
        lengths = np.diff(offsets)
        starts = offsets[:-1]
        if valid is not None:
            lengths, starts = lengths[valid], starts[valid]
        width, shortest = int(lengths.max()), int(lengths.min())
        if width > _MAX_WIDTH:
            return None
        limit = _INT64_SAFE // (width + 1)
        view = _fixed_view(offsets, data, width) if valid is None and shortest == width else None
        alphabets, total = [], 1
        for p in range(width):
            if view is not None:
                byte = view[:, p]
            else:
                byte = data[starts[lengths > p] + p]
            present = np.bincount(byte, minlength=256) > 0
            alphabets.append(present)
            total *= int(present.sum()) + (shortest <= p)
            if total > limit:
                return None
        sentinel = -(_INT64_SAFE // max(width, 1))
        luts = np.full((width, _PAD + 1), sentinel, np.int64)
        mult = 1
        for p in reversed(range(width)):
            pad = int(shortest <= p)
            present = alphabets[p]
            luts[p, :256][present] = (np.arange(int(present.sum()), dtype=np.int64) + pad) * mult
            if pad:
                luts[p, _PAD] = 0
            mult *= int(present.sum()) + pad
        return cls(luts, total)

    def encode(self, col) -> np.ndarray:
        col = _offset_layout(col)
        n = len(col)
        out = np.empty(n, np.int64)
        if not n:
            return out
        offsets, data, valid = _text_buffers(col)
        lengths = np.diff(offsets)
        short, long_ = int(lengths.min()), int(lengths.max())
        if short == long_ and long_ <= self.width:
            self._encode_fixed(data, int(offsets[0]), long_, out)
        else:
            self._encode_varying(offsets[:-1], lengths, data, out)
        np.maximum(out, -1, out=out)
        if valid is not None:
            out[~valid] = -1
        return out

    def _pairs(self) -> list[np.ndarray]:
        """Tables for two adjacent bytes read as one little-endian uint16 (half the lookups)."""
        if self._pair_luts is None:
            luts = self.luts[:, :256]
            self._pair_luts = [(luts[p + 1][:, None] + luts[p][None, :]).ravel()
                               for p in range(0, self.width - 1, 2)]
        return self._pair_luts

    def _encode_fixed(self, data: np.ndarray, base: int, w: int, out: np.ndarray) -> None:
        """All strings ``w`` bytes long, stored back to back from ``data[base]``."""
        ended = int(self.luts[w:, _PAD].sum()) if w < self.width else 0
        if ended < 0 or not w:  # < 0: strings this short never occur on the left
            out.fill(-1 if ended < 0 else ended)
            return
        pairs = self._pairs()
        tmp = np.empty(min(len(out), _BLOCK), np.int64)
        for s in range(0, len(out), _BLOCK):
            acc = out[s:s + _BLOCK]
            m, t = len(acc), tmp[: len(acc)]
            at = base + s * w
            if w % 2:
                last = np.ndarray((m,), np.uint8, data, at + w - 1, (w,))
                np.take(self.luts[w - 1], last, out=acc)
            else:
                acc.fill(0)
            for q in range(w // 2):
                two = np.ndarray((m,), "<u2", data, at + 2 * q, (w,))
                np.take(pairs[q], two, out=t)
                acc += t
            if ended:
                acc += ended

    def _encode_varying(self, starts, lengths, data, out: np.ndarray) -> None:
        luts, last = self.luts, len(data) - 1
        for s in range(0, len(out), _BLOCK):
            st, ln = starts[s:s + _BLOCK], lengths[s:s + _BLOCK]
            acc = out[s:s + _BLOCK]
            acc.fill(0)
            for p in range(self.width):
                byte = np.where(ln > p, data[np.minimum(st + p, last)], np.intp(_PAD))
                acc += luts[p][byte]
            acc[ln > self.width] = -1


def _offset_layout(col):
    """The column as string/binary with offsets (string_view is cast); None if not text."""
    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) \
            or pa.types.is_large_binary(t):
        return col
    if _is_text(t):
        return col.cast(pa.large_string())
    return None


def _text_buffers(col: pa.Array):
    """(offsets, data bytes, validity or None) of a string/binary array (no copies)."""
    n = len(col)
    width = 8 if pa.types.is_large_string(col.type) or pa.types.is_large_binary(col.type) else 4
    bufs = col.buffers()
    offsets = np.frombuffer(bufs[1], np.int64 if width == 8 else np.int32, n + 1, col.offset * width)
    data = np.frombuffer(bufs[2], np.uint8) if bufs[2] is not None and bufs[2].size else np.zeros(1, np.uint8)
    valid = _bools(col.is_valid()) if col.null_count else None
    return offsets, data, valid


def _fixed_view(offsets: np.ndarray, data: np.ndarray, w: int):
    """Rows of equal-length strings as an (n, w) byte matrix, without copying."""
    n = len(offsets) - 1
    if not w:
        return None
    return as_strided(data[int(offsets[0]):], shape=(n, w), strides=(w, 1), writeable=False)


def _ints(col) -> np.ndarray:
    """A null-free integer Arrow array as int64 numpy (zero-copy for int64).

    Reads the buffer directly: ``Array.to_numpy`` can import pandas (~0.2 s)
    the first time it meets an array that came from a Parquet reader.
    """
    if isinstance(col, pa.ChunkedArray):
        parts = [_ints(c) for c in col.chunks]
        return parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.zeros(0, np.int64)
    t = col.type
    if not pa.types.is_integer(t) or col.null_count:
        return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.int64)
    width = t.bit_width // 8
    dtype = np.dtype(f"{'i' if pa.types.is_signed_integer(t) else 'u'}{width}").newbyteorder("=")
    data = np.frombuffer(col.buffers()[1], dtype, len(col), col.offset * width)
    return data if dtype == np.int64 else data.astype(np.int64)


def _bools(col) -> np.ndarray:
    """A null-free boolean Arrow array as a numpy bool array (see :func:`_ints`)."""
    if isinstance(col, pa.ChunkedArray):
        parts = [_bools(c) for c in col.chunks]
        return parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.zeros(0, bool)
    return unpack_bits(col.buffers()[1], col.offset, len(col))


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _decode(col):
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


def time_values(col, unit: str, name: str, side: str):
    """Times as int64 counts of ``unit`` since the epoch (UTC), plus a validity mask.

    Timestamps with a time zone are stored as UTC instants already; naive ones
    are taken as UTC, dates as midnight UTC. The mask is None when all are valid.

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
    if not ints.null_count:
        return _ints(ints), None
    return _ints(ints.fill_null(0)), _bools(ints.is_valid())


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
    vals = _ints(_int_values(arr).fill_null(0))
    return _mix(vals.astype(np.uint64))


def _text_hash(arr: pa.Array) -> np.ndarray:
    """Hash of the bytes: the string as zero-padded little-endian 64-bit words, each mixed.

    Rows are copied block by block into a zero-padded byte matrix (a strided
    copy when all strings have the same length, else a gather), whose rows are
    read as uint64 words: the value depends only on the bytes and the length.
    """
    col = _offset_layout(arr)
    if col is None:
        col = arr.cast(pa.large_string())
    n = len(col)
    out = np.zeros(n, np.uint64)
    if not n:
        return out
    offsets, data, _ = _text_buffers(col)
    lengths = np.diff(offsets)
    longest = int(lengths.max())
    words = (longest + 7) // 8
    fixed = int(lengths.min()) == longest
    step = max(1, min(_BLOCK, (1 << 22) // max(8 * words, 1)))
    keys = [np.uint64((2 * k + 1) * 0x9E3779B97F4A7C15 % (1 << 64)) for k in range(words)]
    last = len(data) - 1
    for a in range(0, n, step):
        b = min(a + step, n)
        m = b - a
        h = out[a:b]
        if fixed and longest >= 8:
            # Equal lengths: read the words in place (unaligned, strided), no copy.
            base = int(offsets[a])
            for k in range(words):
                at = min(8 * k, longest - 8)  # the last word overlaps the one before...
                word = np.ndarray((m,), "<u8", data, base + at, (longest,))
                if at < 8 * k:  # ...and drops the overlap
                    word = word >> np.uint64(8 * (8 * k - at))
                h += _mix(word ^ keys[k])
        elif words:
            mat = np.zeros((m, 8 * words), np.uint8)
            if fixed:
                mat[:, :longest] = np.ndarray((m, longest), np.uint8, data, int(offsets[a]), (longest, 1))
            else:
                st, ln = offsets[a:b, None], lengths[a:b, None]
                pos = np.arange(longest)
                mat[:, :longest] = np.where(pos < ln, data[np.minimum(st + pos, last)], 0)
            w = mat.view("<u8")
            ln = lengths[a:b]
            for k in range(words):
                mixed = _mix(w[:, k] ^ keys[k])
                mixed[ln <= 8 * k] = 0  # only the words a string has
                h += mixed
        h ^= lengths[a:b].astype(np.uint64) * np.uint64(0xD6E8FEB86659FD93)
    return _mix(out)


def _mix(x: np.ndarray) -> np.ndarray:
    # splitmix64 finalizer: spreads low-entropy ints across all 64 bits.
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))
