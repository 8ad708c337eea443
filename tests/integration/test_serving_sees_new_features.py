"""Issue 14, item 6: `seeknal serve`, OnlineFeaturesDuckDB and ctx.features see groups added by a later run."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import EXAMPLE

pytest.importorskip("uvicorn", reason="seeknal serve needs the `serve` extra: pip install -e '.[serve]'")

from tests.integration.test_serve import Server, run_cli  # noqa: E402  (after the skip above)

NEW_GROUP = """kind: feature_group
name: region_counts
entity: customer
event_time_col: last_order
sql: |
  SELECT customer_id, COUNT(DISTINCT region) AS region_count, MAX(CAST(order_date AS TIMESTAMP)) AS last_order
  FROM ref('source.transactions')
  GROUP BY customer_id
"""

NEW_ENTITY = """kind: feature_group
name: region_sales
entity: region
event_time_col: last_order
sql: |
  SELECT region AS region_id, SUM(revenue) AS revenue, MAX(CAST(order_date AS TIMESTAMP)) AS last_order
  FROM ref('source.transactions')
  GROUP BY region
"""


@pytest.mark.serve
def test_serve_picks_up_groups_and_entities_added_after_it_started(tmp_path):
    root = tmp_path / "ml-path"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("target", "__pycache__"))
    assert run_cli("run", project=root).returncode == 0
    srv = Server(root)
    try:
        ask = {"entity": "customer", "keys": [{"customer_id": "CUST-100"}], "features": ["region_counts.region_count"]}
        status, body = srv.json("POST", "/features", ask)
        assert status == 400 and "unknown group 'region_counts'" in str(body)
        status, body = srv.json("POST", "/features", {"entity": "region", "keys": [{"region_id": "north"}]})
        assert status >= 400

        (root / "seeknal/feature_groups/region_counts.yml").write_text(NEW_GROUP)
        (root / "seeknal/feature_groups/region_sales.yml").write_text(NEW_ENTITY)
        r = run_cli("run", project=root)
        assert r.returncode == 0, r.stderr

        status, body = srv.json("POST", "/features", ask)  # same server process, no restart
        assert status == 200, body
        assert body["rows"] == [["CUST-100", 1]]
        status, body = srv.json("POST", "/features", {"entity": "region", "keys": [{"region_id": "north"}]})
        assert status == 200, body
        assert body["features"] == ["region_id", "region_sales.revenue"]

        # the group goes away again: the running server calls it unknown, never serves stale values
        (root / "seeknal/feature_groups/region_counts.yml").unlink()
        assert run_cli("run", project=root).returncode == 0
        status, body = srv.json("POST", "/features", ask)
        assert status == 400 and "unknown group 'region_counts'" in str(body)
    finally:
        srv.stop()


def test_online_features_with_all_features_sees_a_later_group(seeknal, example_project):
    from seeknal_flow import OnlineFeaturesDuckDB

    root = example_project
    assert seeknal("run", cwd=root).code == 0
    online = OnlineFeaturesDuckDB(entity="customer", project=root)
    assert "region_count" not in online.get_features_arrow([{"customer_id": "CUST-100"}]).column_names
    (root / "seeknal/feature_groups/region_counts.yml").write_text(NEW_GROUP)
    assert seeknal("run", cwd=root).code == 0
    table = online.get_features_arrow([{"customer_id": "CUST-100"}])
    assert table.column("region_count").to_pylist() == [1]
