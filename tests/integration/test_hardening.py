"""Names, paths and the REPL sandbox, through the real CLI on a real project (docs/security.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _error(r, *needles: str) -> str:
    assert r.code == 1, r.text
    assert "Traceback" not in r.text and "internal error" not in r.text, r.text
    for needle in needles:
        assert needle in r.err, (needle, r.err)
    return r.err


def _group(root: Path, name: str, entity: str, key: str = "customer_id", extra: str = "") -> None:
    (root / f"seeknal/feature_groups/{name}.yml").write_text(
        f"kind: feature_group\nname: {name}\nentity: {{name: {json.dumps(entity)}, join_keys: [{json.dumps(key)}]}}\n"
        f"{extra}sql: |\n  SELECT customer_id, CAST(application_date AS TIMESTAMP) AS event_time\n"
        "  FROM ref('source.churn_labels')\n")


@pytest.mark.parametrize(("entity", "key", "field"), [
    ('cust"omer', "customer_id", "entity.name"),
    ("../../../x", "customer_id", "entity.name"),
    ("customer", 'id"; DROP TABLE x; --', "entity.join_keys[0]"),
    ("customer", "a.b", "entity.join_keys[0]"),
])
def test_names_that_become_identifiers_or_paths_are_checked_at_load(seeknal, example_project, entity, key, field):
    _group(example_project, "evil", entity, key)
    r = seeknal("plan", cwd=example_project)
    _error(r, "seeknal/feature_groups/evil.yml", f"field '{field}'", "must match")
    assert not (example_project / "target").exists()  # nothing was written


def test_feature_and_partition_names_follow_the_same_rule(seeknal, example_project):
    _group(example_project, "feats", "customer", extra="features: [\"x'; --\"]\n")
    _error(seeknal("plan", cwd=example_project), "feats.yml", "field 'features[0]'")
    (example_project / "seeknal/feature_groups/feats.yml").unlink()
    (example_project / "seeknal/sources/parts.yml").write_text(
        "kind: source\nname: parts\nsource: csv\ntable: data/\npartition_by: [\"../up\"]\n")
    _error(seeknal("plan", cwd=example_project), "parts.yml", "field 'partition_by[0]'")


def test_prune_never_deletes_outside_the_project(seeknal, example_project, tmp_path):
    assert seeknal("run", "--quiet", cwd=example_project).code == 0
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    forged = example_project / "target/feature_store/forged"
    forged.mkdir()
    (forged / "_entity_catalog.json").write_text(json.dumps({"entity": "../../../victim", "join_keys": ["k"],
                                                             "groups": {}, "schema_version": 1}))
    r = seeknal("consolidate", "--prune", cwd=example_project)
    assert r.code == 0, r.text
    assert (victim / "keep.txt").read_text() == "precious"
    assert (example_project / "target/feature_store/customer/features.parquet").exists()


@pytest.fixture(scope="module")
def repl_project(ran_project):
    return ran_project


def test_the_repl_reads_the_project_and_nothing_else(seeknal, repl_project):
    inside = repl_project / "data/churn_labels.csv"
    r = seeknal("repl", "-e", f"SELECT count(*) AS n FROM read_csv('{inside}')", "--format", "json",
                cwd=repl_project)
    assert r.code == 0, r.text
    assert json.loads(r.out)[0]["n"] > 0
    assert seeknal("repl", "-e", "SELECT count(*) FROM entity_customer", cwd=repl_project).code == 0
    for sql in ("SELECT * FROM read_csv('/etc/passwd')",
                f"SELECT * FROM read_csv('{repl_project}/../../../../etc/passwd')",
                "SELECT * FROM read_text('/etc/hostname')",
                "SELECT * FROM glob('/*')",
                "SELECT * FROM read_json('https://example.com/x.json')"):
        _error(seeknal("repl", "-e", sql, cwd=repl_project), "Permission Error")


def test_the_repl_cannot_install_extensions_or_unlock_itself(seeknal, repl_project):
    r = seeknal("repl", "-e", "SELECT current_setting('autoinstall_known_extensions') AS i, "
                "current_setting('autoload_known_extensions') AS l, current_setting('enable_external_access') AS e, "
                "current_setting('lock_configuration') AS k", "--format", "json", cwd=repl_project)
    assert r.code == 0, r.text
    assert json.loads(r.out) == [{"i": False, "l": False, "e": False, "k": True}]
    _error(seeknal("repl", "-e", "SET enable_external_access = true", cwd=repl_project), "read-only")
    _error(seeknal("repl", "-e", "SELECT * FROM read_xlsx('x.xlsx')", cwd=repl_project), "SQL error")


def test_repl_output_is_refused_under_target(seeknal, repl_project, tmp_path):
    out = repl_project / "target/intermediate/feature_group_customer_features.parquet"
    before = out.read_bytes()
    _error(seeknal("repl", "-e", "SELECT 1 AS x", "--output", str(out), cwd=repl_project),
           "refusing to write under target/")
    _error(seeknal("repl", "-e", "SELECT 1 AS x", "--output", "target/../target/x.csv", cwd=repl_project),
           "refusing to write under target/")
    assert out.read_bytes() == before
    elsewhere = tmp_path / "result.parquet"
    r = seeknal("repl", "-e", "SELECT * FROM entity_customer", "--output", str(elsewhere), cwd=repl_project)
    assert r.code == 0 and elsewhere.exists(), r.text


def test_partition_values_with_quotes_are_refused_naming_the_file(seeknal, example_project):
    folder = example_project / "data/tx/day=it's"
    folder.mkdir(parents=True)
    (folder / "part.csv").write_text("id,amount\n1,10\n")
    (example_project / "seeknal/sources/tx.yml").write_text(
        "kind: source\nname: tx\nsource: csv\ntable: data/tx/\npartition_by: [day]\n")
    _error(seeknal("plan", cwd=example_project), "source.tx", "file 'day=it's/part.csv'", "rename the folder")


def test_an_edited_manifest_cannot_widen_the_repl_sandbox(seeknal, example_project, tmp_path):
    assert seeknal("run", "--quiet", cwd=example_project).code == 0
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "s.csv").write_text("token\nhunter2\n")
    manifest_path = example_project / "target/manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["nodes"]["x"] = {"view": "stolen", "output": str(secret / "s.parquet")}
    manifest_path.write_text(json.dumps(manifest))
    (secret / "s.parquet").write_bytes((example_project / "target/intermediate/source_churn_labels.parquet")
                                       .read_bytes())
    _error(seeknal("repl", "-e", "SELECT * FROM stolen", cwd=example_project), "stolen")
    _error(seeknal("repl", "-e", f"SELECT * FROM read_csv('{secret / 's.csv'}')", cwd=example_project),
           "Permission Error")


def test_a_parquet_source_outside_the_project_stays_readable_in_the_repl(seeknal, example_project, tmp_path):
    outside = tmp_path / "shared" / "labels.parquet"
    outside.parent.mkdir()
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"customer_id": ["CUST-100"], "score": [0.5]}), outside)
    (example_project / "seeknal/sources/shared.yml").write_text(
        f"kind: source\nname: shared\nsource: parquet\ntable: {outside}\n")
    assert seeknal("run", "--quiet", cwd=example_project).code == 0
    r = seeknal("repl", "-e", "SELECT score FROM source_shared", "--format", "json", cwd=example_project)
    assert r.code == 0, r.text
    assert json.loads(r.out) == [{"score": 0.5}]
