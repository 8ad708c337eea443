"""Kept latest rows per feature group: what makes an entity's consolidation incremental.

An entity table (``store/consolidation.py``) is the union of its groups' latest row per
key. Each group's latest rows are kept in ``target/feature_store/<entity>/latest/``:

* ``<group>-<uuid>.parquet``: one row per key, the keys, ``__et`` (the event time as a
  timestamp), ``__s`` (the group's row as a struct, as in the entity table) and ``__o``,
  the ordering of the winning row: ``t`` (event time as written), ``f`` (file name, ``''``
  for a single-file output) and ``r`` (file row number), the order a full pass compares;
* ``manifest.json``: the join keys and per group its kept file, output path, event time
  column, ttl, schema and the signature of its output (a file: size and mtime; a folder:
  per partition the names, sizes and mtimes of its files, as ``operators/soa/mergeable.py``).

A consolidation then recomputes a group only when its output changed: a group whose
partitioned output only GAINED partitions has its kept rows merged with the rows of the
new partitions (``arg_max`` over the same ordering, so ties resolve as a full pass would);
a changed or removed partition, a new schema, event time column or ttl recompute the
group in full (a max cannot be taken back). Unchanged groups reuse their kept rows.

Crash safety: kept files get new names, the manifest is written last with an atomic
rename, and files it does not name are removed. A run killed anywhere leaves the previous
manifest and the files it names; a damaged manifest means no kept state (full rebuild).

Example::

    kept = KeptLatest(project.entity_dir("customer") / STATE_DIR, ("customer_id",))
    done = kept.update(con, sources)   # sources: a GroupSource per group, alphabetical
    done.files["tx_features"]          # its kept latest rows (a Parquet file)
    done.note()                        # "1 of 3 groups recomputed"
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from operators.datasets import partition_files
from operators.last_rows import ROW_COL
from operators.sql import copy_to_parquet  # Ctrl-C stops a long COPY at once
from operators.sql_text import quote_ident, quote_literal

STATE_DIR = "latest"
MANIFEST = "manifest.json"
VERSION = 1


def group_signature(path: Path, parts: dict | None = None) -> dict:
    """What identifies a group output: ``{"file": [size, mtime_ns]}``, or per partition folder a digest.

    A folder's partitions are the folders holding its Parquet files (relative, ``.`` for
    part files at the top); hidden names (a writer's ``.tmp-*``) are skipped.

    >>> group_signature(Path("/nonexistent.parquet"))
    {}
    """
    try:
        st = path.stat()
    except OSError:
        return {}
    if not path.is_dir():
        return {"file": [st.st_size, st.st_mtime_ns]}
    return {"partitions": {p: sig for p, (_, sig) in (parts if parts is not None else partition_files(path)).items()}}


def not_null(keys: tuple[str, ...], event_time_col: str, quote) -> str:
    """Rows with a NULL join key or event time never reach an entity (the group said how many: run/data_checks.py).

    >>> not_null(("id",), "t", quote_ident)
    '"id" IS NOT NULL AND "t" IS NOT NULL'
    """
    return " AND ".join(f"{quote(c)} IS NOT NULL" for c in (*keys, event_time_col))


def rows_sql(keys: tuple[str, ...], path: Path, event_time_col: str, columns: list[str],
             files: list[str] | None = None) -> str:
    """One row per input row (NULL key/time left out): keys, ``__et``, the struct ``__s`` and the ordering ``__o``.

    ``files`` (relative to ``path``, a folder): only these files, as the full read names them.

    >>> print(rows_sql(("id",), Path("/g.parquet"), "t", ["id", "x", "t"]))  # doctest: +NORMALIZE_WHITESPACE
    SELECT "id", CAST("t" AS TIMESTAMP) AS __et, struct_pack("x" := "x", "t" := "t") AS __s,
    struct_pack(t := "t", f := '', r := file_row_number) AS __o
    FROM read_parquet('/g.parquet', file_row_number = true) WHERE "id" IS NOT NULL AND "t" IS NOT NULL
    """
    if path.is_dir():  # partitioned or Spark-written: files in name order, rows in file order (as a full pass)
        where = (quote_literal(str(path) + "/**/*.parquet") if files is None
                 else "[" + ", ".join(quote_literal(str(path / f)) for f in files) + "]")
        source = f"read_parquet({where}, filename = true, file_row_number = true, hive_partitioning = true)"
        return _rows_select(keys, event_time_col, columns, source, "filename", "file_row_number")
    source = f"read_parquet({quote_literal(str(path))}, file_row_number = true)"
    return _rows_select(keys, event_time_col, columns, source, "''", "file_row_number")


def _rows_select(keys: tuple[str, ...], event_time_col: str, columns: list[str], source: str, file: str,
                 row: str) -> str:
    key_list = ", ".join(quote_ident(k) for k in keys)
    fields = ", ".join(f"{quote_ident(c)} := {quote_ident(c)}" for c in columns if c not in keys)
    event = quote_ident(event_time_col)
    return (f"SELECT {key_list}, CAST({event} AS TIMESTAMP) AS __et, struct_pack({fields}) AS __s, "
            f"struct_pack(t := {event}, f := {file}, r := {row}) AS __o FROM {source} "
            f"WHERE {not_null(keys, event_time_col, quote_ident)}")


def latest_sql(keys: tuple[str, ...], rows: str) -> str:
    """The latest of ``rows`` per key: ``arg_max`` by (event time, file name, file row number).

    The ordering struct is unique per row, so the pick does not depend on how the rows
    are split: the latest of (kept latest rows + new rows) is the latest of all rows.
    """
    key_list = ", ".join(quote_ident(k) for k in keys)
    return (f"SELECT {key_list}, __x.__et, __x.__s, __x.__o FROM (SELECT {key_list}, "
            f"arg_max(struct_pack(__et := __et, __s := __s, __o := __o), __o) AS __x "
            f"FROM ({rows}) GROUP BY {key_list})")


def kept_sql(keys: tuple[str, ...], file: Path) -> str:
    key_list = ", ".join(quote_ident(k) for k in keys)
    return f"SELECT {key_list}, __et, __s, __o FROM read_parquet({quote_literal(str(file))})"


@dataclass(frozen=True)
class HandedRows:
    """A one-file group's latest rows, found while its node wrote it (``operators/last_rows.py``).

    ``file`` holds them in the kept format; ``signature`` is the group output's
    (:func:`group_signature`) right after the write: they are the group's only while it
    still has that signature.
    """

    file: Path
    signature: dict


def hand_over(con: duckdb.DuckDBPyConnection, keys: tuple[str, ...], rows: pa.Table, output: Path,
              event_time_col: str, file: Path) -> HandedRows:
    """Write ``rows`` (a group's last row per key, with ``operators.last_rows.ROW_COL``) to ``file``, kept format.

    The same projection as :func:`rows_sql`, over the rows in memory instead of the file:
    the row number is the file row number the full read would see.
    """
    columns = [c for c in rows.column_names if c != ROW_COL]
    con.register("__seeknal_handed", rows)
    try:
        sql = _rows_select(keys, event_time_col, columns, "__seeknal_handed", "''", quote_ident(ROW_COL))
        copy_to_parquet(con, sql, file)
    finally:
        con.unregister("__seeknal_handed")
    return HandedRows(file, group_signature(output))


@dataclass
class GroupSource:
    """One group as the kept state sees it: name, output, event time column, ttl, columns, schema (names -> types)."""

    name: str
    path: Path
    event_time_col: str
    ttl: str | None
    columns: list[str]
    schema: Mapping[str, str]


@dataclass
class Outcome:
    """What :meth:`KeptLatest.update` did: each group's kept file and a one-line summary."""

    files: dict[str, Path] = field(default_factory=dict)
    recomputed: list[str] = field(default_factory=list)
    merged: dict[str, int] = field(default_factory=dict)  # group -> new partitions merged
    reused: list[str] = field(default_factory=list)
    no_state: str = ""  # why there was no kept state ("" when there was)
    unreadable: list[str] = field(default_factory=list)  # groups whose kept file could not be read

    def note(self) -> str:
        """``1 of 3 groups recomputed`` / ``1 new partition of tx merged`` / ``rebuilt in full (no kept state)``."""
        if self.no_state:
            return f"rebuilt in full ({self.no_state})"
        total = len(self.files)
        merged = [f"{n} new partition{'s' if n != 1 else ''} of {g} merged" for g, n in sorted(self.merged.items())]
        if self.recomputed or not merged:
            merged.insert(0, f"{len(self.recomputed)} of {total} group{'s' if total != 1 else ''} recomputed")
        if self.unreadable:
            merged.append(f"kept rows of {', '.join(self.unreadable)} unreadable")
        return ", ".join(merged)


class KeptLatest:
    """The kept latest rows of an entity's groups in ``folder`` (``<entity>/latest/``), keyed on ``keys``."""

    def __init__(self, folder: Path, keys: tuple[str, ...]) -> None:
        self.dir, self.keys = folder, tuple(keys)

    def load(self) -> tuple[dict | None, str]:
        """The manifest, or None and why ("no kept state", "kept state damaged: ...")."""
        path = self.dir / MANIFEST
        if not path.exists():
            return None, "no kept state"
        try:
            m = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(m, dict) and m.get("version") == VERSION and isinstance(m.get("forgotten"), str):
                return None, m["forgotten"]
            if not isinstance(m, dict) or not isinstance(m.get("groups"), dict):
                raise ValueError("not a manifest")
        except (OSError, ValueError) as e:
            return None, f"kept state damaged: {MANIFEST} {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        if m.get("version") != VERSION:
            return None, "no kept state"
        if m.get("keys") != list(self.keys):
            return None, "join keys changed"
        return m, ""

    def forget(self, reason: str = "") -> None:
        """Drop the kept state; with a ``reason`` (``--full``) the next update says it rebuilt for it."""
        shutil.rmtree(self.dir, ignore_errors=True)
        if reason:
            self.dir.mkdir(parents=True, exist_ok=True)
            doc = {"version": VERSION, "keys": list(self.keys), "groups": {}, "forgotten": reason}
            tmp = self.dir / f".{MANIFEST}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(doc), encoding="utf-8")
            os.replace(tmp, self.dir / MANIFEST)

    def update(self, con: duckdb.DuckDBPyConnection, groups: list[GroupSource], *, rebuild: bool = False,
               why: str = "", handed: Mapping[str, HandedRows] | None = None) -> Outcome:
        """Bring every group's kept rows up to date with its output; write the manifest; return what was done.

        ``handed``: groups whose latest rows their node's run found as it wrote them (see
        :func:`hand_over`); taken as the group's recomputed rows when the output is still
        the one they came from and their columns are what a read of it gives.
        """
        manifest, reason = (None, why or "no kept state") if rebuild else self.load()
        self._clean(manifest)
        self.dir.mkdir(parents=True, exist_ok=True)
        out = Outcome(no_state=reason)
        entries = {}
        for g in groups:
            # Taken before the read: a rewrite during it shows up as a change next time.
            parts = partition_files(g.path) if g.path.is_dir() else {}
            sig = group_signature(g.path, parts)
            entry = {"path": str(g.path), "event_time_col": g.event_time_col, "ttl": g.ttl,
                     "schema": dict(g.schema), "signature": sig}
            old = (manifest or {}).get("groups", {}).get(g.name)
            file = self.dir / f"{g.name}-{uuid.uuid4().hex[:8]}.parquet"
            kept = self._kept(old, entry)
            if kept is None and self._same(old, entry):
                out.unreadable.append(g.name)
            given = (handed or {}).get(g.name)
            if given is not None and given.signature == sig and self._fits(con, g, given.file):
                os.replace(given.file, file)  # both under target/: a rename
                entry["file"] = file.name
                out.files[g.name] = file
                out.recomputed.append(g.name)
            elif kept is not None and old["signature"] == sig:
                entry["file"] = old["file"]
                out.files[g.name] = kept
                out.reused.append(g.name)
            elif kept is not None and (new := _added_partitions(old["signature"], sig)) and \
                    self._merge(con, g, kept, [f for p in new for f in parts[p][0]], file):
                entry["file"] = file.name
                out.files[g.name] = file
                out.merged[g.name] = len(new)
            else:
                rows = rows_sql(self.keys, g.path, g.event_time_col, g.columns)
                copy_to_parquet(con, latest_sql(self.keys, rows), file)
                entry["file"] = file.name
                out.files[g.name] = file
                out.recomputed.append(g.name)
            entries[g.name] = entry
        doc = {"version": VERSION, "keys": list(self.keys), "groups": entries}
        tmp = self.dir / f".{MANIFEST}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        os.replace(tmp, self.dir / MANIFEST)  # the new state is whole from here on
        self._clean(doc)
        return out

    @staticmethod
    def _same(old: dict | None, entry: dict) -> bool:
        """Do the kept rows describe this group (same path, event time column, ttl and schema)?"""
        same = ("path", "event_time_col", "ttl", "schema")
        return isinstance(old, dict) and all(old.get(k) == entry[k] for k in same)

    def _kept(self, old: dict | None, entry: dict) -> Path | None:
        """The group's kept file if it describes this group and its footer reads."""
        if not self._same(old, entry):
            return None
        file = self.dir / str(old.get("file", ""))
        try:
            pq.read_metadata(file)  # a truncated or missing file: the group is recomputed
        except (OSError, pa.ArrowException):
            return None
        return file

    def _fits(self, con: duckdb.DuckDBPyConnection, g: GroupSource, file: Path) -> bool:
        """Do the rows in ``file`` have the columns and types a full read of ``g``'s output gives?"""
        try:
            return _columns(con, kept_sql(self.keys, file)) == _columns(
                con, rows_sql(self.keys, g.path, g.event_time_col, g.columns))
        except duckdb.Error:
            return False

    def _merge(self, con: duckdb.DuckDBPyConnection, g: GroupSource, kept: Path, new: list[str], file: Path) -> bool:
        """Kept rows + the rows of the new partitions' files, latest per key, into ``file``; False if they don't fit.

        New partitions whose rows have other types than the kept ones (a new file schema,
        a Hive value that changes the partition column's inferred type) would change the
        whole group's types in a full pass: the caller recomputes the group then.
        """
        rows = rows_sql(self.keys, g.path, g.event_time_col, g.columns, files=new)
        try:
            if _columns(con, rows) != _columns(con, kept_sql(self.keys, kept)):
                return False
        except duckdb.Error:
            return False
        # The keys filtered again: DuckDB then knows them non-NULL and writes them REQUIRED, as a
        # full pass does (the entity table's nullability follows the kept files').
        keys_set = " AND ".join(f"{quote_ident(k)} IS NOT NULL" for k in self.keys)
        union = f"SELECT * FROM ({kept_sql(self.keys, kept)} UNION ALL {rows}) WHERE {keys_set}"
        copy_to_parquet(con, latest_sql(self.keys, union), file)
        return True

    def _clean(self, manifest: dict | None) -> None:
        """Remove kept files the manifest does not name (left by a killed run, or replaced)."""
        if not self.dir.is_dir():
            return
        named = {str(e.get("file")) for e in (manifest or {}).get("groups", {}).values() if isinstance(e, dict)}
        for f in self.dir.iterdir():
            if f.name != MANIFEST and f.name not in named:
                with contextlib.suppress(OSError):
                    f.unlink()


def _added_partitions(old: dict, now: dict) -> list[str]:
    """The partitions added since ``old`` when no other one changed or went; [] otherwise."""
    before, after = old.get("partitions"), now.get("partitions")
    if not isinstance(before, dict) or after is None or any(after.get(p) != s for p, s in before.items()):
        return []
    return [p for p in after if p not in before]


def _columns(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE {sql}").fetchall()]
