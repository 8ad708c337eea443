"""``seeknal validate-features``."""

from __future__ import annotations

import sys

import click
import msgspec

from seeknal_flow.cli.options import lock_note, project_option
from seeknal_flow.cli.output import emit_json, format_option, is_json
from seeknal_flow.errors import RunError


class CheckLine(msgspec.Struct, kw_only=True):
    check: str  # e.g. "null customer_id: 0.0% <= 0.0%"
    verdict: str  # PASS, WARN or FAIL


class ValidationReport(msgspec.Struct, kw_only=True):
    """``seeknal validate-features GROUP --format json``."""

    node: str
    mode: str
    passed: int
    failed: int
    checks: list[CheckLine]


def register(cli: click.Group) -> None:
    @cli.command("validate-features")
    @click.argument("group")
    @click.option("--mode", type=click.Choice(["warn", "fail"]), default="fail", show_default=True,
                  help="fail: exit 1 at the first failing check; warn: run all, exit 0.")
    @click.option("--accept-schema", is_flag=True,
                  help="Record the group's current output schema as the accepted one (after an intended change).")
    @format_option
    @project_option
    def validate_features(group: str, mode: str, accept_schema: bool, output_format: str,
                          project_dir: str | None) -> None:
        """Run a feature group's checks (declared + built-in) against its output.

        Groups with an entity always compare their output's schema with the last accepted one
        (kept in the entity catalog): each dropped, renamed or retyped column fails with its old
        and new type. After an intended change, record the new schema with --accept-schema.
        """
        from seeknal_flow.load.workspace import Workspace
        from seeknal_flow.run.checks import group_checks

        ws = Workspace.open(project_dir)
        if accept_schema:
            from seeknal_flow.run.checks import accept_schema as accept
            from seeknal_flow.run.lock import project_lock

            with project_lock(ws.project, "seeknal validate-features --accept-schema", note=lock_note):
                node_id, schema = accept(ws, group)
            click.echo(f"{node_id}: accepted schema ({', '.join(f'{c} {t}' for c, t in schema.items())})")
            return
        group_run = group_checks(ws, group)
        node_id, checks = group_run.node_id, group_run.checks
        as_json = is_json(output_format)
        report = ValidationReport(node=node_id, mode=mode, passed=0, failed=0, checks=[])
        if not checks and not as_json:
            click.echo(f"{node_id}: no checks declared (add validation=[...]) and no entity")
            return
        stopped = None
        for result in group_run.results():
            if stopped is not None and not (str(stopped).startswith(f"{node_id}: check failed: schema ")
                                            and result.label.startswith("schema ")):
                break  # fail mode stops at the first failing check (a schema check's lines all show)
            report.checks.append(CheckLine(check=result.label, verdict=result.verdict(mode)))
            if result.passed:
                report.passed += 1
            else:
                report.failed += 1
            if not as_json:
                click.echo(result.line(mode))
            if not result.passed and mode == "fail" and stopped is None:
                stopped = RunError(f"{node_id}: check failed: {result.label}")
        if as_json:
            emit_json(report)
            if stopped is not None:
                click.echo(f"error: {stopped}", err=True)
                sys.exit(1)
            return
        if stopped is not None:
            raise stopped
        click.echo(f"{node_id}: {report.passed} passed, {report.failed} {'warned' if mode == 'warn' else 'failed'}")
