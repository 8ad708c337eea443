"""Argument records (from a decorator or a YAML file) -> node specs.

One builder per kind, shared by the Python and YAML front ends, so both forms
of a node produce the same spec.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from operators.durations import parse_duration
from operators.errors import EngineError
from operators.soa.spec import SOAQuery
from operators.soa.validate import structural_problems
from seeknal_flow.authoring.specs import (
    Entity,
    FeatureGroupSpec,
    Location,
    PythonCode,
    Ref,
    SOASpec,
    SourceFormat,
    SourceSpec,
    TransformSpec,
    check_name,
    split_id,
)
from seeknal_flow.errors import SpecError

_EXTENSIONS = {
    ".csv": SourceFormat.CSV,
    ".tsv": SourceFormat.CSV,
    ".parquet": SourceFormat.PARQUET,
    ".json": SourceFormat.JSON,
    ".jsonl": SourceFormat.JSONL,
    ".ndjson": SourceFormat.JSONL,
}


def build(
    kind: str,
    args: Any,
    *,
    location: Location,
    refs: tuple[Ref, ...] = (),
    python: PythonCode | None = None,
    sql: str | None = None,
    description: str = "",
    extra: dict[str, Any] | None = None,
):
    """Build the spec of ``kind`` from its validated argument record."""
    if (problem := check_name(args.name)) is not None:
        raise SpecError(f"{location}: {problem}")
    lines = (extra or {}).get("lines", {})
    declared = tuple(Ref(t, Location(location.file, lines.get(("depends_on",), location.line)))
                     for t in args.depends_on)
    common = dict(
        name=args.name,
        location=location,
        description=description or args.description or "",
        tags=tuple(args.tags),
        params=dict(args.params),
        refs=refs + declared,
    )
    return _BUILDERS[kind](args, common, python, sql, extra or {})


def _source(args, common, python, sql, extra) -> SourceSpec:
    fmt = args.source
    where = f"{common['location']}: source '{args.name}'"
    if fmt is not None and fmt.is_database:
        return _database_source(args, common, python, fmt, where)
    database_only = [f for f in ("connection", "query", "incremental", "partition_on") if getattr(args, f) is not None]
    if database_only:
        raise SpecError(f"{where}: field '{database_only[0]}' is for database sources; "
                        "add source: postgres (or sqlite)")
    if not args.table:
        loc = common["location"]
        line = extra.get("lines", {}).get((), loc.line)  # YAML: the mapping's line, as msgspec reports it
        raise SpecError(f"{loc.file}:{line}: field 'table': required field is missing; give the file's path "
                        "(or source: postgres/sqlite with connection)")
    if fmt is None:
        suffix = "." + args.table.rstrip("/").rsplit(".", 1)[-1].lower() if "." in args.table else ""
        fmt = _EXTENSIONS.get(suffix, SourceFormat.PARQUET if args.table.endswith("/") else None)
        if fmt is None:
            raise SpecError(
                f"{where}: cannot tell the format of "
                f"{args.table!r}; add source=\"csv\" (or parquet, json, jsonl, postgres, sqlite)"
            )
    _check_names(common["location"], [(f"partition_by[{i}]", k) for i, k in enumerate(args.partition_by)])
    return SourceSpec(
        **common,
        format=fmt,
        table=args.table,
        columns=dict(args.columns),
        partition_by=tuple(args.partition_by),
        python=python,
    )


def _database_source(args, common, python, fmt: SourceFormat, where: str) -> SourceSpec:
    if not args.connection:
        example = "${SHOP_PG_URL}" if fmt == SourceFormat.POSTGRES else "data/shop.db"
        raise SpecError(f"{where}: field 'connection': required for {fmt.value} sources, e.g. {example}")
    if bool(args.table) == (args.query is not None):
        raise SpecError(f"{where}: give exactly one of 'table' (e.g. public.orders) or 'query' (a SELECT)")
    if args.partition_by:
        raise SpecError(f"{where}: field 'partition_by' is for Hive folders of files; "
                        "for parallel database reads use partition_on: {column: id, partitions: 4}")
    if args.partition_on is not None and not 1 <= args.partition_on.partitions <= 64:
        raise SpecError(f"{where}: field 'partition_on.partitions': must be between 1 and 64, "
                        f"found {args.partition_on.partitions}")
    if args.query is not None and not args.query.strip():
        raise SpecError(f"{where}: field 'query': is empty; write a SELECT")
    _check_names(common["location"], [(f"partition_by[{i}]", k) for i, k in enumerate(args.partition_by)])
    return SourceSpec(
        **common,
        format=fmt,
        table=args.table,
        columns=dict(args.columns),
        python=python,
        connection=args.connection,
        query=args.query,
        incremental=args.incremental,
        partition_on=args.partition_on,
    )


def _transform(args, common, python, sql, extra) -> TransformSpec:
    return TransformSpec(
        **common, sql=sql, python=python, partitioned=args.partitioned, isolation=args.isolation
    )


def _feature_group(args, common, python, sql, extra) -> FeatureGroupSpec:
    entity = args.entity
    if entity is not None and not isinstance(entity, str):
        entity = {"name": entity.name, "join_keys": entity.join_keys}
    built = Entity.from_value(entity)
    named = [("event_time_col", args.event_time_col)]
    if built is not None:
        named += [("entity.name", built.name)] + [(f"entity.join_keys[{i}]", k) for i, k in enumerate(built.join_keys)]
    named += [(f"features[{i}]", f) for i, f in enumerate(args.features or ())]
    _check_names(common["location"], named)
    durations = [("ttl", args.ttl)] + [
        (f"validation[{i}].max_age", c.max_age) for i, c in enumerate(args.validation) if hasattr(c, "max_age")
    ]
    for field_name, text in durations:
        if text is None:
            continue
        try:
            parse_duration(text, field_name)
        except EngineError as e:
            raise SpecError(f"{common['location']}: field '{field_name}': {e}") from e
    return FeatureGroupSpec(
        **common,
        sql=sql,
        python=python,
        partitioned=args.partitioned,
        isolation=args.isolation,
        entity=built,
        event_time_col=args.event_time_col,
        features=tuple(args.features) if args.features is not None else None,
        validation=tuple(args.validation),
        ttl=args.ttl,
        nulls=args.nulls,
    )


def _check_names(location, named: list[tuple[str, object]]) -> None:
    """Names that become SQL identifiers, column names or folders (entity -> target/feature_store/<entity>/)
    follow the node-name rule; one line naming the file, the field and the fix."""
    for field_name, value in named:
        if (problem := check_name(value)) is not None:
            raise SpecError(f"{location}: field '{field_name}': {problem} (letters, digits and _; "
                            "no quotes, dots, slashes or spaces)")


def _soa(args, common, python, sql, extra) -> SOASpec:
    where = common["location"]
    refs = list(common["refs"])
    lines = extra.get("lines", {})
    source = getattr(args, "source", None)
    for field_name, target in (("source", source), ("spine", args.spine)):
        if target is None:
            continue
        try:
            split_id(target)
        except ValueError as e:
            line = lines.get((field_name,), where.line)
            raise SpecError(f"{where.file}:{line}: field '{field_name}': {e}; "
                            "write e.g. feature_group.customer_daily_agg") from e
        refs.append(Ref(target, Location(where.file, lines.get((field_name,), where.line))))
    query = SOAQuery(
        id_col=args.id_col,
        feature_date_col=args.feature_date_col,
        application_date_col=args.application_date_col,
        features=dict(args.features),
        spine_date_col=args.spine_date_col,
        spine_id_col=args.spine_id_col,
    )
    problems = structural_problems(query, temporal=args.spine is not None)
    if problems:
        raise SpecError([f"{where}: second_order_aggregation.{common['name']}: {p}" for p in problems])
    common["refs"] = tuple(refs)
    return SOASpec(**common, query=query, source=source, spine=args.spine, python=python)


_BUILDERS: dict[str, Callable[..., Any]] = {
    "source": _source,
    "transform": _transform,
    "feature_group": _feature_group,
    "second_order_aggregation": _soa,
}
