"""Python node files -> specs by reading the syntax tree (and discovery over a project)."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pytest

from seeknal_flow.authoring.specs import FeatureGroupSpec, Location, Ref, SourceFormat, SourceSpec, TransformSpec
from seeknal_flow.cli.main import main
from seeknal_flow.errors import SpecError
from seeknal_flow.load.discovery import discover, load_node_file, node_files
from seeknal_flow.load.project import Project
from seeknal_flow.load.python_nodes import load_python_file
from seeknal_flow.load.scaffold import init_project
from seeknal_flow.plan.fingerprint import code_hash


def _write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _load(tmp_path: Path, text: str, rel: str = "seeknal/transforms/nodes.py") -> dict:
    path = _write(tmp_path, rel, text)
    return {s.id: s for s in load_python_file(path, tmp_path)}


def _error(tmp_path: Path, text: str, rel: str = "seeknal/transforms/nodes.py") -> str:
    path = _write(tmp_path, rel, text)
    with pytest.raises(SpecError, match=re.escape(rel)) as info:
        load_python_file(path, tmp_path)
    return str(info.value)


MISSING_IMPORT = textwrap.dedent(
    """\
    import not_installed_pkg_xyz
    from seeknal_flow import source, transform


    @source(name="raw", table="data/raw.csv")
    def raw(ctx=None):
        pass


    @transform(name="clean")
    def clean(ctx):
        df = ctx.ref("source.raw")
        return not_installed_pkg_xyz.clean(df)
    """
)


# ----------------------------------------------------------------- no user code


def test_discovery_does_not_import_the_file(tmp_path, monkeypatch):
    root = init_project("p", path=tmp_path / "p")
    marker = root / "imported"
    _write(root, "seeknal/transforms/nodes.py", MISSING_IMPORT + f"\nopen({str(marker)!r}, 'w').close()\n")
    modules_before = set(sys.modules)
    specs = {s.id: s for s in discover(Project(root))}
    assert set(specs) == {"source.raw", "transform.clean"}
    assert [r.target for r in specs["transform.clean"].refs] == ["source.raw"]
    assert specs["transform.clean"].refs[0].location == Location("seeknal/transforms/nodes.py", 12)
    assert not marker.exists()
    assert "not_installed_pkg_xyz" not in sys.modules
    assert not any("nodes" in m for m in set(sys.modules) - modules_before)


def test_plan_works_for_a_file_whose_imports_are_missing(tmp_path, monkeypatch, capsys):
    root = init_project("p", path=tmp_path / "p")
    _write(root, "seeknal/transforms/nodes.py", MISSING_IMPORT)
    (root / "data" / "raw.csv").write_text("a\n1\n", encoding="utf-8")
    monkeypatch.chdir(root)
    assert _cli(["plan"]) == 0
    out = capsys.readouterr().out
    assert "2 to run, 0 to skip" in out
    assert re.search(r"RUN\s+transform\.clean\s+\(new\)\s+<- source\.raw", out)


def _cli(argv: list[str]) -> int:
    """Run the CLI in-process; its exit code (main() returns normally on success)."""
    try:
        main(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def test_node_files_skip_private_and_hidden(tmp_path):
    root = init_project("p", path=tmp_path / "p")
    _write(root, "seeknal/transforms/_helpers.py", "X = 1\n")
    _write(root, "seeknal/transforms/.hidden.py", "X = 1\n")
    _write(root, "seeknal/_drafts/x.yml", "kind: transform\n")
    _write(root, "seeknal/transforms/notes.txt", "hello\n")
    real = _write(root, "seeknal/transforms/real.py", "from seeknal_flow import transform\n")
    assert node_files(Project(root)) == [real]


def test_load_node_file_rejects_other_suffixes(tmp_path):
    path = _write(tmp_path, "x.txt", "hi")
    with pytest.raises(SpecError, match=re.escape(f"{path}: not a node file; expected .py, .yml or .yaml")):
        load_node_file(path, tmp_path)


# ------------------------------------------------------------------ decorators


def test_positional_name_and_name_defaults_to_function_name(tmp_path):
    specs = _load(
        tmp_path,
        """\
        from seeknal_flow import transform, feature_group

        @transform("by_position")
        def f1(ctx):
            return ctx.ref("source.x")

        @transform()
        def from_function(ctx):
            return ctx.ref("source.x")

        @feature_group(name="fg_name", entity="customer")
        def some_other_function(ctx):
            return ctx.ref("source.x")
        """,
    )
    assert set(specs) == {"transform.by_position", "transform.from_function", "feature_group.fg_name"}
    assert specs["transform.by_position"].python.function == "f1"
    assert specs["feature_group.fg_name"].python.function == "some_other_function"
    assert specs["feature_group.fg_name"].entity.join_keys == ("customer_id",)


def test_several_nodes_per_file_with_their_own_lines(tmp_path):
    specs = _load(
        tmp_path,
        """\
        from seeknal_flow import source, transform, feature_group
        import seeknal_flow


        @source(name="orders", table="data/orders.parquet", partition_by=["day"])
        def orders(ctx=None):
            pass


        @seeknal_flow.transform(name="big", tags=["daily"], params={"min": 100})
        def big(ctx):
            return ctx.ref("source.orders")


        @feature_group(name="cust", entity={"name": "customer", "join_keys": ["cid"]}, event_time_col="ts")
        def cust(ctx):
            \"\"\"Per-customer totals.

            Longer text.
            \"\"\"
            return ctx.ref("transform.big")
        """,
    )
    src, big, cust = specs["source.orders"], specs["transform.big"], specs["feature_group.cust"]
    assert isinstance(src, SourceSpec) and isinstance(big, TransformSpec) and isinstance(cust, FeatureGroupSpec)
    assert src.format == SourceFormat.PARQUET
    assert src.partition_by == ("day",)
    assert src.location == Location("seeknal/transforms/nodes.py", 5)
    assert big.location.line == 10
    assert big.tags == ("daily",)
    assert big.params == {"min": 100}
    assert cust.location.line == 15
    assert cust.entity.join_keys == ("cid",)
    assert cust.event_time_col == "ts"
    assert cust.description == "Per-customer totals."
    assert cust.refs == (Ref("transform.big", Location("seeknal/transforms/nodes.py", 21)),)


def test_decorator_arguments_must_be_literals(tmp_path):
    message = _error(
        tmp_path,
        """\
        from seeknal_flow import transform
        ENTITY = "customer"

        @transform(
            name="t",
            tags=[ENTITY],
        )
        def t(ctx):
            pass
        """,
    )
    assert message == (
        "seeknal/transforms/nodes.py:6: @transform argument 'tags' must be a literal "
        "(string, number, list, dict), found `[ENTITY]`"
    )


def test_decorator_call_expression_is_not_a_literal(tmp_path):
    message = _error(
        tmp_path,
        """\
        from seeknal_flow import source
        import os

        @source(name="s", table=os.path.join("data", "x.csv"))
        def s(ctx=None):
            pass
        """,
    )
    assert message.startswith("seeknal/transforms/nodes.py:4: @source argument 'table' must be a literal")
    assert "`os.path.join('data', 'x.csv')`" in message


@pytest.mark.parametrize(
    ("decorator", "expected"),
    [
        ('@transform("a", "b")', "nodes.py:2: @transform takes only the name positionally; pass the rest as keywords"),
        ("@transform", "nodes.py:2: write @transform(...) with parentheses"),
        ("@transform(**{'name': 'x'})", "nodes.py:2: @transform cannot take **kwargs; write each argument out"),
        ('@transform(name="t", entitty="c")', "nodes.py:2: @transform 't': field 'entitty': unknown field"),
        ('@transform(name="bad-name")', "nodes.py:2: name 'bad-name' must match ^[A-Za-z_][A-Za-z0-9_]*$"),
        ('@transform(isolation="docker")', "nodes.py:2: @transform 't': field 'isolation': invalid enum value 'docker'; valid: inprocess, uv, auto"),
        ('@source(table=3)', "nodes.py:2: @source 't': field 'table': expected `str`, got `int`"),
        ('@source(table="data/x.txt")', "nodes.py:2: source 't': cannot tell the format of 'data/x.txt'; add source=\"csv\""),
        ('@feature_group(ttl="soon")', "nodes.py:2: field 'ttl':"),
    ],
)
def test_decorator_misuse_names_file_line_and_problem(tmp_path, decorator, expected):
    text = f"from seeknal_flow import source, transform, feature_group\n{decorator}\ndef t(ctx):\n    pass\n"
    path = _write(tmp_path, "nodes.py", text)
    with pytest.raises(SpecError, match=re.escape(expected)):
        load_python_file(path, tmp_path)


def test_two_node_decorators_and_async_are_errors(tmp_path):
    path = _write(tmp_path, "two.py", "from seeknal_flow import transform\n@transform()\n@transform(name='b')\ndef t(ctx):\n    pass\n")
    with pytest.raises(SpecError, match=re.escape("two.py:3: 't' has two node decorators; keep one")):
        load_python_file(path, tmp_path)
    path = _write(tmp_path, "asy.py", "from seeknal_flow import transform\n@transform()\nasync def t(ctx):\n    pass\n")
    with pytest.raises(SpecError, match=re.escape("asy.py:3: node 't' must be a plain def, not async")):
        load_python_file(path, tmp_path)


def test_python_syntax_error_names_the_line(tmp_path):
    path = _write(tmp_path, "bad.py", "from seeknal_flow import transform\n@transform()\ndef t(ctx)\n    pass\n")
    with pytest.raises(SpecError, match=re.escape("bad.py:3: Python syntax error: expected ':'")):
        load_python_file(path, tmp_path)


def test_every_problem_in_a_file_is_reported_at_once(tmp_path):
    message = _error(
        tmp_path,
        """\
        from seeknal_flow import transform

        @transform(name="a", colour="red")
        def a(ctx):
            pass

        @transform(name="b", tags="not-a-list")
        def b(ctx):
            pass
        """,
    )
    lines = message.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("seeknal/transforms/nodes.py:3: @transform 'a': field 'colour': unknown field")
    assert lines[1].startswith("seeknal/transforms/nodes.py:7: @transform 'b': field 'tags':")


def test_undecorated_functions_and_other_decorators_are_ignored(tmp_path):
    specs = _load(
        tmp_path,
        """\
        import functools
        from seeknal_flow import transform

        @functools.lru_cache()
        def cached(x):
            return x

        def plain(ctx):
            return ctx.ref(some_variable)

        @transform()
        def t(ctx):
            return ctx.ref("source.x")
        """,
    )
    assert list(specs) == ["transform.t"]


# ------------------------------------------------------------------------ refs


def test_ctx_ref_with_a_non_literal_is_an_error_at_that_line(tmp_path):
    message = _error(
        tmp_path,
        """\
        from seeknal_flow import transform

        @transform(name="t")
        def t(ctx):
            name = "source.x"

            return ctx.ref(name)
        """,
    )
    assert message == (
        "seeknal/transforms/nodes.py:7: ctx.ref() needs a string literal such as "
        'ctx.ref("source.transactions"), found `name`'
    )


def test_ctx_ref_with_an_f_string_is_an_error(tmp_path):
    message = _error(
        tmp_path,
        """\
        from seeknal_flow import transform

        @transform(name="t")
        def t(ctx):
            kind = "source"
            return ctx.ref(f"{kind}.x")
        """,
    )
    assert message.startswith("seeknal/transforms/nodes.py:6: ctx.ref() needs a string literal")


def test_refs_inside_sql_string_literals(tmp_path):
    specs = _load(
        tmp_path,
        """\
        from seeknal_flow import transform

        @transform(name="t")
        def t(ctx):
            a = ctx.ref("source.a")
            return ctx.duckdb.sql(
                \"\"\"
                SELECT *
                FROM a
                JOIN ref('source.b') USING (id)
                JOIN ref("feature_group.c") USING (id)
                \"\"\"
            )
        """,
    )
    refs = specs["transform.t"].refs
    assert {r.target for r in refs} == {"source.a", "source.b", "feature_group.c"}
    assert next(r for r in refs if r.target == "source.a").location.line == 5


def test_ctx_ref_with_a_keyword_argument_is_a_dependency(tmp_path):
    specs = _load(
        tmp_path,
        """\
        from seeknal_flow import transform

        @transform(name="t")
        def t(ctx):
            return ctx.ref(node_id="source.x")
        """,
    )
    assert [r.target for r in specs["transform.t"].refs] == ["source.x"]


def test_refs_of_one_node_do_not_leak_into_another(tmp_path):
    specs = _load(
        tmp_path,
        """\
        from seeknal_flow import transform

        @transform(name="a")
        def a(ctx):
            return ctx.ref("source.x")

        @transform(name="b")
        def b(ctx):
            return ctx.duckdb.sql("SELECT * FROM ref('transform.a')")
        """,
    )
    assert [r.target for r in specs["transform.a"].refs] == ["source.x"]
    assert [r.target for r in specs["transform.b"].refs] == ["transform.a"]


# --------------------------------------------------------------------- PEP 723


def test_pep723_dependencies_on_the_spec(tmp_path):
    specs = _load(
        tmp_path,
        """\
        # /// script
        # requires-python = ">=3.11"
        # dependencies = [
        #   "scikit-learn>=1.4",
        #   "lightgbm",
        # ]
        # ///
        from seeknal_flow import transform

        @transform(name="a")
        def a(ctx):
            return ctx.ref("source.x")

        @transform(name="b")
        def b(ctx):
            return ctx.ref("source.x")
        """,
    )
    for spec in specs.values():
        assert spec.python.dependencies == ("scikit-learn>=1.4", "lightgbm")
        assert spec.python.requires_python == ">=3.11"


def test_no_pep723_header_means_no_dependencies(tmp_path):
    specs = _load(tmp_path, "from seeknal_flow import transform\n@transform()\ndef t(ctx):\n    pass\n")
    assert specs["transform.t"].python.dependencies == ()


def test_pep723_invalid_toml_names_the_line(tmp_path):
    message = _error(
        tmp_path,
        """\
        from seeknal_flow import transform
        # /// script
        # dependencies = ["pandas"
        # ///
        @transform()
        def t(ctx):
            pass
        """,
    )
    assert message.startswith("seeknal/transforms/nodes.py:2: PEP 723 header is not valid TOML")


def test_pep723_dependencies_must_be_strings(tmp_path):
    message = _error(tmp_path, '# /// script\n# dependencies = [1]\n# ///\n')
    assert message.startswith("seeknal/transforms/nodes.py:1: PEP 723 'dependencies' must be a list of strings")


# ----------------------------------------------------------------- code hashes

BASE = '''\
"""Module docstring."""
import math
from seeknal_flow import transform, feature_group

RATE = 2


def helper(x):
    """Helper docstring."""
    return x * RATE  # helper comment


@transform(name="uses_helper", description="first", tags=["a"])
def uses_helper(ctx):
    """Node docstring."""
    # a comment
    df = ctx.ref("source.x")
    return helper(df)


@feature_group(name="other", entity="customer")
def other(ctx):
    return ctx.ref("source.x")
'''


def _hashes(tmp_path: Path, text: str) -> dict[str, str]:
    return {node_id: code_hash(spec) for node_id, spec in _load(tmp_path, text).items()}


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('"""Node docstring."""', '"""A rewritten node docstring."""'),
        ("    # a comment\n", "    # a different comment\n    # over two lines\n"),
        ("  # helper comment", "  # changed"),
        ('"""Module docstring."""', '"""Another module docstring."""'),
        ("RATE = 2\n", "RATE = 2  # trailing comment\n\n\n"),
        ('    df = ctx.ref("source.x")', "    df = ctx.ref('source.x')"),
    ],
    ids=["node-docstring", "node-comment", "helper-comment", "module-docstring", "blank-lines", "quote-style"],
)
def test_docs_and_formatting_edits_keep_the_code_hash(tmp_path, old, new):
    assert old in BASE
    assert _hashes(tmp_path, BASE.replace(old, new)) == _hashes(tmp_path, BASE)


def test_helper_docstring_edit_keeps_the_code_hash(tmp_path):
    assert _hashes(tmp_path, BASE.replace("Helper docstring.", "Better helper docstring.")) == _hashes(tmp_path, BASE)


@pytest.mark.parametrize(("old", "new"), [('description="first"', 'description="second"'), ('tags=["a"]', 'tags=["a", "b"]')])
def test_description_and_tags_edits_keep_the_code_hash(tmp_path, old, new):
    assert _hashes(tmp_path, BASE.replace(old, new)) == _hashes(tmp_path, BASE)


def test_body_edit_changes_only_that_node(tmp_path):
    before = _hashes(tmp_path, BASE)
    after = _hashes(tmp_path, BASE.replace("return helper(df)", "return helper(df) + 1"))
    assert after["transform.uses_helper"] != before["transform.uses_helper"]
    assert after["feature_group.other"] == before["feature_group.other"]


@pytest.mark.parametrize(
    ("old", "new"),
    [("return x * RATE", "return x * RATE + 1"), ("RATE = 2", "RATE = 3"), ("import math", "import math, json")],
    ids=["helper-body", "module-constant", "import"],
)
def test_module_level_edit_changes_the_code_hash(tmp_path, old, new):
    before = _hashes(tmp_path, BASE)
    after = _hashes(tmp_path, BASE.replace(old, new))
    assert after["transform.uses_helper"] != before["transform.uses_helper"]


def test_pep723_dependency_edit_changes_the_code_hash(tmp_path):
    header = '# /// script\n# dependencies = ["pandas"]\n# ///\n'
    before = _hashes(tmp_path, header + BASE)
    after = _hashes(tmp_path, header.replace('"pandas"', '"pandas>=2.2"') + BASE)
    assert all(after[k] != before[k] for k in before)
    reordered = '# /// script\n# dependencies = ["polars", "pandas"]\n# ///\n'
    assert _hashes(tmp_path, reordered + BASE) == _hashes(tmp_path, reordered.replace('"polars", "pandas"', '"pandas", "polars"') + BASE)
