"""Database scans: PostgreSQL and SQLite through ADBC, streamed as Arrow RecordBatches.

The Arrow Database Connectivity drivers hand back Arrow record batches (the
PostgreSQL driver reads ``COPY ... TO STDOUT (FORMAT binary)``), so rows never
become Python objects: :meth:`DbScanOperator.batches` pulls them from the
statement's Arrow stream (as ``cursor.fetch_record_batch()`` would, without the
DB-API layer) one batch at a time, bounded in memory whatever
the table's size. With ``partitions > 1`` the read is split into N range
queries on one column, each on its own connection in its own thread, merged
through a bounded queue.

An incremental read sends ``column > $watermark`` to the database (a bound
parameter), so only new rows cross the wire.

Types (PostgreSQL -> Arrow): integers, float4/8, text/varchar, bool, date,
timestamp and bytea as the driver gives them; timestamptz as
``timestamp[us, tz=UTC]``; json/jsonb as string; numeric(p, s) with p <= 38 as
``decimal128(p, s)``, numeric without a precision (or wider) as float64. Any
other type (interval, arrays, geometric...) is an error naming the column.

The driver modules are imported on first use: planning never loads them.
"""

from __future__ import annotations

import datetime
import json
import math
import queue
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from operators.base import constant_strings
from operators.errors import EngineError
from operators.scan import first_line
from operators.sql_text import quote_ident, quote_literal

INSTALL_HINT = "database sources need the db extra: pip install 'seeknal-flow[db]'"
_IDENT_PART = re.compile(r'^(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")$')
_MAX_DECIMAL_PRECISION = 38
# Batches in flight per partition reader of a parallel read: bounds memory at
# about (partitions x this x batch size); ADBC's PostgreSQL batches are ~16 MB.
_QUEUE_BATCHES_PER_READER = 2
_EPOCH_DAY = datetime.date(1970, 1, 1)
_EPOCH = datetime.datetime(1970, 1, 1)


@dataclass(frozen=True)
class DbRead:
    """What to read. ``uri`` is the expanded connection (a secret: never put it in a message).

    ``watermark`` is the physical value (int, float or str) of the highest
    ``incremental_column`` value already materialized, or None for a full read.
    """

    driver: str  # "postgres" | "sqlite"
    uri: str
    label: str  # how messages name the source: "postgres 127.0.0.1:5432/shop public.orders"
    table: str = ""
    query: str | None = None
    incremental_column: str | None = None
    watermark: Any = None
    partition_column: str | None = None
    partitions: int = 1


def table_sql(table: str) -> str:
    """A ``[schema.]table`` name checked to be identifiers only (so it can go into SQL as is).

    >>> table_sql('public.orders')
    'public.orders'
    >>> table_sql('orders; DROP TABLE x')
    Traceback (most recent call last):
    ...
    operators.errors.EngineError: table 'orders; DROP TABLE x' is not a [schema.]table name; use query: ...
    """
    parts = table.split(".")
    if not all(_IDENT_PART.match(p) for p in parts) or len(parts) > 3:
        raise EngineError(f"table {table!r} is not a [schema.]table name; use query: (a SELECT) for anything else")
    return table


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Connection:
    """One ADBC connection (the driver manager's own API: its DB-API layer imports pandas, 0.3 s)."""

    def __init__(self, database, connection, manager) -> None:
        self._database, self._connection, self._manager = database, connection, manager
        self._statements: list = []

    def query(self, sql: str, params: pa.RecordBatch | None = None) -> pa.RecordBatchReader:
        """Execute ``sql`` (``params`` bound to ``$1``/``?``) and return its result as a stream."""
        statement = self._manager.AdbcStatement(self._connection)
        self._statements.append(statement)  # the stream reads through it: keep it open until close()
        statement.set_sql_query(sql)
        if params is not None:
            statement.bind(params)
        handle, _ = statement.execute_query()
        return pa.RecordBatchReader._import_from_c(handle.address)

    def close(self) -> None:
        for statement in self._statements:
            statement.close()
        self._connection.close()
        self._database.close()


