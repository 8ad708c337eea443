"""``seeknal plan`` and ``seeknal run``."""

from __future__ import annotations

import sys
import time

import click

from seeknal_flow.cli.options import lock_note, no_wait_option, project_option
from seeknal_flow.cli.output import emit_json, format_option, is_json
from seeknal_flow.cli.progress import RunPrinter
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
            params[key.strip()] = parsed = yaml.safe_load(value) if value.strip() else ""
        except (yaml.YAMLError, RecursionError):
            params[key.strip()] = value
            continue
        if _expanded_size(parsed, 10_000) > 10_000:  # aliases of aliases: fingerprints would expand them all
            raise RunError(f"--params {key.strip()}: the value expands to more than 10,000 items (YAML aliases?); "
                           "write it out")
    return params


def _expanded_size(value, limit: int) -> int:
    """How many values ``value`` holds once shared (aliased) parts are counted at every use; stops past ``limit``."""
    count, todo = 0, [value]
    while todo and count <= limit:
        item = todo.pop()
        count += 1
        if isinstance(item, dict):
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return count


def _recorded_command(argv: list[str]) -> list[str]:
    """The command line for run_results.json, with ``--params`` values hidden (they may be secrets).

    >>> _recorded_command(["run", "--params", "token=abc", "--params=x=1", "--full"])
    ['seeknal', 'run', '--params', 'token=***', '--params=x=***', '--full']
    """
    out, hide_next = ["seeknal"], False
    for arg in argv:
        if hide_next:
            key, sep, _ = arg.partition("=")
            arg, hide_next = (f"{key}=***" if sep else "***"), False
        elif arg == "--params":
            hide_next = True
        elif arg.startswith("--params="):
            key, sep, _ = arg[len("--params="):].partition("=")
            arg = f"--params={key}=***" if sep else "--params=***"
        out.append(arg)
    return out


