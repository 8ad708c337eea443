"""A defined row order for every node the engine would otherwise order at random.

DuckDB's GROUP BY and DataFusion's aggregations return rows in whatever order their
threads finish, so two clean runs of the same project could write the same rows in a
different order. The run stage defines it (``operators/`` stays order-agnostic):

- a SQL node without a top-level ``ORDER BY``: wrapped in ``SELECT * ... ORDER BY`` its
  join keys and event time first (feature groups), then every other column — unless it only
  projects and filters one input (:func:`keeps_input_order`), whose order DuckDB keeps;
- a Python feature group and a second-order aggregation: their rows streamed through
  :class:`SortedOperator` (a DuckDB sort, spilling under the memory budget) by their keys
  (and time), then every other column.

A user's own ``ORDER BY`` and a Python transform's row order (e.g. a PIT join in spine
order) are kept as written.

>>> ordered_sql("SELECT k, SUM(v) AS v FROM t GROUP BY k", ["k", "v"], ["k"])
'SELECT * FROM (\\nSELECT k, SUM(v) AS v FROM t GROUP BY k\\n) AS __seeknal_rows ORDER BY "k", "v"'
>>> ordered_sql("SELECT k FROM t ORDER BY k DESC", ["k"], [])
'SELECT k FROM t ORDER BY k DESC'
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pyarrow as pa

from operators.errors import EngineError
from operators.memory import MemoryConfig, duckdb_connection
from operators.scan import BATCH_ROWS, first_line
from operators.sql_text import quote_ident


def _statement(sql: str, con=None) -> dict | None:
    """The syntax tree of ``sql`` if it is one statement DuckDB can parse, else None.

    ``con``: a DuckDB connection to parse with (the node's own; else DuckDB's default
    connection, whose creation costs ~20 ms of a run).
    """
    import duckdb  # with the first SQL node, as everywhere

    try:
        tree = json.loads((con or duckdb).execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
    except duckdb.Error:
        return None
    statements = tree.get("statements") or []
    if tree.get("error") or len(statements) != 1:
        return None
    return statements[0]["node"]


def has_top_level_order(sql: str) -> bool | None:
    """Does the single statement ``sql`` end in its own ORDER BY? None: not one parseable SELECT."""
    node = _statement(sql)
    return None if node is None else _ordered(node)


def _ordered(node: dict) -> bool:
    return any(m.get("type") == "ORDER_MODIFIER" for m in node.get("modifiers", []))


def keeps_input_order(sql: str) -> bool:
    """Does ``sql`` only project and filter one table (no join, grouping, window, DISTINCT, subquery)?

    DuckDB keeps the insertion order of such a query (``preserve_insertion_order``, on by
    default), and its input (a node's Parquet, files in name order) has a fixed order, so
    the output order is already defined. Sorting it anyway cost a feature group that copies
    1e7 rows most of its time (1.96 -> 5.78 s at 3e6 -> 1e7 rows, more than DuckDB's whole script).

    >>> keeps_input_order("SELECT a, b * 2 AS c FROM ref('source.tx') WHERE a > 1")
    True
    >>> keeps_input_order("SELECT a, SUM(b) FROM t GROUP BY a"), keeps_input_order("SELECT DISTINCT a FROM t")
    (False, False)
    >>> keeps_input_order("SELECT a, ROW_NUMBER() OVER (ORDER BY b) FROM t")
    False
    """
    node = _statement(sql)
    return node is not None and _keeps_order(node)


def _keeps_order(node: dict) -> bool:
    if node.get("type") != "SELECT_NODE":
        return False
    if node.get("group_expressions") or node.get("group_sets") or node.get("having") or node.get("qualify"):
        return False
    if node.get("cte_map", {}).get("map") or node.get("sample"):
        return False
    if any(m.get("type") == "DISTINCT_MODIFIER" for m in node.get("modifiers", [])):
        return False
    if (node.get("from_table") or {}).get("type") not in ("BASE_TABLE", "TABLE_FUNCTION"):
        return False  # joins, subqueries, no FROM at all
    return not _has_window_or_subquery(node.get("select_list")) and not _has_window_or_subquery(
        node.get("where_clause"))


def _has_window_or_subquery(tree) -> bool:
    if isinstance(tree, dict):
        if tree.get("class") in ("WINDOW", "SUBQUERY"):
            return True
        return any(_has_window_or_subquery(v) for v in tree.values())
    if isinstance(tree, list):
        return any(_has_window_or_subquery(v) for v in tree)
    return False


def sort_columns(schema_names: list[str], first: list[str], schema: pa.Schema | None = None) -> list[str]:
    """``first`` (those present), then every other column that DuckDB can compare (maps cannot).

    >>> sort_columns(["a", "b", "c"], ["c", "x"])
    ['c', 'a', 'b']
    """
    lead = [c for c in first if c in schema_names]
    rest = [c for c in schema_names if c not in lead
            and (schema is None or not pa.types.is_map(schema.field(c).type))]
    return lead + rest


def ordered_sql(sql: str, schema_names: list[str], first: list[str], schema: pa.Schema | None = None,
                con=None) -> str:
    """``sql`` with a defined order, unless it already has its own (or is not one SELECT).

    Duplicate output names are left alone: a subquery would rename the second one (``x_1``).
    ``con``: the DuckDB connection to parse it with (see :func:`_statement`).
    """
    if len(set(schema_names)) != len(schema_names):
        return sql
    node = _statement(sql, con)  # parsed once for both questions
    if node is None or _ordered(node) or _keeps_order(node):
        return sql  # not one SELECT, its own ORDER BY, or already in the input's (fixed) order
    body = sql.strip().rstrip(";")
    cols = ", ".join(quote_ident(c) for c in sort_columns(schema_names, first, schema))
    return f"SELECT * FROM (\n{body}\n) AS __seeknal_rows ORDER BY {cols}"


class SortedOperator:
    """Another operator's rows, sorted by ``first`` then every other column (streamed through DuckDB)."""

    def __init__(self, inner, first: list[str], memory: MemoryConfig) -> None:
        self.inner = inner
        self.first = list(first)
        self.memory = memory

    @property
    def schema(self) -> pa.Schema:
        return self.inner.schema

    @property
    def output(self) -> str:
        return getattr(self.inner, "output", "")

    def describe(self) -> str:
        inner = self.inner.describe() if hasattr(self.inner, "describe") else type(self.inner).__name__
        return f"Sort({', '.join(self.first) or 'all columns'}) <- {inner}"

    def batches(self) -> Iterator[pa.RecordBatch]:
        import duckdb

        schema = self.schema
        if len(set(schema.names)) != len(schema.names):  # DuckDB would rename a duplicate: keep the rows as they are
            yield from self.inner.batches()
            return
        cols = ", ".join(quote_ident(c) for c in sort_columns(schema.names, self.first, schema))
        con = duckdb_connection(self.memory)
        try:
            con.register("__seeknal_rows", pa.RecordBatchReader.from_batches(schema, self.inner.batches()))
            try:
                reader = con.sql(f"SELECT * FROM __seeknal_rows ORDER BY {cols}").to_arrow_reader(BATCH_ROWS)
                for batch in reader:
                    # DuckDB may hand back other Arrow types (string views, time units): the declared ones win.
                    yield batch if batch.schema.equals(schema) else batch.cast(schema)
            except (duckdb.Error, pa.ArrowException) as e:
                raise EngineError(f"sorting the output failed: {first_line(str(e))}") from e
        finally:
            con.close()

    def close(self) -> None:
        if hasattr(self.inner, "close"):
            self.inner.close()


__all__ = ["SortedOperator", "has_top_level_order", "ordered_sql", "sort_columns"]