def connect(driver: str, uri: str, label: str) -> Connection:
    """An ADBC connection; a missing driver or a refused connection is a one-line EngineError."""
    try:
        import adbc_driver_manager as manager

        if driver == "postgres":
            import adbc_driver_postgresql as module
        elif driver == "sqlite":
            import adbc_driver_sqlite as module
        else:
            raise EngineError(f"unknown database driver '{driver}'; use postgres or sqlite")
    except ImportError as e:
        raise EngineError(INSTALL_HINT) from e
    if driver == "sqlite" and not Path(uri).is_file():
        raise EngineError(f"cannot open {label}: the SQLite file does not exist; check `connection`")
    database = None
    try:
        database = module.connect(uri)
        return Connection(database, manager.AdbcConnection(database), manager)
    except manager.Error as e:
        if database is not None:
            database.close()
        raise EngineError(f"cannot connect to {label}: {_driver_message(e)}") from e


def _driver_message(error: Exception) -> str:
    text = first_line(str(error))
    # "IO: [libpq] Failed to connect: connection to server at ... failed: FATAL:  password ..." -> the reason
    text = re.sub(r"^\w+: \[libpq\] ", "", text)
    text = re.sub(r"^[A-Z_]+: ", "", text)  # the ADBC status code
    text = re.sub(r"^(Failed to (prepare|execute) query: )?(could not begin COPY: )?", "", text)
    return re.sub(r"\s+", " ", text).strip()


