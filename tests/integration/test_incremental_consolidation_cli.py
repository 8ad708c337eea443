"""Issue 18, item 3: `seeknal run` consolidates incrementally and says so; --full and removal drop kept rows."""

from __future__ import annotations

import json
import shutil

KEPT = "target/feature_store/customer/latest"


def test_run_says_what_consolidation_did(seeknal, example_project, tmp_path):
    root = example_project
    r = seeknal("run", cwd=root)
    assert r.code == 0, r.text
    assert "  customer: rebuilt in full (no kept state)" in r.out
    manifest = json.loads((root / KEPT / "manifest.json").read_text())
    assert sorted(manifest["groups"]) == ["customer_features", "product_preferences"]

    r = seeknal("run", "--nodes", "feature_group.product_preferences", "--format", "json", cwd=root)
    assert r.code == 0, r.text
    results = json.loads(r.out)
    assert results["consolidation_notes"]["customer"] == "1 of 2 groups recomputed"
    assert "customer: 1 of 2 groups recomputed" in r.err  # the human lines go to stderr with --format json

    r = seeknal("run", "--full", "-v", cwd=root)
    assert r.code == 0, r.text
    assert "  customer: rebuilt in full (--full)" in r.out

    # a group that leaves its entity leaves no kept rows behind (one file group left: no state at all)
    shutil.move(root / "seeknal/feature_groups/product_preferences.yml", tmp_path / "pp.yml")
    r = seeknal("run", cwd=root)
    assert r.code == 0, r.text
    assert "  customer: rebuilt in full (one group)" in r.out
    assert not list((root / "target/feature_store/customer").rglob("product_preferences-*.parquet"))
