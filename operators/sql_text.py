"""Quoting for SQL text we build: the one place identifiers and literals are escaped.

DuckDB and DataFusion quote identifiers with double quotes, Spark SQL with backticks; all
three write string literals in single quotes with the quote doubled. User values that are
data (lookup keys, parameters) are bound, never quoted into SQL.

>>> quote_ident('a"b'), quote_spark_ident("a`b"), quote_literal("it's")
('"a""b"', '`a``b`', "'it''s'")
"""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """An identifier for DuckDB or DataFusion (case preserved, double quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def quote_spark_ident(name: str) -> str:
    """An identifier for Spark SQL (backticks, doubled inside)."""
    return "`" + name.replace("`", "``") + "`"


def quote_literal(text: str) -> str:
    """A string literal, with its single quotes: paths, settings and SQL snippets we compose."""
    return "'" + text.replace("'", "''") + "'"
