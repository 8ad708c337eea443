"""The messages between a run and an isolated node (PEP 723, ``uv run``): typed, validated once.

The parent writes one :class:`IsolatedCall` as a JSON line on the child's stdin
(then any in-memory inputs as Arrow IPC streams); the child answers with an
Arrow IPC stream on stdout, or a :class:`NodeFailure` after :data:`ERROR_MARK`
on stderr. The whole memory configuration crosses, so an isolated node runs
under the same limit, threads and spill folder as an in-process one.

>>> call = IsolatedCall(path="n.py", function="f", node_id="transform.t", params=msgspec.Raw(b"{}"),
...                     memory=MemorySettings(memory_limit=2**30, threads=2, spill_dir="/p/target/tmp"))
>>> msgspec.json.decode(msgspec.json.encode(call), type=IsolatedCall).memory.spill_dir
'/p/target/tmp'
"""

from __future__ import annotations

import msgspec

ERROR_MARK = "__SEEKNAL_NODE_ERROR__"


class MemorySettings(msgspec.Struct, frozen=True, kw_only=True):
    """``operators.memory.MemoryConfig`` on the wire (the spill folder as text)."""

    memory_limit: int | None = None
    threads: int | None = None
    spill_dir: str | None = None


class FrameMeta(msgspec.Struct, frozen=True, kw_only=True):
    """One input of the node: its Parquet paths, or None when it follows on stdin as Arrow IPC."""

    entity: str | None = None
    join_keys: tuple[str, ...] = ()
    event_time_col: str | None = None
    paths: tuple[str, ...] | None = None


class IsolatedCall(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the child needs to call the node function as the run would."""

    path: str
    function: str
    node_id: str
    # JSON text from json.dumps(params, default=str), read back with json.loads: a value JSON
    # lacks (a datetime from --params) arrives as its str(), NaN as NaN, as it always has.
    params: msgspec.Raw
    memory: MemorySettings
    target: str | None = None
    inputs: dict[str, FrameMeta] = {}


class NodeFailure(msgspec.Struct, frozen=True, kw_only=True):
    """The node (or the child) failed: a one-line message and the user's traceback tail."""

    message: str
    tail: str = ""
