"""Reads of node outputs from inside a running node: each must be a declared edge.

Discovery makes an edge of every literal read (``ctx.ref``, ``ctx.features``,
``FeatureLookup(source=...)``, ``OnlineFeaturesDuckDB(entity=..., features=[...])``, a
literal ``target/intermediate/<node>.parquet`` path, ``depends_on=[...]``). A read it
could not see (a computed name) is caught here at run time: while a node's function runs,
its :class:`~seeknal_flow.run.context.Context` registers the node and its inputs, and the
readers (``HistoricalFeaturesDuckDB``, ``OnlineFeaturesDuckDB``, ``FeatureFrame`` over an
output path) call :func:`check_read` before reading another node's output. Without the
edge the node would silently keep training on data from before an upstream change.

A process-wide record, not a ContextVar: the user function may run on a worker thread,
and one process runs one node function at a time.

>>> enter("transform.t", {"source.s"})
>>> check_read("source.s")
>>> check_read("feature_group.fg")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
seeknal_flow.errors.FrameError: transform.t reads the output of feature_group.fg, which is not one of its ...
>>> leave("transform.t")
>>> check_read("feature_group.fg")
"""

from __future__ import annotations

from pathlib import Path

from seeknal_flow.errors import FrameError
from seeknal_flow.load.project import output_node_id

_current: tuple[str, frozenset[str]] | None = None
_root: Path | None = None  # the running node's project folder


def enter(node_id: str, inputs: set[str] | frozenset[str], target: Path | None = None) -> None:
    """A node's function starts: it may read ``inputs`` (its upstream nodes) and itself.

    ``target`` is the project's ``target/`` folder: readers created without ``project=`` read
    that project, not whatever project the current folder is in (``seeknal run --project``).
    """
    global _current, _root
    _current = (node_id, frozenset(inputs))
    _root = target.parent if target is not None and Path(target).name == "target" else None


def leave(node_id: str) -> None:
    global _current, _root
    if _current is not None and _current[0] == node_id:
        _current = _root = None


def running_project() -> Path | None:
    """The project folder of the node running in this process, or None outside a node run."""
    return _root


def check_read(target: str) -> None:
    """Raise FrameError if a running node reads ``target``'s output without an edge to it."""
    if _current is None:
        return
    node_id, allowed = _current
    if target == node_id or target in allowed:
        return
    ups = ", ".join(sorted(allowed)) or "none"
    raise FrameError(
        f"{node_id} reads the output of {target}, which is not one of its upstream nodes ({ups}); "
        f'declare the edge with depends_on=["{target}"] on its decorator (or `depends_on: [{target}]` '
        "in its YAML), or pass the id as a string literal"
    )


def check_path_read(path) -> None:
    """:func:`check_read` for a path (or list of paths) that may be another node's output."""
    if _current is None:
        return
    for p in path if isinstance(path, list | tuple) else [path]:
        if isinstance(p, str | Path) and (target := output_node_id(p)) is not None:
            check_read(target)


__all__ = ["check_path_read", "check_read", "enter", "leave", "running_project"]
