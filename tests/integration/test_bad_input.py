"""Every user mistake: one line naming file/node/field and the fix, exit 1, no traceback,
earlier outputs untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest


def _digest(project: Path) -> dict[str, str]:
    out = project / "target" / "intermediate"
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.parquet"))}


@pytest.fixture
def ran(seeknal, example_project):
    r = seeknal("run", cwd=example_project)
    assert r.code == 0, r.text
    return example_project, _digest(example_project)


def _assert_one_line_error(r, *needles: str) -> None:
    assert r.code == 1, r.text
    errors = [ln for ln in r.err.splitlines() if ln.startswith("error:")]
    assert errors, r.text
    assert "Traceback" not in r.text
    for needle in needles:
        assert needle in errors[0] or needle in r.err, (needle, r.err)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_missing_data_file(seeknal, ran):
    project, before = ran
    (project / "data" / "transactions.csv").rename(project / "data" / "moved.csv")
    r = seeknal("run", "--full", cwd=project)
    _assert_one_line_error(r, "source.transactions", "seeknal/sources/transactions.py", "data/transactions.csv", "does not exist")
    assert _digest(project) == before


def test_malformed_csv_row(seeknal, ran):
    project, before = ran
    with open(project / "data" / "transactions.csv", "a") as f:
        f.write("CUST-1,ORD-1,2026-01-01,1.0,food,north,EXTRA\n")
    r = seeknal("run", cwd=project)
    _assert_one_line_error(r, "malformed CSV row", "data/transactions.csv", "line 12", "Expected 6 columns, got 7")
    assert _digest(project) == before


def test_yaml_syntax_error(seeknal, ran):
    project, _ = ran
    _write(project / "seeknal/transforms/bad.yml", "kind: transform\nname: bad\nsql: [SELECT 1\n")
    r = seeknal("plan", cwd=project)
    _assert_one_line_error(r, "seeknal/transforms/bad.yml:", "YAML syntax error")


def test_unknown_yaml_field_and_wrong_type(seeknal, ran):
    project, _ = ran
    _write(project / "seeknal/transforms/bad.yml", "kind: transform\nname: bad\nsqll: SELECT 1\n")
    r = seeknal("plan", cwd=project)
    _assert_one_line_error(r, "seeknal/transforms/bad.yml:3: field 'sqll': unknown field; did you mean 'sql'?")
    _write(project / "seeknal/transforms/bad.yml", "kind: transform\nname: bad\nsql: SELECT 1\ntags: 7\n")
    r = seeknal("plan", cwd=project)
    _assert_one_line_error(r, "seeknal/transforms/bad.yml:4: field 'tags': expected `array`, got `int`")


def test_duplicate_node_id(seeknal, ran):
    project, _ = ran
    _write(project / "seeknal/transforms/dup.yml", "kind: source\nname: transactions\ntable: data/transactions.csv\n")
    r = seeknal("plan", cwd=project)
    _assert_one_line_error(r, "duplicate node id 'source.transactions'", "seeknal/transforms/dup.yml:2",
                           "seeknal/sources/transactions.py")


def test_ref_to_unknown_node(seeknal, ran):
    project, _ = ran
    _write(project / "seeknal/transforms/t.py",
           "from seeknal_flow import transform\n\n@transform()\ndef t(ctx):\n"
           "    return ctx.ref('source.transaction')\n")
    r = seeknal("plan", cwd=project)
    _assert_one_line_error(r, "seeknal/transforms/t.py:5", "unknown node 'source.transaction'",
                           "did you mean 'source.transactions'")


def test_dependency_cycle(seeknal, ran):
    project, _ = ran
    _write(project / "seeknal/transforms/a.yml", "kind: transform\nname: a\nsql: SELECT * FROM ref('transform.b')\n")
    _write(project / "seeknal/transforms/b.yml", "kind: transform\nname: b\nsql: SELECT * FROM ref('transform.a')\n")
    r = seeknal("plan", cwd=project)
    _assert_one_line_error(r, "dependency cycle", "transform.a (seeknal/transforms/a.yml:2)",
                           "transform.b (seeknal/transforms/b.yml:2)")


RAISING = """from seeknal_flow import transform

