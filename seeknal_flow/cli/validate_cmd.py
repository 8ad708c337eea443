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
        from seeknal_flow.authoring.specs import FeatureGroupSpec
        from seeknal_flow.load.workspace import Workspace
        from seeknal_flow.plan.run_state import RunState
        from seeknal_flow.run.checks import checks_for, run_checks

        ws = Workspace.open(project_dir)
        node_id = ws.dag.resolve(group if "." in group else f"feature_group.{group}")
        spec = ws.dag.nodes[node_id]
        if not isinstance(spec, FeatureGroupSpec):
            raise RunError(f"{node_id} is not a feature group")
        path = ws.project.intermediate_path(spec.output_name)
        if not path.exists():
            raise RunError(f"{node_id} has no output yet; run `seeknal run` first")
        previous = RunState.load(ws.project.state_path).nodes.get(node_id)
        checks = checks_for(spec)
        if not checks:
            click.echo(f"{node_id}: no checks declared (add validation=[...]) and no entity")
            return
        failed = 0
        for result in run_checks(spec, path, checks, previous_schema=previous.schema if previous else None,
                                 memory=ws.memory()):
            click.echo(result.line(mode))
            if not result.passed:
                failed += 1
                if mode == "fail":
                    raise RunError(f"{node_id}: check failed: {result.label}")
        click.echo(f"{node_id}: {len(checks) - failed} passed, {failed} {'warned' if mode == 'warn' else 'failed'}")
