"""Change detection: every fingerprint input re-runs exactly the affected nodes, nothing else does.

A small project is built and run once per module; each case copies it, edits one
thing, and reads `seeknal plan` through the in-process CLI.
"""

from __future__ import annotations

import os
import re
import shutil
import textwrap
from pathlib import Path

import pytest

from seeknal_flow.cli.main import main
from seeknal_flow.errors import PlanError
from seeknal_flow.load.dag import Dag
from seeknal_flow.load.discovery import discover
from seeknal_flow.load.project import Project
from seeknal_flow.load.scaffold import init_project
from seeknal_flow.plan.planner import effective_params, make_plan
from seeknal_flow.plan.run_state import RunState

ALL = {
    "source.raw",
    "source.other",
    "transform.clean",
    "feature_group.cust",
    "transform.report",
    "transform.indep",
}

FILES = {
    "seeknal/sources/raw.py": '''\
        from seeknal_flow import source


        @source(name="raw", table="data/raw.csv", description="Raw orders",
                columns={"amount": "order amount"}, tags=["raw"])
        def raw(ctx=None):
            pass
        ''',
    "seeknal/sources/other.yml": """\
        kind: source
        name: other
        description: Another input
        table: data/other.csv
        columns:
          k: a key
        """,
    "seeknal/transforms/clean.py": '''\
        # /// script
        # dependencies = ["pandas"]
        # ///
        """Cleaning."""
        from seeknal_flow import transform


        def threshold(params):
            """The smallest order kept."""
            return params.get("min_amount", 0)


        @transform(name="clean", description="Orders above the threshold", tags=["daily"])
        def clean(ctx):
            """Drop small orders."""
            raw = ctx.ref("source.raw")
            # keep orders at or above the threshold
            limit = threshold(ctx.params)
            return ctx.duckdb.sql(f"SELECT * FROM raw WHERE amount >= {limit}")
        ''',
    "seeknal/feature_groups/cust.py": '''\
        from seeknal_flow import feature_group


        @feature_group(name="cust", entity="customer", description="Per customer")
        def cust(ctx):
            orders = ctx.ref("transform.clean")
            return ctx.duckdb.sql(
                "SELECT customer_id, SUM(amount) AS total, MAX(ts) AS event_time FROM orders GROUP BY 1"
            )
        ''',
    "seeknal/transforms/report.yml": """\
        kind: transform
        name: report
        description: Top customers
        tags: [daily]
        params:
          limit: 5
        sql: |
          SELECT * FROM ref('feature_group.cust')
          ORDER BY total DESC
        """,
    "seeknal/transforms/indep.yml": """\
        kind: transform
        name: indep
        # an independent branch
        sql: SELECT k, COUNT(*) AS n FROM ref('source.other') GROUP BY k
        """,
    "data/raw.csv": """\
        customer_id,amount,ts
        a,10,2026-01-01
        b,3,2026-01-02
        a,7,2026-01-03
        """,
    "data/other.csv": """\
        k
        x
        y
        """,
}


def _cli(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def _plan(capsys, *extra: str) -> dict[str, tuple[str, str]]:
    capsys.readouterr()
    assert _cli(["plan", *extra]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out.split("Post-run steps:", 1)[0]  # nodes only (steps: tests/integration/test_crash.py)
    rows = re.findall(r"^\s+(RUN|SKIP)\s+(\S+)\s+\(([^)]*)\)", out, flags=re.M)
    return {node: (action, why) for action, node, why in rows}


def _to_run(plan: dict[str, tuple[str, str]]) -> set[str]:
    return {node for node, (action, _) in plan.items() if action == "RUN"}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = init_project("shop", path=tmp_path_factory.mktemp("planner") / "shop")
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert _cli(["run"]) == 0
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture
def project(built, tmp_path, monkeypatch) -> Path:
    root = tmp_path / "shop"
    shutil.copytree(built, root)
    monkeypatch.chdir(root)
    return root


def _edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {rel}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


# -------------------------------------------------------------------- baseline


def test_fresh_project_runs_everything_as_new(tmp_path, monkeypatch, capsys):
    root = init_project("fresh", path=tmp_path / "fresh")
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text), encoding="utf-8")
    monkeypatch.chdir(root)
    plan = _plan(capsys)
    assert plan == {node: ("RUN", "new") for node in ALL}


