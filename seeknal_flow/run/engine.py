"""The Engine protocol: what the run service asks of an engine, and what it gets back.

The run service (:mod:`seeknal_flow.run.service`) owns the walk over the plan,
run state, reporting and the post-run steps; an engine only computes. Adding an
engine means implementing this protocol, nothing else:

* ``start()`` before the first node (start a session; return a line to show, or None);
* ``compute(job, progress)`` one node: write its output atomically, return a
  :class:`NodeResult`, or raise :class:`~seeknal_flow.errors.NodeExecutionError`;
* ``consolidate(entities, on_built)`` rebuild these entities (the run service decides which
  are stale: ``plan/post_steps.py``), calling ``on_built(entity, catalog)`` right after each
  one is written; return their names;
* ``close()`` release everything (called once, also after a failure).

The two engines are :class:`seeknal_flow.run.local.LocalEngine` (Arrow, DataFusion,
DuckDB in this process) and :class:`seeknal_flow.run.spark.engine.SparkEngine`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from seeknal_flow.errors import NodeExecutionError, SeeknalError
from seeknal_flow.plan.planner import NodePlan
from seeknal_flow.plan.run_state import NodeState, NodeStatus


@dataclass(frozen=True)
class NodeJob:
    """One node to compute: its spec, what the planner decided, and its last recorded state."""

    spec: Any  # an AnySpec (seeknal_flow.authoring.specs)
    plan: NodePlan
    previous: NodeState | None = None

    @property
    def node_id(self) -> str:
        return self.plan.node_id

    @property
    def where(self) -> str:
        """``kind.name (file:line)``, the prefix of every error about this node."""
        return f"{self.spec.id} ({self.spec.location})"

    @property
    def previous_schema(self) -> dict[str, str] | None:
        """The output schema of the last successful run (for the ``schema`` check)."""
        if self.previous is None or self.previous.status != NodeStatus.OK:
            return None
        return self.previous.schema


@dataclass(frozen=True)
class NodeResult:
    """What a computed node left: its output, row and byte counts, schema and shown text.

    ``rows``/``bytes`` count what this run wrote (a partitioned node: the
    partitions it recomputed). ``output`` is the node's captured prints and
    check lines, shown under the node.
    """

    path: Path
    rows: int
    bytes: int
    seconds: float
    schema: dict[str, str] = field(default_factory=dict)
    output: str = ""
    # Database sources only: the hash of what was fetched and the state to keep
    # (watermark, row count); the service re-fingerprints the node with them.
    data: str = ""
    files: dict[str, dict] | None = None


def node_error(job: NodeJob, error: SeeknalError, output: str = "") -> NodeExecutionError:
    """``error`` as the failure of ``job``: where, the one-line reason, the user's traceback tail
    (for a failing node function) and what the node printed before it failed."""
    failure = NodeExecutionError(job.where, str(error), tail=getattr(error, "tail", ""))
    failure.output = output
    return failure


class Progress(Protocol):
    """How an engine reports while it computes a node; the service records it."""

    def rows(self, rows: int) -> None:
        """Rows written so far (shown live on a terminal)."""

    def partitions_kept(self, partitions: dict[str, str]) -> None:
        """A partitioned node keeps these finished partitions (partition -> fingerprint)."""

    def partition_done(self, partition: str) -> None:
        """One partition of a partitioned node is in place: a failure later keeps it."""


class Engine(Protocol):
    """Computes nodes for the run service; see the module docstring."""

    name: str

    def start(self) -> str | None: ...

    def compute(self, job: NodeJob, progress: Progress) -> NodeResult: ...

    def consolidate(self, entities: Sequence[str], on_built: Callable[[str, dict], None]) -> list[str]: ...

    def close(self) -> None: ...
