"""``seeknal runs``: the run history under target/runs/."""

from __future__ import annotations

import click

from seeknal_flow.cli.options import project_option
from seeknal_flow.cli.output import emit_json, format_option, is_json


def register(cli: click.Group) -> None:
    @cli.command("runs")
    @click.option("--last", type=click.IntRange(min=1), default=10, show_default=True, help="How many runs to show.")
    @format_option
    @project_option
    def runs(last: int, output_format: str, project_dir: str | None) -> None:
        """Recent runs, newest first: status, time, nodes ran/failed/skipped, command."""
        from seeknal_flow.load.project import Project
        from seeknal_flow.run.results import NodeOutcome, RunHistory, run_history

        project = Project.find(_path(project_dir))
        history = run_history(project, last=last)
        if is_json(output_format):
            emit_json(RunHistory(runs=history))
            return
        if not history:
            click.echo("No runs yet: `seeknal run` records each run in target/runs/.")
            return
        for r in history:
            elapsed = f"{r.elapsed_s:.2f}s" if r.elapsed_s is not None else "-"
            counts = ", ".join(f"{r.count(o)} {o.value}" for o in NodeOutcome if r.count(o))
            click.echo(f"{r.run_id}  {r.status.value:<11}  {elapsed:>8}  {counts or 'no nodes'}  "
                       f"{' '.join(r.command)}")


def _path(project_dir: str | None):
    from pathlib import Path

    return Path(project_dir) if project_dir else None
