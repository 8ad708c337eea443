"""One memory budget for every engine: DataFusion pool, DuckDB limit, spill dir.

Spill files go under ``spill_dir`` (the project's ``target/tmp/``) and are
removed by the caller after the run.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from operators.errors import EngineError
from operators.sql_text import quote_literal

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str | int) -> int:
    """Parse a size such as ``"2GB"``, ``"256MB"``, ``"512MiB"`` or an int of bytes.

    >>> parse_size("2GB")
    2147483648
    >>> parse_size(1024)
    1024
    """
    if isinstance(text, int):
        return text
    m = _SIZE.match(str(text))
    if not m:
        raise EngineError(
            f"memory limit {text!r} is not a size: write e.g. '2GB', '512MB' or a number of bytes"
        )
    unit = m.group(2).upper().rstrip("B").rstrip("I")
    return int(float(m.group(1)) * _UNITS[unit])


# Below this, DuckDB and DataFusion fail on their first buffers with errors that do not say why.
MIN_MEMORY_LIMIT = 64 * 2**20


def parse_memory_limit(text: str | int) -> int:
    """A memory limit in bytes: a size (:func:`parse_size`) of at least 64MB.

    >>> parse_memory_limit("1GB")
    1073741824
    >>> parse_memory_limit("1KB")
    Traceback (most recent call last):
    ...
    operators.errors.EngineError: memory limit '1KB' is below the 64MB a run needs; use e.g. '2GB'
    """
    size = parse_size(text)
    if size < MIN_MEMORY_LIMIT:
        raise EngineError(f"memory limit {text!r} is below the 64MB a run needs; use e.g. '2GB'")
    return size


@dataclass(frozen=True)
class MemoryConfig:
    """Engine resources shared by every operator of a run.

    >>> MemoryConfig(memory_limit=parse_size("1GB"), threads=2, spill_dir=Path("/tmp")).memory_limit
    1073741824
    """

    memory_limit: int | None = None  # bytes; None = engines' defaults
    threads: int | None = None
    spill_dir: Path | None = None

    @property
    def effective_threads(self) -> int:
        return self.threads or os.cpu_count() or 1

    @property
    def sink_buffer_bytes(self) -> int:
        """Bytes a Parquet sink may buffer per row group: 64 MB, or 1/32 of the budget.

        The sink holds one per encoder thread (at most ``operators.sink.MAX_THREADS``) and
        one filling.
        """
        full = 64 << 20
        return full if self.memory_limit is None else max(1 << 20, min(full, self.memory_limit // 32))


def datafusion_context(cfg: MemoryConfig):
    """A DataFusion SessionContext honouring the memory pool and spill directory."""
    from datafusion import RuntimeEnvBuilder, SessionConfig, SessionContext

    config = SessionConfig().with_target_partitions(cfg.effective_threads)
    runtime = RuntimeEnvBuilder()
    if cfg.spill_dir is not None:
        cfg.spill_dir.mkdir(parents=True, exist_ok=True)
        runtime = runtime.with_disk_manager_specified(str(cfg.spill_dir))
    if cfg.memory_limit is not None:
        runtime = runtime.with_fair_spill_pool(cfg.memory_limit)
    return SessionContext(config, runtime)


def resident_bytes() -> int | None:
    """This process's resident anonymous memory (Linux ``/proc``), or None where that is unknown.

    Anonymous only: the code of libraries imported during the run (file-backed
    pages) is not memory that a node left behind.
    """
    try:
        with open("/proc/self/statm") as f:
            fields = f.read().split()
        return (int(fields[1]) - int(fields[2])) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def budget_left(cfg: MemoryConfig, baseline: int | None, resident: int | None = None) -> MemoryConfig:
    """``cfg`` with the limit shrunk by what the process holds above ``baseline``.

    The limit is for the whole run, but memory can stay behind after a node
    ends (DataFusion's allocator holds on to pages its worker threads allocated;
    a Python node may keep objects alive), and the next node's engines cannot
    reuse it. Never below a quarter of the limit: a node needs some room to
    spill in. Call :func:`release_arrow_pool` first (the local engine does, before
    each node): blocks Arrow keeps cached would otherwise count as held.

    >>> cfg = MemoryConfig(memory_limit=1000)
    >>> budget_left(cfg, baseline=100, resident=700).memory_limit
    400
    >>> budget_left(cfg, baseline=100, resident=1500).memory_limit  # the floor
    250
    >>> budget_left(cfg, baseline=100, resident=130) is cfg
    True
    """
    if cfg.memory_limit is None or baseline is None:
        return cfg
    now = resident if resident is not None else resident_bytes()
    if now is None:
        return cfg
    held = now - baseline
    if held < cfg.memory_limit // 16:  # allocator noise: not worth a smaller budget
        return cfg
    return replace(cfg, memory_limit=max(cfg.memory_limit // 4, cfg.memory_limit - held))


def release_arrow_pool() -> None:
    """Hand the blocks Arrow's allocator keeps after they were freed back to the system.

    Between the steps of a run: a later step's (consolidation's, the next node's) own peak
    would otherwise come on top of what earlier nodes left cached (3e6-row user path: the
    process peak 640 → 480 MB).
    """
    import sys

    if "pyarrow" in sys.modules:  # Arrow's pool keeps freed blocks until asked
        sys.modules["pyarrow"].default_memory_pool().release_unused()


# The database shared by the engine queries of one node run (see shared_duckdb): per
# context, so another thread (its own context) never gets a cursor of a database that
# the block's owner may close.
_SHARED: contextvars.ContextVar[_SharedDatabase | None] = contextvars.ContextVar("seeknal_shared_duckdb",
                                                                                 default=None)


class _SharedDatabase:
    def __init__(self, cfg: MemoryConfig) -> None:
        self.cfg = cfg
        self.db = None  # created on first use
        self.lock = threading.Lock()

    def cursor(self):
        with self.lock:
            if self.db is None:
                self.db = duckdb_connection(self.cfg)
            cursor = self.db.cursor()
        cursor.execute("SET TimeZone = 'UTC'")
        return cursor


@contextlib.contextmanager
def shared_duckdb(cfg: MemoryConfig) -> Iterator[None]:
    """Inside the block, ``duckdb_connection(cfg, shared=True)`` opens a cursor of one database.

    Creating an in-memory DuckDB database costs ~14 ms; a partitioned node that
    queries 365 partitions paid that 365 times. Cursors are separate connections
    (their temp views and registered Arrow tables stay their own) under one
    ``memory_limit``: the node's budget, no longer one per connection. The
    database is closed when the block ends.

    >>> cfg = MemoryConfig(threads=1)
    >>> with shared_duckdb(cfg):
    ...     a, b = duckdb_connection(cfg, shared=True), duckdb_connection(cfg, shared=True)
    ...     _ = a.execute("CREATE TEMP VIEW v AS SELECT 1 AS x")
    ...     _ = a.execute("CREATE TABLE t AS SELECT 1 AS x")
    ...     b.sql("SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views() "
    ...           "WHERE NOT internal").fetchall()
    [('t',)]
    """
    current = _SHARED.get()
    if current is not None and current.cfg == cfg:  # nested: the outer block owns it
        yield
        return
    shared = _SharedDatabase(cfg)
    token = _SHARED.set(shared)
    try:
        yield
    finally:
        _SHARED.reset(token)
        if shared.db is not None:
            shared.db.close()


def duckdb_connection(cfg: MemoryConfig, database: str = ":memory:", read_only: bool = False, *,
                      shared: bool = False):
    """A DuckDB connection with ``memory_limit``, ``threads`` and ``temp_directory`` set.

    ``shared=True``: inside ``shared_duckdb(cfg)``, a cursor of that block's
    database (for engine queries; user code gets a database of its own).
    """
    current = _SHARED.get() if shared and database == ":memory:" and not read_only else None
    if current is not None and current.cfg == cfg:
        return current.cursor()
    import duckdb

    con = duckdb.connect(database, read_only=read_only)
    # Feature stores compare instants from many sources: read and print them in UTC,
    # never in the machine's zone (CAST(timestamptz AS TIMESTAMP) depends on it).
    con.execute("SET TimeZone = 'UTC'")
    if cfg.memory_limit is not None:
        con.execute(f"SET memory_limit = '{cfg.memory_limit // (1024 * 1024)}MB'")
    if cfg.threads is not None:
        con.execute(f"SET threads = {int(cfg.threads)}")
    if cfg.spill_dir is not None:
        cfg.spill_dir.mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory = {quote_literal(str(cfg.spill_dir))}")
    return con
