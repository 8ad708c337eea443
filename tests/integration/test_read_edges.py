"""Issue 14, item 1: every read of another node's output is an edge (or fails the node, saying how to declare it)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

TRAINING = '''
from seeknal_flow import FeatureLookup, HistoricalFeaturesDuckDB, transform


@transform(name="training")
def training(ctx):
    labels = ctx.ref("source.churn_labels").to_arrow()
    hist = HistoricalFeaturesDuckDB(lookups=[FeatureLookup(source="feature_group.customer_daily_agg",
                                                           features=["daily_amount"])])
    return hist.to_arrow(labels, "application_date", keep_cols=["churned"])
'''

HIDDEN = '''
from seeknal_flow import FeatureLookup, HistoricalFeaturesDuckDB, transform

GROUP = "customer_daily" + "_agg"


@transform(name="training"{extra})
def training(ctx):
    labels = ctx.ref("source.churn_labels").to_arrow()
    hist = HistoricalFeaturesDuckDB(lookups=[FeatureLookup(source="feature_group." + GROUP)])
    return hist.to_arrow(labels, "application_date", keep_cols=["churned"])
'''

ONLINE = '''
from seeknal_flow import OnlineFeaturesDuckDB, transform


@transform(name="scores")
def scores(ctx):
    online = OnlineFeaturesDuckDB(entity="customer")
    return online.get_features_arrow([{"customer_id": "CUST-100"}])
'''


def _plan(seeknal, root) -> dict:
    r = seeknal("plan", "--format", "json", cwd=root)
    assert r.code == 0, r.text
    return {n["id"]: n for n in json.loads(r.out)["nodes"]}


def test_historical_features_read_is_an_edge_and_reruns(seeknal, example_project):
    (example_project / "seeknal/transforms/training.py").write_text(TRAINING)
    plan = _plan(seeknal, example_project)
    assert "feature_group.customer_daily_agg" in plan["transform.training"]["upstream"]
    assert seeknal("run", cwd=example_project).code == 0
    out = example_project / "target/intermediate/transform_training.parquet"
    before = pq.read_table(out).column("daily_amount").to_pylist()

    # double every amount: the group changes, so the training set must be rebuilt from it
    csv = example_project / "data/transactions.csv"
    lines = csv.read_text().splitlines()
    header = lines[0].split(",")
    i = header.index("revenue")
    rows = []
    for line in lines[1:]:
        cells = line.split(",")
        cells[i] = str(round(float(cells[i]) * 2, 2))
        rows.append(",".join(cells))
    csv.write_text("\n".join([lines[0], *rows]) + "\n")
    plan = _plan(seeknal, example_project)
    assert plan["transform.training"]["action"] == "RUN" and "upstream changed" in plan["transform.training"]["reasons"]
    r = seeknal("run", cwd=example_project)
    assert r.code == 0, r.text
    after = pq.read_table(out).column("daily_amount").to_pylist()
    assert after == pytest.approx([v * 2 for v in before]) and after != before


def test_a_read_discovery_cannot_see_fails_naming_both_nodes(seeknal, example_project):
    node = example_project / "seeknal/transforms/training.py"
    node.write_text(HIDDEN.format(extra=""))
    r = seeknal("run", cwd=example_project)
    assert r.code == 1
    assert ("transform.training reads the output of feature_group.customer_daily_agg, which is not one of its "
            "upstream nodes") in r.err
    assert 'depends_on=["feature_group.customer_daily_agg"]' in r.err
    assert "Traceback" not in r.err

    node.write_text(HIDDEN.format(extra=', depends_on=["feature_group.customer_daily_agg"]'))
    assert "feature_group.customer_daily_agg" in _plan(seeknal, example_project)["transform.training"]["upstream"]
    r = seeknal("run", cwd=example_project)
    assert r.code == 0, r.text
    assert pq.read_table(example_project / "target/intermediate/transform_training.parquet").num_rows == 6


def test_yaml_depends_on_adds_the_edge(seeknal, example_project):
    (example_project / "seeknal/transforms/after.yml").write_text(
        "kind: transform\nname: after\ndepends_on: [feature_group.customer_features]\n"
        "sql: SELECT * FROM ref('source.churn_labels')\n")
    plan = _plan(seeknal, example_project)
    assert plan["transform.after"]["upstream"] == ["feature_group.customer_features", "source.churn_labels"]


def test_online_features_of_an_entity_depend_on_all_its_groups(seeknal, example_project):
    (example_project / "seeknal/transforms/scores.py").write_text(ONLINE)
    plan = _plan(seeknal, example_project)
    assert {"feature_group.customer_features", "feature_group.product_preferences"} <= set(
        plan["transform.scores"]["upstream"])


def test_readers_in_a_node_default_to_the_running_project(seeknal, example_project, tmp_path):
    (example_project / "seeknal/transforms/training.py").write_text(TRAINING)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = seeknal("run", "--project", str(example_project), cwd=elsewhere)  # not run from inside the project
    assert r.code == 0, r.text
    assert pq.read_table(example_project / "target/intermediate/transform_training.parquet").num_rows == 6
