"""``target/run_state.json``: what ran last, with which fingerprint. Written atomically."""

from __future__ import annotations

import enum
from pathlib import Path

import msgspec

from operators.atomic import write_atomic


class NodeStatus(str, enum.Enum):
    """How a node's last run ended."""

    OK = "ok"
    FAILED = "failed"


class NodeState(msgspec.Struct, kw_only=True):
    fingerprint: str = ""
    code: str = ""
    config: str = ""
    params: str = ""
    data: str = ""
    upstream: dict[str, str] = {}
    files: dict[str, dict] = {}
    status: NodeStatus = NodeStatus.OK
    rows: int = 0
    seconds: float = 0.0
    finished_at: str = ""
    error: str = ""
    schema: dict[str, str] = {}  # output column -> type, for the schema check
    partitions: dict[str, str] = {}  # partitioned nodes: partition -> fingerprint
    # Database sources: digest of what the connection points at (host, port, database,
    # user, table or query; never the password), so a moved connection re-reads in full.
    source: str = ""
    # Size and mtime of the output this run wrote (plan/outputs.py): an output rewritten
    # behind the planner's back (another tool, `repl --output`) re-runs the node.
    output: str = ""


class StepStatus(str, enum.Enum):
    """How a post-run step (consolidation, publish) last ended; RUNNING left behind = interrupted."""

    OK = "ok"
    RUNNING = "running"
    FAILED = "failed"


class StepState(msgspec.Struct, kw_only=True):
    """A post-run step's record (``plan/post_steps.py``): the fingerprint it last completed with."""

    fingerprint: str = ""
    # consolidate: group name -> "node fingerprint|output signature" of every group it read
    inputs: dict[str, str] = {}
    output: str = ""  # consolidate: the entity table's signature (plan/outputs.py) when it finished
    status: StepStatus = StepStatus.OK
    seconds: float = 0.0
    finished_at: str = ""
    error: str = ""


class RunState(msgspec.Struct, kw_only=True):
    version: int = 1
    engine: str = ""
    nodes: dict[str, NodeState] = {}
    steps: dict[str, StepState] = {}  # "consolidate.<entity>", "publish.<entity>"

    @classmethod
    def load(cls, path: Path) -> RunState:
        if not path.exists():
            return cls()
        try:
            return msgspec.json.decode(path.read_bytes(), type=cls)
        except (msgspec.DecodeError, msgspec.ValidationError):
            # A state file we cannot read only costs a full re-run; never block the user.
            return cls()

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Sorted and indented (diffable), in C: a partitioned project's state is 100+ KB.
        write_atomic(path, msgspec.json.format(msgspec.json.encode(self, order="sorted"), indent=1))
