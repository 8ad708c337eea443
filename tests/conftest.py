"""Shared fixtures: run the CLI in-process as a user would, and the walk-through data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "ml-path"
TUTORIAL_DATA = EXAMPLE / "data"


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@pytest.fixture
def seeknal(capsys, monkeypatch):
    """``seeknal(*args, cwd=DIR)`` -> CliResult, through the real entry point."""
    from seeknal_flow.cli.main import main

    def run(*args: str, cwd: Path) -> CliResult:
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="module")
def ran_project(tmp_path_factory) -> Path:
    """examples/ml-path after a real `seeknal run` process, shared by one module's read-only tests."""
    dest = tmp_path_factory.mktemp("ran") / "ml-path"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("target", "__pycache__"))
    r = subprocess.run([sys.executable, "-m", "seeknal_flow.cli.main", "run"], cwd=dest, capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert r.returncode == 0, r.stderr
    return dest


@pytest.fixture
def example_project(tmp_path) -> Path:
    """A private copy of examples/ml-path (without any target/)."""
    dest = tmp_path / "ml-path"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("target", "__pycache__"))
    return dest


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL server on a free loopback port, started once per session (marker ``db``).

    Skipped, saying why, without the server binaries or the ``db`` extra; `.ci/run` installs both.
    """
    import importlib.util
    import sys

    if str(REPO) not in sys.path:  # `benchmarks/` is not an installed package
        sys.path.insert(0, str(REPO))
    from benchmarks.pg_server import PostgresServer, find_bin_dir

    if importlib.util.find_spec("adbc_driver_postgresql") is None:
        pytest.skip("the db extra is not installed (pip install 'seeknal-flow[db]'); PostgreSQL tests skipped")
    if find_bin_dir() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found; apt-get install postgresql")
    server = PostgresServer.start()
    yield server
    server.stop()