def test_after_a_run_nothing_runs(project, capsys):
    plan = _plan(capsys)
    assert set(plan) == ALL
    assert _to_run(plan) == set()
    assert all(why == "unchanged" for _, why in plan.values())


def test_moving_the_project_changes_nothing(project, capsys):
    # `project` is a copy of the built project in another folder.
    assert _to_run(_plan(capsys)) == set()


def test_full_runs_everything(project, capsys):
    plan = _plan(capsys, "--full")
    assert plan == {node: ("RUN", "--full") for node in ALL}


# ------------------------------------------------------------ what re-runs

CHANGES = {
    "function-body": (
        "seeknal/transforms/clean.py", "WHERE amount >= {limit}", "WHERE amount > {limit}",
        {"transform.clean": "code changed", "feature_group.cust": "upstream changed", "transform.report": "upstream changed"},
    ),
    "helper-in-same-module": (
        "seeknal/transforms/clean.py", 'params.get("min_amount", 0)', 'params.get("min_amount", 1)',
        {"transform.clean": "code changed", "feature_group.cust": "upstream changed", "transform.report": "upstream changed"},
    ),
    "pep723-deps": (
        "seeknal/transforms/clean.py", '# dependencies = ["pandas"]', '# dependencies = ["pandas", "pyarrow"]',
        {"transform.clean": "code changed", "feature_group.cust": "upstream changed", "transform.report": "upstream changed"},
    ),
    "yaml-sql": (
        "seeknal/transforms/report.yml", "ORDER BY total DESC", "ORDER BY total ASC",
        {"transform.report": "code changed"},
    ),
    "yaml-sql-of-a-branch": (
        "seeknal/transforms/indep.yml", "COUNT(*) AS n", "COUNT(*) AS rows",
        {"transform.indep": "code changed"},
    ),
    "yaml-params": (
        "seeknal/transforms/report.yml", "limit: 5", "limit: 6",
        {"transform.report": "params changed"},
    ),
    "yaml-source-table": (
        "seeknal/sources/other.yml", "table: data/other.csv", "table: data/./other.csv",
        {"source.other": "spec changed", "transform.indep": "upstream changed"},
    ),
}


@pytest.mark.parametrize("case", list(CHANGES))
def test_an_edit_reruns_exactly_the_affected_nodes(project, capsys, case):
    rel, old, new, expected = CHANGES[case]
    _edit(project, rel, old, new)
    plan = _plan(capsys)
    assert _to_run(plan) == set(expected)
    for node, reason in expected.items():
        assert reason in plan[node][1], (node, plan[node])


def test_decorator_argument_change_reruns_the_node_and_downstream(project, capsys):
    _edit(project, "seeknal/feature_groups/cust.py", 'entity="customer"', 'entity={"name": "customer", "join_keys": ["customer_id", "region"]}')
    plan = _plan(capsys)
    assert _to_run(plan) == {"feature_group.cust", "transform.report"}
    assert "spec changed" in plan["feature_group.cust"][1]
    assert plan["transform.report"][1] == "upstream changed"


def test_decorator_params_change_reruns_the_node(project, capsys):
    _edit(project, "seeknal/transforms/clean.py", 'tags=["daily"])', 'tags=["daily"], params={"min_amount": 5})')
    plan = _plan(capsys)
    assert _to_run(plan) == {"transform.clean", "feature_group.cust", "transform.report"}
    assert "params changed" in plan["transform.clean"][1]


def test_cli_params_override_reruns_nodes_that_can_read_it(project, capsys):
    plan = _plan(capsys, "--params", "min_amount=5")
    # clean reads ctx.params; cust and report only follow it downstream.
    assert _to_run(plan) == {"transform.clean", "feature_group.cust", "transform.report"}
    assert plan["transform.clean"][1] == "params changed"
    assert plan["feature_group.cust"][1] == "upstream changed"


def test_cli_params_override_of_a_declared_yaml_param(project, capsys):
    plan = _plan(capsys, "--params", "limit=5")  # same value as declared: nothing changes there
    assert "transform.report" not in {n for n, (a, why) in plan.items() if "params changed" in why}
    plan = _plan(capsys, "--params", "limit=9")
    assert plan["transform.report"][0] == "RUN"
    assert "params changed" in plan["transform.report"][1]
    assert plan["transform.indep"][0] == "SKIP"


