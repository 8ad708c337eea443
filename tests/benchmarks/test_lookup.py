"""``python -m benchmarks lookup`` at a tiny scale: both checkouts measured, the table printed (no timing asserts)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_lookup_benchmark_runs_both_checkouts():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "lookup", "--keys", "300", "--rounds", "2",
                           "--iterations", "20", "--before", str(REPO)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "round 2 before:" in out and "round 2 this checkout:" in out
    rows = [line for line in out.splitlines() if line.startswith("| get_features")]
    assert [r.split(" | ")[0] for r in rows] == ["| get_features (pandas), 1 key", "| get_features (pandas), 10 keys",
                                                 "| get_features_arrow, 1 key", "| get_features_arrow, 10 keys"]
    assert all(r.count(" / ") == 2 for r in rows)  # p50 / p99 for each checkout
