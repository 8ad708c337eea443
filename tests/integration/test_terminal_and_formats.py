"""Lineage formats, the REPL row cap, JSON Schema of node files, SEEKNAL_* environment, entity JSON."""

from __future__ import annotations

import json
import time

import jsonschema
import msgspec
import pytest
import yaml

from seeknal_flow.plan.lineage import Lineage
from seeknal_flow.store.entity_info import EntityDetail, EntityList


@pytest.fixture
def ran(seeknal, example_project):
    assert seeknal("run", "--quiet", cwd=example_project).code == 0
    return example_project


def test_lineage_json_mermaid_dot_and_directions(seeknal, example_project):
    node = "second_order_aggregation.customer_training_features"
    r = seeknal("lineage", node, "--format", "json", "--direction", "upstream", cwd=example_project)
    graph = msgspec.json.decode(r.out.encode(), type=Lineage)
    assert {n.id for n in graph.nodes} == {node, "feature_group.customer_daily_agg", "source.transactions"}
    assert ("feature_group.customer_daily_agg", node) in graph.edges
    both = msgspec.json.decode(seeknal("lineage", node, "--format", "json", cwd=example_project).out.encode(),
                               type=Lineage)
    assert "transform.churn_model" in {n.id for n in both.nodes}
    assert "source.churn_labels" not in {n.id for n in both.nodes}  # a sibling input is not this node's lineage
    mermaid = seeknal("lineage", node, "--format", "mermaid", cwd=example_project).out
    assert mermaid.startswith("flowchart LR") and mermaid.count("-->") == len(both.edges)
    dot = seeknal("lineage", "--format", "dot", cwd=example_project).out
    assert dot.startswith("digraph seeknal {") and '"source.transactions" -> "feature_group.customer_daily_agg";' in dot
    down = seeknal("lineage", "source.churn_labels", "--format", "ascii", "--direction", "downstream",
                   cwd=example_project).out
    assert "upstream:" not in down and "`-- transform.pit_training_data" in down


def test_repl_caps_a_large_result_and_says_how_to_see_more(seeknal, ran):
    began = time.perf_counter()
    r = seeknal("repl", "-e", "SELECT * FROM range(500000)", cwd=ran)
    took = time.perf_counter() - began
    assert r.code == 0
    lines = r.out.strip().splitlines()
    assert len(lines) < 60 and "(40 of 500,000 rows shown; --max-rows 0 to print all" in lines[-1]
    assert took < 5  # generous: the point is that 500,000 rows are never rendered (it was ~3 s of printing)
    few = seeknal("repl", "-e", "SELECT * FROM range(500000)", "--max-rows", "3", "--format", "csv", cwd=ran)
    assert few.out.strip().splitlines() == ["range", "0", "1", "2"] and "3 of 500,000" in few.err
    whole = seeknal("repl", "-e", "SELECT * FROM range(100)", "--max-rows", "0", "--format", "csv", cwd=ran)
    assert len(whole.out.strip().splitlines()) == 101 and whole.err == ""


def test_schema_validates_every_example_yaml_and_rejects_a_typo(seeknal, example_project):
    any_node = json.loads(seeknal("schema", cwd=example_project).out)
    files = sorted(example_project.glob("seeknal/**/*.yml"))
    assert files
    for path in files:
        data = yaml.safe_load(path.read_text())
        jsonschema.validate(data, any_node)  # the schema accepts what the loader accepts
        one = json.loads(seeknal("schema", data["kind"].replace("_", "-"), cwd=example_project).out)
        jsonschema.validate(data, one)
    bad = yaml.safe_load(files[0].read_text()) | {"entitty": "customer"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, any_node)
    r = seeknal("schema", "widget", cwd=example_project)
    assert r.code == 1 and "unknown kind 'widget'" in r.err


def test_init_writes_schemas_and_editor_settings(seeknal, tmp_path):
    r = seeknal("init", "--name", "shop", "--path", str(tmp_path / "shop"), cwd=tmp_path)
    assert r.code == 0, r.text
    settings = json.loads((tmp_path / "shop/.vscode/settings.json").read_text())
    assert "seeknal/**/*.yml" in settings["yaml.schemas"]["./.seeknal/schema/node.schema.json"]
    assert settings["yaml.schemas"]["./.seeknal/schema/source.schema.json"] == ["draft_source_*.yml"]
    assert json.loads((tmp_path / "shop/.seeknal/schema/source.schema.json").read_text())["title"]


def test_environment_overrides_the_project_file(seeknal, example_project, monkeypatch, tmp_path):
    config = example_project / "seeknal_project.yml"
    config.write_text(config.read_text() + "profiles:\n  ci:\n    threads: 1\n    memory_limit: 1GB\n")
    monkeypatch.setenv("SEEKNAL_PROJECT", str(example_project))
    assert seeknal("plan", cwd=tmp_path).code == 0  # found through SEEKNAL_PROJECT, not the cwd
    monkeypatch.setenv("SEEKNAL_PROFILE", "nightly")
    r = seeknal("plan", cwd=tmp_path)
    assert r.code == 1 and r.err.strip() == (
        "error: SEEKNAL_PROFILE=nightly: unknown profile 'nightly'; profiles in seeknal_project.yml: ci")
    monkeypatch.setenv("SEEKNAL_PROFILE", "ci")
    from seeknal_flow.load.workspace import Workspace

    assert Workspace.open(str(example_project)).memory().threads == 1
    monkeypatch.setenv("SEEKNAL_THREADS", "3")
    assert Workspace.open(str(example_project)).memory().threads == 3
    assert Workspace.open(str(example_project)).memory(threads=2).threads == 2  # the flag wins
    monkeypatch.setenv("SEEKNAL_MEMORY_LIMIT", "plenty")
    r = seeknal("run", cwd=tmp_path)
    assert r.code == 1 and r.err.startswith("error: SEEKNAL_MEMORY_LIMIT: memory limit 'plenty' is not a size")
    monkeypatch.delenv("SEEKNAL_MEMORY_LIMIT")
    r = seeknal("run", "--memory-limit", "1KB", cwd=tmp_path)
    assert r.code == 1 and r.err == "error: --memory-limit: memory limit '1KB' is below the 64MB a run needs; " \
        "use e.g. '2GB'\n", r.err


def test_entity_json_matches_its_structs(seeknal, ran):
    listed = msgspec.json.decode(seeknal("entity", "list", "--format", "json", cwd=ran).out.encode(), type=EntityList)
    assert {e.name for e in listed.entities} == {"customer", "churn_scoring"}
    detail = msgspec.json.decode(seeknal("entity", "show", "customer", "--format", "json", cwd=ran).out.encode(),
                                 type=EntityDetail)
    features = {f.name: f.dtype for g in detail.groups for f in g.features}
    assert features["total_orders"] == "int64" and detail.join_keys == ["customer_id"]


def test_dry_run_and_validate_json(seeknal, ran):
    draft = ran / "seeknal/feature_groups/customer_daily_agg.yml"
    out = json.loads(seeknal("dry-run", str(draft), "--format", "json", "--limit", "2", cwd=ran).out)
    assert out["nodes"][0]["node"] == "feature_group.customer_daily_agg" and len(out["nodes"][0]["rows"]) == 2
    report = json.loads(seeknal("validate-features", "customer_features", "--format", "json", cwd=ran).out)
    assert report["node"] == "feature_group.customer_features" and report["failed"] == 0 and report["passed"] >= 2
