"""Issue 14, item 3: a deleted or renamed node leaves cleanly (plan REMOVE, run deletes), and comes back."""

from __future__ import annotations

import json
import shutil

import pytest

from seeknal_flow import OnlineFeaturesDuckDB
from seeknal_flow.errors import StoreError

GROUP = "seeknal/feature_groups/product_preferences.yml"


def test_removed_group_is_planned_remove_and_leaves_everything(seeknal, example_project, tmp_path):
    root = example_project
    assert seeknal("run", cwd=root).code == 0
    online = OnlineFeaturesDuckDB(entity="customer", features=["product_preferences.top_category"], project=root)
    assert online.get_features_arrow([{"customer_id": "CUST-100"}]).column("top_category")[0].as_py()
    kept = tmp_path / "product_preferences.yml"
    shutil.move(root / GROUP, kept)

    r = seeknal("plan", cwd=root)
    assert "1 to remove" in r.out.splitlines()[0]
    assert "REMOVE  feature_group.product_preferences" in r.out
    report = json.loads(seeknal("plan", "--format", "json", cwd=root).out)
    assert {n["id"]: n["action"] for n in report["nodes"]}["feature_group.product_preferences"] == "REMOVE"

    r = seeknal("run", cwd=root)
    assert r.code == 0, r.text
    assert "removed feature_group.product_preferences" in r.text
    assert "Consolidated and published: customer" in r.out
    assert not (root / "target/intermediate/feature_group_product_preferences.parquet").exists()
    catalog = json.loads((root / "target/feature_store/customer/_entity_catalog.json").read_text())
    assert list(catalog["groups"]) == ["customer_features"]
    state = json.loads((root / "target/run_state.json").read_text())
    assert "feature_group.product_preferences" not in state["nodes"]
    with pytest.raises(StoreError, match="unknown group 'product_preferences'"):
        online.get_features_arrow([{"customer_id": "CUST-100"}])  # the same reader: no stale values
    with pytest.raises(StoreError, match="unknown group 'product_preferences'"):
        OnlineFeaturesDuckDB(entity="customer", features=["product_preferences.top_category"], project=root)
    assert "REMOVE" not in seeknal("plan", cwd=root).out
    recorded = json.loads((root / "target/run_results.json").read_text())
    assert recorded["removed"] == ["feature_group.product_preferences"]

    shutil.move(kept, root / GROUP)  # restored: new again, and its features come back
    r = seeknal("run", cwd=root)
    assert r.code == 0, r.text
    assert "feature_group.product_preferences" in r.out
    again = OnlineFeaturesDuckDB(entity="customer", features=["product_preferences.top_category"], project=root)
    assert again.get_features_arrow([{"customer_id": "CUST-100"}]).column("top_category")[0].as_py()


def test_last_group_of_an_entity_drops_the_entity_and_renamed_node_moves(seeknal, example_project):
    root = example_project
    assert seeknal("run", cwd=root).code == 0
    spend = root / "seeknal/feature_groups/customer_spend_features.yml"
    text = spend.read_text()
    assert "churn_scoring" in text
    spend.unlink()
    # customer_spend_at_label reads it: remove the reader too
    (root / "seeknal/second_order_aggregations/customer_spend_at_label.yml").unlink()
    r = seeknal("run", cwd=root)
    assert r.code == 0, r.text
    assert not (root / "target/feature_store/churn_scoring").exists()
    assert not (root / "target/online/churn_scoring").exists()
    with pytest.raises(StoreError, match="no published features"):
        OnlineFeaturesDuckDB(entity="churn_scoring", project=root)

    # a rename: the old node is removed, the new one runs
    fg = root / "seeknal/feature_groups/product_preferences.yml"
    fg.write_text(fg.read_text().replace("name: product_preferences", "name: product_prefs"))
    r = seeknal("plan", cwd=root)
    assert "REMOVE  feature_group.product_preferences" in r.out and "RUN   feature_group.product_prefs" in r.out
    assert seeknal("run", cwd=root).code == 0
    names = sorted(p.name for p in (root / "target/intermediate").glob("feature_group_product_*"))
    assert names == ["feature_group_product_prefs.parquet"]


def test_clean_deletes_orphaned_outputs(seeknal, example_project):
    root = example_project
    assert seeknal("run", cwd=root).code == 0
    orphan = root / "target/intermediate/transform_gone.parquet"
    shutil.copy(root / "target/intermediate/source_churn_labels.parquet", orphan)
    (root / GROUP).unlink()
    r = seeknal("clean", "--dry-run", cwd=root)
    assert r.code == 0, r.text
    assert "Would delete target/intermediate/transform_gone.parquet" in r.out
    assert "Would delete target/intermediate/feature_group_product_preferences.parquet" in r.out
    assert orphan.exists()
    r = seeknal("clean", cwd=root)
    assert r.code == 0, r.text
    assert "Rebuilt entities: customer" in r.out
    assert not orphan.exists()
    assert not (root / "target/intermediate/feature_group_product_preferences.parquet").exists()
    catalog = json.loads((root / "target/feature_store/customer/_entity_catalog.json").read_text())
    assert list(catalog["groups"]) == ["customer_features"]
    assert (root / "data/transactions.csv").exists()
    assert seeknal("clean", cwd=root).out.strip() == "Nothing to clean."