class DbScanOperator:
    """Stream a table or query of a database as RecordBatches.

    >>> op = DbScanOperator(DbRead("sqlite", "/data/shop.db", "sqlite data/shop.db orders", table="orders",
    ...                            partition_column="id", partitions=4))
    >>> op.describe()
    'DbScan[sqlite](sqlite data/shop.db orders, 4 range reads on id)'
    """

    def __init__(self, read: DbRead) -> None:
        self.read = read
        self._schema: pa.Schema | None = None
        self._raw: pa.Schema | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # The probe's connection, handed to the first read: a connection costs a round of
        # authentication (scram-sha-256: ~40 ms), a third of an incremental fetch of ten rows.
        self._spare: Connection | None = None
        self._spare_lock = threading.Lock()
        self.rows = 0
        self.output = ""

    def describe(self) -> str:
        r = self.read
        extra = f", incremental on {r.incremental_column}" if r.incremental_column else ""
        extra += f", {r.partitions} range reads on {r.partition_column}" if r.partitions > 1 else ""
        return f"DbScan[{r.driver}]({r.label}{extra})"

    # ----------------------------------------------------------------- SQL text

    @property
    def _relation(self) -> str:
        r = self.read
        if r.query is not None:
            return f"({r.query.strip().rstrip(';')}) AS _seeknal_q"
        return table_sql(r.table)

    def _placeholder(self) -> str:
        if self.read.driver != "postgres":
            return "?"
        # The driver binds a decimal (or JSON) watermark as text; PostgreSQL needs the column's type.
        meta = self._raw.field(self.read.incremental_column).metadata or {}
        pg_type = meta.get(b"POSTGRESQL:type", b"").decode()
        return f"$1::{pg_type}" if re.fullmatch(r"[a-z_][a-z0-9_ ]*", pg_type) else "$1"

    def _where(self, extra: str = "") -> str:
        conds = []
        if self.read.incremental_column and self.read.watermark is not None:
            conds.append(f"{_quote(self.read.incremental_column)} > {self._placeholder()}")
        if extra:
            conds.append(extra)
        return f" WHERE {' AND '.join(conds)}" if conds else ""

    def _params(self):
        r = self.read
        if not (r.incremental_column and r.watermark is not None):
            return None
        field = self._raw.field(r.incremental_column)
        kind = field.type.storage_type if isinstance(field.type, pa.BaseExtensionType) else field.type
        value = None if isinstance(field.type, pa.BaseExtensionType) else _fixed_width_value(r.watermark, kind)
        if value is None:
            # Text, decimals and extension types: their text, cast by Arrow (imports pyarrow.compute).
            try:
                value = constant_strings(str(r.watermark), 1).cast(kind)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise EngineError(f"the stored watermark of '{r.incremental_column}' does not fit its type "
                                  f"{kind} any more; run with --full") from e
        return pa.record_batch([value], names=["watermark"])

    # ------------------------------------------------------------------- schema

    @property
    def schema(self) -> pa.Schema:
        if self._schema is None:
            self._probe()
        return self._schema

    def _probe(self) -> None:
        """Read the result's columns (a LIMIT 0 query), map their types and check the named columns."""
        con = connect(self.read.driver, self.read.uri, self.read.label)
        try:
            # SQLite columns have no fixed type: the driver infers them from the rows it sees,
            # so its probe reads some rows; PostgreSQL describes an empty result exactly.
            limit = 0 if self.read.driver == "postgres" else 1024
            reader = self._execute(con, f"SELECT * FROM {self._relation} LIMIT {limit}", None)
            self._raw = reader.schema
            reader.read_all()
        except BaseException:
            con.close()
            raise
        self._give_back(con)
        self._schema = pa.schema([pa.field(f.name, _target_type(f, self.read.label)) for f in self._raw])
        for role, column in (("incremental.column", self.read.incremental_column),
                             ("partition_on.column", self.read.partition_column)):
            if column is not None and column not in self._raw.names:
                raise EngineError(f"{role} '{column}' is not a column of {self.read.label}; "
                                  f"columns: {', '.join(self._raw.names)}")
        if self.read.partitions > 1:
            kind = self._schema.field(self.read.partition_column).type
            if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
                raise EngineError(f"partition_on.column '{self.read.partition_column}' is {kind}; "
                                  "parallel reads split an integer or floating-point column")

    def _connection(self) -> Connection:
        """The spare connection if there is one, else a new one; the caller closes it."""
        with self._spare_lock:
            con, self._spare = self._spare, None
        return con if con is not None else connect(self.read.driver, self.read.uri, self.read.label)

    def _give_back(self, con: Connection) -> None:
        with self._spare_lock:
            if self._spare is None:
                self._spare, con = con, None
        if con is not None:
            con.close()

    def _execute(self, con: Connection, sql: str, params) -> pa.RecordBatchReader:
        try:
            return con.query(sql, params)
        except Exception as e:  # noqa: BLE001 - each DB-API driver raises its own Error classes; named below
            if not _is_driver_error(e):
                raise
            raise EngineError(f"query on {self.read.label} failed in the database: {_driver_message(e)}") from e

    # ------------------------------------------------------------------ batches

    def batches(self) -> Iterator[pa.RecordBatch]:
        if self._schema is None:
            self._probe()  # the reads bind and convert by the probed types
        ranges = self._ranges() if self.read.partitions > 1 else [""]
        # Even one range is read by its own thread: the driver decodes the next batches while
        # the consumer (the Parquet sink) compresses this one; both release the GIL.
        for batch in self._parallel(ranges):
            self.rows += batch.num_rows
            yield batch

    def _stream(self, condition: str) -> Iterator[pa.RecordBatch]:
        con = self._connection()
        try:
            reader = self._execute(con, f"SELECT * FROM {self._relation}{self._where(condition)}", self._params())
            convert = _converter(reader.schema, self._schema, self.read.label)
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except Exception as e:  # noqa: BLE001 - driver errors while streaming; others re-raised
                    # The driver's stream surfaces through Arrow's C interface as OSError/ArrowException.
                    if not (_is_driver_error(e) or isinstance(e, OSError | pa.ArrowException)):
                        raise
                    raise EngineError(f"reading {self.read.label} failed: {_driver_message(e)}") from e
                yield convert(batch)
        finally:
            con.close()

    def _ranges(self) -> list[str]:
        """N conditions splitting [min, max] of the partition column; NULLs go to the first."""
        col = _quote(self.read.partition_column)
        con = self._connection()
        try:
            reader = self._execute(con, f"SELECT min({col}) AS low, max({col}) AS high FROM "
                                        f"{self._relation}{self._where()}", self._params())
            bounds = reader.read_all().to_pylist()[0]
        except BaseException:
            con.close()
            raise
        self._give_back(con)
        low, high = bounds["low"], bounds["high"]
        if low is None:
            return [""]
        n = self.read.partitions
        integer = isinstance(low, int) and isinstance(high, int)
        step = max(1, math.ceil((high - low + 1) / n)) if integer else (high - low) / n
        out = []
        for i in range(n):
            lo = low + step * i
            if integer and lo > high:
                break
            cond = f"{col} >= {lo!r}" + (f" AND {col} < {low + step * (i + 1)!r}" if i < n - 1 else "")
            out.append(f"({cond}{f' OR {col} IS NULL' if i == 0 else ''})")
        return out

    def _parallel(self, ranges: list[str]) -> Iterator[pa.RecordBatch]:
        box: queue.Queue = queue.Queue(maxsize=_QUEUE_BATCHES_PER_READER * len(ranges))
        done = object()
        self._stop.clear()

        def offer(item) -> bool:
            while not self._stop.is_set():
                try:
                    box.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False  # the consumer went away (closed early, or failed)

        def pump(condition: str) -> None:
            stream = self._stream(condition)
            try:
                for batch in stream:
                    if not offer(batch):
                        return
                offer(done)
            except BaseException as e:  # noqa: BLE001 - handed to the consuming thread, which re-raises it
                offer(e)
            finally:
                stream.close()  # closes the connection now, not when garbage-collected

        self._threads = [threading.Thread(target=pump, args=(c,), daemon=True, name=f"db-read-{i}")
                         for i, c in enumerate(ranges)]
        for t in self._threads:
            t.start()
        finished = 0
        try:
            while finished < len(ranges):
                item = box.get()
                if item is done:
                    finished += 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        self._threads = []
        with self._spare_lock:
            con, self._spare = self._spare, None
        if con is not None:
            con.close()

    def read_all(self) -> pa.Table:
        return pa.Table.from_batches(list(self.batches()), schema=self.schema)


