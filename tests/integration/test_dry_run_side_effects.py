"""Issue 14, item 4: `seeknal dry-run` writes nothing under target/ (a model transform's saved model included)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def _snapshot(folder: Path) -> dict[str, tuple[int, int, str]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_dry_run_of_a_model_transform_leaves_target_untouched(seeknal, example_project):
    root = example_project
    assert seeknal("run", cwd=root).code == 0
    model = root / "target/models/churn_model.joblib"
    assert model.exists()
    before = _snapshot(root / "target")
    r = seeknal("dry-run", "seeknal/transforms/churn_model.py", cwd=root)
    assert r.code == 0, r.text
    assert "transform.churn_model: valid" in r.out and "model saved to churn_model.joblib" in r.out
    assert _snapshot(root / "target") == before


def test_dry_run_before_any_run_creates_no_target(seeknal, example_project):
    root = example_project
    r = seeknal("dry-run", "seeknal/transforms/churn_model.py", cwd=root)
    assert r.code == 0, r.text
    assert not (root / "target").exists()
