"""One Parquet file from row groups encoded apart, on several threads.

pyarrow's ``ParquetWriter`` encodes a file's row groups one after another on one
thread, so writing a node's output ran at one core's speed (about 2 s of a
1e7-row feature group, most of that node). Here pyarrow writes each row group as
a small Parquet file of its own, in memory, on a worker thread (encoding and
compression release the GIL). :class:`ConcatenatedFile` then appends the row
groups' bytes to the output in order and writes one footer for all of them: the
parts' footers (Thrift compact protocol) are decoded, the file offsets they hold
are shifted to where their bytes landed, and the whole is encoded again.

The footers are decoded and encoded in Python, ~0.1 ms per column of each row group
(a 500-column row group: ~50 ms against ~0.5-1 s to encode its 64 MB), each row group's
metadata as soon as its part arrives, so closing the file only joins them.

Only the footer holds absolute file offsets; pages do not, so their bytes are
copied unchanged. The exception is the page index (its offset index lists page
positions), which the parts must not write: :func:`encode_part` never asks for one,
and a part that has one is refused.
"""

from __future__ import annotations

from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from operators.errors import EngineError

MAGIC = b"PAR1"
# A high-cardinality column (ids, amounts, times) falls back from dictionary to plain
# encoding once its dictionary page reaches this size. pyarrow's default (1 MiB) hashes
# ~130k values of each such column per row group first; measured on the benchmark
# tables, 256 KiB writes 5-35 % faster and the files are no larger (low-cardinality
# columns fit either way).
DICTIONARY_PAGE_BYTES = 256 << 10
COMPRESSION = "zstd"

# Thrift compact protocol type ids (the field header's low nibble).
_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT, _UUID = range(14)

# Field ids of parquet.thrift that hold absolute file offsets, or that this module sets.
_FILE_NUM_ROWS, _FILE_ROW_GROUPS = 3, 4
_RG_COLUMNS, _RG_FILE_OFFSET, _RG_ORDINAL = 1, 5, 7
_CC_FILE_OFFSET, _CC_META, _CC_OFFSET_INDEX, _CC_COLUMN_INDEX = 2, 3, 4, 6
_CM_OFFSETS = (9, 10, 11, 14)  # data page, index page, dictionary page, bloom filter


def encode_part(table: pa.Table) -> pa.Buffer:
    """``table`` as a complete one-row-group Parquet file in memory (GIL released while encoding).

    >>> buf = encode_part(pa.table({"x": [1, 2]}))
    >>> bytes(buf[:4]), pq.read_table(pa.BufferReader(buf))["x"].to_pylist()
    (b'PAR1', [1, 2])
    """
    out = pa.BufferOutputStream()
    pq.write_table(table, out, row_group_size=max(table.num_rows, 1), compression=COMPRESSION,
                   dictionary_pagesize_limit=DICTIONARY_PAGE_BYTES, write_page_index=False)
    return out.getvalue()


class ConcatenatedFile:
    """Appends encoded parts (see :func:`encode_part`) to ``f`` and closes with one footer.

    All parts must come from tables of one schema, written with the same options.

    >>> import io
    >>> f = io.BytesIO()
    >>> out = ConcatenatedFile(f)
    >>> out.append(encode_part(pa.table({"x": [1, 2]})))
    >>> out.append(encode_part(pa.table({"x": [3]})))
    >>> out.close()
    >>> pf = pq.ParquetFile(io.BytesIO(f.getvalue()))
    >>> pf.metadata.num_row_groups, pf.read()["x"].to_pylist()
    (2, [1, 2, 3])
    """

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._f.write(MAGIC)
        self._pos = len(MAGIC)
        self._meta: list | None = None  # the first part's footer, the template of the file's
        self._row_groups: list[bytes] = []  # each row group's metadata, shifted and encoded
        self.rows = 0

    def append(self, part: pa.Buffer | bytes) -> None:
        """Write one part's row group(s) after the previous ones."""
        view = memoryview(part).cast("B")  # a pa.Buffer's view holds signed chars
        if len(view) < 12 or view[:4] != MAGIC or view[-4:] != MAGIC:
            raise EngineError("internal: a Parquet part to concatenate is not a Parquet file")
        footer_len = int.from_bytes(view[-8:-4], "little")
        footer = len(view) - 8 - footer_len
        meta, _ = _decode_struct(view, footer)
        body = view[4:footer]
        shift = self._pos - 4
        self._f.write(body)
        self._pos += len(body)
        for group in _get(meta, _FILE_ROW_GROUPS, (_STRUCT, []))[1]:
            _shift_row_group(group, shift, len(self._row_groups))
            # Encoded now, while the encoders still work: the footer is then only joined.
            encoded = bytearray()
            _encode_struct(group, encoded)
            self._row_groups.append(bytes(encoded))
        self.rows += _get(meta, _FILE_NUM_ROWS, 0)
        if self._meta is None:
            self._meta = meta

    def close(self) -> None:
        """Write the footer (the first part's, with every part's row groups and rows)."""
        if self._meta is None:
            raise EngineError("internal: a concatenated Parquet file needs at least one part")
        _set(self._meta, _FILE_NUM_ROWS, _I64, self.rows)
        _set(self._meta, _FILE_ROW_GROUPS, _LIST, (_STRUCT, self._row_groups))
        out = bytearray()
        _encode_struct(self._meta, out)
        self._f.write(out)
        self._f.write(len(out).to_bytes(4, "little"))
        self._f.write(MAGIC)