def test_data_file_content_change_reruns_the_source_and_downstream(project, capsys):
    with open(project / "data" / "raw.csv", "a", encoding="utf-8") as f:
        f.write("c,20,2026-01-04\n")
    plan = _plan(capsys)
    assert _to_run(plan) == {"source.raw", "transform.clean", "feature_group.cust", "transform.report"}
    assert plan["source.raw"][1] == "data changed"
    assert plan["transform.clean"][1] == "upstream changed"


def test_same_size_data_change_is_seen(project, capsys):
    path = project / "data" / "other.csv"
    stat = path.stat()
    path.write_text(path.read_text(encoding="utf-8").replace("y", "z"), encoding="utf-8")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert _to_run(_plan(capsys)) == {"source.other", "transform.indep"}


def test_missing_output_reruns_the_node(project, capsys):
    (project / "target" / "intermediate" / "transform_indep.parquet").unlink()
    plan = _plan(capsys)
    assert _to_run(plan) == {"transform.indep"}
    assert plan["transform.indep"][1] == "output missing"


# -------------------------------------------------------- what does not re-run

NO_CHANGES = {
    "python-comment": ("seeknal/transforms/clean.py", "# keep orders at or above the threshold", "# a reworded comment"),
    "python-docstring": ("seeknal/transforms/clean.py", '"""Drop small orders."""', '"""Drop orders below the threshold."""'),
    "module-docstring": ("seeknal/transforms/clean.py", '"""Cleaning."""', '"""Cleaning of raw orders."""'),
    "yaml-description": ("seeknal/transforms/report.yml", "description: Top customers", "description: The best customers"),
    "yaml-tags": ("seeknal/transforms/report.yml", "tags: [daily]", "tags: [daily, reporting]"),
    "yaml-comment": ("seeknal/transforms/indep.yml", "# an independent branch", "# an independent branch, reworded"),
    "yaml-source-columns": ("seeknal/sources/other.yml", "k: a key", "k: the key"),
    "yaml-source-description": ("seeknal/sources/other.yml", "description: Another input", "description: Other input"),
}

DECORATOR_DOCS = {
    "decorator-description": ("seeknal/transforms/clean.py", 'description="Orders above the threshold"', 'description="Orders kept"'),
    "decorator-tags": ("seeknal/transforms/clean.py", 'tags=["daily"]', 'tags=["daily", "core"]'),
    "source-decorator-columns": ("seeknal/sources/raw.py", '{"amount": "order amount"}', '{"amount": "amount in EUR"}'),
}
HELPER_DOC = ("seeknal/transforms/clean.py", '"""The smallest order kept."""', '"""The minimum order amount."""')


@pytest.mark.parametrize(
    "case",
    [*NO_CHANGES, *DECORATOR_DOCS, "helper-docstring"],
)
def test_an_edit_that_cannot_change_outputs_reruns_nothing(project, capsys, case):
    rel, old, new = {**NO_CHANGES, **DECORATOR_DOCS, "helper-docstring": HELPER_DOC}[case]
    _edit(project, rel, old, new)
    assert _to_run(_plan(capsys)) == set()


def test_touching_a_data_file_with_identical_content_reruns_nothing(project, capsys):
    path = project / "data" / "raw.csv"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert _to_run(_plan(capsys)) == set()
    capsys.readouterr()
    assert _cli(["run"]) == 0
    assert "Nothing to run" in capsys.readouterr().out
    state = RunState.load(project / "target" / "run_state.json")
    assert state.nodes["source.raw"].files["raw.csv"]["mtime_ns"] == path.stat().st_mtime_ns


def test_rewriting_a_data_file_with_identical_content_reruns_nothing(project, capsys):
    path = project / "data" / "other.csv"
    path.write_bytes(path.read_bytes())
    assert _to_run(_plan(capsys)) == set()


