"""PEP 723 isolation through `seeknal run`: uv-built environments, in-process fast path, errors."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess

import pytest

from seeknal_flow.run import isolation

PINNED = '''# /// script
# dependencies = ["tabulate==0.9.0"]
# ///
from seeknal_flow import transform


@transform(name="pretty")
def pretty(ctx):
    import pyarrow as pa
    import tabulate

    txn = ctx.ref("source.transactions")
    rows = ctx.duckdb.sql("SELECT customer_id, SUM(revenue) AS total FROM txn GROUP BY 1 ORDER BY 1").fetchall()
    print(tabulate.tabulate(rows[:1], headers=["customer", "total"]))
    return pa.table({"customer_id": [r[0] for r in rows], "total": [r[1] for r in rows],
                     "version": [tabulate.__version__] * len(rows)})
'''

RAISING = '''# /// script
# dependencies = ["tabulate==0.9.0"]
# ///
from seeknal_flow import transform


@transform(name="boom")
def boom(ctx):
    print("before the failure")
    raise RuntimeError("isolated failure")
'''

HOST_ONLY = '''# /// script
# dependencies = ["pyarrow", "duckdb"]
# ///
from seeknal_flow import transform


@transform(name="local")
def local(ctx):
    import os
    import pyarrow as pa
    return pa.table({"pid": [os.getpid()]})
'''


@pytest.fixture
def no_subprocess(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"unexpected subprocess: {args[0] if args else kwargs}")

    monkeypatch.setattr(subprocess, "Popen", refuse)


def test_host_available_deps_run_in_process(seeknal, example_project, no_subprocess):
    (example_project / "seeknal/transforms/local.py").write_text(HOST_ONLY)
    r = seeknal("run", "--nodes", "transform.local", cwd=example_project)
    # --nodes needs upstream outputs; local has none, so it runs alone, in this process
    assert r.code == 0, r.text
    r = seeknal("repl", "--format", "csv", "-e", "SELECT pid FROM transform_local", cwd=example_project)
    import os

    assert r.out.splitlines()[1] == str(os.getpid())


def test_should_isolate_decisions():
    from seeknal_flow.authoring.specs import Isolation, PythonCode

    code = PythonCode(path="x.py", function="f", source="", dependencies=("pyarrow",))
    assert not isolation.should_isolate(code, Isolation.AUTO)
    assert isolation.should_isolate(code, Isolation.UV)
    missing = PythonCode(path="x.py", function="f", source="", dependencies=("surely-not-installed-pkg-xyz",))
    assert isolation.should_isolate(missing, Isolation.AUTO)
    assert not isolation.should_isolate(missing, Isolation.INPROCESS)
    too_old = PythonCode(path="x.py", function="f", source="", dependencies=("pyarrow<1",))
    assert isolation.should_isolate(too_old, Isolation.AUTO)


def test_uv_missing_is_a_one_line_error(seeknal, example_project, monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(isolation.sys, "executable", str(tmp_path / "python"))
    (example_project / "seeknal/transforms/pretty.py").write_text(PINNED)
    r = seeknal("run", cwd=example_project)
    assert r.code == 1
    assert "transform.pretty" in r.err and "`uv` is not installed: pip install uv" in r.err
    assert "Traceback" not in r.text


needs_uv = pytest.mark.skipif(
    shutil.which("uv") is None and importlib.util.find_spec("uv") is None, reason="uv is not installed"
)


@pytest.mark.network
@needs_uv
def test_pinned_package_absent_from_host_runs_through_uv(seeknal, example_project):
    assert importlib.util.find_spec("tabulate") is None, "pick a package the host lacks"
    (example_project / "seeknal/transforms/pretty.py").write_text(PINNED)
    r = seeknal("run", cwd=example_project)
    assert r.code == 0, r.text
    assert "customer" in r.out and "CUST-100" in r.out  # the node's print, shown under it
    r = seeknal("repl", "--format", "csv", "-e",
                "SELECT customer_id, total, version FROM transform_pretty ORDER BY 1 LIMIT 2", cwd=example_project)
    assert r.out.splitlines()[1:] == ["CUST-100,184.98,0.9.0", "CUST-101,499.49,0.9.0"]


@pytest.mark.network
@needs_uv
def test_isolated_node_that_raises_shows_its_error(seeknal, example_project):
    (example_project / "seeknal/transforms/boom.py").write_text(RAISING)
    r = seeknal("run", cwd=example_project)
    assert r.code == 1
    assert "transform.boom (seeknal/transforms/boom.py:7) failed: RuntimeError: isolated failure" in r.err
    assert 'raise RuntimeError("isolated failure")' in r.text  # the node's traceback tail
    assert "before the failure" in r.out
    assert "Traceback" not in r.err.split("error:")[0]


@pytest.mark.network
@needs_uv
def test_isolation_uv_forced_by_project_setting(seeknal, example_project):
    (example_project / "seeknal/transforms/local.py").write_text(HOST_ONLY)
    config = example_project / "seeknal_project.yml"
    config.write_text(config.read_text() + "isolation: uv\n")
    r = seeknal("run", "--nodes", "transform.local", cwd=example_project)
    assert r.code == 0, r.text
    r = seeknal("repl", "--format", "csv", "-e", "SELECT pid FROM transform_local", cwd=example_project)
    import os

    assert r.out.splitlines()[1] != str(os.getpid())  # ran in another process


LIMITS = '''# /// script
# dependencies = ["pyarrow", "duckdb"]
# ///
from seeknal_flow import transform


@transform(name="limits", isolation="uv")
def limits(ctx):
    import os
    import pyarrow as pa
    row = ctx.duckdb.sql("SELECT current_setting('memory_limit'), current_setting('threads'), "
                         "current_setting('temp_directory')").fetchall()[0]
    return pa.table({"pid": [os.getpid()], "memory_limit": [row[0]], "threads": [row[1]], "spill": [row[2]],
                     "cutoff": [str(ctx.params["cutoff"])]})
'''


@pytest.mark.network
@needs_uv
def test_isolated_node_runs_under_the_runs_memory_configuration(seeknal, example_project):
    """Limit, threads and spill folder all cross the isolation boundary (not only the limit)."""
    import os

    (example_project / "seeknal/transforms/limits.py").write_text(LIMITS)
    r = seeknal("run", "--nodes", "transform.limits", "--memory-limit", "300MB", "--threads", "1",
                "--params", "cutoff=2026-01-01 10:00:00", cwd=example_project)
    assert r.code == 0, r.text
    r = seeknal("repl", "--format", "csv", "-e",
                "SELECT pid, memory_limit, threads, spill, cutoff FROM transform_limits", cwd=example_project)
    pid, limit, threads, spill, cutoff = r.out.splitlines()[1].split(",")
    assert pid != str(os.getpid())
    assert limit.replace(" ", "").upper().startswith(("300MB", "286.1MIB", "314.5MB")), limit
    assert threads == "1"
    assert spill == str((example_project / "target" / "tmp" / f"run-{os.getpid()}").resolve())  # the run's own folder
    assert cutoff == "2026-01-01 10:00:00"  # a --params datetime arrives as str(), as in-process nodes print it
