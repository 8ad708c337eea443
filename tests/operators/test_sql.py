"""SqlOperator and rewrite_refs: DuckDB SQL over Parquet and in-memory inputs vs pandas."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import operators.sql as sql_module
from operators.errors import EngineError
from operators.sql import SqlOperator, rewrite_refs
from operators.sql_text import quote_ident

PROPERTY = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

ROWS = st.lists(
    st.fixed_dictionaries(
        {
            "k": st.sampled_from(["a", "b", "c", "d"]),
            "v": st.integers(min_value=-1000, max_value=1000),
        }
    ),
    min_size=0,
    max_size=60,
)
SCHEMA = pa.schema([("k", pa.string()), ("v", pa.int64())])


# ------------------------------------------------------------------ rewrite_refs


def test_rewrite_refs_quotes_the_view_name():
    assert rewrite_refs("SELECT * FROM ref('source.x')", {"source.x": "source_x"}) == 'SELECT * FROM "source_x"'


def test_rewrite_refs_accepts_double_quotes_and_spaces():
    sql = 'SELECT * FROM ref( "source.x" ) JOIN ref(\'feature_group.f\') USING (id)'
    views = {"source.x": "source_x", "feature_group.f": "feature_group_f"}
    assert rewrite_refs(sql, views) == 'SELECT * FROM "source_x" JOIN "feature_group_f" USING (id)'


def test_rewrite_refs_every_occurrence():
    sql = "SELECT * FROM ref('source.x') a JOIN ref('source.x') b USING (id)"
    assert rewrite_refs(sql, {"source.x": "v"}) == 'SELECT * FROM "v" a JOIN "v" b USING (id)'


def test_rewrite_refs_escapes_quotes_in_view_names():
    assert rewrite_refs("FROM ref('source.x')", {"source.x": 'we"ird'}) == 'FROM "we""ird"'
    assert quote_ident('a"b') == '"a""b"'


def test_rewrite_refs_leaves_other_functions_alone():
    sql = "SELECT myref('source.x'), prefer('source.x') FROM t"
    assert rewrite_refs(sql, {"source.x": "v"}) == sql


def test_rewrite_refs_unknown_target_is_an_error():
    with pytest.raises(EngineError, match=re.escape("ref('source.q') is not an input of this node")):
        rewrite_refs("SELECT * FROM ref('source.q')", {"source.x": "source_x"})


# ------------------------------------------------------------------- SqlOperator


def _tmpdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="seeknal_sql_"))


def _input(table: pa.Table, how: str, d: Path):
    if how == "memory":
        return table
    if how == "file":
        path = d / "t.parquet"
        pq.write_table(table, path)
        return path
    if how == "files":
        half = table.num_rows // 2
        paths = [d / "t0.parquet", d / "t1.parquet"]
        pq.write_table(table.slice(0, half), paths[0])
        pq.write_table(table.slice(half), paths[1])
        return paths
    folder = d / "t"  # Hive directory
    folder.mkdir()
    pq.write_to_dataset(table, folder, partition_cols=["k"]) if table.num_rows else pq.write_table(table, folder / "empty.parquet")
    return folder


GROUP_SQL = (
    "SELECT k, CAST(SUM(v) AS BIGINT) AS total, COUNT(*) AS n FROM ref('source.t') "
    "WHERE v > 0 GROUP BY k ORDER BY k"
)


def _group_reference(rows: list[dict]) -> list[dict]:
    df = pd.DataFrame(rows, columns=["k", "v"])
    df = df[df["v"] > 0]
    if df.empty:
        return []
    out = df.groupby("k", sort=True).agg(total=("v", "sum"), n=("v", "size")).reset_index()
    return [{"k": r.k, "total": int(r.total), "n": int(r.n)} for r in out.itertuples()]


@PROPERTY
@given(rows=ROWS, how=st.sampled_from(["memory", "file", "files", "hive"]), batch_rows=st.integers(1, 8))
def test_group_by_matches_pandas(rows, how, batch_rows, monkeypatch):
    monkeypatch.setattr(sql_module, "BATCH_ROWS", batch_rows)
    d = _tmpdir()
    try:
        table = pa.Table.from_pylist(rows, schema=SCHEMA)
        op = SqlOperator(GROUP_SQL, {"source.t": ("source_t", _input(table, how, d))})
        batches = list(op.batches())
        got = [r for b in batches for r in b.to_pylist()]
        assert got == _group_reference(rows)
        assert all(b.num_rows <= batch_rows for b in batches)
        assert op.schema.names == ["k", "total", "n"]
    finally:
        shutil.rmtree(d)


@PROPERTY
@given(left=ROWS, right=ROWS)
def test_join_of_parquet_and_memory_inputs_matches_pandas(left, right):
    d = _tmpdir()
    try:
        lt = pa.Table.from_pylist(left, schema=SCHEMA)
        rt = pa.Table.from_pylist(right, schema=SCHEMA)
        path = d / "left.parquet"
        pq.write_table(lt, path)
        op = SqlOperator(
            "SELECT l.k, l.v AS lv, r.v AS rv FROM ref('source.l') l JOIN ref('transform.r') r ON l.k = r.k "
            "ORDER BY l.k, lv, rv",
            {"source.l": ("source_l", path), "transform.r": ("transform_r", rt)},
        )
        got = op.read_all().to_pylist()
        ldf = pd.DataFrame(left, columns=["k", "v"])
        rdf = pd.DataFrame(right, columns=["k", "v"])
        ref = ldf.merge(rdf, on="k", suffixes=("_l", "_r")).sort_values(["k", "v_l", "v_r"])
        expected = [{"k": r.k, "lv": int(r.v_l), "rv": int(r.v_r)} for r in ref.itertuples()]
        assert got == expected
    finally:
        shutil.rmtree(d)


def test_read_all_of_empty_result_keeps_schema(tmp_path):
    op = SqlOperator("SELECT a, a * 2 AS b FROM ref('source.t') WHERE a > 100", {"source.t": ("source_t", pa.table({"a": [1, 2]}))})
    table = op.read_all()
    assert table.num_rows == 0
    assert table.schema.names == ["a", "b"]


def test_sql_without_inputs():
    op = SqlOperator("SELECT 42 AS answer", {})
    assert op.read_all().to_pylist() == [{"answer": 42}]
    assert op.describe() == "DuckDBSql(inputs: none)"


def test_describe_lists_views(tmp_path):
    op = SqlOperator("SELECT 1", {"source.a": ("source_a", pa.table({"x": [1]})), "source.b": ("source_b", pa.table({"x": [1]}))})
    assert op.describe() == "DuckDBSql(inputs: source_a, source_b)"


def _unknown_column_op(tmp_path: Path) -> SqlOperator:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"amount": [1, 2], "customer_id": ["x", "y"]}), path)
    return SqlOperator(
        "SELECT customer_id,\n       SUM(amout) AS total\nFROM ref('source.t')\nGROUP BY 1",
        {"source.t": ("source_t", path)},
    )


def test_unknown_column_error_is_one_line_naming_the_column_in_schema(tmp_path):
    with pytest.raises(EngineError, match=re.escape('SQL error: Binder Error: Referenced column "amout" not found')) as info:
        _ = _unknown_column_op(tmp_path).schema
    assert "\n" not in str(info.value)
    assert "LINE" not in str(info.value)


def test_unknown_column_error_is_one_line_naming_the_column_in_batches(tmp_path):
    with pytest.raises(EngineError, match=re.escape('"amout"')) as info:
        list(_unknown_column_op(tmp_path).batches())
    assert "\n" not in str(info.value)


def test_sql_syntax_error_is_one_line():
    op = SqlOperator("SELEC 1", {})
    with pytest.raises(EngineError, match=re.escape("SQL error: Parser Error:")) as info:
        op.read_all()
    assert "\n" not in str(info.value)


def test_ref_to_a_non_input_is_an_error():
    op = SqlOperator("SELECT * FROM ref('source.other')", {"source.t": ("source_t", pa.table({"a": [1]}))})
    with pytest.raises(EngineError, match=re.escape("ref('source.other') is not an input of this node")):
        op.read_all()


def test_parquet_input_path_with_quote(tmp_path):
    folder = tmp_path / "it's"
    folder.mkdir()
    path = folder / "t.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3]}), path)
    op = SqlOperator("SELECT SUM(a) AS s FROM ref('source.t')", {"source.t": ("source_t", path)})
    assert op.read_all().to_pylist() == [{"s": 6}]


# ------------------------------------------------------------------ run_interruptible


def test_run_interruptible_stops_a_long_copy_at_once(tmp_path):
    # One long DuckDB call (consolidation's COPY) returns to Python only when it ends:
    # Ctrl-C must interrupt it at once, and the connection must be usable (closable) after.
    import os
    import signal
    import threading
    import time

    import duckdb

    from operators.sql import run_interruptible

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    con = duckdb.connect()
    try:
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        began = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            run_interruptible(con, "COPY (SELECT i, md5(CAST(i AS VARCHAR)) AS h FROM range(2000000000) t(i)) "
                                   f"TO '{tmp_path / 'x.parquet'}' (FORMAT parquet)")
        assert time.monotonic() - began < 5
    finally:
        signal.signal(signal.SIGINT, previous)
    con.close()  # not "busy with another call": the statement has really stopped
    assert run_interruptible(duckdb.connect(), f"COPY (SELECT 1 AS a) TO '{tmp_path / 'y.parquet'}'") == 1
