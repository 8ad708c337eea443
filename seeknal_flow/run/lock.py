"""The project lock: one writer at a time (``run``, ``consolidate``, ``apply``, ``clean``).

The lock is an OS file lock (the ``filelock`` package) on ``target/.seeknal.lock``; the
operating system drops it when its process dies, so a lock left by a killed run is simply
taken over. Next to it, ``target/.seeknal.lock.json`` names the holder (pid, command,
start time) so a second writer can say who it waits for. Readers (REPL, serve, ui) never
take it: every writer replaces files by rename, so they see a complete old or new version.

Example::

    with project_lock(project, "seeknal run", wait=True, note=print):
        ...  # plan, run, consolidate, save state
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import filelock

from operators.atomic import write_atomic
from seeknal_flow.errors import RunError
from seeknal_flow.load.project import Project

LOCK_FILE = ".seeknal.lock"
HOLDER_FILE = ".seeknal.lock.json"


class LockError(RunError):
    """Another writer holds the project lock and the caller asked not to wait."""


def pid_alive(pid: int) -> bool:
    """Is process ``pid`` still running (on this machine)?

    >>> pid_alive(os.getpid())
    True
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_holder(project: Project) -> dict | None:
    """Who holds (or last held) the lock: ``{"pid", "command", "started_at"}``, or None."""
    path = project.target / HOLDER_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None


def describe_holder(holder: dict | None) -> str:
    """``seeknal run (pid 123, started 2026-01-01T10:00:00+00:00)``.

    >>> describe_holder({"pid": 7, "command": "seeknal run", "started_at": "T"})
    'seeknal run (pid 7, started T)'
    >>> describe_holder(None)
    'another seeknal process'
    """
    if holder is None:
        return "another seeknal process"
    return f"{holder.get('command', 'seeknal')} (pid {holder['pid']}, started {holder.get('started_at', '?')})"


@contextmanager
def project_lock(project: Project, command: str, *, wait: bool = True,
                 note: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the project's writer lock for the ``with`` block.

    With ``wait`` a second writer blocks (after one ``note`` line naming the holder);
    without it, it raises :class:`LockError` at once. A holder record left by a process
    that no longer exists is reported and replaced.
    """
    project.target.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(project.target / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        holder = read_holder(project)
        if not wait:
            raise LockError(f"the project lock (target/{LOCK_FILE}) is held by {describe_holder(holder)}; "
                            "wait for it to finish, or run again without --no-wait to wait") from None
        if note is not None:
            note(f"waiting for the project lock: held by {describe_holder(holder)}")
        lock.acquire()
    try:
        previous = read_holder(project)
        if previous is not None and previous["pid"] != os.getpid() and note is not None:
            # The OS released the lock when its holder died; its record is still here.
            note(f"took over the project lock left by {describe_holder(previous)}, which is no longer running")
        _write_holder(project.target / HOLDER_FILE, command)
        yield
    finally:
        (project.target / HOLDER_FILE).unlink(missing_ok=True)
        lock.release()


def _write_holder(path: Path, command: str) -> None:
    info = {"pid": os.getpid(), "command": command,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds")}
    write_atomic(path, json.dumps(info).encode())


__all__ = ["LockError", "describe_holder", "pid_alive", "project_lock", "read_holder"]
