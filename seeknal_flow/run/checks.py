"""Feature checks (``validate-features`` and ``on_run``), as DuckDB queries over Parquet.

Each check is one aggregate query over the group's output file, so 1e7 rows
take well under a second; nothing is loaded into Python.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from operators.atomic import write_atomic
from operators.datasets import parquet_dataset
from operators.durations import parse_duration
from operators.memory import MemoryConfig, duckdb_connection
from operators.sql_text import quote_ident, quote_literal
from seeknal_flow.authoring.specs import (
    FeatureGroupSpec,
    FreshnessCheck,
    NullCheck,
    OnRun,
    RangeCheck,
    SchemaCheck,
    UniqueCheck,
)
from seeknal_flow.errors import RunError
from seeknal_flow.load.project import Project
from seeknal_flow.load.workspace import Workspace
from seeknal_flow.plan.run_state import RunState


@dataclass(frozen=True)
class CheckResult:
    label: str  # "null customer_id: 0.0% ≤ 0.0%"
    passed: bool
    on_run: OnRun | None

    def verdict(self, mode: OnRun | str = OnRun.FAIL) -> str:
        return "PASS" if self.passed else ("WARN" if mode == OnRun.WARN else "FAIL")

    def line(self, mode: OnRun | str = OnRun.FAIL) -> str:
        return f"{self.label} {self.verdict(mode)}"


def checks_for(spec: FeatureGroupSpec) -> list:
    """Declared checks plus the built-ins of groups with an entity (keys not null; keys+time unique;
    the schema against the accepted one)."""
    checks = list(spec.validation)
    if spec.entity is not None:
        checks.append(NullCheck(columns=spec.entity.join_keys, max_fraction=0.0))
        checks.append(UniqueCheck(columns=(*spec.entity.join_keys, spec.event_time_col)))
        if not any(isinstance(c, SchemaCheck) for c in checks):
            checks.append(SchemaCheck())
    return checks


def run_checks(
    spec: FeatureGroupSpec,
    path: Path,
    checks: list,
    *,
    previous_schema: dict[str, str] | None,
    memory: MemoryConfig | None = None,
    now: datetime | None = None,
) -> Iterator[CheckResult]:
    """Evaluate ``checks`` on the Parquet file at ``path``, one result at a time."""
    if not checks:
        return
    con = duckdb_connection(memory or MemoryConfig(), shared=True)
    try:
        # A temp view: it belongs to this cursor of the node's shared database.
        con.execute(f"CREATE TEMP VIEW fg AS SELECT * FROM read_parquet({quote_literal(str(path))})")
        columns = output_schema(path)
        for check in checks:
            if isinstance(check, SchemaCheck):
                yield from schema_results(spec, columns, previous_schema, check.on_run)
            else:
                yield _evaluate(con, spec, check, columns, previous_schema, now or datetime.now(UTC))
    finally:
        con.close()


def _need(columns: dict[str, str], names, spec: FeatureGroupSpec) -> None:
    missing = [c for c in names if c not in columns]
    if missing:
        raise RunError(
            f"{spec.id} ({spec.location}): check names column(s) {missing} that the group does not have "
            f"(columns: {', '.join(columns)})"
        )


def _evaluate(con, spec, check, columns, previous_schema, now) -> CheckResult:
    on_run = check.on_run
    if isinstance(check, NullCheck):
        _need(columns, check.columns, spec)
        worst, worst_col = -1.0, check.columns[0]
        for col in check.columns:
            frac = con.execute(
                f"SELECT COALESCE(COUNT(*) FILTER (WHERE {quote_ident(col)} IS NULL) / NULLIF(COUNT(*), 0), 0) FROM fg"
            ).fetchone()[0]
            if frac > worst:
                worst, worst_col = float(frac), col
        ok = worst <= check.max_fraction
        sign = "≤" if ok else ">"
        name = ", ".join(check.columns) if len(check.columns) > 1 else worst_col
        return CheckResult(f"null {name}: {worst:.1%} {sign} {check.max_fraction:.1%}", ok, on_run)
    if isinstance(check, RangeCheck):
        _need(columns, [check.column], spec)
        col = quote_ident(check.column)
        conds = []
        if check.min is not None:
            conds.append(f"{col} < {check.min!r}")
        if check.max is not None:
            conds.append(f"{col} > {check.max!r}")
        where = " OR ".join(conds) or "FALSE"
        bad, lo, hi = con.execute(f"SELECT COUNT(*) FILTER (WHERE {where}), MIN({col}), MAX({col}) FROM fg").fetchone()
        bounds = f"[{_num(check.min, '-inf')}, {_num(check.max, 'inf')}]"
        return CheckResult(f"range {check.column} {bounds}: {bad} rows outside (min {lo}, max {hi})", bad == 0, on_run)
    if isinstance(check, UniqueCheck):
        _need(columns, check.columns, spec)
        cols = ", ".join(quote_ident(c) for c in check.columns)
        dup = con.execute(
            f"SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM fg GROUP BY {cols} HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        return CheckResult(f"unique ({', '.join(check.columns)}): {int(dup)} duplicate rows", dup == 0, on_run)
    if isinstance(check, FreshnessCheck):
        _need(columns, [spec.event_time_col], spec)
        max_age = parse_duration(check.max_age)
        newest = con.execute(
            f"SELECT CAST(MAX({quote_ident(spec.event_time_col)}) AS TIMESTAMP) FROM fg"
        ).fetchone()[0]
        if newest is None:
            return CheckResult(f"freshness {spec.event_time_col}: no rows ≤ {check.max_age}", False, on_run)
        age = now.replace(tzinfo=None) - newest
        ok = age <= max_age
        return CheckResult(
            f"freshness {spec.event_time_col}: newest {newest:%Y-%m-%d %H:%M}, {_age(age)} old "
            f"{'≤' if ok else '>'} {check.max_age}", ok, on_run)
    raise RunError(f"{spec.id}: unsupported check {check!r}")  # the Check union is closed


def schema_results(spec: FeatureGroupSpec, columns: dict[str, str], accepted: dict[str, str] | None,
                   on_run: OnRun | None = None) -> list[CheckResult]:
    """The schema check: one failing line per accepted column dropped (or renamed) or retyped.

    >>> from seeknal_flow.authoring.specs import FeatureGroupSpec, Location
    >>> fg = FeatureGroupSpec(name="g", location=Location("g.yml", 1), sql="SELECT 1")
    >>> [r.line() for r in schema_results(fg, {"a": "string"}, {"a": "double", "b": "int64"})]
    ['schema g.a: double -> string (retyped) FAIL', 'schema g.b: int64 -> missing (dropped or renamed) FAIL']
    """
    if accepted is None:
        return [CheckResult("schema: no accepted schema yet to compare with", True, on_run)]
    out = []
    for col, old in accepted.items():
        new = columns.get(col)
        if new is None:
            out.append(CheckResult(f"schema {spec.name}.{col}: {old} -> missing (dropped or renamed)", False, on_run))
        elif new != old:
            out.append(CheckResult(f"schema {spec.name}.{col}: {old} -> {new} (retyped)", False, on_run))
    return out or [CheckResult("schema: no column dropped or retyped", True, on_run)]


def _num(value: float | None, unbounded: str) -> str:
    if value is None:
        return unbounded
    return str(int(value)) if float(value).is_integer() else str(value)


def _age(delta) -> str:
    seconds = delta.total_seconds()
    if seconds >= 86400:
        return f"{seconds / 86400:.1f}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds:.0f}s"


def apply_on_run_checks(spec, path: Path, previous_schema: dict[str, str] | None,
                        memory: MemoryConfig | None = None) -> list[str]:
    """Run the checks declared with ``on_run``; a failing ``fail`` check raises.

    Returns the result lines to show under the node.
    """
    checks = [c for c in getattr(spec, "validation", ()) if c.on_run is not None]
    lines = []
    for result in run_checks(spec, path, checks, previous_schema=previous_schema, memory=memory):
        mode = result.on_run or OnRun.WARN
        lines.append("check " + result.line(mode))
        if not result.passed and mode == OnRun.FAIL:
            raise RunError(f"check failed: {result.line(mode)}")
    return lines


def output_schema(path: Path) -> dict[str, str]:
    """Column -> Arrow type of a Parquet file, from its footer (what the schema check compares)."""
    return {f.name: str(f.type) for f in parquet_dataset(path).schema}


@dataclass(frozen=True)
class GroupChecks:
    """``seeknal validate-features``: a feature group's checks, ready to evaluate one by one."""

    node_id: str
    spec: FeatureGroupSpec
    path: Path
    checks: list
    previous_schema: dict[str, str] | None
    memory: MemoryConfig

    def results(self) -> Iterator[CheckResult]:
        return run_checks(self.spec, self.path, self.checks, previous_schema=self.previous_schema,
                          memory=self.memory)


def group_checks(ws: Workspace, group: str) -> GroupChecks:
    """The checks of feature group ``group`` (a name or ``feature_group.name``) over its last output."""
    node_id = ws.dag.resolve(group if "." in group else f"feature_group.{group}")
    spec = ws.dag.nodes[node_id]
    if not isinstance(spec, FeatureGroupSpec):
        raise RunError(f"{node_id} is not a feature group")
    path = ws.project.intermediate_path(spec.output_name)
    if not path.exists():
        raise RunError(f"{node_id} has no output yet; run `seeknal run` first")
    accepted = accepted_schema(ws.project, spec)
    if accepted is None and spec.entity is None:  # no catalog: compare with the last successful run
        previous = RunState.load(ws.project.state_path).nodes.get(node_id)
        accepted = previous.schema if previous else None
    return GroupChecks(node_id, spec, path, checks_for(spec), accepted, ws.memory())


def accepted_schema(project: Project, spec: FeatureGroupSpec) -> dict[str, str] | None:
    """The group's last accepted schema (column -> Arrow type), kept in its entity catalog."""
    if spec.entity is None:
        return None
    # Here, not at the top: the store brings DuckDB and pyarrow.compute (~0.15 s), which a run
    # of nodes without an entity (the local engine imports this module) never needs.
    from seeknal_flow.store.consolidation import ACCEPTED_SCHEMA, read_catalog

    catalog = read_catalog(project, spec.entity.name)
    if catalog is None:
        return None
    return catalog.get(ACCEPTED_SCHEMA, {}).get(spec.name)


def accept_schema(ws: Workspace, group: str) -> tuple[str, dict[str, str]]:
    """``validate-features --accept-schema``: record the group's current output schema as accepted."""
    from seeknal_flow.store.consolidation import ACCEPTED_SCHEMA, read_catalog  # see accepted_schema

    checks = group_checks(ws, group)
    spec = checks.spec
    if spec.entity is None:
        raise RunError(f"{checks.node_id} has no entity, so no catalog to keep an accepted schema in; its schema "
                       "check compares with its last successful run")
    catalog = read_catalog(ws.project, spec.entity.name)
    if catalog is None:
        raise RunError(f"entity '{spec.entity.name}' is not consolidated yet; run `seeknal run` first")
    schema = output_schema(checks.path)
    catalog.setdefault(ACCEPTED_SCHEMA, {})[spec.name] = schema
    path = ws.project.entity_catalog(spec.entity.name)
    write_atomic(path, json.dumps(catalog, indent=1).encode())
    return checks.node_id, schema
