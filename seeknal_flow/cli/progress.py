"""What ``seeknal run`` shows while it works: the run service's Reporter for a terminal or a log.

On a terminal a status line on stderr is redrawn a few times a second: the running
node, its elapsed time, rows written so far and, for a partitioned node, a bar of
partitions done. When output is not a terminal (CI logs, pipes) each node gets one
plain line when it ends. ``--quiet`` prints nothing on success; ``-v`` adds each
node's timing, rate and the planner's reason.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from dataclasses import dataclass

import click

from seeknal_flow.cli.output import paint

_SPINNER = "|/-\\"
_REDRAW_SECONDS = 0.2


@dataclass
class _Running:
    index: int
    total: int
    node_id: str
    started: float
    rows: int = 0
    parts_done: int = 0
    parts_total: int = 0


class RunPrinter:
    """The Reporter of :func:`seeknal_flow.run.service.run_project` for the CLI.

    ``to_stderr``: human lines go to stderr (``--format json`` keeps stdout for the document).
    """

    def __init__(self, *, quiet: bool = False, verbose: bool = False, to_stderr: bool = False,
                 live: bool | None = None, reasons: dict[str, str] | None = None) -> None:
        self.quiet, self.verbose, self.to_stderr = quiet, verbose, to_stderr
        out = sys.stderr if to_stderr else sys.stdout
        self.live = (not quiet and out.isatty() and sys.stderr.isatty()) if live is None else live
        self.reasons = reasons or {}
        self._running: _Running | None = None
        self._lock = threading.Lock()
        self._drawn = 0
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # -- the Reporter protocol ------------------------------------------------------------------
    def note(self, text: str) -> None:
        self._line(text)

    def start(self, index: int, total: int, node_id: str) -> None:
        with self._lock:
            self._running = _Running(index, total, node_id, time.perf_counter())
        if self.live and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="seeknal-progress", daemon=True)
            self._ticker.start()

    def progress(self, node_id: str, rows: int) -> None:
        running = self._running
        if running is not None:
            running.rows = rows

    def partitions(self, node_id: str, done: int, total: int) -> None:
        running = self._running
        if running is not None:
            running.parts_done, running.parts_total = done, total

    def done(self, node_id: str, result) -> None:
        running = self._finish()
        line = f"{self._prefix(running, node_id)}  {paint('ok', 'green', self._stream)}: {result.rows:,} rows"
        if self.verbose:
            rate = f" ({result.rows / result.seconds:,.0f} rows/s)" if result.seconds >= 0.05 else ""
            line += f" in {result.seconds:.2f}s{rate}" + self._why(node_id)
        self._line(line)
        self._user_output(result.output)

    def failed(self, node_id: str, error) -> None:
        running = self._finish()
        # Failures print even with --quiet: they are what a quiet user needs to see.
        self._line(f"{self._prefix(running, node_id)}  {paint('FAILED', 'red', self._stream)}: {error.reason}",
                   force=True)
        if error.tail:
            self._line("    " + error.tail.replace("\n", "\n    "), force=True)
        self._user_output(error.output, force=True)

    def skipped(self, node_id: str, reason: str) -> None:
        self._line(f"  skipped {node_id}: {reason}")

    # -- the rest ------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the status line (call before printing the run's summary)."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=1)
        with self._lock:
            self._clear()

    def summary(self, text: str) -> None:
        self._line(text)

    @property
    def _stream(self):
        return sys.stderr if self.to_stderr else sys.stdout

    def _prefix(self, running: _Running | None, node_id: str) -> str:
        return f"[{running.index}/{running.total}] {node_id}" if running else node_id

    def _why(self, node_id: str) -> str:
        reason = self.reasons.get(node_id)
        return f"  ({reason})" if reason else ""

    def _finish(self) -> _Running | None:
        with self._lock:
            running, self._running = self._running, None
            self._clear()
        return running

    def _user_output(self, output: str, force: bool = False) -> None:
        if output.strip():
            self._line("  | " + output.rstrip().replace("\n", "\n  | "), force=force)

    def _line(self, text: str, force: bool = False) -> None:
        if self.quiet and not force:
            return
        with self._lock:
            self._clear()
            click.echo(text, err=self.to_stderr)

    def _clear(self) -> None:
        # Called with the lock held: wipe the status line before a normal line is printed.
        if self._drawn:
            sys.stderr.write("\r" + " " * self._drawn + "\r")
            sys.stderr.flush()
            self._drawn = 0

    def _tick(self) -> None:
        turn = 0
        while not self._stop.wait(_REDRAW_SECONDS):
            turn += 1
            with self._lock:
                running = self._running
                if running is None:
                    continue
                text = self._status(running, _SPINNER[turn % len(_SPINNER)])
                width = shutil.get_terminal_size((100, 20)).columns - 1
                text = text[:width]
                pad = max(self._drawn - len(text), 0)
                sys.stderr.write("\r" + text + " " * pad)
                sys.stderr.flush()
                self._drawn = len(text)

    @staticmethod
    def _status(running: _Running, spin: str) -> str:
        elapsed = time.perf_counter() - running.started
        text = f"{spin} [{running.index}/{running.total}] {running.node_id}  {elapsed:5.1f}s"
        if running.rows:
            text += f"  {running.rows:,} rows"
        if running.parts_total:
            filled = int(20 * running.parts_done / running.parts_total)
            text += f"  [{'#' * filled}{'.' * (20 - filled)}] {running.parts_done}/{running.parts_total} partitions"
        return text


__all__ = ["RunPrinter"]
