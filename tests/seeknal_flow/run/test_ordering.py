"""run/ordering.py: a defined order that keeps the schema, and a user's ORDER BY kept."""

from __future__ import annotations

import pyarrow as pa

from operators.memory import MemoryConfig
from seeknal_flow.run.ordering import SortedOperator, has_top_level_order, ordered_sql


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
