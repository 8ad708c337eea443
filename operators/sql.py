"""User SQL (DuckDB dialect) over named inputs, streamed out as Arrow batches.

Inputs are registered as views: Parquet outputs of upstream nodes are read in
place by DuckDB (lazy, with projection pushdown), in-memory Arrow inputs (a
dry run) are registered as Arrow tables. ``ref('kind.name')`` in the SQL is
replaced by the input's view name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from operators.errors import EngineError
from operators.memory import MemoryConfig, duckdb_connection
from operators.scan import BATCH_ROWS, first_line
from operators.sql_text import quote_ident, quote_literal

REF_CALL = re.compile(r"""\bref\(\s*['"]([^'"]+)['"]\s*\)""")

Input = Path | list[Path] | pa.Table | pa.RecordBatchReader


def rewrite_refs(sql: str, views: dict[str, str]) -> str:
    """Replace ``ref('kind.name')`` with the quoted view name of that input.

    >>> rewrite_refs("SELECT * FROM ref('source.x')", {"source.x": "source_x"})
    'SELECT * FROM "source_x"'
    """

    def sub(m: re.Match) -> str:
        target = m.group(1)
        if target not in views:
            raise EngineError(f"ref('{target}') is not an input of this node")
        return quote_ident(views[target])

    return REF_CALL.sub(sub, sql)


def register_input(con, view: str, value: Input) -> None:
    """Make ``value`` queryable as ``view`` on a DuckDB connection, without copying Parquet."""
    if isinstance(value, Path | list):
        paths = [str(p) for p in (value if isinstance(value, list) else [value])]
        files = [p + "/**/*.parquet" if Path(p).is_dir() else p for p in paths]
        listing = ", ".join(quote_literal(f) for f in files)
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {quote_ident(view)} AS "
            f"SELECT * FROM read_parquet([{listing}], hive_partitioning = true, union_by_name = true)"
        )
    else:
        con.register(view, value)


def _single_select(con, sql: str) -> bool:
    """True when ``sql`` is one SELECT statement (no DDL, no SET); parsed by the connection ``con``.

    A connection the node uses anyway, not ``duckdb.extract_statements``: that creates
    DuckDB's default database first (~30 ms of a run).

    >>> import duckdb
    >>> con = duckdb.connect()
    >>> _single_select(con, "WITH a AS (SELECT 1) SELECT * FROM a"), _single_select(con, "SET threads = 1; SELECT 1")
    (True, False)
    """
    import duckdb  # here and below: DuckDB loads with the first SQL node, not with this module

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error:  # the query itself reports it
        return False
    return len(statements) == 1 and statements[0].type == duckdb.StatementType.SELECT


def run_interruptible(con, sql: str) -> int:
    """Run one statement returning a count on a worker thread; Ctrl-C interrupts it at once.

    One long DuckDB call (a ``COPY``) never returns to Python until it ends, so the
    signal handler's ``KeyboardInterrupt`` would wait for it. Here the main thread
    waits in short joins, and on the interrupt asks DuckDB to stop
    (``connection.interrupt()``), waits for the worker, and raises the interrupt on.
    """
    import threading

    outcome: dict[str, object] = {}
    # An Event, not Thread.join: a join that a KeyboardInterrupt broke may later return
    # while the thread still runs (CPython 3.11), and the connection would still be busy.
    done = threading.Event()

    def work() -> None:
        try:
            outcome["rows"] = con.execute(sql).fetchone()[0]
        except BaseException as e:  # handed to the caller's thread below
            outcome["error"] = e
        finally:
            done.set()

    threading.Thread(target=work, name="duckdb-copy", daemon=True).start()
    try:
        while not done.wait(0.05):
            pass
    except KeyboardInterrupt:
        con.interrupt()
        done.wait()
        raise
    if "error" in outcome:
        raise outcome["error"]
    return int(outcome["rows"])


def copy_to_parquet(con, query: str, path: Path) -> int:
    """``COPY (query) TO path`` as zstd Parquet, through :func:`run_interruptible`; the rows written.

    >>> import duckdb, tempfile
    >>> copy_to_parquet(duckdb.connect(), "SELECT 1 AS a", Path(tempfile.mkdtemp()) / "a.parquet")
    1
    """
    return run_interruptible(con, f"COPY ({query}) TO {quote_literal(str(path))} (FORMAT parquet, COMPRESSION zstd)")


class SqlOperator:
    """Run one DuckDB query over named inputs and stream the result.

    >>> inputs = {"source.t": ("source_t", pa.table({"a": [1, 2]}))}
    >>> op = SqlOperator("SELECT COUNT(*) AS s FROM ref('source.t')", inputs)
    >>> op.read_all().to_pylist()
    [{'s': 2}]
    """

    def __init__(
        self,
        sql: str,
        inputs: dict[str, tuple[str, Input]],
        *,
        memory: MemoryConfig | None = None,
    ) -> None:
        self.sql = sql
        self.inputs = inputs  # ref id -> (view name, data)
        self.memory = memory or MemoryConfig()
        self._schema: pa.Schema | None = None
        # The connection that answered ``schema`` runs the query too: binding a view
        # over a partitioned folder reads every footer, once is enough.
        self._con = None
        self._select: bool | None = None

    def describe(self) -> str:
        names = ", ".join(v for v, _ in self.inputs.values())
        return f"DuckDBSql(inputs: {names or 'none'})"

    def _connect(self):
        # A lone SELECT shares the node run's database (a cursor: its views stay its own);
        # anything else (a CREATE TABLE IF NOT EXISTS, a SET, a sequence) would carry over
        # to the next partition, so it gets a database of its own.
        con = duckdb_connection(self.memory, shared=True)
        try:
            if self._select is None:
                self._select = _single_select(con, self._query())
            if not self._select:
                con.close()
                con = duckdb_connection(self.memory)
            for view, value in self.inputs.values():
                register_input(con, view, value)
        except BaseException:
            con.close()
            raise
        return con

    def _query(self):
        return rewrite_refs(self.sql, {ref: view for ref, (view, _) in self.inputs.items()})

    @property
    def schema(self) -> pa.Schema:
        import duckdb

        if self._schema is None:
            try:
                if self._con is None:
                    self._con = self._connect()
                rel = self._con.sql(self._query())
                self._schema = rel.limit(0).to_arrow_table().schema
            except (duckdb.Error, pa.ArrowException) as e:  # the message is user-facing
                self.close()
                raise EngineError(f"SQL error: {first_line(str(e))}") from e
            if not self._select:
                # The probe ran every statement: the query starts again on a fresh connection.
                self.close()
        return self._schema

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def batches(self) -> Iterator[pa.RecordBatch]:
        import duckdb

        con, self._con = self._con, None
        try:
            try:
                con = con or self._connect()
                reader = con.sql(self._query()).to_arrow_reader(BATCH_ROWS)
            except (duckdb.Error, pa.ArrowException) as e:
                raise EngineError(f"SQL error: {first_line(str(e))}") from e
            while True:
                try:
                    yield reader.read_next_batch()
                except StopIteration:
                    return
                except (duckdb.Error, pa.ArrowException) as e:
                    raise EngineError(f"SQL error: {first_line(str(e))}") from e
        finally:
            if con is not None:
                con.close()

    def read_all(self) -> pa.Table:
        schema = self.schema  # first: its connection then runs the query too
        return pa.Table.from_batches(list(self.batches()), schema=schema)
