"""Wall time and peak memory of one child process.

The child is started with ``subprocess.Popen`` (stdout/stderr to temp files, never
pipes, so nothing blocks while we wait) and reaped with ``os.wait4``:

- ``wall_s``: ``time.perf_counter()`` from start to reap;
- ``cpu_s``: user + sys time of that child (and what it reaped), from the same ``wait4``;
- ``rss_mb``: the ``ru_maxrss`` that ``wait4`` returns for that one child. On Linux
  that is the maximum over the child and the descendants it reaped, never a sum,
  and never another benchmark's child (``RUSAGE_CHILDREN`` would be the max over
  all children so far);
- ``tree_mb``: the peak of the *summed* RSS of the child and all its live
  descendants, sampled from ``/proc`` every ``SAMPLE_S``. It differs from
  ``rss_mb`` only when processes overlap (seeknal 2.13 runs Python nodes as
  ``uv run`` subprocesses while its own process holds data); being sampled, it can
  miss short spikes.

Same method as ``benchmarks/bench_foundation.py`` (``measure``), plus the tree sampler,
a timeout and one correction: Linux records, at ``exec``, the RSS high-water mark of
the address space the new program replaces — with ``fork``/``vfork`` that is the
*parent's*. So a child of a 300 MB parent reports ``ru_maxrss`` >= 300 MB however
little it uses. The command is therefore started by a minimal launcher
(``python -I -S``, ~10 MB) that spawns it, reaps it with ``wait4`` and reports wall
time, ``ru_maxrss`` and exit code through a file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE_S = 0.1
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass
class Sample:
    wall_s: float
    rss_mb: float
    tree_mb: float
    rc: int
    stdout: str
    stderr: str
    load: str  # /proc/loadavg (first three fields) when the child started
    # (seconds since start, summed RSS MB of the process tree, MB of files under `watch`)
    timeline: list = field(default_factory=list)
    cpu_s: float = 0.0  # user + sys of the child and what it reaped

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def failure(self, lines: int = 3) -> str:
        """The last lines of stderr (or stdout), for a one-line report."""
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        tail = [ln.strip() for ln in text if ln.strip()][-lines:]
        return f"rc={self.rc}: " + " / ".join(tail)


def loadavg() -> str:
    """``/proc/loadavg``'s 1, 5 and 15 minute averages, e.g. ``"3.11 4.01 3.24"``."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses.
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def _rss_kb(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_KB
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss_kb(root: int) -> int:
    """Summed RSS (KiB) of ``root`` and its live descendants."""
    kids = _children()
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += _rss_kb(pid)
        todo.extend(kids.get(pid, ()))
    return total


def dir_mb(path: Path) -> float:
    """MB of the files under ``path`` now (0 when it does not exist)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total / 2**20


class _TreeSampler(threading.Thread):
    def __init__(self, pid: int, watch: Path | None = None) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.watch = watch
        self.peak_kb = 0
        self.timeline: list[tuple[float, float, float]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        t0 = time.perf_counter()
        while not self._halt.wait(SAMPLE_S):
            # The root is the launcher (a few MB): count what it started.
            kb = tree_rss_kb(self.pid) - _rss_kb(self.pid)
            self.peak_kb = max(self.peak_kb, kb)
            if self.watch is not None:
                self.timeline.append((time.perf_counter() - t0, kb / 1024, dir_mb(self.watch)))

    def stop(self) -> None:
        self._halt.set()
        self.join()


_LAUNCHER = """
import json, os, sys, time
report, cmd = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
try:
    pid = os.posix_spawnp(cmd[0], cmd, os.environ)
except OSError as e:
    sys.stderr.write(f"cannot start {cmd[0]}: {e}\\n")
    raise SystemExit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
with open(report, "w") as f:
    json.dump({"wall": wall, "maxrss_kb": ru.ru_maxrss, "cpu": ru.ru_utime + ru.ru_stime,
               "rc": os.waitstatus_to_exitcode(status)}, f)
"""


def measure(cmd: list[str], *, cwd: Path, env: dict | None = None, timeout: float | None = None,
            watch: Path | None = None) -> Sample:
    """Run ``cmd`` once and return its wall time, peak RSS and output.

    On ``timeout`` the child's process group is killed and ``rc`` is -9. With
    ``watch`` (a spill folder), ``Sample.timeline`` records memory and that
    folder's size every ``SAMPLE_S``.
    """
    load = loadavg()
    with tempfile.TemporaryFile() as so, tempfile.TemporaryFile() as se, \
            tempfile.NamedTemporaryFile(suffix=".json") as rep:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _LAUNCHER, rep.name, *cmd], stdout=so,
                                stderr=se, stdin=subprocess.DEVNULL, cwd=cwd, env=env, start_new_session=True)
        sampler = _TreeSampler(proc.pid, watch)
        sampler.start()
        timer = None
        if timeout:
            timer = threading.Timer(timeout, _kill_group, (proc.pid,))
            timer.start()
        try:
            _, status, _usage = os.wait4(proc.pid, 0)
        finally:
            if timer is not None:
                timer.cancel()
            sampler.stop()
        outer = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        so.seek(0)
        se.seek(0)
        out = so.read().decode(errors="replace")
        err = se.read().decode(errors="replace")
        try:
            info = json.loads(Path(rep.name).read_text() or "{}")
        except (OSError, ValueError):
            info = {}
    if not info:  # killed (timeout) or could not start: the launcher wrote nothing
        return Sample(outer, 0.0, sampler.peak_kb / 1024, proc.returncode or -9, out, err, load, sampler.timeline)
    rss = info["maxrss_kb"] / 1024  # KiB on Linux
    return Sample(info["wall"], rss, max(sampler.peak_kb / 1024, rss), info["rc"], out, err, load,
                  sampler.timeline, info.get("cpu", 0.0))


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
