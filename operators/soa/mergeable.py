"""Mergeable SOA state: per-input-partition partial aggregates, merged into the result.

A non-temporal SOA is a filtered aggregation *per row*: each row's day count
(application date - feature date) decides which filtered aggregates it feeds,
independently of every other row. So every aggregate that can be merged
(``count``, ``sum``, ``min``, ``max``; ``mean`` is ``sum / count``) can be kept
as a partial per input partition and per id, and the totals per id are the merge
of the partials (Chronon's tiled partial aggregates, with the partition as tile).

State kept in ``state_dir`` (``target/state/soa/<node>/`` in a project):

* ``partials/<partition-hash>-<uuid>.parquet``: one file per input partition,
  one row per id: the id and the filtered partial aggregates (``_soa_a0``, ...);
* ``totals-<uuid>.parquet``: the merged partials, one row per id;
* ``manifest.json``: the query digest, and per partition the signature of its
  input files (names, sizes, mtimes) and its partial file; written last, with an
  atomic rename. A run killed before that rename leaves the previous manifest
  (and the files it names) in place; the next run removes files it does not name.

An update recomputes the partials of new or changed partitions only. New
partitions alone: totals = merge(old totals, new partials), no other partial is
read. A changed or removed partition: the ids of its old and new partial are
re-merged from every partition's partial (filtered to those ids); the other ids
keep their totals. ``count_distinct``, ``median``, ``stddev``/``var`` and temporal
SOA (a spine) are not mergeable here: :func:`not_mergeable` says why and the
caller recomputes in full.

>>> from operators.soa.spec import SOAFeature
>>> q = SOAQuery(id_col="k", feature_date_col="d", application_date_col="app",
...              features={"x": SOAFeature(basic=("sum", "mean"))})
>>> not_mergeable(q, temporal=False) is None
True
>>> not_mergeable(SOAQuery(id_col="k", feature_date_col="d", application_date_col="app",
...               features={"x": SOAFeature(basic=("median", "sum"))}), temporal=False)
'median is not mergeable'
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from operators.errors import DATAFUSION_ERRORS, EngineError
from operators.memory import MemoryConfig, datafusion_context
from operators.soa.compile import _Aggs, _final_exprs, since_conditions, source_columns
from operators.soa.df_session import error_line, import_datafusion
from operators.soa.spec import SOAQuery
from operators.soa.validate import MERGEABLE_AGGS, not_mergeable
from operators.sql_text import quote_ident

__all__ = ["MERGEABLE_AGGS", "IncrementalSOA", "not_mergeable"]

# How each partial (by the SQL function it starts with) merges across partitions.
_MERGE = {"COUNT(": "SUM", "SUM(": "SUM", "MIN(": "MIN", "MAX(": "MAX"}
_MANIFEST = "manifest.json"
_VERSION = 1


def _aggs(query: SOAQuery) -> tuple[_Aggs, list[str]]:
    aggs = _Aggs(quote=quote_ident)
    final = _final_exprs(query, aggs)
    return aggs, final


def partial_sql(query: SOAQuery, input_name: str) -> str:
    """One row per id: the filtered aggregates of the rows of ``input_name`` (no final expressions)."""
    aggs, _ = _aggs(query)
    key = quote_ident(query.id_col)
    days = (f"CAST({quote_ident(query.application_date_col)} AS DATE) - "
            f"CAST({quote_ident(query.feature_date_col)} AS DATE) AS _days_between")
    flags = [f"({cond}) AS {flag}" for flag, cond in since_conditions(query)]
    cols = [key, days, *(quote_ident(c) for c in source_columns(query, exclude=(query.id_col,))), *flags]
    agg_list = ",\n    ".join(f"{sql} AS {alias}" for sql, alias in aggs.exprs.items())
    return (f"WITH _soa_rows AS (\n  SELECT {', '.join(cols)}\n  FROM {input_name}\n)\n"
            f"SELECT {key},\n    {agg_list}\nFROM _soa_rows\nGROUP BY {key}")


def merge_sql(query: SOAQuery, partials_name: str) -> str:
    """Partials (any number of rows per id) merged into one row per id, same columns."""
    aggs, _ = _aggs(query)
    key = quote_ident(query.id_col)
    merged = []
    for sql, alias in aggs.exprs.items():
        fn = next(f for prefix, f in _MERGE.items() if sql.startswith(prefix))
        merged.append(f"{fn}({alias}) AS {alias}")
    return f"SELECT {key}, {', '.join(merged)}\nFROM {partials_name}\nGROUP BY {key}"


def final_sql(query: SOAQuery, totals_name: str) -> str:
    """The SOA's output columns from the merged totals."""
    _, final = _aggs(query)
    return f"SELECT {quote_ident(query.id_col)},\n  {', '.join(final)}\nFROM {totals_name}"


