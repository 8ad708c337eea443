"""One memory budget for every engine: DataFusion pool, DuckDB limit, spill dir.

Spill files go under ``spill_dir`` (the project's ``target/tmp/``) and are
removed by the caller after the run.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from operators.errors import EngineError

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
        """Bytes a Parquet sink may buffer per row group: 64 MB, or 1/16 of the budget."""
        full = 64 << 20
        return full if self.memory_limit is None else max(1 << 20, min(full, self.memory_limit // 16))


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


def duckdb_connection(cfg: MemoryConfig, database: str = ":memory:", read_only: bool = False):
    """A DuckDB connection with ``memory_limit``, ``threads`` and ``temp_directory`` set."""
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
        con.execute(f"SET temp_directory = '{_sql_str(str(cfg.spill_dir))}'")
    return con


def _sql_str(text: str) -> str:
    return text.replace("'", "''")
