"""Fingerprints: one hash per node over everything that affects its output.

Inputs: the node's code (normalized Python source and PEP 723 deps, or its
SQL), its configuration (spec fields that change the output), its effective
params, its source data (per file: size + mtime, content hash only when those
changed), the upstream fingerprints and the engine version.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import msgspec

ENGINE_VERSION = "0.1.0"
# Spec fields that never change a node's output (docs, position, the code
# which is hashed separately).
_NOT_CONFIG = {"location", "description", "tags", "refs", "python", "sql", "params", "columns"}


def digest(value: Any) -> str:
    """A short stable hash of any JSON-able value.

    >>> digest({"b": 1, "a": 2}) == digest({"a": 2, "b": 1})
    True
    """
    data = json.dumps(value, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def code_hash(spec) -> str:
    python = getattr(spec, "python", None)
    if python is not None:
        return digest(["py", python.source, sorted(python.dependencies), python.requires_python])
    sql = getattr(spec, "sql", None)
    return digest(["sql", sql.strip() if sql else None])


def config_hash(spec) -> str:
    fields = msgspec.to_builtins(spec)
    return digest({k: v for k, v in fields.items() if k not in _NOT_CONFIG})


def file_content_hash(path: Path) -> str:
    # SHA-256 runs on the CPU's SHA extensions: ~1.5 GB/s here against BLAKE2b's
    # ~0.85 GB/s, which matters when a new project first sees a multi-GB source.
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:32]


def data_files(path: Path) -> list[Path]:
    """The data files behind a source path (the file, or every file under a directory)."""
    if path.is_dir():
        return sorted(
            p for p in path.rglob("*")
            if p.is_file() and not p.name.startswith((".", "_"))
        )
    return [path] if path.exists() else []


def data_fingerprint(path: Path, previous: dict[str, dict]) -> dict[str, dict]:
    """Per-file ``{relpath: {size, mtime_ns, hash}}``; rehash only files whose stat changed.

    A touched file whose bytes are identical keeps its hash, so nothing re-runs.
    """
    out: dict[str, dict] = {}
    base = path if path.is_dir() else path.parent
    for file in data_files(path):
        rel = str(file.relative_to(base))
        st = file.stat()
        old = previous.get(rel)
        if old and old.get("size") == st.st_size and old.get("mtime_ns") == st.st_mtime_ns:
            out[rel] = old
        else:
            out[rel] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "hash": file_content_hash(file)}
    return out


def data_hash(files: dict[str, dict]) -> str:
    return digest(sorted((rel, info["hash"]) for rel, info in files.items()))