def register(cli: click.Group) -> None:
    @cli.command("plan")
    @click.option("--full", is_flag=True, help="Show the plan of a full run.")
    @click.option("--nodes", multiple=True, help="Plan only these nodes and their downstream.")
    @click.option("--tags", multiple=True, help="Plan only nodes with these tags and their downstream.")
    @click.option("--params", "params", multiple=True, help="key=value passed to ctx.params (repeatable).")
    @format_option
    @project_option
    def plan(full: bool, nodes: tuple, tags: tuple, params: tuple, output_format: str, project_dir: str | None) -> None:
        """Show each node as RUN or SKIP, and why."""
        from seeknal_flow.load.workspace import Workspace
        from seeknal_flow.plan.plan_project import plan_project
        from seeknal_flow.plan.planner import render_plan

        ws = Workspace.open(project_dir)
        p = plan_project(ws, full=full, nodes=nodes, tags=tags, params=_parse_params(params))
        report = p.report(ws.dag, ws.project.config.name)
        if is_json(output_format):
            emit_json(report)
        else:
            click.echo(render_plan(report))

    @cli.command("run")
    @click.option("--full", is_flag=True, help="Run every node, ignoring saved state.")
    @click.option("--nodes", multiple=True, help="Run these nodes (kind.name) and their downstream.")
    @click.option("--tags", multiple=True, help="Run nodes with these tags and their downstream.")
    @click.option("--params", "params", multiple=True, help="key=value passed to ctx.params (repeatable).")
    @click.option("--memory-limit", default=None,
                  help="Engine memory budget, e.g. 2GB (spills beyond it); env SEEKNAL_MEMORY_LIMIT.")
    @click.option("--threads", type=click.IntRange(min=1), default=None, help="Engine threads; env SEEKNAL_THREADS.")
    @click.option("--continue-on-error", is_flag=True, help="Keep running nodes that do not depend on a failure.")
    @click.option("--engine", type=click.Choice([e.value for e in EngineName]), default=None,
                  help="Run on this machine (local) or on Apache Spark; default: `engine` in seeknal_project.yml.")
    @click.option("--spark-master", default=None, metavar="URL",
                  help="Spark master, e.g. local[*], spark://host:7077, yarn (implies --engine spark).")
    @click.option("-q", "--quiet", is_flag=True, help="Print nothing on success (failures still print).")
    @click.option("-v", "--verbose", is_flag=True, help="Add each node's timing, rate and why it ran.")
    @no_wait_option
    @format_option
    @project_option
    def run(full, nodes, tags, params, memory_limit, threads, continue_on_error, engine, spark_master, quiet,
            verbose, no_wait, output_format, project_dir) -> None:
        """Run what changed (or --full / --nodes / --tags), writing target/intermediate/.

        Every run is recorded in target/run_results.json and target/runs/ (see `seeknal runs`).
        Ctrl-C stops the run within a second or two (exit 130); finished nodes are kept and
        the next run resumes with the rest.
        """
        started = time.perf_counter()
        from seeknal_flow.load.workspace import Workspace
        from seeknal_flow.run.lock import project_lock

        as_json = is_json(output_format)
        ws = Workspace.open(project_dir)
        # One writer at a time: the plan, the run and the state it saves all happen under the lock.
        with project_lock(ws.project, "seeknal run", wait=not no_wait, note=lock_note):
            summary, printer = _run_locked(ws, full, nodes, tags, params, memory_limit, threads, continue_on_error,
                                           engine, spark_master, quiet, verbose, as_json, started)
        if as_json:
            emit_json(summary.results)
        if summary.interrupted:
            finished = ", ".join(summary.succeeded) or "none"
            click.echo(f"interrupted: {len(summary.succeeded)} node(s) finished ({finished}); "
                       f"{len(summary.cancelled)} cancelled. Run `seeknal run` again to finish the rest.", err=True)
            sys.exit(130)
        if summary.nothing_to_run and not summary.consolidated:
            printer.summary("Nothing to run: every node is up to date.")
            return
        if summary.consolidated:
            where = " on Spark" if summary.engine == "spark" else ""
            printer.summary(f"Consolidated and published{where}: {', '.join(summary.consolidated)} "
                            f"({summary.consolidation_seconds:.2f}s)")
            for entity in summary.consolidated:
                if note := summary.consolidation_notes.get(entity):
                    printer.summary(f"  {entity}: {note}")
        printer.summary(
            f"Done in {summary.seconds:.2f}s: {len(summary.succeeded)} ok, {len(summary.failed)} failed, "
            f"{summary.up_to_date} up to date" + (f", {len(summary.skipped)} skipped" if summary.skipped else "")
        )
        if summary.errors:
            raise RunError("\n".join(str(e) for e in summary.errors))


def _run_locked(ws, full, nodes, tags, params, memory_limit, threads, continue_on_error, engine, spark_master, quiet,
                verbose, as_json, started):
    from seeknal_flow.plan.plan_project import plan_project
    from seeknal_flow.run.engines import choose_engine, chosen_engine
    from seeknal_flow.run.interrupt import interrupt_guard
    from seeknal_flow.run.service import run_project

    open_engine = choose_engine(ws, ws.memory(memory_limit, threads), engine=engine, spark_master=spark_master)
    # The engine the run will use decides some reasons (an SOA merges its partials on the local engine only).
    p = plan_project(ws, full=full, nodes=nodes, tags=tags, params=_parse_params(params),
                     engine=chosen_engine(ws, engine, spark_master))
    printer = RunPrinter(quiet=quiet, verbose=verbose, to_stderr=as_json,
                         reasons={n.node_id: ", ".join(n.reasons) for n in p.nodes})
    try:
        with interrupt_guard() as interrupted:
            summary = run_project(ws, p, open_engine, printer, continue_on_error=continue_on_error,
                                  command=_recorded_command(sys.argv[1:]), started=started, interrupted=interrupted)
    except Exception:
        if as_json:  # the run was recorded before the error rose: stdout still gets its document
            from seeknal_flow.run.results import read_run_results

            emit_json(read_run_results(ws.project))
        raise
    finally:
        printer.close()
    return summary, printer
