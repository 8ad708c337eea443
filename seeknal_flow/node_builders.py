"""Argument records (from a decorator or a YAML file) -> node specs.

One builder per kind, shared by the Python and YAML front ends, so both forms
of a node produce the same spec.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from seeknal_flow.errors import SpecError
from seeknal_flow.specs import (
    Entity,
    FeatureGroupSpec,
    Location,
    PythonCode,
    Ref,
    SourceFormat,
    SourceSpec,
    TransformSpec,
    check_name,
)

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
    common = dict(
        name=args.name,
        location=location,
        description=description or args.description or "",
        tags=tuple(args.tags),
        params=dict(args.params),
        refs=refs,
    )
    return _BUILDERS[kind](args, common, python, sql, extra or {})


def _source(args, common, python, sql, extra) -> SourceSpec:
    fmt = args.source
    if fmt is None:
        suffix = "." + args.table.rstrip("/").rsplit(".", 1)[-1].lower() if "." in args.table else ""
        fmt = _EXTENSIONS.get(suffix, SourceFormat.PARQUET if args.table.endswith("/") else None)
        if fmt is None:
            raise SpecError(
                f"{common['location']}: source '{args.name}': cannot tell the format of "
                f"{args.table!r}; add source=\"csv\" (or parquet, json, jsonl)"
            )
    return SourceSpec(
        **common,
        format=fmt,
        table=args.table,
        columns=dict(args.columns),
        partition_by=tuple(args.partition_by),
        python=python,
    )


def _transform(args, common, python, sql, extra) -> TransformSpec:
    return TransformSpec(
        **common, sql=sql, python=python, partitioned=args.partitioned, isolation=args.isolation
    )


def _feature_group(args, common, python, sql, extra) -> FeatureGroupSpec:
    entity = args.entity
    if entity is not None and not isinstance(entity, str):
        entity = {"name": entity.name, "join_keys": entity.join_keys}
    if args.ttl is not None:
        from operators.durations import parse_duration
        from operators.errors import EngineError

        try:
            parse_duration(args.ttl)
        except EngineError as e:
            raise SpecError(f"{common['location']}: field 'ttl': {e}") from None
    return FeatureGroupSpec(
        **common,
        sql=sql,
        python=python,
        partitioned=args.partitioned,
        isolation=args.isolation,
        entity=Entity.from_value(entity),
        event_time_col=args.event_time_col,
        features=tuple(args.features) if args.features is not None else None,
        validation=tuple(args.validation),
        ttl=args.ttl,
    )


_BUILDERS: dict[str, Callable[..., Any]] = {
    "source": _source,
    "transform": _transform,
    "feature_group": _feature_group,
}
