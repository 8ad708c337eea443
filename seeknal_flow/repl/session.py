"""The SQL REPL: DuckDB over ``target/``, read-only.

Each node output is a view (``source_x``, ``feature_group_x``...) and each
consolidated entity is ``entity_<name>``; DuckDB reads the Parquet in place,
so the REPL opens instantly whatever the data size. Statements are classified
by DuckDB's own parser and anything but a query is refused.

The sandbox (docs/security.md): once the views exist, DuckDB's own controls are
set and locked: ``enable_external_access`` off with ``allowed_directories`` =
the project folder (plus the folders of sources it reads in place elsewhere),
extension auto-install and auto-load off. A query can read the project's files
and nothing else on the machine or the network; ``--output`` never writes under
``target/``, where the planner's outputs live.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from operators.sql_text import quote_ident, quote_literal
from seeknal_flow.errors import ReplError, SeeknalError
from seeknal_flow.load.project import Project
from seeknal_flow.plan.manifest import read_outputs
from seeknal_flow.repl.table_format import render_table

_ALLOWED = {"SELECT", "EXPLAIN"}
HELP = """\
.tables          list the views (node outputs and entities)
.schema NAME     columns and types of a view
.mode FORMAT     print results as table, csv or json
.maxrows N       print at most N rows of a result (0: all)
.help            this help
.quit            leave (also Ctrl-D)
Anything else is DuckDB SQL (queries only); end a statement with ';' or an empty line."""


class ReplSession:
    """A read-only DuckDB session over a project's outputs.

    >>> import tempfile
    >>> from seeknal_flow.load.scaffold import init_project
    >>> s = ReplSession(Project(init_project("p", path=Path(tempfile.mkdtemp()))))
    >>> s.query("SELECT 1 AS one")
    (['one'], [(1,)])
    """

    def __init__(self, project: Project) -> None:
        import duckdb

        self.project = project
        # No extension is fetched from the network or loaded behind the user's back.
        self.con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                                      "autoload_known_extensions": False})
        self.con.execute("SET TimeZone = 'UTC'")
        self.views: dict[str, Path] = {}
        self._register()
        self._sandbox()

    def _in_place_sources(self) -> set[Path]:
        # Imported here: loading the node files costs a discovery, needed only when a view points elsewhere.
        from seeknal_flow.load.discovery import discover

        try:
            specs = discover(self.project)
        except SeeknalError:  # a broken node file: nothing outside the project is shown
            return set()
        return {(self.project.root / s.table).resolve() for s in specs if self.project.reads_in_place(s)}

    def _sandbox(self) -> None:
        """Lock DuckDB to the project folder: no other file, no URL, no setting changed back."""
        root = self.project.root.resolve()
        allowed = {str(root) + os.sep}
        for path in self.views.values():  # sources read in place from outside the project
            resolved = path.resolve()
            if not resolved.is_relative_to(root):
                allowed.add(str(resolved if resolved.is_dir() else resolved.parent) + os.sep)
        self.con.execute(f"SET allowed_directories = [{', '.join(quote_literal(a) for a in sorted(allowed))}]")
        self.con.execute("SET enable_external_access = false")
        self.con.execute("SET lock_configuration = true")

    def _register(self) -> None:
        found: dict[str, Path] = {}
        manifest = read_outputs(self.project)
        for view, output in manifest.items():
            path = self.project.root / output
            if path.exists():
                found[view] = path
        # Without a manifest (outputs copied from elsewhere) every output file is a view;
        # with one, outputs of nodes that left the project are not shown.
        if not manifest and self.project.intermediate.is_dir():
            for path in sorted(self.project.intermediate.iterdir()):
                if path.name.startswith("."):
                    continue
                if path.suffix == ".parquet":
                    found[path.stem] = path
        store = self.project.target / "feature_store"
        if store.is_dir():
            for folder in sorted(store.iterdir()):
                entity_file = folder / "features.parquet"
                if entity_file.exists():
                    found[f"entity_{folder.name}"] = entity_file
        found = {name: path.resolve() for name, path in found.items()}  # the allow-list compares resolved paths
        root = self.project.root.resolve()
        if any(not p.is_relative_to(root) for p in found.values()):
            # Outside the project, only what the project's own Parquet sources read in place: an edited
            # manifest must not widen the sandbox.
            declared = self._in_place_sources()
            found = {n: p for n, p in found.items() if p.is_relative_to(root) or p in declared}
        for name, path in found.items():
            pattern = str(path / "**" / "*.parquet") if path.is_dir() else str(path)
            self.con.execute(
                f"CREATE VIEW {quote_ident(name)} AS "
                f"SELECT * FROM read_parquet({quote_literal(pattern)}, hive_partitioning = true)"
            )
        self.views = found

    def check_read_only(self, sql: str) -> None:
        import duckdb

        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as e:
            raise ReplError(f"SQL error: {_one_line(e)}") from e
        if not statements:
            raise ReplError("empty statement")
        for st in statements:
            kind = st.type.name
            if kind == "EXPLAIN":
                # EXPLAIN ANALYZE executes its statement: only a plain EXPLAIN of a query is harmless.
                inner = re.sub(r"^\s*EXPLAIN\s*", "", st.query, flags=re.IGNORECASE)
                if re.match(r"(\(|ANALY[SZ]E\b)", inner, flags=re.IGNORECASE):
                    raise ReplError("the REPL is read-only: EXPLAIN ANALYZE runs its statement; use EXPLAIN")
                self.check_read_only(inner)
            elif kind not in _ALLOWED:
                raise ReplError(f"the REPL is read-only: {kind} statements are refused; write a SELECT query")

    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        """Run one query; return column names and rows."""
        import duckdb

        self.check_read_only(sql)
        try:
            rel = self.con.sql(sql)
            if rel is None:
                return [], []
            return list(rel.columns), rel.fetchall()
        except duckdb.Error as e:
            raise ReplError(f"SQL error: {_one_line(e)}") from e

    def query_capped(self, sql: str, max_rows: int) -> QueryResult:
        """Run one query and keep at most ``max_rows`` rows (0 = all), counting the rest.

        The result streams as Arrow batches: rows past the cap are counted, never turned
        into Python objects or text, so a 500,000-row result prints 40 rows at once.
        """
        if max_rows <= 0:
            columns, rows = self.query(sql)
            return QueryResult(columns, rows, len(rows))
        import warnings

        import duckdb

        self.check_read_only(sql)
        try:
            cursor = self.con.execute(sql)
            if cursor.description is None:
                return QueryResult([], [], 0)
            columns = [d[0] for d in cursor.description]
            # The rows shown come from DuckDB's own conversion (the same values as --max-rows 0);
            # the rest only needs counting, which Arrow batches do without Python objects.
            rows = cursor.fetchmany(max_rows)
            total = len(rows)
            if total == max_rows:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "Arrow output on a DB-API result makes an extra copy"
                    for batch in cursor.to_arrow_reader(_BATCH_ROWS):
                        total += batch.num_rows
        except duckdb.Error as e:
            raise ReplError(f"SQL error: {_one_line(e)}") from e
        return QueryResult(columns, rows, total)

    def tables(self) -> list[tuple[str, str]]:
        root = self.project.root.resolve()
        return [(name, str(path.relative_to(root)) if path.is_relative_to(root) else str(path))
                for name, path in self.views.items()]

    def schema(self, name: str) -> list[tuple[str, str]]:
        if name not in self.views:
            known = ", ".join(self.views) or "none"
            raise ReplError(f"no view named '{name}'; views: {known}")
        rows = self.con.execute(f"DESCRIBE {quote_ident(name)}").fetchall()
        return [(r[0], r[1]) for r in rows]

    def export(self, sql: str, path: Path) -> int:
        """Write a query's result to CSV, JSON or Parquet (by extension), atomically.

        Never under ``target/``: the planner owns those files (a changed output would be
        trusted by the next run). DuckDB itself writes nothing (the sandbox forbids it):
        the result streams as Arrow batches into the file.
        """
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".json", ".parquet"):
            raise ReplError(f"--output {path}: use a .csv, .json or .parquet file name")
        target = self.project.target.resolve()
        resolved = path.resolve()
        if resolved == target or resolved.is_relative_to(target):
            raise ReplError(f"--output {path}: refusing to write under target/ (seeknal run's outputs live there); "
                            "write the file elsewhere")
        self.check_read_only(sql)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            if suffix == ".parquet":
                import duckdb
                import pyarrow.parquet as pq

                if len(duckdb.extract_statements(sql)) != 1:
                    raise ReplError("--output takes exactly one query")
                count = 0
                try:
                    reader = self.con.sql(sql).to_arrow_reader(_BATCH_ROWS)
                    with pq.ParquetWriter(tmp, reader.schema) as writer:
                        for batch in reader:
                            writer.write_batch(batch)
                            count += batch.num_rows
                except duckdb.Error as e:
                    raise ReplError(f"SQL error: {_one_line(e)}") from e
            else:
                columns, rows = self.query(sql)
                tmp.write_text(format_rows(columns, rows, suffix[1:]), encoding="utf-8")
                count = len(rows)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return count


@dataclass(frozen=True)
class QueryResult:
    """A query's first rows and its total row count."""

    columns: list[str]
    rows: list[tuple]
    total: int

    @property
    def truncated(self) -> bool:
        return self.total > len(self.rows)

    def footer(self, interactive: bool = False) -> str:
        """The line under a capped result: how many rows exist and how to see them."""
        more = ".maxrows 0 to print all" if interactive else "--max-rows 0 to print all"
        return (f"({len(self.rows):,} of {self.total:,} rows shown; {more}, "
                f"or write them to a file with `seeknal repl -e \"...\" --output result.parquet`)")


def format_rows(columns: list[str], rows: list[tuple], fmt: str) -> str:
    """Render rows as ``table``, ``json`` (array of row objects) or ``csv``.

    >>> format_rows(["a"], [(1,)], "json")
    '[{"a": 1}]'
    """
    if fmt == "json":
        clean = [[None if isinstance(v, float) and not math.isfinite(v) else v for v in r] for r in rows]
        return json.dumps([dict(zip(columns, r, strict=True)) for r in clean], default=_json_default)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        return buffer.getvalue().rstrip("\n")
    return render_table(columns, rows)


_BATCH_ROWS = 65536


def _json_default(value: object):
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)


def _one_line(error: Exception) -> str:
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    return " ".join(lines[:2]) if lines else type(error).__name__
