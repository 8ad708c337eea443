"""Ctrl-C during a run: remember that it happened, then stop the work in flight.

Engines do not all surface an interrupt the same way: Python code gets a
``KeyboardInterrupt``, DataFusion raises one too, but DuckDB turns it into a
"Query interrupted" error, which would otherwise read as a failing node. The
run service therefore asks this flag, not the exception type, whether the run
was interrupted.

Example::

    with interrupt_guard() as interrupted:
        ...                       # Ctrl-C raises KeyboardInterrupt here
    if interrupted.is_set(): ...
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class InterruptFlag(threading.Event):
    """Set by Ctrl-C. While ``shielded`` (the run's write-up), a signal only sets it."""

    shielded: bool = False


@contextmanager
def interrupt_guard() -> Iterator[InterruptFlag]:
    """Within the block, SIGINT and SIGTERM set the returned flag and raise KeyboardInterrupt.

    A second signal while the first one is being handled forces the process out (exit 130),
    so a run whose engine swallowed the first never needs ``kill -9``. Outside the main
    thread (signals cannot be caught there) the flag is never set.
    """
    interrupted = InterruptFlag()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return

    def handler(signum, frame):
        if interrupted.shielded:
            interrupted.set()  # recording the run's results: finish that, then stop
            return
        if interrupted.is_set():
            os.write(2, b"interrupted again: exiting now\n")
            os._exit(130)
        interrupted.set()
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield interrupted
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


__all__ = ["InterruptFlag", "interrupt_guard"]
