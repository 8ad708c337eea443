"""run/ordering.py: a defined order that keeps the schema, and a user's ORDER BY kept."""

from __future__ import annotations

import pyarrow as pa

from operators.memory import MemoryConfig
from seeknal_flow.run.ordering import SortedOperator, has_top_level_order, keeps_input_order, ordered_sql


class _Rows:
    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.output = "printed"

    @property
    def schema(self) -> pa.Schema:
        return self.table.schema

    def batches(self):
        yield from self.table.to_batches(max_chunksize=2)


def test_sorted_operator_orders_by_keys_then_the_rest_and_keeps_types():
    table = pa.table({
        "v": pa.array([3, 1, 2, 1, 5], pa.int32()),
        "k": pa.array(["b", "a", "b", "a", "a"], pa.large_string()),
        "t": pa.array([5, 4, 3, 2, 1], pa.timestamp("ns")),
    })
    op = SortedOperator(_Rows(table), ["k", "t"], MemoryConfig())
    out = pa.Table.from_batches(list(op.batches()), schema=op.schema)
    assert out.schema == table.schema and op.output == "printed"
    assert out.column("k").to_pylist() == ["a", "a", "a", "b", "b"]
    assert out.column("v").to_pylist() == [5, 1, 1, 2, 3]


def test_duplicate_names_pass_through_unchanged():
    table = pa.Table.from_arrays([pa.array([2, 1]), pa.array([3, 4])], names=["x", "x"])
    op = SortedOperator(_Rows(table), ["x"], MemoryConfig())
    assert pa.Table.from_batches(list(op.batches())).equals(table)
    assert ordered_sql("SELECT 1 AS x, 2 AS x", ["x", "x"], []) == "SELECT 1 AS x, 2 AS x"


def test_top_level_order_detection():
    assert has_top_level_order("SELECT a FROM t ORDER BY a") is True
    assert has_top_level_order("WITH c AS (SELECT * FROM t ORDER BY a) SELECT * FROM c") is False
    assert has_top_level_order("SET threads = 1; SELECT 1") is None
    assert ordered_sql("SELECT a FROM ref('source.t') GROUP BY a", ["a"], []).endswith('ORDER BY "a"')


def test_a_projection_of_one_input_keeps_its_order_and_is_not_sorted():
    select = "SELECT customer_id, amount * 2 AS doubled, ts FROM ref('source.tx') WHERE amount > 0"
    assert keeps_input_order(select)
    assert ordered_sql(select, ["customer_id", "doubled", "ts"], ["customer_id", "ts"]) == select
    for sql in ("SELECT customer_id, SUM(amount) AS s FROM t GROUP BY customer_id",
                "SELECT DISTINCT customer_id FROM t",
                "SELECT t.customer_id FROM t JOIN u ON t.customer_id = u.customer_id",
                "SELECT customer_id, RANK() OVER (ORDER BY amount) AS r FROM t",
                "SELECT customer_id FROM t WHERE customer_id IN (SELECT customer_id FROM u)",
                "SELECT customer_id FROM t UNION ALL SELECT customer_id FROM u",
                "WITH x AS (SELECT * FROM t) SELECT * FROM x"):
        assert not keeps_input_order(sql), sql
        assert ordered_sql(sql, ["customer_id"], ["customer_id"]).endswith('ORDER BY "customer_id"'), sql


def test_a_projection_really_comes_out_in_input_order(tmp_path):
    import duckdb
    import pyarrow.parquet as pq

    path = tmp_path / "in.parquet"
    keys = [(i * 7919) % 100_003 for i in range(200_000)]  # shuffled, in many row groups
    pq.write_table(pa.table({"k": keys, "v": list(range(200_000))}), path, row_group_size=5_000)
    sql = f"SELECT k, v * 2 AS w FROM read_parquet('{path}') WHERE v % 3 <> 0"
    assert keeps_input_order(sql)
    with duckdb.connect(config={"threads": 2}) as con:
        first, second = con.sql(sql).fetchall(), con.sql(sql).fetchall()
    assert first == second == [(k, v * 2) for v, k in enumerate(keys) if v % 3 != 0]
