"""``seeknal validate-features``."""

from __future__ import annotations

import click

from seeknal_flow.cli.options import project_option
from seeknal_flow.errors import RunError


def register(cli: click.Group) -> None:
    @cli.command("validate-features")
    @click.argument("group")
    @click.option("--mode", type=click.Choice(["warn", "fail"]), default="fail", show_default=True,
                  help="fail: exit 1 at the first failing check; warn: run all, exit 0.")
    @project_option
    def validate_features(group: str, mode: str, project_dir: str | None) -> None:
        """Run a feature group's checks (declared + built-in) against its output."""
        from seeknal_flow.load.workspace import Workspace
        from seeknal_flow.run.checks import group_checks

        group_run = group_checks(Workspace.open(project_dir), group)
        node_id, checks = group_run.node_id, group_run.checks
        if not checks:
            click.echo(f"{node_id}: no checks declared (add validation=[...]) and no entity")
            return
        failed = 0
        for result in group_run.results():
            click.echo(result.line(mode))
            if not result.passed:
                failed += 1
                if mode == "fail":
                    raise RunError(f"{node_id}: check failed: {result.label}")
        click.echo(f"{node_id}: {len(checks) - failed} passed, {failed} {'warned' if mode == 'warn' else 'failed'}")