@transform()
def boom(ctx):
    ctx.ref("source.transactions")
    print("about to fail")
    return helper()

def helper():
    raise ValueError("revenue must be positive")

@transform()
def fine(ctx):
    return ctx.ref("source.transactions")
"""


def test_node_function_raising_stops_or_continues(seeknal, ran):
    project, before = ran
    _write(project / "seeknal/transforms/boom.py", RAISING)
    r = seeknal("run", cwd=project)
    _assert_one_line_error(r, "transform.boom (seeknal/transforms/boom.py:3) failed: ValueError: revenue must be positive")
    assert "about to fail" in r.out  # what the node printed, under it
    assert 'raise ValueError("revenue must be positive")' in r.text  # traceback tail of the user's code
    assert "[2/2] transform.fine" not in r.out  # the run stopped
    assert _digest(project) == before
    r = seeknal("run", "--continue-on-error", cwd=project)
    assert r.code == 1
    assert "transform.fine" in r.out and "ok:" in r.out.split("transform.fine")[1]
    assert (project / "target/intermediate/transform_fine.parquet").exists()
    # The failed node is retried next run; the good one is not.
    r = seeknal("plan", cwd=project)
    assert "RUN   transform.boom" in r.out and "SKIP  transform.fine" in r.out


def test_node_returning_non_table(seeknal, ran):
    project, _ = ran
    _write(project / "seeknal/transforms/n.py",
           "from seeknal_flow import transform\n\n@transform()\ndef n(ctx):\n    return 42\n")
    r = seeknal("run", cwd=project)
    _assert_one_line_error(r, "transform.n", "returned int", "return a pandas DataFrame, pyarrow Table")


def test_sql_column_that_does_not_exist(seeknal, ran):
    project, before = ran
    _write(project / "seeknal/transforms/q.yml",
           "kind: transform\nname: q\nsql: SELECT revenu FROM ref('source.transactions')\n")
    r = seeknal("run", cwd=project)
    _assert_one_line_error(r, "transform.q (seeknal/transforms/q.yml:2)", 'column "revenu" not found', "revenue")
    assert _digest(project) == before


def test_apply_file_without_decorator(seeknal, ran):
    project, _ = ran
    _write(project / "helper.py", "def f():\n    return 1\n")
    r = seeknal("apply", "helper.py", cwd=project)
    _assert_one_line_error(r, "helper.py: no node found", "@source/@transform/@feature_group")
    assert (project / "helper.py").exists()


def test_apply_refuses_to_replace_a_different_node(seeknal, ran):
    project, _ = ran
    _write(project / "draft.yml", "kind: source\nname: transactions\ntable: data/churn_labels.csv\n")
    r = seeknal("apply", "draft.yml", cwd=project)
    _assert_one_line_error(r, "source.transactions is already defined in seeknal/sources/transactions.py")


def test_draft_of_unknown_kind(seeknal, ran):
    project, _ = ran
    r = seeknal("draft", "widget", "w", cwd=project)
    _assert_one_line_error(r, "unknown kind 'widget'", "source, transform, feature-group")


def test_command_outside_a_project(seeknal, tmp_path):
    r = seeknal("plan", cwd=tmp_path)
    _assert_one_line_error(r, "not inside a seeknal project", "seeknal init --name NAME")
    r = seeknal("repl", "-e", "SELECT 1", cwd=tmp_path)
    _assert_one_line_error(r, "not inside a seeknal project")


def test_non_literal_decorator_argument(seeknal, ran):
    project, _ = ran
    _write(project / "seeknal/transforms/lit.py",
           "from seeknal_flow import transform\nNAME = 'x'\n\n@transform(name=NAME)\ndef lit(ctx):\n    return None\n")
    r = seeknal("plan", cwd=project)
    _assert_one_line_error(r, "seeknal/transforms/lit.py:4", "argument 'name' must be a literal", "`NAME`")


def test_debug_shows_traceback(seeknal, tmp_path):
    r = seeknal("--debug", "plan", cwd=tmp_path)
    assert r.code == 1 and "Traceback" in r.err
