"""Per-column statistics of a node's output, computed once per materialization with DuckDB.

``SUMMARIZE`` gives nulls, approximate distinct counts, min, max, mean, std and quartiles in one
scan; each numeric or date column then gets a histogram of at most 20 bins and each text column
its most frequent values. The result is cached under ``target/ui_cache/``, keyed by the output's
path, size and modification time, so a rewritten output is summarized again and an unchanged one
never is. Previews read with a ``LIMIT``: the whole table is never loaded.

Example::

    stats = column_stats(project, project.intermediate_path("source_transactions"))
    stats["columns"][0]["histogram"]   # {"lo": ..., "hi": ..., "counts": [...]} or None
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import msgspec

from operators.atomic import write_atomic
from seeknal_flow.load.project import Project

BINS = 20
TOP_VALUES = 8
CACHE_VERSION = 1
_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
            "FLOAT", "DOUBLE", "REAL", "DECIMAL")
_TEMPORAL = ("DATE", "TIMESTAMP")
_TEXT = ("VARCHAR",)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _files(path: Path) -> list[Path]:
    return sorted(path.rglob("*.parquet")) if path.is_dir() else [path]


def _scan(path: Path) -> str:
    """The ``read_parquet`` call for a file or a Hive-partitioned folder (paths are bound as literals)."""
    if path.is_dir():
        glob = str(path / "**" / "*.parquet").replace("'", "''")
        return f"read_parquet('{glob}', hive_partitioning = true)"
    return "read_parquet('" + str(path).replace("'", "''") + "')"


def materialization_key(path: Path) -> str:
    """Changes whenever the output is rewritten: its path, and each file's size and mtime."""
    h = hashlib.sha256(f"v{CACHE_VERSION}|{path}".encode())
    for f in _files(path):
        st = f.stat()
        h.update(f"|{f}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    # DuckDB draws a progress bar on stdout for long queries: it would scribble over the server's terminal.
    con.execute("SET enable_progress_bar = false")
    return con


def schema_of(path: Path) -> list[dict]:
    """``[{"name", "type"}]`` read from the Parquet footer (no data scanned)."""
    with _connect() as con:
        rows = con.execute(f"DESCRIBE SELECT * FROM {_scan(path)}").fetchall()
    return [{"name": r[0], "type": r[1]} for r in rows]


def row_count(path: Path) -> int:
    with _connect() as con:
        return con.execute(f"SELECT count(*) FROM {_scan(path)}").fetchone()[0]


def preview(path: Path, limit: int) -> dict:
    """The first ``limit`` rows as ``{"columns": [...], "rows": [[...], ...]}``, read with a LIMIT."""
    with _connect() as con:
        con.execute("SET threads = 1")  # a LIMIT needs the first row group only; more threads decode more ahead
        table = con.sql(f"SELECT * FROM {_scan(path)} LIMIT {int(limit)}").to_arrow_table()
    columns = table.column_names
    values = [table[c].to_pylist() for c in columns]
    return {"columns": columns, "rows": [list(r) for r in zip(*values, strict=True)] if columns else []}


def column_stats(project: Project, path: Path) -> dict:
    """Statistics of every column of the output at ``path``, from the cache when it is current."""
    cache_dir = project.target / "ui_cache"
    cache = cache_dir / f"stats-{materialization_key(path)}.json"
    if cache.is_file():
        try:
            return msgspec.json.decode(cache.read_bytes())
        except msgspec.DecodeError:
            pass  # a torn or foreign file: compute again and overwrite it
    result = _compute(path)
    cache_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(cache, msgspec.json.encode(result))
    return result


def _compute(path: Path) -> dict:
    with _connect() as con:
        con.execute(f"CREATE VIEW t AS SELECT * FROM {_scan(path)}")
        cur = con.execute("SUMMARIZE t")
        names = [d[0] for d in cur.description]
        summary = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        columns = []
        for s in summary:
            name, dtype = s["column_name"], s["column_type"]
            count = int(s["count"] or 0)
            null_pct = float(s["null_percentage"] or 0)
            col = {
                "name": name, "type": dtype, "count": count,
                "null_count": round(count * null_pct / 100), "null_pct": null_pct,
                "approx_distinct": s["approx_unique"], "min": s["min"], "max": s["max"],
                "mean": s["avg"], "std": s["std"], "q25": s["q25"], "q50": s["q50"], "q75": s["q75"],
                "histogram": None, "top_values": None,
            }
            base = dtype.split("(")[0].split(" ")[0]
            if base in _NUMERIC:
                col["histogram"] = _histogram(con, _quote(name), f"CAST({_quote(name)} AS DOUBLE)")
            elif base in _TEMPORAL:
                col["histogram"] = _histogram(con, _quote(name), f"CAST(epoch({_quote(name)}) AS DOUBLE)",
                                              temporal=True)
            elif base in _TEXT:
                q = _quote(name)
                top = con.execute(f"SELECT {q} AS v, count(*) AS n FROM t WHERE {q} IS NOT NULL "
                                  f"GROUP BY 1 ORDER BY n DESC, v LIMIT {TOP_VALUES}").fetchall()
                col["top_values"] = [{"value": v, "count": n} for v, n in top]
            columns.append(col)
    return {"columns": columns}


def _histogram(con: duckdb.DuckDBPyConnection, column: str, expr: str, temporal: bool = False) -> dict | None:
    lo, hi = con.execute(f"SELECT min({expr}), max({expr}) FROM t").fetchone()
    if lo is None:
        return None
    width = (hi - lo) / BINS if hi > lo else 0
    if width == 0:
        total = con.execute(f"SELECT count({column}) FROM t").fetchone()[0]
        return {"lo": lo, "hi": hi, "counts": [total], "temporal": temporal}
    rows = con.execute(f"SELECT least(CAST(floor(({expr} - ?) / ?) AS INTEGER), {BINS - 1}) AS b, count(*) "
                       f"FROM t WHERE {column} IS NOT NULL GROUP BY b", [lo, width]).fetchall()
    counts = [0] * BINS
    for b, n in rows:
        counts[b] += n
    return {"lo": lo, "hi": hi, "counts": counts, "temporal": temporal}
