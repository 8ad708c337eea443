"""The error hierarchy: one root, one subclass per stage.

::

    SeeknalError                  (operators.errors: the root of everything raised on purpose)
    ├── EngineError               an operator failed (bad data, bad SQL, a missing file)
    │   └── UserCodeError         a node function raised (operators.python_call)
    ├── ProjectError              no project, or a bad seeknal_project.yml
    ├── SpecError                 a node definition is invalid (YAML field, decorator argument, PEP 723)
    ├── DagError                  duplicate ids, unknown refs, cycles
    ├── PlanError                 the planner cannot decide what to run
    ├── FrameError                reading node outputs: pit_join, as_of, ctx.features
    ├── RunError                  the run itself
    │   └── NodeExecutionError    one node failed while running
    ├── StoreError                the entity store, the online store, saved models
    ├── ServeError                a bad request to `seeknal serve`
    ├── UiError                   `seeknal ui`: refused to start, or a bad request to its API
    └── ReplError                 a refused or failed REPL statement

The CLI prints ``str(error)`` as one line per problem and exits 1.
"""

from __future__ import annotations

import errno

from operators.errors import EngineError, SeeknalError

# What the user can do about an environment failure (the OS says what happened).
_OS_HINTS = {
    errno.ENOSPC: "free some disk space and run again",
    errno.EDQUOT: "free some space within your disk quota and run again",
    errno.EROFS: "the file system is mounted read-only; make the project's target/ writable",
    errno.EACCES: "check the owner and permissions of that path",
    errno.EPERM: "check the owner and permissions of that path",
    errno.EMFILE: "raise the open-files limit (ulimit -n)",
}


def os_error_text(error: OSError) -> str:
    """One line for an environment failure: the path, the OS reason and its errno name, a hint.

    >>> os_error_text(OSError(errno.ENOSPC, "No space left on device", "target/run_state.json"))
    'target/run_state.json: No space left on device [ENOSPC]; free some disk space and run again'
    """
    name = errno.errorcode.get(error.errno or 0, "")
    reason = error.strerror or (str(error).splitlines() or [type(error).__name__])[0]
    where = f"{error.filename}: " if error.filename else ""
    hint = _OS_HINTS.get(error.errno or 0)
    return f"{where}{reason}" + (f" [{name}]" if name else "") + (f"; {hint}" if hint else "")


class ProjectError(SeeknalError):
    """No project, or a bad ``seeknal_project.yml``."""


class SpecError(SeeknalError):
    """A node definition is invalid (YAML field, decorator argument, PEP 723 header).

    Several problems found in one load are joined, one per line, so the user
    sees every problem of a file at once.

    >>> SpecError(["a.yml:1: x", "a.yml:2: y"]).problems
    ['a.yml:1: x', 'a.yml:2: y']
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class DagError(SeeknalError):
    """Duplicate ids, unknown refs or cycles."""


class PlanError(SeeknalError):
    """The planner cannot decide what to run (e.g. an unknown ``--nodes`` id)."""


class FrameError(SeeknalError):
    """A FeatureFrame cannot give what was asked (``pit_join``, ``as_of``, ``ctx.features``)."""


class RunError(SeeknalError):
    """A run could not go on (engine unavailable, bad run options)."""


class NodeExecutionError(RunError):
    """A node failed while running. ``tail`` holds the user's traceback tail, if any."""

    def __init__(self, node: str, message: str, tail: str = "") -> None:
        self.node = node
        self.reason = message
        self.tail = tail
        self.output = ""
        super().__init__(f"{node} failed: {message}")


class StoreError(SeeknalError):
    """The entity store, online store or a saved model cannot be read or written."""


class StoreUnavailableError(StoreError):
    """The online store's server (Redis) cannot be reached; retrying later may succeed."""


class ServeError(SeeknalError):
    """A request to the feature server is malformed or asks for something unknown."""


class UiError(SeeknalError):
    """``seeknal ui`` refused to start, or its API got a bad request (``status`` is the HTTP code)."""

    def __init__(self, message: str, status: int = 400) -> None:
        self.status = status
        super().__init__(message)


class ReplError(SeeknalError):
    """A REPL statement was refused or failed."""


__all__ = [
    "DagError",
    "EngineError",
    "FrameError",
    "NodeExecutionError",
    "PlanError",
    "ProjectError",
    "ReplError",
    "RunError",
    "SeeknalError",
    "ServeError",
    "SpecError",
    "StoreError",
    "StoreUnavailableError",
    "UiError",
    "os_error_text",
]
