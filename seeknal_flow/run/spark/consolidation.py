"""Entity consolidation on Spark: :func:`seeknal_flow.store.consolidation.consolidation_sql`'s plan in Spark SQL.

Same table as the local engine builds: one row per key of any group (full
outer), ``event_time`` = the latest of the groups' times (naive, UTC), one
STRUCT column per group (alphabetical) with the group's latest row for the
key; ties on event time go to the row read last (DuckDB's ``file_row_number``
here is :data:`operators.spark.session.ORDER_COL`, which also orders across the
files of a Spark-written group). ``features.parquet`` becomes a Parquet
directory written by Spark; the catalog and the online store are written as
by the local engine (:func:`seeknal_flow.store.online.publish` reads the directory).
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import pyarrow as pa

from operators.errors import EngineError
from operators.spark.session import ORDER_COL, read_parquet, spark_error, spark_errors, write_parquet
from operators.sql_text import quote_spark_ident
from seeknal_flow.errors import StoreError
from seeknal_flow.load.dag import Dag
from seeknal_flow.load.entities import entity_groups
from seeknal_flow.load.project import Project
from seeknal_flow.store.consolidation import (
    GroupInput,
    describe_group,
    entity_inputs,
    is_stale,
    join_latest_rows,
    read_catalog,
    write_catalog,
)
from seeknal_flow.store.latest import not_null


def consolidation_spark_sql(keys: tuple[str, ...], groups: list[tuple[str, str, str, list[str]]]) -> str:
    """The Spark SQL building an entity table (pure); ``groups`` are (name, view, event time column, columns).

    Each view must carry ``ORDER_COL``. Picks the rows ``consolidation_sql`` picks (a window here,
    ``arg_max`` there; the same tie rule).

    >>> print(consolidation_spark_sql(("id",), [("g", "v", "t", ["id", "x", "t"])]))  # doctest: +ELLIPSIS
    WITH g0 AS (SELECT `id`, CAST(`t` AS TIMESTAMP_NTZ) AS __et, struct(`x` AS `x`, `t` AS `t`) AS __s FROM v WHERE ...
    """
    key_list = ", ".join(quote_spark_ident(k) for k in keys)
    ctes = []
    for i, (_, view, event_col, columns) in enumerate(groups):
        fields = ", ".join(f"{quote_spark_ident(c)} AS {quote_spark_ident(c)}" for c in columns if c not in keys)
        event = quote_spark_ident(event_col)
        ctes.append(
            f"g{i} AS (SELECT {key_list}, CAST({event} AS TIMESTAMP_NTZ) AS __et, struct({fields}) AS __s "
            f"FROM {view} WHERE {not_null(keys, event_col, quote_spark_ident)} "
            f"QUALIFY row_number() OVER (PARTITION BY {key_list} ORDER BY {event} "
            f"DESC NULLS LAST, {ORDER_COL} DESC) = 1)"
        )
    order = ", ".join(f"{quote_spark_ident(k)} NULLS LAST" for k in keys)  # DuckDB's default; Spark's is NULLS FIRST
    names = [quote_spark_ident(name) for name, *_ in groups]
    return join_latest_rows(ctes, [quote_spark_ident(k) for k in keys], names, order)


def consolidate_spark(spark, project: Project, dag: Dag, entities: Collection[str] | None = None,
                      on_built: Callable[[str, dict], None] | None = None) -> list[str]:
    """Rebuild ``entities`` on Spark (None: every stale one; as
    :func:`seeknal_flow.store.consolidation.consolidate`, no prune);
    ``on_built(entity, catalog)`` runs right after each entity is written."""
    rebuilt = []
    for entity, (keys, specs) in sorted(entity_groups(dag).items()):
        if entities is not None and entity not in entities:
            continue
        catalog = read_catalog(project, entity)
        groups = entity_inputs(project, dag, specs, catalog)
        if groups and (entities is not None or is_stale(project, catalog, groups, keys)):
            built = build_entity_spark(spark, project, entity, keys, groups, catalog)
            rebuilt.append(entity)
            if on_built is not None:
                on_built(entity, built)
    return rebuilt


def build_entity_spark(spark, project: Project, entity: str, keys: tuple[str, ...], groups: list[GroupInput],
                       previous: dict | None) -> dict:
    """Write ``features.parquet`` (a directory) and the catalog for one entity (the run service publishes it)."""
    folder = project.entity_dir(entity)
    folder.mkdir(parents=True, exist_ok=True)
    plan, group_info = [], {}
    for i, g in enumerate(groups):
        schema, group_info[g.name] = describe_group(project, entity, keys, g)
        view = f"entity_group_{i}"
        read_parquet(spark, [g.path], ordered=True, schema=schema).createOrReplaceTempView(view)
        plan.append((g.name, view, g.event_time_col, schema.names))
    try:
        written = write_parquet(spark.sql(consolidation_spark_sql(keys, plan)), project.entity_table(entity))
    except (*spark_errors(), EngineError, pa.ArrowException, OSError) as e:  # the previous table stays
        raise StoreError(f"consolidating entity '{entity}' on Spark failed: {spark_error(e)}") from e
    return write_catalog(project, entity, keys, group_info, written.rows, previous,
                         note="rebuilt in full (Spark: no kept latest rows)")