def column_max(path: Path, column: str) -> tuple[Any, str] | None:
    """(physical, shown) maximum of ``column`` in a Parquet file, or None when it holds no value.

    Read from the row groups' footer statistics, which the writer computed anyway, and
    turned into physical values in plain Python: ``pa.scalar`` would import pandas
    (0.2-0.3 s of an incremental fetch of ten rows). A row group without statistics
    (e.g. a string past the writer's bound) or a type not handled here falls back to
    scanning the column with ``pyarrow.compute``.

    >>> import tempfile, pyarrow.parquet as pq
    >>> f = Path(tempfile.mkdtemp()) / "p.parquet"
    >>> pq.write_table(pa.table({"id": [3, 9, None]}), f)
    >>> column_max(f, "id")
    (9, '9')
    """
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    meta, kind = file.metadata, file.schema_arrow.field(column).type  # the Arrow type as written
    index = meta.schema.names.index(column)
    best = None  # (order key, physical, shown)
    for g in range(meta.num_row_groups):
        chunk = meta.row_group(g).column(index)
        stats = chunk.statistics
        if chunk.num_values == 0 or (stats is not None and stats.null_count == chunk.num_values):
            continue
        got = _statistics_max(stats, kind) if stats is not None and stats.has_min_max else None
        if got is None:
            break
        if best is None or got[0] > best[0]:
            best = got
    else:
        return None if best is None else best[1:]
    import pyarrow.compute as pc  # no usable statistics: scan the column

    top = pc.max(pq.read_table(path, columns=[column]).column(column))
    return (_physical(top), str(top.as_py())) if top.is_valid else None


