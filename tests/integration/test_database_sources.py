"""Database sources through the CLI, against a real PostgreSQL server (and SQLite files)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.db

SOURCE = """kind: source
name: orders
source: postgres
connection: ${{SHOP_PG_URL}}
{body}
"""

TRANSFORM = """kind: transform
name: big_orders
sql: SELECT id, amount FROM ref('source.orders') WHERE amount > 10
"""


@pytest.fixture
def table(pg_server, request):
    """A fresh table per test: ``orders_<test>`` with 100 rows."""
    name = "orders_" + re.sub(r"\W", "_", request.node.name)[:40].lower()
    pg_server.psql(
        f"DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (id int8 PRIMARY KEY, customer text, amount float8, "
        "price numeric(10,2), ratio numeric, day date, updated_at timestamptz, paid bool, meta jsonb); "
        f"INSERT INTO {name} SELECT g, 'c' || (g % 7), g * 1.5, g * 0.25, g / 3.0, date '2026-01-01' + g, "
        "timestamptz '2026-01-01 00:00+02' + g * interval '1 minute', g % 2 = 0, '{\"k\": 1}' "
        "FROM generate_series(1, 100) g"
    )
    return name


def _project(seeknal, tmp_path: Path, source_body: str, *, transform: bool = True) -> Path:
    root = tmp_path / "shop"
    assert seeknal("init", "--name", "shop", "--path", root, cwd=tmp_path).code == 0
    (root / "seeknal" / "sources" / "orders.yml").write_text(SOURCE.format(body=source_body))
    if transform:
        (root / "seeknal" / "transforms" / "big_orders.yml").write_text(TRANSFORM)
    return root


def _output(root: Path, name: str = "source_orders"):
    return pq.read_table(root / "target" / "intermediate" / f"{name}.parquet")


def _all_text(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in (root / "target").rglob("*")
                     if p.is_file() and p.suffix in ("", ".json", ".log", ".txt"))


def test_table_source_reads_types_and_skips_dependents_when_data_is_the_same(seeknal, tmp_path, monkeypatch,
                                                                                pg_server, table):
    monkeypatch.setenv("SHOP_PG_URL", pg_server.url)
    root = _project(seeknal, tmp_path, f"table: public.{table}")
    plan = seeknal("plan", cwd=root)
    assert plan.code == 0, plan.text
    run = seeknal("run", cwd=root)
    assert run.code == 0, run.text
    out = _output(root)
    assert out.num_rows == 100
    types = {f.name: str(f.type) for f in out.schema}
    assert types == {"id": "int64", "customer": "string", "amount": "double", "price": "decimal128(10, 2)",
                     "ratio": "double", "day": "date32[day]", "updated_at": "timestamp[us, tz=UTC]",
                     "paid": "bool", "meta": "string"}
    first = out.sort_by("id").slice(0, 1).to_pylist()[0]
    assert str(first["updated_at"]) == "2025-12-31 22:01:00+00:00"  # +02 stored, read back in UTC
    assert _output(root, "transform_big_orders").num_rows == 94

    plan = seeknal("plan", cwd=root)
    assert re.search(r"RUN\s+source\.orders\s+\(database source: re-read every run", plan.out), plan.out
    assert re.search(r"RUN\s+transform\.big_orders\s+\(only if source\.orders fetch\(es\) changed data", plan.out)
    again = seeknal("run", cwd=root)
    assert again.code == 0, again.text
    assert "skipped transform.big_orders: up to date (source.orders: same data as last run)" in again.out

    pg_server.psql(f"UPDATE {table} SET amount = 1000 WHERE id = 1")
    changed = seeknal("run", cwd=root)
    assert changed.code == 0, changed.text
    assert "skipped transform.big_orders" not in changed.out
    assert _output(root, "transform_big_orders").num_rows == 95
    assert pg_server.password not in _all_text(root)


def test_incremental_fetches_only_new_rows_and_full_rereads(seeknal, tmp_path, monkeypatch, pg_server, table):
    monkeypatch.setenv("SHOP_PG_URL", pg_server.url)
    root = _project(seeknal, tmp_path, f"table: {table}\nincremental:\n  column: updated_at")
    assert seeknal("run", cwd=root).code == 0
    out_dir = root / "target" / "intermediate" / "source_orders.parquet"
    assert [p.name for p in sorted(out_dir.iterdir())] == ["part-00000.parquet"]

    plan = seeknal("plan", cwd=root)
    assert "incremental: fetch rows with updated_at > 2025-12-31 23:40:00+00:00" in plan.out, plan.out
    pg_server.psql(f"INSERT INTO {table} SELECT g, 'new', g * 1.5, 1, 1, date '2026-06-01', "
                   "timestamptz '2026-06-01 00:00+00' + g * interval '1 second', true, '{}' "
                   "FROM generate_series(101, 110) g")
    # The predicate runs in the database: rows it would not send are invisible to us.
    pg_server.psql(f"UPDATE {table} SET customer = 'edited' WHERE id = 5")
    run = seeknal("run", cwd=root)
    assert run.code == 0, run.text
    assert "fetched 10 rows" in run.out
    assert [p.name for p in sorted(out_dir.iterdir())] == ["part-00000.parquet", "part-00001.parquet"]
    table_now = pq.read_table(out_dir)
    assert table_now.num_rows == 110
    assert "edited" not in table_now.column("customer").to_pylist()  # updates need --full (documented)
    assert _output(root, "transform_big_orders").num_rows == 104

    nothing = seeknal("run", cwd=root)
    assert "fetched 0 rows" in nothing.out and "skipped transform.big_orders: up to date" in nothing.out
    assert len(list(out_dir.iterdir())) == 2

    full = seeknal("run", "--full", cwd=root)
    assert full.code == 0, full.text
    assert [p.name for p in out_dir.iterdir()] == ["part-00000.parquet"]
    assert "edited" in pq.read_table(out_dir).column("customer").to_pylist()


def test_decimal_watermark_moves_past_a_longer_number(seeknal, tmp_path, monkeypatch, pg_server, table):
    """A numeric watermark advances by value: 9.75 -> 10.25 (as text "10.25" < "9.75")."""
    monkeypatch.setenv("SHOP_PG_URL", pg_server.url)
    pg_server.psql(f"DELETE FROM {table} WHERE price > 9.75")  # ids 1..39, price 0.25..9.75
    root = _project(seeknal, tmp_path, f"table: {table}\nincremental:\n  column: price", transform=False)
    assert seeknal("run", cwd=root).code == 0
    pg_server.psql(f"INSERT INTO {table} SELECT g, 'new', 1, g * 0.25, 1, date '2026-06-01', now(), true, '{{}}' "
                   "FROM generate_series(40, 41) g")
    first = seeknal("run", cwd=root)
    assert "fetched 2 rows" in first.out and "watermark now 10.25" in first.out, first.out
    again = seeknal("run", cwd=root)
    assert "fetched 0 rows" in again.out, again.out  # the watermark moved: nothing fetched twice
    assert pq.read_table(root / "target" / "intermediate" / "source_orders.parquet").num_rows == 41


def test_incremental_predicate_is_sent_to_the_database(pg_server, table):
    from operators.db_scan import DbRead, DbScanOperator
    from operators.errors import EngineError

    pg_server.psql(f"CREATE OR REPLACE VIEW {table}_v AS SELECT *, 1 / (CASE WHEN id <= 90 THEN 0 ELSE 1 END) AS x "
                   f"FROM {table}")
    # A full read divides by zero; only a predicate evaluated first by PostgreSQL avoids it.
    read = DbRead("postgres", pg_server.url, "pg", query=f"SELECT * FROM {table}_v WHERE id > 90",
                  incremental_column="id", watermark=95)
    assert DbScanOperator(read).read_all().num_rows == 5
    everything = DbScanOperator(DbRead("postgres", pg_server.url, "pg", table=f"{table}_v"))
    with pytest.raises(EngineError, match="division by zero"):
        everything.read_all()


def test_parallel_reads_return_every_row_once(seeknal, tmp_path, monkeypatch, pg_server, table):
    monkeypatch.setenv("SHOP_PG_URL", pg_server.url)
    pg_server.psql(f"INSERT INTO {table} (id, customer) VALUES (1000, 'far')")
    root = _project(seeknal, tmp_path, f"query: SELECT id, customer, amount FROM {table}\n"
                                       "partition_on: {column: id, partitions: 4}", transform=False)
    run = seeknal("run", cwd=root)
    assert run.code == 0, run.text
    ids = sorted(_output(root).column("id").to_pylist())
    assert ids == list(range(1, 101)) + [1000]
    second = seeknal("run", cwd=root)  # rows interleave differently; the multiset hash does not change
    state = json.loads((root / "target" / "run_state.json").read_text())
    assert second.code == 0 and state["nodes"]["source.orders"]["files"]["db"]["rows"] == 101


def test_missing_variable_is_one_line_naming_it_and_the_node(seeknal, tmp_path, monkeypatch, table):
    monkeypatch.delenv("SHOP_PG_URL", raising=False)
    root = _project(seeknal, tmp_path, f"table: {table}")
    result = seeknal("run", cwd=root)
    assert result.code == 1
    line = result.err.strip()
    assert "\n" not in line
    assert "source.orders (seeknal/sources/orders.yml:2): connection: environment variable SHOP_PG_URL is not set" \
        in line



def test_unselected_source_needs_no_variable(seeknal, tmp_path, monkeypatch):
    """--nodes that leaves a database source out plans and runs without its ${VAR}."""
    monkeypatch.delenv("SHOP_PG_URL", raising=False)
    root = _project(seeknal, tmp_path, "table: t", transform=False)
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "x.csv").write_text("a,b\n1,2\n")
    (root / "seeknal" / "sources" / "local.yml").write_text("kind: source\nname: local\nsource: csv\ntable: data/x.csv\n")
    plan = seeknal("plan", "--nodes", "source.local", cwd=root)
    assert plan.code == 0, plan.text
    assert re.search(r"SKIP\s+source\.orders\s+\(not selected\)", plan.out), plan.out
    assert seeknal("run", "--nodes", "source.local", cwd=root).code == 0
    everything = seeknal("plan", cwd=root)  # the whole project still needs it
    assert everything.code == 1 and "environment variable SHOP_PG_URL is not set" in everything.err

@pytest.mark.parametrize("case", ["unreachable", "password", "table", "incremental column", "query"])
def test_bad_input_is_one_line_and_keeps_the_previous_output(seeknal, tmp_path, monkeypatch, pg_server, table, case):
    monkeypatch.setenv("SHOP_PG_URL", pg_server.url)
    root = _project(seeknal, tmp_path, f"table: {table}")
    assert seeknal("run", cwd=root).code == 0
    before = _output(root)
    src = root / "seeknal" / "sources" / "orders.yml"
    url, body = pg_server.url, f"table: {table}"
    if case == "unreachable":
        url = pg_server.url_with(port=1)
    elif case == "password":
        url = pg_server.url_with(password="Wr0ngSecretPw")
    elif case == "table":
        body = "table: public.no_such_table"
    elif case == "incremental column":
        body = f"table: {table}\nincremental:\n  column: no_such_column"
    else:
        body = f"query: SELECT id, 1 / (id - id) AS boom FROM {table}"
    monkeypatch.setenv("SHOP_PG_URL", url)
    src.write_text(SOURCE.format(body=body))
    result = seeknal("run", cwd=root)
    assert result.code == 1
    expected = {
        "unreachable": "cannot connect to postgres 127.0.0.1:1/seeknal",
        "password": 'password authentication failed for user "seeknal"',
        "table": 'relation "public.no_such_table" does not exist',
        "incremental column": "incremental.column 'no_such_column' is not a column of postgres",
        "query": "division by zero",
    }[case]
    failure = [line for line in result.err.splitlines() if "source.orders" in line and "failed" in line]
    assert len(failure) >= 1 and expected in failure[0], result.text
    assert failure[0].startswith("error: source.orders (seeknal/sources/orders.yml:2) failed: ")
    everything = result.text + _all_text(root)
    assert "Wr0ngSecretPw" not in everything and pg_server.password not in everything
    assert _output(root).equals(before)


def test_unsupported_type_names_the_column(seeknal, tmp_path, monkeypatch, pg_server):
    monkeypatch.setenv("SHOP_PG_URL", pg_server.url)
    root = _project(seeknal, tmp_path, "query: SELECT 1 AS id, interval '1 day' AS wait", transform=False)
    result = seeknal("run", cwd=root)
    assert result.code == 1
    assert "column 'wait' of postgres" in result.err and "has type interval" in result.err


def test_sqlite_source_relative_to_the_project(seeknal, tmp_path):
    pytest.importorskip("adbc_driver_sqlite", reason="the db extra is not installed (pip install 'seeknal-flow[db]')")
    root = tmp_path / "shop"
    assert seeknal("init", "--name", "shop", "--path", root, cwd=tmp_path).code == 0
    with sqlite3.connect(root / "data" / "shop.db") as con:
        con.execute("CREATE TABLE orders (id INTEGER, amount REAL, updated_at TEXT)")
        con.executemany("INSERT INTO orders VALUES (?, ?, ?)",
                        [(i, i * 2.0, f"2026-01-{i:02d}") for i in range(1, 21)])
    (root / "seeknal" / "sources" / "orders.yml").write_text(
        "kind: source\nname: orders\nsource: sqlite\nconnection: data/shop.db\ntable: orders\n"
        "incremental: {column: updated_at}\npartition_on: {column: id, partitions: 3}\n")
    assert seeknal("run", cwd=root).code == 0
    with sqlite3.connect(root / "data" / "shop.db") as con:
        con.execute("INSERT INTO orders VALUES (21, 1.0, '2026-01-21')")
    run = seeknal("run", cwd=root)
    assert "fetched 1 rows" in run.out, run.text
    assert pq.read_table(root / "target" / "intermediate" / "source_orders.parquet").num_rows == 21


def test_python_decorator_form(seeknal, tmp_path, monkeypatch, pg_server, table):
    monkeypatch.setenv("SHOP_PG_URL", pg_server.url)
    root = tmp_path / "shop"
    assert seeknal("init", "--name", "shop", "--path", root, cwd=tmp_path).code == 0
    (root / "seeknal" / "sources" / "orders.py").write_text(
        "from seeknal_flow import source\n\n"
        f"@source(name='orders', source='postgres', connection='${{SHOP_PG_URL}}', table='{table}')\n"
        "def orders(ctx=None):\n    pass\n")
    run = seeknal("run", cwd=root)
    assert run.code == 0, run.text
    assert _output(root).num_rows == 100
    preview = seeknal("dry-run", root / "seeknal" / "sources" / "orders.py", "--limit", "3", cwd=root)
    assert preview.code == 0, preview.text


_PLAN_IMPORTS = """import sys
from seeknal_flow.cli.main import main
try:
    main(["plan"])
except SystemExit as e:
    assert not e.code, e.code
print(sorted(m for m in sys.modules if m.startswith(("adbc", "pyarrow", "duckdb"))))
"""


def test_plan_imports_no_driver_and_shows_no_secret(seeknal, tmp_path, monkeypatch):
    root = _project(seeknal, tmp_path, "table: public.orders")
    env = {**os.environ, "SHOP_PG_URL": "postgresql://shop:TopSecret9@db.internal:5432/shop"}
    r = subprocess.run([sys.executable, "-c", _PLAN_IMPORTS], cwd=root, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"
    assert re.search(r"RUN\s+source\.orders\s+\(new\)", r.stdout) and "TopSecret9" not in r.stdout + r.stderr
