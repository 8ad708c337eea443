"""The error hierarchy. The CLI prints ``str(error)`` as one line and exits 1.

``SeeknalError`` is the base of every error the framework raises on purpose;
``operators.errors.EngineError`` is its counterpart inside the engine.
"""

from __future__ import annotations

from operators.errors import EngineError


class SeeknalError(Exception):
    """A user-facing problem; the message names where, what and the fix."""


class ProjectError(SeeknalError):
    """No project, or a bad ``seeknal_project.yml``."""


class SpecError(SeeknalError):
    """A node definition is invalid (YAML field, decorator argument, PEP 723 header).

    Several problems found in one load are joined, one per line, so the user
    sees every problem of a file at once.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class DagError(SeeknalError):
    """Duplicate ids, unknown refs or cycles."""


class PlanError(SeeknalError):
    """The planner cannot decide what to run (e.g. an unknown ``--nodes`` id)."""


class NodeExecutionError(SeeknalError):
    """A node failed while running. ``tail`` holds the user's traceback tail, if any."""

    def __init__(self, node: str, message: str, tail: str = "") -> None:
        self.node = node
        self.reason = message
        self.tail = tail
        self.output = ""
        super().__init__(f"{node} failed: {message}")


__all__ = [
    "DagError",
    "EngineError",
    "NodeExecutionError",
    "PlanError",
    "ProjectError",
    "SeeknalError",
    "SpecError",
]
