"""Bad data stopped where it enters: checks on a node's finished temp output, before it replaces the last one.

* **sources** (files copied to ``target/``): a column that came out as bytes (the
  CSV/JSON had bytes that are not UTF-8) names the file, line and column; a file
  with no data rows never replaces an output that had rows; a partition whose
  column types differ from the other partitions' is refused (its view would be
  unreadable). Parquet read in place: the same type check over changed files.
* **feature groups with an entity**: ``event_time_col`` must be a timestamp or
  date (text times with mixed UTC offsets stay text: the fix is a CAST); rows with
  a NULL join key or event time are counted and, by the group's ``nulls`` policy,
  kept out of the entity with a warning line (``drop``) or fail the node (``fail``).

Each raises :class:`~seeknal_flow.errors.RunError` (the engine adds the node), so
the previous output stays.

>>> utf8_problem(b"a,b\\n1,caf\\xe9\\n", "x.csv")
"'x.csv' line 2, column 'b': bytes that are not UTF-8 (0xe9 at byte 5 of the line)"
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from operators.datasets import parquet_dataset
from operators.memory import MemoryConfig, duckdb_connection
from operators.sql_text import quote_ident, quote_literal
from seeknal_flow.authoring.specs import FeatureGroupSpec, NullPolicy, SourceFormat, SourceSpec
from seeknal_flow.errors import RunError

_TEXT_FORMATS = (SourceFormat.CSV, SourceFormat.JSON, SourceFormat.JSONL)


def check_source_output(spec: SourceSpec, tmp: Path, data: Path, display: str, previous_rows: int) -> list[str]:
    """A file source's temp output: bytes columns, an empty file replacing rows. Returns lines to show."""
    schema = pq.read_schema(tmp)
    binary = [f.name for f in schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
    if binary and spec.format in _TEXT_FORMATS:
        where = _find_bad_utf8(data, display) or f"'{display}', column '{binary[0]}': bytes that are not UTF-8"
        raise RunError(f"{where}; save the file as UTF-8, or give its encoding (params: {{encoding: latin1}})")
    rows = pq.read_metadata(tmp).num_rows
    lines = _mixed_offsets(tmp, schema, display) if spec.format in _TEXT_FORMATS and rows else []
    if rows == 0 and previous_rows > 0:
        raise RunError(f"'{display}' has no data rows (a header only?) where the last run read {previous_rows:,}; "
                       "the previous output is kept: fix the file (to accept an empty source, delete the node's "
                       "output under target/intermediate/ first)")
    return lines


_TIME = r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}"
_OFFSET = r"(Z|[+-]\d{2}(:?\d{2})?)$"


def _mixed_offsets(tmp: Path, schema: pa.Schema, display: str) -> list[str]:
    """Warn about text columns of times, some with a UTC offset and some without: they stay text."""
    import pyarrow.compute as pc

    names = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    if not names:
        return []
    first = pq.ParquetFile(tmp).read_row_group(0, columns=names)  # a sample: one row group
    lines = []
    for name in names:
        values = first.column(name).drop_null()
        if not len(values) or not pc.all(pc.match_substring_regex(values, _TIME)).as_py():
            continue
        with_offset = pc.match_substring_regex(values, _OFFSET)
        if pc.any(with_offset).as_py() and not pc.all(with_offset).as_py():
            plain = values.filter(pc.invert(with_offset))[0].as_py()
            lines.append(f"warning: '{display}' column '{name}': times with and without a UTC offset "
                         f"(e.g. '{plain}') stay text; write every time with its offset, or CAST the column "
                         "(e.g. CAST(x AS TIMESTAMPTZ)) where it is used")
    return lines


def check_partition_types(out_dir: Path, partition: str, tmp: Path, display: str) -> None:
    """A partition's temp output against one finished partition of the same output: same types per column."""
    theirs = next((p for p in sorted(out_dir.rglob("*.parquet"))
                   if not any(part.startswith(".") for part in p.relative_to(out_dir).parts)
                   and not p.relative_to(out_dir).as_posix().startswith(partition + "/")), None)
    if theirs is None:
        return
    mismatch = _type_mismatch(pq.read_schema(theirs), pq.read_schema(tmp))
    if mismatch:
        column, other, mine = mismatch
        other_partition = theirs.parent.relative_to(out_dir).as_posix()
        raise RunError(f"'{display}' partition {partition}: column '{column}' is {mine} here but {other} in "
                       f"{other_partition}; make the files agree, or fix its type with "
                       f"params: {{column_types: {{{column}: {other}}}}}")


def check_parquet_files(base: Path, files: list[Path], display: str) -> None:
    """Parquet read in place: every file's column types against the first file's (partitions that disagree)."""
    if len(files) < 2:
        return
    first = pq.read_schema(files[0])
    for f in files[1:]:
        mismatch = _type_mismatch(first, pq.read_schema(f))
        if mismatch:
            column, theirs, mine = mismatch
            raise RunError(f"'{display}': {f.relative_to(base)} has column '{column}' as {mine} but "
                           f"{files[0].relative_to(base)} has {theirs}; rewrite it with the same types")


