"""as_reader, PythonCallOperator (user-code boundary, captured output) and load_function."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

import operators.python_call as python_call
from operators.errors import EngineError
from operators.python_call import ACCEPTED, PythonCallOperator, UserCodeError, as_reader, load_function

EXPECTED = [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]


class _StreamOnly:
    """Speaks only the Arrow C stream protocol (like FeatureFrame or a polars frame)."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema=None):
        return self._table.to_reader().__arrow_c_stream__(requested_schema)


def _values():
    table = pa.table({"a": [1, 2], "b": ["x", "y"]})
    con = duckdb.connect()
    return {
        "pandas": pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}),
        "table": table,
        "record_batch": table.to_batches()[0],
        "reader": table.to_reader(),
        "duckdb": con.sql("SELECT * FROM (VALUES (1, 'x'), (2, 'y')) t(a, b) ORDER BY a"),
        "c_stream": _StreamOnly(table),
    }


@pytest.mark.parametrize("kind", ["pandas", "table", "record_batch", "reader", "duckdb", "c_stream"])
def test_as_reader_accepts(kind):
    reader = as_reader(_values()[kind], "transform.t")
    assert isinstance(reader, pa.RecordBatchReader)
    assert reader.read_all().to_pylist() == EXPECTED


def test_as_reader_accepts_polars():
    pl = pytest.importorskip("polars")
    reader = as_reader(pl.DataFrame({"a": [1, 2], "b": ["x", "y"]}), "transform.t")
    assert reader.read_all().to_pylist() == EXPECTED


def test_as_reader_returns_a_reader_unchanged():
    reader = pa.table({"a": [1]}).to_reader()
    assert as_reader(reader, "t") is reader


def test_as_reader_streams_a_table_in_batches(monkeypatch):
    monkeypatch.setattr(python_call, "BATCH_ROWS", 3)
    reader = as_reader(pa.table({"a": list(range(10))}), "t")
    assert [b.num_rows for b in reader] == [3, 3, 3, 1]


@pytest.mark.parametrize(("value", "name"), [(1, "int"), (None, "None"), ("SELECT 1", "str"), ([1, 2], "list")])
def test_as_reader_rejects_other_values_listing_accepted_types(value, name):
    with pytest.raises(EngineError, match=re.escape(f"transform.t returned {name}; return {ACCEPTED}")):
        as_reader(value, "transform.t")


def test_accepted_types_message_names_every_family():
    for word in ("pandas DataFrame", "pyarrow Table", "RecordBatchReader", "DuckDB relation", "polars", "FeatureFrame"):
        assert word in ACCEPTED


def test_as_reader_keeps_a_named_pandas_index():
    df = pd.DataFrame({"customer_id": ["a", "b", "a"], "v": [1, 2, 3]}).groupby("customer_id").sum()
    table = as_reader(df, "feature_group.f").read_all()
    assert table.to_pylist() == [{"customer_id": "a", "v": 4}, {"customer_id": "b", "v": 2}]


def test_as_reader_drops_a_default_range_index():
    df = pd.DataFrame({"v": [1, 2, 3]}).iloc[1:]
    assert as_reader(df, "t").read_all().to_pylist() == [{"v": 2}, {"v": 3}]


# ------------------------------------------------------------ PythonCallOperator


