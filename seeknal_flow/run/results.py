"""What a run did, as a document: ``target/run_results.json`` and the history in ``target/runs/``.

The run service fills a :class:`RunResults` as it goes and writes it when the run ends,
whether it succeeded, failed or was interrupted. The CLI's ``--format json``, ``seeknal
runs`` and the web UI read the same Structs; ``docs/json-output.md`` documents the keys.

Example::

    results = read_run_results(project)          # the last run, or None
    for run in run_history(project, last=5):     # newest first
        print(run.run_id, run.status.value, run.elapsed_s)
"""

from __future__ import annotations

import enum
import secrets
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from operators.atomic import write_atomic
from seeknal_flow.errors import RunError
from seeknal_flow.load.project import Project

# Bump when a key is renamed or removed (adding keys keeps the version).
RESULTS_VERSION = 1
# target/runs/ keeps this many runs; older files are removed when a run is recorded.
HISTORY_SIZE = 100


class RunStatus(str, enum.Enum):
    """How a run ended."""

    OK = "ok"  # every planned node ran (or nothing needed to)
    FAILED = "failed"  # at least one node (or the post-run step) failed
    INTERRUPTED = "interrupted"  # Ctrl-C / SIGINT / SIGTERM: finished nodes are kept


class NodeOutcome(str, enum.Enum):
    """What happened to one node in a run."""

    RAN = "ran"
    SKIPPED = "skipped"  # with a reason: up to date, not selected, or an upstream failed
    FAILED = "failed"  # with the error
    CANCELLED = "cancelled"  # was running, or still to run, when the run was interrupted


class NodeRunResult(msgspec.Struct, kw_only=True, omit_defaults=False):
    """One node's line in ``run_results.json``."""

    id: str
    kind: str
    status: NodeOutcome
    reason: str | None = None  # why it ran or was skipped ("code changed", "unchanged", ...)
    error: str | None = None
    duration_s: float | None = None
    rows_out: int | None = None
    partitions: list[str] | None = None  # partitions (re)computed; None when the node is not partitioned
    output: str | None = None  # its output, relative to the project root


class RunResults(msgspec.Struct, kw_only=True):
    """``target/run_results.json``: one run, written at its end (also on failure and interrupt)."""

    version: int = RESULTS_VERSION
    run_id: str
    project: str
    command: list[str]
    started_at: str
    finished_at: str | None = None
    elapsed_s: float | None = None
    status: RunStatus = RunStatus.OK
    engine: str | None = None
    nodes: list[NodeRunResult] = []
    consolidated: list[str] = []  # entities rebuilt and published
    # entity -> what its consolidation did: "1 of 3 groups recomputed", "rebuilt in full (no kept state)"
    consolidation_notes: dict[str, str] = {}
    consolidation_s: float | None = None
    removed: list[str] = []  # nodes whose file was gone: outputs, features and state deleted
    error: str | None = None  # a failure outside any node (e.g. consolidation)

    def count(self, outcome: NodeOutcome) -> int:
        return sum(1 for n in self.nodes if n.status == outcome)


class RunHistory(msgspec.Struct, kw_only=True):
    """``seeknal runs --format json``: recorded runs, newest first."""

    runs: list[RunResults]


def new_run_id(now: datetime | None = None) -> str:
    """Sortable by time (to the millisecond), unique across concurrent runs: ``20261203T104512.345Z-3f9a``.

    >>> new_run_id(datetime(2026, 12, 3, 10, 45, 12, 345000, tzinfo=UTC))[:21]
    '20261203T104512.345Z-'
    """
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%S") + f".{now.microsecond // 1000:03d}Z-" + secrets.token_hex(2)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def results_path(project: Project) -> Path:
    return project.target / "run_results.json"


def history_dir(project: Project) -> Path:
    return project.target / "runs"


def record_run(project: Project, results: RunResults) -> None:
    """Write ``run_results.json`` and add the run to ``target/runs/`` (keeping the last 100)."""
    data = msgspec.json.format(msgspec.json.encode(results), indent=2) + b"\n"
    folder = history_dir(project)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / f"{results.run_id}.json", data)
    write_atomic(results_path(project), data)
    runs = sorted(folder.glob("*.json"))
    for old in runs[:-HISTORY_SIZE]:
        old.unlink(missing_ok=True)


def read_run_results(project: Project) -> RunResults | None:
    """The last run's results, or None before the first run."""
    path = results_path(project)
    return _read(path) if path.is_file() else None


def run_history(project: Project, last: int | None = None) -> list[RunResults]:
    """Recorded runs, newest first (at most ``last``)."""
    runs = []
    for path in sorted(history_dir(project).glob("*.json"), reverse=True):
        if last is not None and len(runs) >= last:
            break
        try:
            runs.append(_read(path))
        except RunError:
            continue  # a file cut short by a crash or a full disk: the other runs still count
    return runs


def _read(path: Path) -> RunResults:
    try:
        return msgspec.json.decode(path.read_bytes(), type=RunResults)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise RunError(f"{path}: not a run-results file ({e}); delete it, the next run writes a new one") from e


__all__ = ["HISTORY_SIZE", "NodeOutcome", "NodeRunResult", "RunHistory", "RunResults", "RunStatus", "new_run_id",
           "read_run_results", "record_run", "results_path", "run_history", "history_dir"]