def test_cli_params_unknown_to_every_node_rerun_nothing_but_python_readers(project, capsys):
    plan = _plan(capsys, "--params", "unused_key=1")
    # Only clean's code mentions params; YAML nodes do not declare the key.
    assert _to_run(plan) - {"transform.clean", "feature_group.cust", "transform.report"} == set()
    assert plan["transform.indep"][0] == "SKIP"
    assert plan["source.raw"][0] == "SKIP"


# ------------------------------------------------------------------ make_plan


def test_make_plan_selection_forces_node_and_downstream(project):
    proj = Project(project)
    dag = Dag(discover(proj))
    state = RunState.load(proj.state_path)
    plan = make_plan(proj, dag, state, select={"transform.clean"})
    actions = {n.node_id: (n.action, n.reasons) for n in plan.nodes}
    assert actions["transform.clean"] == ("RUN", ["selected"])
    assert actions["feature_group.cust"] == ("RUN", ["downstream of selection"])
    assert actions["source.raw"] == ("SKIP", ["not selected"])
    assert [n.node_id for n in plan.nodes] == dag.order


def test_make_plan_selection_needs_upstream_outputs(project):
    proj = Project(project)
    (proj.intermediate / "source_raw.parquet").unlink()
    dag = Dag(discover(proj))
    with pytest.raises(PlanError, match=re.escape("source.raw has no output yet and is not selected; run it first or add it to --nodes")):
        make_plan(proj, dag, RunState.load(proj.state_path), select={"transform.clean"})


def test_plan_fingerprints_are_deterministic(project):
    proj = Project(project)
    dag = Dag(discover(proj))
    a = make_plan(proj, dag, RunState.load(proj.state_path))
    b = make_plan(proj, Dag(discover(proj)), RunState.load(proj.state_path))
    assert [n.state.fingerprint for n in a.nodes] == [n.state.fingerprint for n in b.nodes]
    assert len({n.state.fingerprint for n in a.nodes}) == len(a.nodes)


def test_effective_params():
    class Yaml:
        params = {"limit": 5}
        python = None

    assert effective_params(Yaml(), {"limit": 9, "other": 1}) == {"limit": 9}
    assert effective_params(Yaml(), {}) == {"limit": 5}


def test_unknown_nodes_selection_is_an_error(project, capsys):
    assert _cli(["plan", "--nodes", "transform.cleen"]) == 1
    assert "unknown node 'transform.cleen'; did you mean 'transform.clean'?" in capsys.readouterr().err


def test_bad_params_syntax_is_an_error(project, capsys):
    assert _cli(["plan", "--params", "novalue"]) == 1
    assert "--params 'novalue': write key=value" in capsys.readouterr().err


# ------------------------------------------------------- directory sources


def test_partitioned_directory_source_changes(tmp_path, monkeypatch, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = init_project("parts", path=tmp_path / "parts")
    sales = root / "data" / "sales"
    for day in ("2026-01-01", "2026-01-02"):
        (sales / f"day={day}").mkdir(parents=True)
        pq.write_table(pa.table({"v": [1, 2]}), sales / f"day={day}" / "part-0.parquet")
    (root / "seeknal" / "sources" / "sales.yml").write_text(
        "kind: source\nname: sales\nsource: parquet\ntable: data/sales\npartition_by: [day]\n", encoding="utf-8"
    )
    (root / "seeknal" / "transforms" / "daily.yml").write_text(
        "kind: transform\nname: daily\nsql: SELECT day, SUM(v) AS v FROM ref('source.sales') GROUP BY day\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(root)
    assert _cli(["run"]) == 0
    assert _to_run(_plan(capsys)) == set()

    first = sales / "day=2026-01-01" / "part-0.parquet"
    stat = first.stat()
    os.utime(first, ns=(stat.st_atime_ns, stat.st_mtime_ns + 3_000_000_000))  # touched, same bytes
    assert _to_run(_plan(capsys)) == set()

    (sales / "day=2026-01-03").mkdir()
    pq.write_table(pa.table({"v": [5]}), sales / "day=2026-01-03" / "part-0.parquet")
    plan = _plan(capsys)
    assert _to_run(plan) == {"source.sales", "transform.daily"}
    assert plan["source.sales"][1] == "data changed"
    assert _cli(["run"]) == 0

    shutil.rmtree(sales / "day=2026-01-02")
    assert _to_run(_plan(capsys)) == {"source.sales", "transform.daily"}