def query_digest(query: SOAQuery) -> str:
    import msgspec

    return hashlib.sha256(msgspec.json.encode(query)).hexdigest()[:24]


def input_partitions(root: Path) -> dict[str, tuple[Path, str]]:
    """Partition (folder relative to ``root``) -> (folder, signature of its Parquet files).

    Hidden files and folders (a writer's ``.tmp-*``, ``.old-*``) are skipped. The
    signature is names, sizes and modification times: a partition written by a
    run is a new folder with new files.
    """
    found: dict[str, list] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        for name in sorted(filenames):
            if name.startswith((".", "_")) or not name.endswith(".parquet"):
                continue
            st = os.stat(os.path.join(dirpath, name))
            rel = Path(dirpath).relative_to(root).as_posix()
            found.setdefault(rel, []).append([name, st.st_size, st.st_mtime_ns])
    return {p: (root / p, hashlib.sha256(json.dumps(files).encode()).hexdigest()[:24])
            for p, files in sorted(found.items())}


class IncrementalSOA:
    """Updates the partial-aggregate state of ``query`` over the partitions under ``input_root``.

    >>> import datetime as dt, tempfile, pyarrow.parquet as pq
    >>> from operators.soa.spec import SOAFeature
    >>> tmp = Path(tempfile.mkdtemp())
    >>> for day, x in (("d=1", 1.0), ("d=2", 5.0)):
    ...     (tmp / "in" / day).mkdir(parents=True)
    ...     pq.write_table(pa.table({"k": ["a"], "x": [x], "f": [dt.date(2026, 1, 1)],
    ...                              "app": [dt.date(2026, 1, 2)]}), tmp / "in" / day / "p.parquet")
    >>> q = SOAQuery(id_col="k", feature_date_col="f", application_date_col="app",
    ...              features={"x": SOAFeature(basic=("sum", "max"))})
    >>> soa = IncrementalSOA(q, tmp / "in", tmp / "state", memory=MemoryConfig(threads=1))
    >>> soa.update(), soa.result().read_all().to_pydict()
    ('2 of 2 input partitions merged (full build), 0 removed', {'k': ['a'], 'x_SUM': [6.0], 'x_MAX': [5.0]})
    """

    def __init__(self, query: SOAQuery, input_root: Path, state_dir: Path, *, memory: MemoryConfig,
                 rebuild: bool = False) -> None:
        self.query, self.root, self.dir, self.memory = query, Path(input_root), Path(state_dir), memory
        self.rebuild = rebuild
        self._totals: pa.Table | None = None
        self._ctx = None

    # ------------------------------------------------------------------ engine

    def _context(self):
        if self._ctx is None:
            import_datafusion()
            self._ctx = datafusion_context(self.memory)
        return self._ctx

    def _sql(self, sql: str, tables: dict[str, object]) -> pa.Table:
        """Run ``sql`` with ``tables`` (a Parquet folder or an Arrow table each) registered."""
        ctx = self._context()
        try:
            for name, data in tables.items():
                with contextlib.suppress(*DATAFUSION_ERRORS):
                    ctx.deregister_table(name)
                if isinstance(data, pa.Table):
                    batches = data.to_batches() or [pa.RecordBatch.from_pylist([], schema=data.schema)]
                    ctx.register_record_batches(name, [batches])
                else:
                    ctx.register_parquet(name, str(data))
            return _unview(ctx.sql(sql).to_arrow_table())
        except DATAFUSION_ERRORS as exc:
            raise EngineError(f"second-order aggregation (incremental): {error_line(exc)}") from exc

    def _merge(self, parts: list[pa.Table]) -> pa.Table:
        parts = [p for p in parts if p.num_rows]
        if not parts:
            return self._sql(merge_sql(self.query, "_soa_parts"), {"_soa_parts": self._empty_partial()})
        return self._sql(merge_sql(self.query, "_soa_parts"), {"_soa_parts": _concat(parts)})

    def _empty_partial(self) -> pa.Table:
        return self._partial_schema.empty_table()

    # ------------------------------------------------------------------ state

    def _load_manifest(self) -> dict | None:
        try:
            m = json.loads((self.dir / _MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        if (m.get("version") != _VERSION or m.get("query") != query_digest(self.query)
                or m.get("input") != str(self.root.resolve())):
            return None
        if not (self.dir / m["totals"]).is_file() or not all(
                (self.dir / p["file"]).is_file() for p in m["partitions"].values()):
            return None
        return m

    def update(self) -> str:
        """Bring the state up to date with the input; return a one-line summary of what was merged."""
        manifest = None if self.rebuild else self._load_manifest()
        self._clean(manifest)
        now = input_partitions(self.root)
        if not now:
            raise EngineError(f"second-order aggregation: no Parquet files under {self.root}")
        old = manifest["partitions"] if manifest else {}
        todo = [p for p, (_, sig) in now.items() if old.get(p, {}).get("sig") != sig]
        removed = [p for p in old if p not in now]
        new_partials = {p: self._partial(now[p][0]) for p in todo}
        self._partial_schema = (next(iter(new_partials.values())).schema if new_partials
                                else pa.ipc.read_schema(pa.py_buffer(bytes.fromhex(manifest["schema"]))))
        replaced = [p for p in todo if p in old] + removed
        if manifest is None:
            totals, how = self._merge(list(new_partials.values())), "full build"
        elif not todo and not removed:
            self._totals = self._read(manifest["totals"])
            return f"0 of {len(now)} input partitions changed"
        elif not replaced:
            totals = self._merge([self._read(manifest["totals"]), *new_partials.values()])
            how = "appended"
        else:
            totals = self._remerge(manifest, now, todo, replaced, new_partials)
            how = "changed ids re-merged"
        # New files first (unique names), then the manifest (atomic rename), then the old files go.
        self.dir.joinpath("partials").mkdir(parents=True, exist_ok=True)
        parts = {p: dict(v) for p, v in old.items() if p in now}
        for p, table in new_partials.items():
            name = f"partials/{hashlib.sha256(p.encode()).hexdigest()[:12]}-{uuid.uuid4().hex[:8]}.parquet"
            _write(table, self.dir / name)
            parts[p] = {"sig": now[p][1], "file": name}
        totals_name = f"totals-{uuid.uuid4().hex[:8]}.parquet"
        _write(totals, self.dir / totals_name)
        schema_hex = self._partial_schema.serialize().to_pybytes().hex()
        doc = {"version": _VERSION, "query": query_digest(self.query), "input": str(self.root.resolve()),
               "totals": totals_name, "schema": schema_hex, "partitions": dict(sorted(parts.items()))}
        tmp = self.dir / f".{_MANIFEST}.{uuid.uuid4().hex[:8]}"
        tmp.write_text(json.dumps(doc, indent=0))
        os.replace(tmp, self.dir / _MANIFEST)
        self._clean(doc)
        self._totals = totals
        return f"{len(todo)} of {len(now)} input partitions merged ({how}), {len(removed)} removed"

    def _remerge(self, manifest: dict, now: dict, todo: list[str], replaced: list[str],
                 new_partials: dict[str, pa.Table]) -> pa.Table:
        """Totals with the ids of replaced partitions re-merged from every current partial."""
        import pyarrow.compute as pc

        key = self.query.id_col
        old = manifest["partitions"]
        touched = [self._read(old[p]["file"]).column(key) for p in replaced]
        touched += [t.column(key) for t in new_partials.values()]
        ids = pc.unique(pa.chunked_array([c for col in touched for c in col.chunks],
                                         type=self._partial_schema.field(key).type))
        keep_files = [old[p]["file"] for p in now if p not in todo and p in old]
        parts = [t.filter(pc.is_in(t.column(key), value_set=ids, skip_nulls=False)) for t in new_partials.values()]
        if keep_files:
            import pyarrow.dataset as ds

            data = ds.dataset([str(self.dir / f) for f in keep_files], format="parquet",
                              schema=self._partial_schema)
            parts.append(data.to_table(filter=pc.is_in(pc.field(key), value_set=ids, skip_nulls=False)))
        totals = self._read(manifest["totals"])
        rest = totals.filter(pc.invert(pc.is_in(totals.column(key), value_set=ids, skip_nulls=False)))
        return _concat([rest, self._merge(parts)])

    def _partial(self, folder: Path) -> pa.Table:
        return self._sql(partial_sql(self.query, "_soa_input"), {"_soa_input": folder})

    def _read(self, name: str) -> pa.Table:
        import pyarrow.parquet as pq

        return pq.read_table(self.dir / name)

    def _clean(self, manifest: dict | None) -> None:
        """Remove state files the manifest does not name (left by a killed run, or replaced)."""
        if not self.dir.is_dir():
            return
        named = set() if manifest is None else {manifest["totals"],
                                                *(p["file"] for p in manifest["partitions"].values())}
        leftovers = [*self.dir.glob("totals-*.parquet"), *self.dir.glob("partials/*.parquet"),
                     *self.dir.glob(".*"), *self.dir.glob("partials/.*")]
        for f in leftovers:
            if f.relative_to(self.dir).as_posix() not in named:
                with contextlib.suppress(OSError):
                    f.unlink()

    # ------------------------------------------------------------------ result

    def result(self) -> pa.RecordBatchReader:
        """The SOA's output from the totals (call :meth:`update` first)."""
        if self._totals is None:
            raise EngineError("second-order aggregation (incremental): update() must run before result()")
        out = self._sql(final_sql(self.query, "_soa_totals"), {"_soa_totals": self._totals})
        return out.to_reader()


def _unview(t: pa.Table) -> pa.Table:
    """String/binary views (how DataFusion reads Parquet) as plain strings/binaries: stable state types."""
    fields = []
    for f in t.schema:
        if pa.types.is_string_view(f.type):
            f = f.with_type(pa.string())
        elif pa.types.is_binary_view(f.type):
            f = f.with_type(pa.binary())
        fields.append(f)
    schema = pa.schema(fields)
    return t if schema == t.schema else t.cast(schema)


def _concat(tables: list[pa.Table]) -> pa.Table:
    schema = tables[0].schema
    return pa.concat_tables([t.cast(schema) if t.schema != schema else t for t in tables])


def _write(table: pa.Table, path: Path) -> None:
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


class IncrementalSOAOperator:
    """:class:`IncrementalSOA` as an operator: ``batches()`` updates the state, then yields the result."""

    def __init__(self, soa: IncrementalSOA, schema: pa.Schema) -> None:
        self.soa, self._schema = soa, schema
        self.output = ""

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    def describe(self) -> str:
        return f"IncrementalSOA(by {self.soa.query.id_col})"

    def batches(self) -> Iterator[pa.RecordBatch]:
        self.output = self.soa.update() + "\n"
        for b in self.soa.result():
            if b.num_rows:
                yield b if b.schema == self._schema else b.cast(self._schema)
