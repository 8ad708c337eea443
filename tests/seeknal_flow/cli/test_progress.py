"""The live status line of `seeknal run` on a terminal, and the plain lines in a log."""

from __future__ import annotations

import time
from pathlib import Path

from seeknal_flow.cli.progress import RunPrinter
from seeknal_flow.run.engine import NodeResult


def test_live_status_line_shows_node_elapsed_rows_and_partition_bar(capsys):
    printer = RunPrinter(live=True)
    printer.start(2, 5, "transform.slow")
    printer.progress("transform.slow", 1234567)
    printer.partitions("transform.slow", 3, 12)
    time.sleep(0.6)
    printer.done("transform.slow", NodeResult(path=Path("x"), rows=10, bytes=1, seconds=0.7))
    printer.close()
    out, err = capsys.readouterr()
    assert "[2/5] transform.slow" in err and "1,234,567 rows" in err and "3/12 partitions" in err
    assert "[#####..............." in err  # a quarter of the bar
    assert out == "[2/5] transform.slow  ok: 10 rows\n"  # the status line never reaches stdout


def test_plain_mode_prints_one_line_per_node_and_verbose_adds_time_and_reason(capsys):
    printer = RunPrinter(live=False, verbose=True, reasons={"source.a": "data changed"})
    printer.start(1, 1, "source.a")
    printer.done("source.a", NodeResult(path=Path("x"), rows=2000, bytes=1, seconds=0.5))
    printer.close()
    out, err = capsys.readouterr()
    assert out == "[1/1] source.a  ok: 2,000 rows in 0.50s (4,000 rows/s)  (data changed)\n" and err == ""


def test_quiet_prints_failures_only(capsys):
    from seeknal_flow.errors import NodeExecutionError

    printer = RunPrinter(live=False, quiet=True)
    printer.start(1, 2, "source.a")
    printer.done("source.a", NodeResult(path=Path("x"), rows=1, bytes=1, seconds=0.1))
    printer.start(2, 2, "transform.b")
    error = NodeExecutionError("transform.b (b.py:3)", "boom")
    printer.failed("transform.b", error)
    out, _ = capsys.readouterr()
    assert out == "[2/2] transform.b  FAILED: boom\n"
