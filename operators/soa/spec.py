"""Typed description of a second-order aggregation (docs/yaml-reference.md#second_order_aggregation).

These are plain msgspec Structs so the YAML / decorator front ends can decode
user input straight into them (unknown fields are rejected by msgspec). They
carry no behaviour: :mod:`operators.soa.validate` checks their shape,
:mod:`operators.soa.check` checks them against a schema, :mod:`operators.soa.compile`
turns them into SQL and :mod:`operators.soa.execute` runs it.

>>> q = SOAQuery(
...     id_col="region", feature_date_col="order_date", application_date_col="application_date",
...     features={"daily_amount": SOAFeature(basic=("sum",))},
... )
>>> q.features["daily_amount"].basic
('sum',)
>>> import msgspec
>>> msgspec.convert({"numerator": [1, 7], "denominator": [8, 14]}, SOARatio).aggs
('sum',)
"""

from __future__ import annotations

from msgspec import Struct

# Token -> SQL aggregate template ({x} is the quoted column). Sample variants for
# stddev/var, as the SOA reference (docs/yaml-reference.md) promises; median of integers is DOUBLE in DataFusion.
AGG_SQL: dict[str, str] = {
    "count": "COUNT({x})",
    "sum": "SUM({x})",
    "mean": "AVG({x})",
    "avg": "AVG({x})",
    "min": "MIN({x})",
    "max": "MAX({x})",
    "stddev": "STDDEV_SAMP({x})",
    "std": "STDDEV_SAMP({x})",
    "var": "VAR_SAMP({x})",
    "median": "MEDIAN({x})",
    "count_distinct": "COUNT(DISTINCT {x})",
}
VALID_AGGS = ", ".join(AGG_SQL)
# Aggregates that return 0 (not NULL) over an empty filter: a ratio must treat a
# 0 numerator of these as "numerator window empty".
COUNT_LIKE = frozenset({"count", "count_distinct"})


class SOARatio(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``aggs`` over the numerator window divided by the same over the denominator window."""

    numerator: tuple[int, int]
    denominator: tuple[int, int]
    aggs: tuple[str, ...] = ("sum",)


class SOASince(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``aggs`` over the past rows where ``condition`` (a SQL boolean expression) holds."""

    condition: str
    aggs: tuple[str, ...] = ("count",)


class SOAFeature(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One entry of ``features:``; the key is the input column unless ``source_feature`` is set."""

    source_feature: str | None = None
    basic: tuple[str, ...] = ()
    window: tuple[int, int] | None = None
    ratio: SOARatio | None = None
    since: SOASince | None = None


class SOAQuery(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A whole second-order aggregation: keys, dates and features in output order.

    With a spine (temporal SOA), ``spine_id_col`` defaults to ``id_col`` and
    ``spine_date_col`` to ``application_date_col``.
    """

    id_col: str
    feature_date_col: str
    application_date_col: str
    features: dict[str, SOAFeature]
    spine_date_col: str | None = None
    spine_id_col: str | None = None