def _statistics_max(stats, kind: pa.DataType) -> tuple[Any, Any, str] | None:
    """(order key, physical, shown) of a row group's maximum, as :func:`_physical` would give."""
    if pa.types.is_timestamp(kind):
        unit = {"milliseconds": "ms", "microseconds": "us"}.get(
            json.loads(stats.logical_type.to_json()).get("timeUnit", ""))
        # Nanoseconds have no Python datetime; seconds are stored as ms. `stats.max` of a
        # timestamp imports pandas, so the text is made from the raw integer.
        if unit != kind.unit or kind.tz not in (None, "UTC", "+00:00"):
            return None
        raw = stats.max_raw
        epoch = _EPOCH if kind.tz is None else _EPOCH.replace(tzinfo=datetime.UTC)
        shown = epoch + datetime.timedelta(microseconds=raw if unit == "us" else raw * 1000)
        return raw, raw, str(shown)
    value = stats.max
    if pa.types.is_date32(kind):
        return value, (value - _EPOCH_DAY).days, str(value)
    if pa.types.is_decimal(kind):
        return value, str(value), str(value)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_string(kind) \
            or pa.types.is_boolean(kind):
        return value, value, str(value)
    return None


def multiset_hash(path: Path, con=None) -> tuple[int, int]:
    """(rows, sum of row hashes mod 2**64) of a Parquet file: the same for the same rows in any order.

    Sums add up, so the hash of an incrementally appended table is the sum of its parts'.
    A parallel read interleaves its ranges differently on every run; this hash does not see that.
    ``con``: an open DuckDB connection to use (see :class:`MultisetHasher`); else one is opened.
    """
    if con is None:
        import duckdb  # only when a database source is written

        with duckdb.connect() as own:
            return multiset_hash(path, own)
    source = f"read_parquet({quote_literal(str(path))})"
    names = con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()
    row = ", ".join(quote_ident(n[0]) for n in names)
    rows, total = con.sql(
        f"SELECT count(*), coalesce(sum(hash({row})::HUGEINT) % 18446744073709551616, 0)::UBIGINT "
        f"FROM {source}").fetchall()[0]
    return int(rows), int(total)