def footer_null_counts(path: Path, columns: tuple[str, ...]) -> int | None:
    """NULLs in ``columns`` of a Parquet file, summed, from its footer statistics; None if any is missing.

    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "n.parquet"
    >>> pq.write_table(pa.table({"k": [1, None], "t": [1, 2]}), f)
    >>> footer_null_counts(f, ("k", "t"))
    1
    """
    meta = pq.read_metadata(path)
    names = [meta.schema.column(i).path for i in range(meta.num_columns)]  # leaf paths ("s.x" inside a struct)
    try:
        indexes = [names.index(c) for c in columns]
    except ValueError:
        return None
    total = 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for i in indexes:
            stats = group.column(i).statistics
            if stats is None or not stats.has_null_count:
                return None
            total += stats.null_count
    return total


def check_group_output(spec: FeatureGroupSpec, tmp: Path, memory: MemoryConfig) -> list[str]:
    """A feature group's temp output: event time type and NULL keys/times (by ``spec.nulls``)."""
    if spec.entity is None:
        return []
    schema = pq.read_schema(tmp) if tmp.is_file() else parquet_dataset(tmp).schema
    et, keys = spec.event_time_col, spec.entity.join_keys
    missing = [c for c in (*keys, et) if c not in schema.names]
    if missing:
        raise RunError(f"output lacks column(s) {missing} (columns: {', '.join(schema.names)}); "
                       "return the join keys and event_time_col")
    et_type = schema.field(et).type
    if not (pa.types.is_timestamp(et_type) or pa.types.is_date(et_type)):
        raise RunError(f"event_time_col '{et}' is {et_type}, not a timestamp or date; CAST it in the node "
                       f"(e.g. CAST({et} AS TIMESTAMPTZ) for text with UTC offsets)")
    if tmp.is_file() and footer_null_counts(tmp, (*keys, et)) == 0:
        return []  # the writer's statistics say so: no second pass over the rows
    con = duckdb_connection(memory, shared=True)
    try:
        null_key = " OR ".join(f"{quote_ident(k)} IS NULL" for k in keys)
        keys_null, et_null = con.execute(
            f"SELECT count(*) FILTER (WHERE {null_key}), count(*) FILTER (WHERE {quote_ident(et)} IS NULL) "
            f"FROM read_parquet({quote_literal(str(tmp / '**' / '*.parquet') if tmp.is_dir() else str(tmp))})"
        ).fetchone()
    finally:
        con.close()
    if not keys_null and not et_null:
        return []
    what = ", ".join(p for p in (f"{keys_null:,} row(s) with a NULL {'/'.join(keys)}" if keys_null else "",
                                 f"{et_null:,} with a NULL {et}" if et_null else "") if p)
    if spec.nulls == NullPolicy.FAIL:
        raise RunError(f"{what} (nulls: fail); filter them in the node (WHERE ... IS NOT NULL) or set nulls: drop")
    return [f"nulls: {what}: kept out of entity '{spec.entity.name}' (nulls: drop)"]


def _type_mismatch(a: pa.Schema, b: pa.Schema) -> tuple[str, str, str] | None:
    for field in b:
        i = a.get_field_index(field.name)
        # An all-NULL column (type null) fits any type: an empty partition is not a disagreement.
        if i >= 0 and a.field(i).type != field.type and not pa.types.is_null(field.type) \
                and not pa.types.is_null(a.field(i).type):
            return field.name, str(a.field(i).type), str(field.type)
    return None


def _find_bad_utf8(data: Path, display: str) -> str | None:
    files = sorted(p for p in data.rglob("*") if p.is_file()) if data.is_dir() else [data]
    for f in files:
        shown = display if f == data else f"{display.rstrip('/')}/{f.relative_to(data)}"
        try:
            found = utf8_problem(f.read_bytes(), shown)
        except OSError:
            continue
        if found:
            return found
    return None


def utf8_problem(raw: bytes, display: str) -> str | None:
    """Where the first non-UTF-8 byte of a CSV/JSON file is: file, line and (CSV) column."""
    header: list[str] | None = None
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            column = ""
            if header is not None:
                fields = next(csv.reader(io.StringIO(line.decode("utf-8", "surrogateescape"))), [])
                bad = next((i for i, v in enumerate(fields) if any("\udc80" <= ch <= "\udcff" for ch in v)), None)
                if bad is not None and bad < len(header):
                    column = f", column '{header[bad]}'"
            return (f"'{display}' line {number}{column}: bytes that are not UTF-8 "
                    f"(0x{line[e.start]:02x} at byte {e.start} of the line)")
        if header is None:
            header = next(csv.reader(io.StringIO(text)), [])
    return None