def _shift_row_group(group: list, shift: int, ordinal: int) -> None:
    for field in group:
        if field[0] == _RG_FILE_OFFSET:
            field[2] += shift
        elif field[0] == _RG_ORDINAL:
            field[2] = ordinal
    for column in _get(group, _RG_COLUMNS, (_STRUCT, []))[1]:
        for field in column:
            if field[0] in (_CC_OFFSET_INDEX, _CC_COLUMN_INDEX):
                raise EngineError("internal: a Parquet part with a page index cannot be concatenated")
            if field[0] == _CC_FILE_OFFSET and field[2] > 0:
                field[2] += shift
            elif field[0] == _CC_META:
                for meta_field in field[2]:
                    if meta_field[0] in _CM_OFFSETS:
                        meta_field[2] += shift


def _get(fields: list, fid: int, default=None):
    for field in fields:
        if field[0] == fid:
            return field[2]
    return default


def _set(fields: list, fid: int, ctype: int, value) -> None:
    for field in fields:
        if field[0] == fid:
            field[1], field[2] = ctype, value
            return
    fields.append([fid, ctype, value])
    fields.sort(key=lambda f: f[0])


# ------------------------------------------------------------ Thrift compact protocol
# A struct decodes to a list of [field id, compact type, value]; lists and sets to
# (element type, [values]); maps to (key type, value type, [(k, v), ...]); booleans in a
# struct keep their value in the type (_TRUE/_FALSE, value None), in a collection as the
# byte written. Encoding the decoded form gives back the same bytes.


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _unzigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def _zigzag(n: int) -> int:
    return n << 1 if n >= 0 else ((-n) << 1) - 1


def _put_varint(out: bytearray, n: int) -> None:
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _decode_struct(buf: memoryview, pos: int) -> tuple[list, int]:
    fields, last = [], 0
    while True:
        header = buf[pos]
        pos += 1
        if header == _STOP:
            return fields, pos
        ctype, delta = header & 0x0F, header >> 4
        if delta:
            fid = last + delta
        else:
            raw, pos = _varint(buf, pos)
            fid = _unzigzag(raw)
        if ctype in (_TRUE, _FALSE):
            value = None
        else:
            value, pos = _decode_value(buf, pos, ctype)
        fields.append([fid, ctype, value])
        last = fid


def _decode_value(buf: memoryview, pos: int, ctype: int):
    if ctype in (_TRUE, _FALSE, _BYTE):  # a boolean in a collection is one byte
        return buf[pos], pos + 1
    if ctype in (_I16, _I32, _I64):
        raw, pos = _varint(buf, pos)
        return _unzigzag(raw), pos
    if ctype == _DOUBLE:
        return bytes(buf[pos:pos + 8]), pos + 8
    if ctype == _BINARY:
        n, pos = _varint(buf, pos)
        return bytes(buf[pos:pos + n]), pos + n
    if ctype == _UUID:
        return bytes(buf[pos:pos + 16]), pos + 16
    if ctype in (_LIST, _SET):
        header = buf[pos]
        pos += 1
        size, etype = header >> 4, header & 0x0F
        if size == 15:
            size, pos = _varint(buf, pos)
        items = []
        for _ in range(size):
            item, pos = _decode_struct(buf, pos) if etype == _STRUCT else _decode_value(buf, pos, etype)
            items.append(item)
        return (etype, items), pos
    if ctype == _MAP:
        size, pos = _varint(buf, pos)
        if not size:
            return (0, 0, []), pos
        kinds = buf[pos]
        pos += 1
        ktype, vtype = kinds >> 4, kinds & 0x0F
        pairs = []
        for _ in range(size):
            key, pos = _decode_struct(buf, pos) if ktype == _STRUCT else _decode_value(buf, pos, ktype)
            value, pos = _decode_struct(buf, pos) if vtype == _STRUCT else _decode_value(buf, pos, vtype)
            pairs.append((key, value))
        return (ktype, vtype, pairs), pos
    if ctype == _STRUCT:
        return _decode_struct(buf, pos)
    raise EngineError(f"internal: unknown Thrift compact type {ctype} in a Parquet footer")


def _encode_struct(fields: list, out: bytearray) -> None:
    last = 0
    for fid, ctype, value in fields:
        delta = fid - last
        if 0 < delta <= 15:
            out.append(delta << 4 | ctype)
        else:
            out.append(ctype)
            _put_varint(out, _zigzag(fid))
        if ctype not in (_TRUE, _FALSE):
            _encode_value(value, ctype, out)
        last = fid
    out.append(_STOP)


def _encode_value(value, ctype: int, out: bytearray) -> None:
    if ctype in (_TRUE, _FALSE, _BYTE):
        out.append(value)
    elif ctype in (_I16, _I32, _I64):
        _put_varint(out, _zigzag(value))
    elif ctype in (_DOUBLE, _UUID):
        out += value
    elif ctype == _BINARY:
        _put_varint(out, len(value))
        out += value
    elif ctype in (_LIST, _SET):
        etype, items = value
        if len(items) < 15:
            out.append(len(items) << 4 | etype)
        else:
            out.append(0xF0 | etype)
            _put_varint(out, len(items))
        for item in items:
            if etype == _STRUCT and isinstance(item, bytes):  # encoded already (ConcatenatedFile's row groups)
                out += item
            elif etype == _STRUCT:
                _encode_struct(item, out)
            else:
                _encode_value(item, etype, out)
    elif ctype == _MAP:
        ktype, vtype, pairs = value
        _put_varint(out, len(pairs))
        if pairs:
            out.append(ktype << 4 | vtype)
        for key, item in pairs:
            _encode_struct(key, out) if ktype == _STRUCT else _encode_value(key, ktype, out)
            _encode_struct(item, out) if vtype == _STRUCT else _encode_value(item, vtype, out)
    elif ctype == _STRUCT:
        _encode_struct(value, out)
    else:
        raise EngineError(f"internal: unknown Thrift compact type {ctype} in a Parquet footer")
