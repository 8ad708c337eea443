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

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def interrupt_guard() -> Iterator[threading.Event]:
    """Within the block, SIGINT and SIGTERM set the returned event and raise KeyboardInterrupt.

    Outside the main thread (signals cannot be caught there) the event is never set.
    """
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return

    def handler(signum, frame):
        if interrupted.is_set():
            return  # a second Ctrl-C must not break the clean-up the first one started
        interrupted.set()
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield interrupted
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


__all__ = ["interrupt_guard"]
