"""Open Parquet files and Hive-style directories as one pyarrow dataset.

A directory's ``key=value`` folders become columns only when the files do not
already hold that column: user data often keeps the partition value in the
path alone, while seeknal-flow's partitioned outputs keep it inside the files
too (so its type survives). pyarrow refuses a column that is in both places
with different types, hence the choice per key.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    import pyarrow.dataset as ds

HIVE_SEGMENT = re.compile(r"^([^=/]+)=([^/]*)$")


def parquet_files(path: Path, listed: list[Path] | None = None) -> list[Path]:
    """The data files under ``path`` (itself if a file), skipping hidden/temp entries.

    ``listed``: the files under ``path`` as listed elsewhere (the planner's), filtered
    by the same rule instead of walking the folder again.
    """
    if path.is_file():
        return [path]
    candidates = (p for p in path.rglob("*.parquet") if p.is_file()) if listed is None else listed
    return sorted(
        p for p in candidates
        if p.suffix == ".parquet" and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
    )


def partition_files(root: Path, *, skip: tuple[str, ...] = (".",)) -> dict[str, tuple[list[str], str]]:
    """Partition folder (relative to ``root``; ``.`` for files at the top) -> (its Parquet files
    relative to ``root``, a signature of their names, sizes and modification times).

    Names starting with one of ``skip`` (a writer's hidden ``.tmp-*``) are left out. A
    partition a run rewrites is new files, so its signature changes; kept state (incremental
    SOA totals, an entity's kept latest rows) compares these signatures.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp()); (root / "day=1").mkdir()
    >>> pq.write_table(pa.table({"x": [1]}), root / "day=1" / "part-0.parquet")
    >>> files, signature = partition_files(root)["day=1"]
    >>> files, len(signature)
    (['day=1/part-0.parquet'], 24)
    """
    found: dict[str, list] = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(skip))
        for name in sorted(names):
            if name.startswith(skip) or not name.endswith(".parquet"):
                continue
            st = os.stat(os.path.join(folder, name))
            found.setdefault(Path(folder).relative_to(root).as_posix(), []).append([name, st.st_size, st.st_mtime_ns])
    return {p: ([(Path(p) / f[0]).as_posix() for f in files],
                hashlib.sha256(json.dumps(files).encode()).hexdigest()[:24]) for p, files in sorted(found.items())}


def hive_keys(path: Path, files: list[Path]) -> list[str]:
    """Partition keys in the folder names between ``path`` and the files, in order."""
    keys: list[str] = []
    for f in files[:1]:
        for part in f.relative_to(path).parts[:-1]:
            m = HIVE_SEGMENT.match(part)
            if m and m.group(1) not in keys:
                keys.append(m.group(1))
    return keys


def parquet_dataset(source: Path | list[Path]) -> ds.Dataset:
    """A dataset over a Parquet file, a (Hive) directory, or a list of those.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp()); (root / "day=1").mkdir()
    >>> pq.write_table(pa.table({"x": [1]}), root / "day=1" / "part-0.parquet")
    >>> parquet_dataset(root).to_table().column_names
    ['x', 'day']
    """
    import pyarrow.dataset as ds  # imports pandas (0.3 s): only where a dataset is scanned

    sources = source if isinstance(source, list) else [source]
    datasets = []
    for root in sources:
        files, base, path_only = _layout(Path(root))
        partitioning = (ds.partitioning(pa.schema([(k, pa.string()) for k in path_only]), flavor="hive")
                        if path_only else None)
        datasets.append(ds.dataset([str(f) for f in files], format="parquet", partitioning=partitioning,
                                   partition_base_dir=str(base)))
    return datasets[0] if len(datasets) == 1 else ds.dataset(datasets)


def plain_parquet_file(source: Path | list[Path]) -> Path | None:
    """``source`` when it is one Parquet file outside any Hive folder, else None.

    Such a file reads the same through ``pyarrow.parquet.ParquetFile`` as through
    :func:`parquet_dataset` (no path columns to add), without importing
    ``pyarrow.dataset`` — which imports pandas, 0.1–0.3 s of a process.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp()); (root / "day=1").mkdir()
    >>> pq.write_table(pa.table({"x": [1]}), root / "a.parquet")
    >>> pq.write_table(pa.table({"x": [1]}), root / "day=1" / "b.parquet")
    >>> plain_parquet_file(root / "a.parquet") == root / "a.parquet", plain_parquet_file(root / "day=1" / "b.parquet")
    (True, None)
    """
    if isinstance(source, list):
        if len(source) != 1:
            return None
        source = source[0]
    path = Path(source)
    if path.suffix != ".parquet" or HIVE_SEGMENT.match(path.parent.name) or not path.is_file():
        return None
    return path


def footer_summary(path: Path, *, files: list[Path] | None = None,
                   known_rows: dict[str, int] | None = None) -> tuple[pa.Schema, int]:
    """The schema ``parquet_dataset(path)`` has and its row count, read from the footers alone.

    ``files``: the files under ``path`` when the caller listed them already.
    ``known_rows``: rows per file (``str`` path) counted before; only the others'
    footers are read, and their counts are added to it.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for day in (1, 2):
    ...     (root / f"day={day}").mkdir()
    ...     pq.write_table(pa.table({"x": [1, 2]}), root / f"day={day}" / "part-0.parquet")
    >>> schema, rows = footer_summary(root)
    >>> schema.names, rows
    (['x', 'day'], 4)
    """
    files, _, path_only = _layout(Path(path), files)
    schema = _with_path_keys(_footer(files[0], pq.read_schema), path_only)
    known = known_rows if known_rows is not None else {}
    for f in files:
        if str(f) not in known:
            known[str(f)] = _footer(f, pq.read_metadata).num_rows
    return schema, sum(known[str(f)] for f in files)


def footer_schema(path: Path) -> pa.Schema:
    """The schema ``parquet_dataset(path)`` has, from one footer (no ``pyarrow.dataset``, no pandas).

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp()); (root / "day=1").mkdir()
    >>> pq.write_table(pa.table({"x": [1]}), root / "day=1" / "part-0.parquet")
    >>> footer_schema(root).names
    ['x', 'day']
    """
    files, _, path_only = _layout(Path(path))
    return _with_path_keys(_footer(files[0], pq.read_schema), path_only)


def _with_path_keys(schema: pa.Schema, path_only: list[str]) -> pa.Schema:
    for key in path_only:  # as pyarrow.dataset's Hive partitioning: strings
        schema = schema.append(pa.field(key, pa.string()))
    return schema


def _footer(file: Path, read):
    """``read(file)``; a damaged file's error names it (one of hundreds of partitions)."""
    try:
        return read(file)
    except (pa.ArrowInvalid, OSError) as e:
        raise pa.ArrowInvalid(f"{file}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e


def _layout(root: Path, listed: list[Path] | None = None) -> tuple[list[Path], Path, list[str]]:
    """The files under ``root``, the folder their Hive paths start from, and the keys found only in paths."""
    files = parquet_files(root, listed)
    if not files:
        raise FileNotFoundError(f"no Parquet files under {root}")
    # A partition folder (order_date=2026-01-03) still carries its own key.
    base = root if root.is_dir() else root.parent
    while HIVE_SEGMENT.match(base.name):
        base = base.parent
    keys = hive_keys(base, files)
    path_only: list[str] = []
    if keys:
        in_file = set(_footer(files[0], pq.read_schema).names)
        path_only = [k for k in keys if k not in in_file]
    return files, base, path_only
