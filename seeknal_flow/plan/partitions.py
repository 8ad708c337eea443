"""Partitions: Hive-style ``key=value`` folders of partitioned sources and nodes.

A source with ``partition_by`` is fingerprinted per partition; a node declared
``partitioned`` maps input partition p to output partition p, so only changed
partitions are recomputed and replaced. A partition is named by its path
relative to the dataset root, e.g. ``order_date=2026-01-03``.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

from operators.soa.validate import not_mergeable
from seeknal_flow.authoring.specs import Kind
from seeknal_flow.errors import PlanError
from seeknal_flow.plan.fingerprint import digest

_SEGMENT = re.compile(r"^([^=/]+)=([^/]*)$")
_UNSAFE_VALUE = re.compile(r"[\x00-\x1f\x7f'\"\\]")


def partition_of(relpath: str, keys: tuple[str, ...]) -> str | None:
    """``"order_date=2026-01-03/part-0.csv"`` -> ``"order_date=2026-01-03"`` for keys (order_date,).

    >>> partition_of("a=1/b=x/f.parquet", ("a", "b"))
    'a=1/b=x'
    >>> partition_of("f.parquet", ("a",)) is None
    True
    """
    parts = Path(relpath).parts[:-1]
    found = {}
    for part in parts:
        m = _SEGMENT.match(part)
        if m:
            found[m.group(1)] = part
    if any(k not in found for k in keys):
        return None
    return "/".join(found[k] for k in keys)


def partition_values(partition: str) -> dict[str, str]:
    """``"a=1/b=x"`` -> ``{"a": "1", "b": "x"}``."""
    return dict(seg.split("=", 1) for seg in partition.split("/"))


def source_partitions(files: dict[str, dict], keys: tuple[str, ...], node_id: str) -> dict[str, str]:
    """Per-partition fingerprints of a partitioned source from its per-file fingerprints."""
    grouped: dict[str, list] = {}
    for rel, info in files.items():
        p = partition_of(rel, keys)
        if p is None:
            raise PlanError(
                f"{node_id}: file '{rel}' is not inside a {'/'.join(k + '=VALUE' for k in keys)} folder; "
                "partitioned sources need Hive-style folders"
            )
        for key, value in partition_values(p).items():
            if value in (".", "..") or _UNSAFE_VALUE.search(value):
                raise PlanError(
                    f"{node_id}: file '{rel}': partition value {key}={value!r} has a quote, backslash or control "
                    "character (or is . or ..); rename the folder (values become folder names and columns)"
                )
        grouped.setdefault(p, []).append((rel, info["hash"]))
    return {p: digest(sorted(v)) for p, v in sorted(grouped.items())}


def is_partitioned(spec) -> bool:
    if spec.kind == Kind.SOURCE:
        return bool(spec.partition_by)
    return bool(getattr(spec, "partitioned", False))


def incremental_soa_blocker(spec, dag) -> str | None:
    """Why an SOA node is recomputed in full rather than merged from partial aggregates (None: merged).

    Only YAML, non-temporal SOA nodes whose input is partitioned and whose aggregates
    merge (count, sum, mean, min, max, stddev, var) keep their partial aggregates and merge
    new input partitions into them (operators/soa/mergeable.py), on the local engine.
    """
    if spec.kind != Kind.SECOND_ORDER_AGGREGATION:
        return "not an SOA"
    if spec.python is not None:
        return "a Python SOA (its function reads every input) is not mergeable"
    if spec.source is None or not is_partitioned(dag.nodes[spec.source]):
        return "its input is not partitioned"
    return not_mergeable(spec.query, temporal=spec.spine is not None)


def partition_path(root: Path, partition: str) -> Path:
    return root.joinpath(*partition.split("/"))


def replace_partition(out_dir: Path, partition: str, written: Path) -> None:
    """Move a finished partition folder into place (the old one stays readable until then)."""
    final = partition_path(out_dir, partition)
    final.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if final.exists():
        old = final.with_name(f".old-{uuid.uuid4().hex[:8]}-{final.name}")
        os.replace(final, old)
    os.replace(written, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_partition(out_dir: Path, partition: str) -> None:
    path = partition_path(out_dir, partition)
    shutil.rmtree(path, ignore_errors=True)
    parent = path.parent
    while parent != out_dir and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent
