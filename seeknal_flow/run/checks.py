"""Feature checks (``validate-features`` and ``on_run``), as DuckDB queries over Parquet.

Each check is one aggregate query over the group's output file, so 1e7 rows
take well under a second; nothing is loaded into Python.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

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
    """Declared checks plus the built-ins of groups with an entity (keys not null; keys+time unique)."""
    checks = list(spec.validation)
    if spec.entity is not None:
        checks.append(NullCheck(columns=spec.entity.join_keys, max_fraction=0.0))
        checks.append(UniqueCheck(columns=(*spec.entity.join_keys, spec.event_time_col)))
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
    if isinstance(check, SchemaCheck):
        if previous_schema is None:
            return CheckResult("schema: no earlier successful run to compare with", True, on_run)
        dropped = [c for c in previous_schema if c not in columns]
        retyped = [f"{c} {previous_schema[c]} -> {columns[c]}" for c in previous_schema
                   if c in columns and columns[c] != previous_schema[c]]
        changes = [f"dropped {c}" for c in dropped] + [f"retyped {r}" for r in retyped]
        return CheckResult(f"schema: {'; '.join(changes) if changes else 'no column dropped or retyped'}",
                           not changes, on_run)
    raise RunError(f"{spec.id}: unsupported check {check!r}")  # the Check union is closed


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
    previous = RunState.load(ws.project.state_path).nodes.get(node_id)
    return GroupChecks(node_id, spec, path, checks_for(spec), previous.schema if previous else None, ws.memory())
