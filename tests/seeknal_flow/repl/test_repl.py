"""The REPL: views per output, read-only refusal, formats, --output files, interactive loop."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seeknal_flow.cli.main import main
from seeknal_flow.errors import SeeknalError
from seeknal_flow.load.project import Project
from seeknal_flow.load.scaffold import init_project
from seeknal_flow.repl.loop import interactive
from seeknal_flow.repl.session import ReplSession, format_rows

ORDERS = pa.table(
    {
        "order_id": [1, 2, 3],
        "customer_id": ["a", "b", "a"],
        "amount": [10.5, 3.0, 7.25],
        "day": [dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)],
    }
)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = init_project("shop", path=tmp_path_factory.mktemp("repl") / "shop")
    inter = root / "target" / "intermediate"
    inter.mkdir(parents=True, exist_ok=True)
    pq.write_table(ORDERS, inter / "source_orders.parquet")
    pq.write_table(pa.table({"customer_id": ["a", "b"], "total": [17.75, 3.0]}), inter / "feature_group_cust.parquet")
    pq.write_table(pa.table({"x": [1]}), inter / ".source_orders.parquet.123.tmp")  # a sink's temp file
    parts = inter / "transform_parts.parquet"
    for region, values in (("north", [1, 2]), ("south", [3])):
        (parts / f"region={region}").mkdir(parents=True)
        pq.write_table(pa.table({"v": values}), parts / f"region={region}" / "part-0.parquet")
    store = root / "target" / "feature_store" / "customer"
    store.mkdir(parents=True)
    pq.write_table(pa.table({"customer_id": ["a", "b"], "event_time": [dt.datetime(2026, 1, 3), dt.datetime(2026, 1, 2)]}), store / "features.parquet")
    return root


@pytest.fixture
def session(root) -> ReplSession:
    return ReplSession(Project(root))


def _cli(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


# ------------------------------------------------------------------------ views


def test_a_view_per_output_and_entity(session):
    assert sorted(session.views) == ["entity_customer", "feature_group_cust", "source_orders", "transform_parts"]
    assert dict(session.tables())["source_orders"] == "target/intermediate/source_orders.parquet"
    assert dict(session.tables())["entity_customer"] == "target/feature_store/customer/features.parquet"


def test_views_read_the_outputs(session):
    assert session.query("SELECT SUM(amount) AS s FROM source_orders") == (["s"], [(20.75,)])
    assert session.query("SELECT COUNT(*) FROM entity_customer")[1] == [(2,)]
    cols, rows = session.query("SELECT region, SUM(v) FROM transform_parts GROUP BY 1 ORDER BY 1")
    assert rows == [("north", 3), ("south", 3)]


def test_schema_of_a_view(session):
    assert session.schema("source_orders") == [
        ("order_id", "BIGINT"),
        ("customer_id", "VARCHAR"),
        ("amount", "DOUBLE"),
        ("day", "DATE"),
    ]
    with pytest.raises(SeeknalError, match=re.escape("no view named 'nope'; views: feature_group_cust, source_orders, transform_parts, entity_customer")):
        session.schema("nope")


def test_empty_project_has_no_views(tmp_path):
    s = ReplSession(Project(init_project("empty", path=tmp_path / "empty")))
    assert s.views == {}
    assert s.query("SELECT 1 AS one") == (["one"], [(1,)])


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM source_orders WHERE amount > 5",
        "FROM source_orders",
        "WITH t AS (SELECT 1 AS x) SELECT * FROM t",
        "EXPLAIN SELECT * FROM source_orders",
        "DESCRIBE source_orders",
        "select 1;",
    ],
)
def test_queries_are_allowed(session, sql):
    session.query(sql)


# -------------------------------------------------------------------- read-only


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("INSERT INTO source_orders VALUES (4, 'c', 1.0, DATE '2026-01-04')", "INSERT"),
        ("CREATE TABLE t AS SELECT * FROM source_orders", "CREATE"),
        ("COPY source_orders TO 'out.csv'", "COPY"),
        ("ATTACH 'other.duckdb' AS other", "ATTACH"),
        ("DROP VIEW source_orders", "DROP"),
        ("SELECT 1; DELETE FROM source_orders", "DELETE"),
        ("SET threads = 1", "SET"),
        ("INSTALL httpfs", "LOAD"),
    ],
)
def test_non_queries_are_refused(session, sql, kind):
    with pytest.raises(SeeknalError, match=re.escape(f"the REPL is read-only: {kind} statements are refused; write a SELECT query")):
        session.query(sql)
    assert "source_orders" in dict(session.tables())
    assert session.query("SELECT COUNT(*) FROM source_orders")[1] == [(3,)]


@pytest.mark.parametrize("statement", ["COPY (SELECT 42 AS v) TO '{out}'", "CREATE TABLE sneaky AS SELECT 1 AS v"])
def test_explain_analyze_cannot_write(session, tmp_path, statement):
    out = tmp_path / "leak.csv"
    with pytest.raises(SeeknalError, match=re.escape("read-only")):
        session.query("EXPLAIN ANALYZE " + statement.format(out=out))


def test_empty_and_invalid_statements(session):
    with pytest.raises(SeeknalError, match=r"^empty statement$"):
        session.query("   ")
    with pytest.raises(SeeknalError, match=re.escape("SQL error: Parser Error")):
        session.query("SELEC 1")
    with pytest.raises(SeeknalError, match=re.escape('SQL error: Binder Error: Referenced column "nope" not found')) as info:
        session.query("SELECT nope FROM source_orders")
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------- formats


def test_format_rows_json_is_an_array_of_row_objects():
    text = format_rows(["a", "d", "n"], [(1, dt.date(2026, 1, 2), None), (2, dt.date(2026, 1, 3), 1.5)], "json")
    assert json.loads(text) == [{"a": 1, "d": "2026-01-02", "n": None}, {"a": 2, "d": "2026-01-03", "n": 1.5}]
    assert json.loads(format_rows(["a"], [], "json")) == []


def test_format_rows_csv():
    text = format_rows(["a", "b"], [(1, "x,y"), (2, None)], "csv")
    assert list(csv.reader(io.StringIO(text))) == [["a", "b"], ["1", "x,y"], ["2", ""]]


def test_format_rows_table():
    assert format_rows(["a", "b"], [(1, "x"), (22, None)], "table").splitlines() == ["a   b", "--  ----", "1   x", "22  NULL"]


def test_cli_execute_json(root, monkeypatch, capsys):
    monkeypatch.chdir(root)
    assert _cli(["repl", "-e", "SELECT order_id, day FROM source_orders ORDER BY order_id", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [
        {"order_id": 1, "day": "2026-01-01"},
        {"order_id": 2, "day": "2026-01-02"},
        {"order_id": 3, "day": "2026-01-03"},
    ]


def test_cli_execute_csv(root, monkeypatch, capsys):
    monkeypatch.chdir(root)
    assert _cli(["repl", "-e", "SELECT customer_id, total FROM feature_group_cust ORDER BY 1", "--format", "csv"]) == 0
    assert capsys.readouterr().out == "customer_id,total\na,17.75\nb,3.0\n"


def test_cli_execute_table_is_default(root, monkeypatch, capsys):
    monkeypatch.chdir(root)
    assert _cli(["repl", "-e", "SELECT customer_id FROM feature_group_cust ORDER BY 1"]) == 0
    assert capsys.readouterr().out.splitlines() == ["customer_id", "-----------", "a", "b"]


def test_cli_refuses_writes_with_one_line_and_exit_1(root, monkeypatch, capsys):
    monkeypatch.chdir(root)
    assert _cli(["repl", "-e", "DELETE FROM source_orders"]) == 1
    err = capsys.readouterr().err
    assert err == "error: the REPL is read-only: DELETE statements are refused; write a SELECT query\n"


@pytest.mark.parametrize("suffix", [".csv", ".json", ".parquet"])
def test_cli_output_writes_files(root, tmp_path, monkeypatch, capsys, suffix):
    monkeypatch.chdir(root)
    out = tmp_path / f"result{suffix}"
    assert _cli(["repl", "-e", "SELECT order_id, amount FROM source_orders ORDER BY order_id", "--output", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote 3 rows to {out}"
    expected = [{"order_id": 1, "amount": 10.5}, {"order_id": 2, "amount": 3.0}, {"order_id": 3, "amount": 7.25}]
    if suffix == ".parquet":
        assert pq.read_table(out).to_pylist() == expected
    elif suffix == ".json":
        assert json.loads(out.read_text(encoding="utf-8")) == expected
    else:
        rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
        assert [{"order_id": int(r["order_id"]), "amount": float(r["amount"])} for r in rows] == expected
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temp file left


def test_export_refuses_unknown_suffix_and_writes(session, tmp_path):
    with pytest.raises(SeeknalError, match=re.escape("use a .csv, .json or .parquet file name")):
        session.export("SELECT 1", tmp_path / "x.txt")
    with pytest.raises(SeeknalError, match=re.escape("the REPL is read-only: DROP statements are refused")):
        session.export("DROP VIEW source_orders", tmp_path / "x.parquet")
    assert list(tmp_path.iterdir()) == []


def test_export_sql_error_leaves_no_file(session, tmp_path):
    with pytest.raises(SeeknalError, match=re.escape('"nope"')):
        session.export("SELECT nope FROM source_orders", tmp_path / "x.parquet")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ interactive


def _feed(monkeypatch, lines: list[str]) -> list[str]:
    prompts: list[str] = []
    it = iter(lines)

    def fake_input(prompt: str = "") -> str:
        prompts.append(prompt)
        try:
            return next(it)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("builtins.input", fake_input)
    return prompts


def test_interactive_session(session, monkeypatch, capsys):
    prompts = _feed(
        monkeypatch,
        [
            ".tables",
            ".schema feature_group_cust",
            "SELECT customer_id,",
            "       total",
            "FROM feature_group_cust ORDER BY 1;",
            ".quit",
            "SELECT 'never reached';",
        ],
    )
    interactive(session, "csv")
    out = capsys.readouterr().out
    assert "source_orders  (target/intermediate/source_orders.parquet)" in out
    assert "entity_customer  (target/feature_store/customer/features.parquet)" in out
    assert "customer_id  VARCHAR\ntotal  DOUBLE" in out
    assert "customer_id,total\na,17.75\nb,3.0" in out
    assert "never reached" not in out
    assert prompts == ["seeknal> ", "seeknal> ", "seeknal> ", "   ...> ", "   ...> ", "seeknal> "]


def test_interactive_errors_do_not_end_the_session(session, monkeypatch, capsys):
    _feed(monkeypatch, ["INSERT INTO source_orders VALUES (1);", ".schema", ".nope", "SELECT 41 + 1 AS answer", "", ".help"])
    interactive(session, "table")
    captured = capsys.readouterr()
    assert "error: the REPL is read-only: INSERT statements are refused" in captured.err
    assert "error: .schema needs a view name" in captured.err
    assert "error: unknown command .nope; .help lists them" in captured.err
    assert "answer\n------\n42" in captured.out  # an empty line ends a statement too
    assert ".tables" in captured.out  # help text


# ------------------------------------------------------------ found by probing


def test_session_stays_usable_after_a_parquet_export(session, tmp_path):
    assert session.export("SELECT order_id FROM source_orders", tmp_path / "x.parquet") == 3
    assert session.query("SELECT 2 AS two") == (["two"], [(2,)])


def test_parquet_export_of_sql_ending_in_a_comment(session, tmp_path):
    out = tmp_path / "x.parquet"
    assert session.export("SELECT order_id FROM source_orders -- all orders", out) == 3
    assert pq.read_table(out).num_rows == 3


def _reject_constant(name: str):
    raise ValueError(f"not valid JSON: {name}")


def test_json_format_is_valid_json_for_nan_and_infinity(session):
    text = format_rows(*session.query("SELECT 'nan'::DOUBLE AS x, 'inf'::DOUBLE AS y"), "json")
    assert json.loads(text, parse_constant=_reject_constant) == [{"x": None, "y": None}]
