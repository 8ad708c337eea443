"""``seeknal plan`` and ``seeknal run``."""

from __future__ import annotations

import sys
import time

import click

from seeknal_flow.cli.options import project_option
from seeknal_flow.errors import RunError
from seeknal_flow.load.project import EngineName


def _parse_params(pairs: tuple[str, ...]) -> dict:
    import yaml


    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise RunError(f"--params {pair!r}: write key=value, e.g. --params min_revenue=100")
        try:
            params[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            params[key.strip()] = value
    return params


class _Printer:
    """Per-node progress lines; a live row counter on a terminal."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._last = 0.0
        self._started = 0.0

    def note(self, text: str) -> None:
        click.echo(text)

    def start(self, index: int, total: int, node_id: str) -> None:
        self._started = time.perf_counter()
        click.echo(f"[{index}/{total}] {node_id}")

    def progress(self, node_id: str, rows: int) -> None:
        now = time.perf_counter()
        if self.tty and now - self._last > 0.5 and now - self._started > 1.0:
            self._last = now
            rate = rows / max(now - self._started, 1e-9)
            click.echo(f"\r  ... {rows:,} rows ({rate:,.0f} rows/s)", nl=False, err=True)

    def _clear(self) -> None:
        if self.tty and self._last:
            click.echo("\r" + " " * 60 + "\r", nl=False, err=True)
            self._last = 0.0

    def done(self, node_id: str, result) -> None:
        self._clear()
        _echo_output(result.output)
        rate = f" ({result.rows / result.seconds:,.0f} rows/s)" if result.seconds >= 0.05 else ""
        click.echo(f"  ok: {result.rows:,} rows in {result.seconds:.2f}s{rate}")

    def failed(self, node_id: str, error) -> None:
        self._clear()
        _echo_output(error.output)
        click.echo(f"  FAILED: {error.reason}")
        if error.tail:
            click.echo("    " + error.tail.replace("\n", "\n    "))

    def skipped(self, node_id: str, reason: str) -> None:
        click.echo(f"  skipped {node_id}: {reason}")


def _echo_output(output: str) -> None:
    if output.strip():
        click.echo("  | " + output.rstrip().replace("\n", "\n  | "))


def register(cli: click.Group) -> None:
    @cli.command("plan")
    @click.option("--full", is_flag=True, help="Show the plan of a full run.")
    @click.option("--nodes", multiple=True, help="Plan only these nodes and their downstream.")
    @click.option("--tags", multiple=True, help="Plan only nodes with these tags and their downstream.")
    @click.option("--params", "params", multiple=True, help="key=value passed to ctx.params (repeatable).")
    @project_option
    def plan(full: bool, nodes: tuple, tags: tuple, params: tuple, project_dir: str | None) -> None:
        """Show each node as RUN or SKIP, and why."""
        from seeknal_flow.load.workspace import Workspace
        from seeknal_flow.plan.plan_project import plan_project

        ws = Workspace.open(project_dir)
        p = plan_project(ws, full=full, nodes=nodes, tags=tags, params=_parse_params(params))
        click.echo(f"Plan for {ws.project.config.name}: {len(p.to_run)} to run, "
                   f"{len(p.nodes) - len(p.to_run)} to skip")
        if p.nodes:
            click.echo(p.describe(ws.dag))

    @cli.command("run")
    @click.option("--full", is_flag=True, help="Run every node, ignoring saved state.")
    @click.option("--nodes", multiple=True, help="Run these nodes (kind.name) and their downstream.")
    @click.option("--tags", multiple=True, help="Run nodes with these tags and their downstream.")
    @click.option("--params", "params", multiple=True, help="key=value passed to ctx.params (repeatable).")
    @click.option("--memory-limit", default=None, help="Engine memory budget, e.g. 2GB (spills beyond it).")
    @click.option("--threads", type=click.IntRange(min=1), default=None, help="Engine threads.")
    @click.option("--continue-on-error", is_flag=True, help="Keep running nodes that do not depend on a failure.")
    @click.option("--engine", type=click.Choice([e.value for e in EngineName]), default=None,
                  help="Run on this machine (local) or on Apache Spark; default: `engine` in seeknal_project.yml.")
    @click.option("--spark-master", default=None, metavar="URL",
                  help="Spark master, e.g. local[*], spark://host:7077, yarn (implies --engine spark).")
    @project_option
    def run(full, nodes, tags, params, memory_limit, threads, continue_on_error, engine, spark_master,
            project_dir) -> None:
        """Run what changed (or --full / --nodes / --tags), writing target/intermediate/."""
        from seeknal_flow.load.workspace import Workspace
        from seeknal_flow.plan.plan_project import plan_project
        from seeknal_flow.run.engines import choose_engine
        from seeknal_flow.run.service import run_project

        ws = Workspace.open(project_dir)
        open_engine = choose_engine(ws, ws.memory(memory_limit, threads), engine=engine, spark_master=spark_master)
        p = plan_project(ws, full=full, nodes=nodes, tags=tags, params=_parse_params(params))
        summary = run_project(ws, p, open_engine, _Printer(), continue_on_error=continue_on_error)
        if summary.nothing_to_run:
            click.echo("Nothing to run: every node is up to date.")
            return
        if summary.consolidated:
            where = " on Spark" if summary.engine == "spark" else ""
            click.echo(f"Consolidated and published{where}: {', '.join(summary.consolidated)} "
                       f"({summary.consolidation_seconds:.2f}s)")
        click.echo(
            f"Done in {summary.seconds:.2f}s: {len(summary.succeeded)} ok, {len(summary.failed)} failed, "
            f"{summary.up_to_date} up to date" + (f", {len(summary.skipped)} skipped" if summary.skipped else "")
        )
        if summary.errors:
            raise RunError("\n".join(str(e) for e in summary.errors))
