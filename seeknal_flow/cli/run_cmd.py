"""``seeknal plan`` and ``seeknal run``."""

from __future__ import annotations

import sys
import time

import click

from seeknal_flow.cli.options import project_option


def _parse_params(pairs: tuple[str, ...]) -> dict:
    import yaml

    from seeknal_flow.errors import SeeknalError

    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SeeknalError(f"--params {pair!r}: write key=value, e.g. --params min_revenue=100")
        try:
            params[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            params[key.strip()] = value
    return params


def _selection(ws, nodes: tuple[str, ...], tags: tuple[str, ...]) -> set[str] | None:
    from seeknal_flow.errors import PlanError

    if not nodes and not tags:
        return None
    selected = {ws.dag.resolve(n) for n in nodes}
    for tag in tags:
        tagged = {i for i, s in ws.dag.nodes.items() if tag in s.tags}
        if not tagged:
            raise PlanError(f"no node has tag '{tag}'")
        selected |= tagged
    return selected


class _Printer:
    """Per-node progress lines; a live row counter on a terminal."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self._last = 0.0
        self._started = 0.0

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

    def done(self, node_id: str, result, output: str) -> None:
        self._clear()
        _echo_output(output)
        rate = f" ({result.rows / result.seconds:,.0f} rows/s)" if result.seconds >= 0.05 else ""
        click.echo(f"  ok: {result.rows:,} rows in {result.seconds:.2f}s{rate}")

    def failed(self, node_id: str, error, output: str) -> None:
        self._clear()
        _echo_output(output)
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
        from seeknal_flow.plan.planner import make_plan
        from seeknal_flow.plan.preflight import preflight
        from seeknal_flow.load.workspace import Workspace

        ws = Workspace.open(project_dir)
        p = make_plan(ws.project, ws.dag, ws.state(), full=full,
                      select=_selection(ws, nodes, tags), cli_params=_parse_params(params))
        preflight(ws.project, ws.dag, p)
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
    @click.option("--engine", type=click.Choice(["local", "spark"]), default=None,
                  help="Run on this machine (local) or on Apache Spark; default: `engine` in seeknal_project.yml.")
    @click.option("--spark-master", default=None, metavar="URL",
                  help="Spark master, e.g. local[*], spark://host:7077, yarn (implies --engine spark).")
    @project_option
    def run(full, nodes, tags, params, memory_limit, threads, continue_on_error, engine, spark_master,
            project_dir) -> None:
        """Run what changed (or --full / --nodes / --tags), writing target/intermediate/."""
        from seeknal_flow.errors import SeeknalError
        from seeknal_flow.plan.planner import make_plan
        from seeknal_flow.plan.preflight import preflight
        from seeknal_flow.load.workspace import Workspace

        ws = Workspace.open(project_dir)
        engine = _engine(ws, engine, spark_master)
        memory = ws.memory(memory_limit, threads)
        state = ws.state()
        p = make_plan(ws.project, ws.dag, state, full=full,
                      select=_selection(ws, nodes, tags), cli_params=_parse_params(params))
        preflight(ws.project, ws.dag, p)
        if not p.to_run:
            _refresh_file_stats(ws, p, state)
            click.echo("Nothing to run: every node is up to date.")
            return
        from seeknal_flow.plan.manifest import write_manifest  # the engine's imports: only when there is work
        from seeknal_flow.run.local import run_plan

        if engine == "spark":
            from seeknal_flow.run.spark.engine import run_on_spark

            spark_run = run_on_spark(ws.project, ws.dag, p, state, memory=memory, reporter=_Printer(),
                                     continue_on_error=continue_on_error, master=spark_master,
                                     on_start=lambda m, s: click.echo(f"Spark session ({m}) started in {s:.2f}s"))
            summary = spark_run.summary
            if spark_run.consolidated:
                click.echo(f"Consolidated and published on Spark: {', '.join(spark_run.consolidated)} "
                           f"({spark_run.consolidation_seconds:.2f}s)")
        else:
            summary = run_plan(ws.project, ws.dag, p, state, memory=memory, reporter=_Printer(),
                               continue_on_error=continue_on_error)
            write_manifest(ws.project, ws.dag)
            _consolidate_after_run(ws, memory, summary)
        skipped = len(p.nodes) - len(p.to_run)
        click.echo(
            f"Done in {summary.seconds:.2f}s: {len(summary.succeeded)} ok, {len(summary.failed)} failed, "
            f"{skipped} up to date" + (f", {len(summary.skipped)} skipped" if summary.skipped else "")
        )
        if summary.errors:
            raise SeeknalError("\n".join(str(e) for e in summary.errors))


def _engine(ws, engine: str | None, spark_master: str | None) -> str:
    from seeknal_flow.errors import SeeknalError

    if spark_master and engine == "local":
        raise SeeknalError("--spark-master needs --engine spark (or leave --engine out)")
    chosen = engine or ("spark" if spark_master else ws.project.config.engine.value)
    if chosen == "spark":
        from operators.spark.session import check_available

        check_available()  # a missing pyspark or Java fails before anything runs
    return chosen


def _consolidate_after_run(ws, memory, summary) -> None:
    from seeknal_flow.store.consolidation import consolidate
    from seeknal_flow.authoring.specs import Kind

    if not any(ws.dag.nodes[n].kind == Kind.FEATURE_GROUP for n in summary.succeeded):
        return
    started = time.perf_counter()
    rebuilt = consolidate(ws.project, ws.dag, memory)
    if rebuilt:
        click.echo(f"Consolidated and published: {', '.join(rebuilt)} ({time.perf_counter() - started:.2f}s)")


def _refresh_file_stats(ws, plan, state) -> None:
    # A touched-but-identical source file was re-hashed by the planner; keep its
    # new size/mtime so the next plan does not hash it again.
    changed = False
    for n in plan.nodes:
        old = state.nodes.get(n.node_id)
        if old is not None and n.state.files and old.files != n.state.files and old.data == n.state.data:
            old.files = n.state.files
            changed = True
    if changed:
        state.save(ws.project.state_path)