def _node_file(tmp_path: Path, body: str, name: str = "my_node.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def test_user_error_carries_traceback_tail_naming_the_user_file(tmp_path):
    path = _node_file(
        tmp_path,
        """\
        def helper(x):
            return x / 0


        def node(ctx):
            return helper(1)
        """,
    )
    fn = load_function(path, "node")
    op = PythonCallOperator(fn, None, label="transform.t", path=path)
    with pytest.raises(UserCodeError, match=re.escape("ZeroDivisionError: division by zero")) as info:
        _ = op.schema
    tail = info.value.tail
    assert str(path) in tail
    assert "line 2" in tail and "line 6" in tail
    assert "return x / 0" in tail
    assert tail.rstrip().endswith("ZeroDivisionError: division by zero")
    assert "python_call.py" not in tail  # framework frames are cut
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_user_error_without_path_keeps_last_frames():
    def node(ctx):
        raise KeyError("missing_column")

    op = PythonCallOperator(node, None, label="transform.t")
    with pytest.raises(UserCodeError, match=re.escape("KeyError: 'missing_column'")) as info:
        list(op.batches())
    assert "missing_column" in info.value.tail
    assert __file__ in info.value.tail


def test_engine_errors_from_user_code_pass_through_unwrapped():
    def node(ctx):
        raise EngineError("already user-facing")

    op = PythonCallOperator(node, None, label="transform.t")
    with pytest.raises(EngineError, match=re.escape("already user-facing")) as info:
        _ = op.schema
    assert not isinstance(info.value, UserCodeError)


def test_prints_are_captured_in_output(capsys):
    import sys

    def node(ctx):
        print("hello from node")
        print("to stderr", file=sys.stderr)
        return pa.table({"a": [1]})

    op = PythonCallOperator(node, {"k": 1}, label="transform.t")
    assert op.output == ""
    assert [b.num_rows for b in op.batches()] == [1]
    assert "hello from node" in op.output
    assert "to stderr" in op.output
    captured = capsys.readouterr()
    assert "hello from node" not in captured.out
    assert "to stderr" not in captured.err


def test_output_is_captured_even_when_the_function_fails():
    def node(ctx):
        print("got this far")
        raise ValueError("then broke")

    op = PythonCallOperator(node, None, label="transform.t")
    with pytest.raises(UserCodeError, match=re.escape("ValueError: then broke")):
        _ = op.schema
    assert op.output == "got this far\n"


def test_function_is_called_once_and_receives_ctx():
    calls = []

    def node(ctx):
        calls.append(ctx)
        return pa.table({"a": [1, 2]})

    ctx = object()
    op = PythonCallOperator(node, ctx, label="transform.t")
    assert op.schema.names == ["a"]
    assert [r for b in op.batches() for r in b.to_pylist()] == [{"a": 1}, {"a": 2}]
    assert calls == [ctx]
    assert op.describe() == "PythonCall(transform.t)"


def test_wrong_return_type_is_an_engine_error_naming_the_node():
    op = PythonCallOperator(lambda ctx: None, None, label="feature_group.f")
    with pytest.raises(EngineError, match=re.escape("feature_group.f returned None; return a pandas DataFrame")):
        _ = op.schema


def test_duckdb_relation_failing_at_execution_is_a_one_line_engine_error():
    con = duckdb.connect()

    def node(ctx):
        return con.sql("SELECT CAST('x' || range AS INTEGER) AS v FROM range(3)")

    op = PythonCallOperator(node, None, label="transform.t")
    with pytest.raises(EngineError, match=r"transform\.t.*Conversion Error") as info:
        list(op.batches())
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------- load_function


def test_load_function_reloads_an_edited_file(tmp_path):
    path = _node_file(tmp_path, "def node(ctx):\n    return 1\n")
    first = load_function(path, "node")
    assert first(None) == 1
    assert load_function(path, "node") is first  # same content: same module
    path.write_text("def node(ctx):\n    return 2\n", encoding="utf-8")  # same size, maybe same mtime
    second = load_function(path, "node")
    assert second(None) == 2
    path.write_text("def node(ctx):\n    return 1\n", encoding="utf-8")
    assert load_function(path, "node")(None) == 1


def test_load_function_lets_a_node_import_sibling_helpers(tmp_path):
    _node_file(tmp_path, "FACTOR = 7\n", name="_helpers_for_sibling_test.py")
    path = _node_file(tmp_path, "from _helpers_for_sibling_test import FACTOR\n\ndef node(ctx):\n    return FACTOR\n")
    import sys

    before = list(sys.path)
    assert load_function(path, "node")(None) == 7
    assert sys.path == before


def test_load_function_missing_dependency_names_the_package(tmp_path):
    path = _node_file(tmp_path, "import not_installed_pkg_xyz\n\ndef node(ctx):\n    return 1\n", name="needs_pkg.py")
    with pytest.raises(
        EngineError,
        match=re.escape("cannot import needs_pkg.py: No module named 'not_installed_pkg_xyz'; install 'not_installed_pkg_xyz'"),
    ):
        load_function(path, "node")


def test_load_function_import_time_error_is_user_code_error(tmp_path):
    path = _node_file(tmp_path, "X = 1 / 0\n\ndef node(ctx):\n    return 1\n", name="broken_module.py")
    with pytest.raises(UserCodeError, match=re.escape("importing broken_module.py raised ZeroDivisionError: division by zero")) as info:
        load_function(path, "node")
    assert str(path) in info.value.tail


def test_load_function_does_not_run_the_node_body(tmp_path):
    marker = tmp_path / "ran"
    path = _node_file(
        tmp_path,
        f"""\
        from pathlib import Path

        def node(ctx):
            Path({str(marker)!r}).write_text("ran")
        """,
    )
    load_function(path, "node")
    assert not marker.exists()