class MultisetHasher:
    """:func:`multiset_hash` with DuckDB imported and connected in the background.

    DuckDB's import (~40 ms) and a new in-memory database (~25 ms) are most of hashing a
    small appended part, and of an incremental fetch of ten rows; started when the fetch
    starts, they overlap the database connection (the drivers release the GIL).

    >>> hasher = MultisetHasher()
    >>> hasher.close()
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._con = None
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._open, daemon=True, name="hash-duckdb")
        self._thread.start()

    def _open(self) -> None:
        try:
            import duckdb

            con = duckdb.connect()
        except BaseException as e:  # noqa: BLE001 - handed to hash(), which re-raises it in the caller
            self._error = e
            return
        with self._lock:
            if self._closed:  # nobody will hash: do not keep a database open
                con.close()
            else:
                self._con = con

    def hash(self, path: Path) -> tuple[int, int]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return multiset_hash(path, self._con)

    def close(self) -> None:
        """Close the connection; never waits for a start-up still running (it closes itself)."""
        with self._lock:
            self._closed = True
            con, self._con = self._con, None
        if con is not None:
            con.close()


def _is_driver_error(error: Exception) -> bool:
    try:
        import adbc_driver_manager
    except ImportError:
        return False
    return isinstance(error, adbc_driver_manager.Error)


def _fixed_width_value(value: Any, kind: pa.DataType) -> pa.Array | None:
    """A one-element array of ``kind`` holding a physical watermark, or None if ``kind`` is not fixed-width.

    Built from its bytes: ``pa.array`` and ``pa.scalar`` of Python values import pandas
    (0.2-0.3 s), and a cast imports ``pyarrow.compute``; an incremental run fetching ten
    rows should pay neither. Integers, floats, dates and timestamps are stored as their
    physical integer or float (see :func:`_physical`), so the bytes are exact.

    >>> import datetime
    >>> _fixed_width_value(3, pa.int64()).to_pylist(), _fixed_width_value(2, pa.date32()).to_pylist()
    ([3], [datetime.date(1970, 1, 3)])
    >>> _fixed_width_value(True, pa.bool_()).to_pylist(), _fixed_width_value("x", pa.string())
    ([True], None)
    """
    import struct

    if pa.types.is_boolean(kind):
        return pa.Array.from_buffers(kind, 1, [None, pa.py_buffer(bytes([1 if value else 0]))])
    if pa.types.is_floating(kind) and kind.bit_width in (32, 64):
        code = "=f" if kind.bit_width == 32 else "=d"
    elif (pa.types.is_integer(kind) or pa.types.is_date(kind) or pa.types.is_timestamp(kind)
          or pa.types.is_time(kind)) and isinstance(value, int):
        code = "=" + {8: "b", 16: "h", 32: "i", 64: "q"}[kind.bit_width]
        code = code.upper() if pa.types.is_unsigned_integer(kind) else code
    else:
        return None
    try:
        data = struct.pack(code, value)
    except struct.error:
        return None
    return pa.Array.from_buffers(kind, 1, [None, pa.py_buffer(data)])


def _physical(scalar: pa.Scalar) -> Any:
    """A JSON-able value of a scalar: integers for dates and timestamps, str for decimals.

    >>> import datetime
    >>> _physical(pa.scalar(datetime.date(1970, 1, 3)))
    2
    """
    t = scalar.type
    if pa.types.is_date32(t):
        return scalar.cast(pa.int32()).as_py()
    if pa.types.is_timestamp(t) or pa.types.is_date64(t):
        return scalar.cast(pa.int64()).as_py()
    if pa.types.is_decimal(t):
        return str(scalar.as_py())
    return scalar.as_py()


def _target_type(field: pa.Field, label: str) -> pa.DataType:
    """The Arrow type a column is written as (module docstring: the type rules)."""
    t = field.type
    meta = {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}
    pg_type = meta.get("POSTGRESQL:type") or meta.get("ADBC:postgresql:typname") or ""
    if isinstance(t, pa.BaseExtensionType):
        name = getattr(t, "extension_name", "")
        if name == "arrow.json":
            return pa.string()
        if pg_type == "numeric" or getattr(t, "type_name", "") == "numeric":
            typmod = int(meta.get("POSTGRESQL:typmod", "-1"))
            if typmod >= 4:
                precision, scale = (typmod - 4) >> 16, (typmod - 4) & 0xFFFF
                if precision <= _MAX_DECIMAL_PRECISION:
                    return pa.decimal128(precision, scale)
            return pa.float64()
        kind = getattr(t, "type_name", "") or pg_type or name
        raise EngineError(_unsupported(field.name, kind, label))
    if pa.types.is_interval(t) or pa.types.is_duration(t) or pa.types.is_nested(t) or pa.types.is_dictionary(t):
        raise EngineError(_unsupported(field.name, pg_type or str(t), label))
    if pa.types.is_timestamp(t) and t.tz is not None and t.tz != "UTC":
        return pa.timestamp(t.unit, tz="UTC")
    return t


def _unsupported(column: str, kind: str, label: str) -> str:
    return (f"column '{column}' of {label} has type {kind}, which has no Arrow mapping here; "
            f"cast it in a query: (e.g. SELECT {column}::text ...)")


def _converter(raw: pa.Schema, target: pa.Schema, label: str):
    """A function mapping the driver's batches to ``target`` (only the columns that differ are touched)."""
    changes = []
    for i, (have, want) in enumerate(zip(raw, target, strict=True)):
        if have.type != want.type:
            changes.append((i, want.type))
    if not changes:
        return lambda batch: batch
    import pyarrow.compute as pc  # only when a column needs a cast: its import costs ~30 ms

    def convert(batch: pa.RecordBatch) -> pa.RecordBatch:
        columns = list(batch.columns)
        for i, kind in changes:
            column = columns[i]
            if isinstance(column.type, pa.BaseExtensionType):
                column = column.storage
            try:
                columns[i] = pc.cast(column, kind)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise EngineError(f"column '{target.field(i).name}' of {label}: values do not fit {kind} "
                                  f"({first_line(str(e))}); cast the column in a query:") from e
        return pa.RecordBatch.from_arrays(columns, schema=target)

    return convert
