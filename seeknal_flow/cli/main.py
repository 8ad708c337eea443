"""Entry point: the command group and the error boundary.

Engines are imported lazily inside commands so ``seeknal --help`` stays fast.
"""

from __future__ import annotations

import sys
import traceback

import click

from seeknal_flow.cli import (
    apply_cmd,
    clean_cmd,
    draft_cmd,
    dry_run_cmd,
    entity_cmd,
    init_cmd,
    lineage_cmd,
    repl_cmd,
    run_cmd,
    runs_cmd,
    schema_cmd,
    serve_cmd,
    ui_cmd,
    validate_cmd,
)
from seeknal_flow.version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
@click.version_option(__version__, prog_name="seeknal-flow")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """seeknal-flow: declare sources, feature groups, transforms and second-order
    aggregations; run them as one pipeline; explore them in a SQL REPL."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


for module in (init_cmd, draft_cmd, dry_run_cmd, apply_cmd, clean_cmd, run_cmd, runs_cmd, lineage_cmd, repl_cmd,
               entity_cmd, serve_cmd, ui_cmd, validate_cmd, schema_cmd):
    module.register(cli)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user mistakes become one line on stderr and exit code 1."""
    from operators.errors import EngineError
    from seeknal_flow.errors import SeeknalError, os_error_text

    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="seeknal", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except (SeeknalError, EngineError) as e:
        if debug:
            traceback.print_exc()
        for line in str(e).splitlines() or ["unknown error"]:
            click.echo(f"error: {line}", err=True)
        tail = getattr(e, "tail", "")
        if tail:
            click.echo("  " + tail.replace("\n", "\n  "), err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except OSError as e:  # the environment (disk full, read-only, permissions), not a bug: say which and why
        if debug:
            traceback.print_exc()
        click.echo(f"error: {os_error_text(e)}", err=True)
        sys.exit(1)
    except UnicodeDecodeError as e:  # a file that is not UTF-8 text reached a reader without its own check
        if debug:
            traceback.print_exc()
        click.echo(f"error: a file is not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8", err=True)
        sys.exit(1)
    except Exception as e:  # a bug in seeknal-flow, not a user mistake: say so in one line
        if debug:
            traceback.print_exc()
        click.echo(f"error: internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                   "(a bug in seeknal-flow; rerun with `seeknal --debug ...` for the traceback)", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
