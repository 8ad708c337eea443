"""The node decorators. They record their arguments and return the function unchanged.

Discovery never runs them: it reads the same arguments from the syntax tree
(``python_nodes.py``) and validates them against the argument records below,
so a node file whose imports are missing on this machine is still planned.
When a node *runs*, its module is imported and the decorators only attach
their record to the function (``fn.__seeknal_node__``).

>>> @transform(name="clean")
... def clean(ctx):
...     return ctx.ref("source.raw")
>>> clean.__seeknal_node__[0]
'transform'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from operators.soa.spec import SOAFeature
from seeknal_flow.authoring.field_errors import explain_in, format_problem
from seeknal_flow.authoring.specs import (
    Check,
    Incremental,
    Isolation,
    NullPolicy,
    PartitionOn,
    SourceFormat,
    check_name,
)
from seeknal_flow.errors import SpecError


class _Args(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str | None = None
    description: str | None = None
    tags: list[str] = []
    params: dict[str, Any] = {}
    # Extra upstream nodes ("kind.name") this node reads in a way discovery cannot see
    # (a computed name): the node re-runs when they change, and may read them.
    depends_on: list[str] = []


class SourceArgs(_Args, frozen=True, kw_only=True, forbid_unknown_fields=True):
    table: str = ""  # required for files; databases take table or query
    source: SourceFormat | None = None  # inferred from the file extension when omitted
    columns: dict[str, str] = {}
    partition_by: list[str] = []
    connection: str | None = None  # databases: a URI (postgres) or a file path (sqlite); ${VAR} expanded
    query: str | None = None
    incremental: Incremental | None = None
    partition_on: PartitionOn | None = None


class TransformArgs(_Args, frozen=True, kw_only=True, forbid_unknown_fields=True):
    partitioned: bool = False
    isolation: Isolation | None = None


class EntityArgs(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    join_keys: list[str] | None = None


class FeatureGroupArgs(TransformArgs, frozen=True, kw_only=True, forbid_unknown_fields=True):
    entity: str | EntityArgs | None = None
    event_time_col: str = "event_time"
    features: list[str] | None = None
    validation: list[Check] = []
    ttl: str | None = None
    nulls: NullPolicy = NullPolicy.DROP


class SOAArgs(_Args, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id_col: str
    feature_date_col: str
    application_date_col: str
    features: dict[str, SOAFeature]
    spine: str | None = None
    spine_date_col: str | None = None
    spine_id_col: str | None = None


ARGS_BY_DECORATOR: dict[str, type[_Args]] = {
    "source": SourceArgs,
    "transform": TransformArgs,
    "feature_group": FeatureGroupArgs,
    "second_order_aggregation": SOAArgs,
}


def _record(kind: str, kwargs: dict[str, Any]) -> Callable[[Callable], Callable]:
    # Validate eagerly so a decorator misuse fails where it is written, even
    # when the module is imported outside seeknal (e.g. in a user's unit test).
    name = kwargs.get("name")
    if name is not None and (problem := check_name(name)) is not None:
        raise SpecError(f"@{kind}: {problem}")
    try:
        given = {k: v for k, v in kwargs.items() if v is not None}
        msgspec.convert(given, ARGS_BY_DECORATOR[kind])
    except msgspec.ValidationError as e:
        raise SpecError(f"@{kind}: {format_problem(*explain_in(given, ARGS_BY_DECORATOR[kind], e))}") from e

    def attach(fn: Callable) -> Callable:
        fn.__seeknal_node__ = (kind, dict(kwargs))  # type: ignore[attr-defined]
        return fn

    return attach


def source(
    name: str | None = None,
    *,
    table: str | None = None,
    source: str | None = None,
    description: str | None = None,
    columns: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    partition_by: list[str] | None = None,
    tags: list[str] | None = None,
    connection: str | None = None,
    query: str | None = None,
    incremental: dict[str, str] | None = None,
    partition_on: dict[str, Any] | None = None,
    depends_on: list[str] | None = None,
) -> Callable[[Callable], Callable]:
    """Declare a raw data source: a file (CSV, Parquet file or directory, JSON, JSONL) or a database.

    Args:
        name: node name (defaults to the function name).
        table: file sources: path relative to the project root; databases: ``[schema.]table``.
        source: ``csv``, ``parquet``, ``json``, ``jsonl`` (default: from the extension), ``postgres``
            or ``sqlite``.
        params: reader options, e.g. ``{"delimiter": ";"}`` for CSV.
        connection: databases: a URI (``postgres``) or a project-relative file (``sqlite``);
            ``${VAR}`` is expanded from the environment at run time.
        query: databases: a SELECT to read instead of ``table``.
        incremental: ``{"column": "updated_at"}``: fetch only rows above the last watermark.
        partition_on: ``{"column": "id", "partitions": 4}``: parallel range reads.

    >>> @source(name="transactions", source="csv", table="data/transactions.csv")
    ... def transactions(ctx=None):
    ...     pass
    >>> @source(name="orders", source="postgres", connection="${SHOP_PG_URL}", table="public.orders")
    ... def orders(ctx=None):
    ...     pass
    """
    return _record("source", dict(locals()))


def transform(
    name: str | None = None,
    *,
    description: str | None = None,
    tags: list[str] | None = None,
    params: dict[str, Any] | None = None,
    partitioned: bool = False,
    isolation: str | None = None,
    depends_on: list[str] | None = None,
) -> Callable[[Callable], Callable]:
    """Declare a transform: ``fn(ctx)`` returns a table built from ``ctx.ref(...)`` inputs.

    ``depends_on=["kind.name", ...]`` declares upstream nodes read in a way discovery cannot
    see (e.g. a ``FeatureLookup`` whose source is computed); literal reads need none.

    >>> @transform(name="big_orders")
    ... def big_orders(ctx):
    ...     orders = ctx.ref("source.orders")
    ...     return ctx.duckdb.sql("SELECT * FROM orders WHERE revenue > 100")
    """
    return _record("transform", dict(locals()))


def feature_group(
    name: str | None = None,
    *,
    entity: str | dict | None = None,
    event_time_col: str = "event_time",
    description: str | None = None,
    features: list[str] | None = None,
    validation: list[dict[str, Any]] | None = None,
    ttl: str | None = None,
    tags: list[str] | None = None,
    params: dict[str, Any] | None = None,
    partitioned: bool = False,
    isolation: str | None = None,
    depends_on: list[str] | None = None,
    nulls: str = "drop",
) -> Callable[[Callable], Callable]:
    """Declare a feature group: per-entity features with an event time.

    ``entity="customer"`` means join key ``customer_id``; pass
    ``{"name": ..., "join_keys": [...]}`` for other keys. ``nulls``: rows with a NULL
    join key or event time are kept out of the entity with a counted warning
    (``"drop"``) or fail the node (``"fail"``).

    >>> @feature_group(name="customer_features", entity="customer")
    ... def customer_features(ctx):
    ...     txn = ctx.ref("source.transactions")
    ...     return ctx.duckdb.sql("SELECT customer_id, COUNT(*) AS n FROM txn GROUP BY 1")
    """
    return _record("feature_group", dict(locals()))


def second_order_aggregation(
    name: str | None = None,
    *,
    id_col: str,
    feature_date_col: str,
    application_date_col: str,
    features: dict[str, dict],
    description: str | None = None,
    tags: list[str] | None = None,
    spine: str | None = None,
    spine_date_col: str | None = None,
    spine_id_col: str | None = None,
    depends_on: list[str] | None = None,
) -> Callable[[Callable], Callable]:
    """Declare a second-order aggregation; the function returns its input table.

    ``features`` maps a column (or a name with ``source_feature``) to ``basic``,
    ``window`` + ``basic``, ``ratio`` or ``since`` specs (docs/yaml-reference.md#second_order_aggregation). With
    ``spine="kind.name"`` the application date comes from each spine row.

    >>> @second_order_aggregation(
    ...     name="region_metrics", id_col="region", feature_date_col="order_date",
    ...     application_date_col="application_date",
    ...     features={"daily_amount": {"basic": ["sum", "max"]}})
    ... def region_metrics(ctx):
    ...     return ctx.ref("feature_group.customer_daily_agg")
    """
    return _record("second_order_aggregation", dict(locals()))

