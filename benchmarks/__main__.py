"""Benchmarks harness: seeknal-flow vs DuckDB, Polars and seeknal 2.13.

Commands::

    python -m benchmarks pipeline --rows 3e6 1e7 [--repeat 3] [--before DIR]
    python -m benchmarks sink --rows 3e6 [--rounds 10] [--before DIR]   # the feature-group copy: two sinks   # the user path vs DuckDB and Polars scripts
    python -m benchmarks run --scale 1e7 --systems seeknal_flow,duckdb,polars,seeknal \\
        [--tasks soa,pit,pipeline] [--repeat 3] [--memory-limit 2GB] [--append]
    python -m benchmarks incremental --rows 1e7 --days 365 [--repeat 3] [--downstream none,sums,distinct,soa] \\
        [--before DIR] [--append]
    python -m benchmarks scale --rows 1e8 --memory-limit 2GB [--systems seeknal_flow,duckdb] [--append]
    python -m benchmarks lookup --keys 5e5 [--rounds 3] [--before DIR]   # in-process get_features p50/p99
    python -m benchmarks serve [--keys 1e5] [--requests 20000] [--rounds 3] [--workers 1]
    python -m benchmarks setup-seeknal      # benchmarks/.venvs/seeknal213: uv venv + seeknal==2.13.0
    python -m benchmarks compare --before DIR --after DIR [--runs 10] [--scale 1e7]   # two checkouts, alternating
    python -m benchmarks db --rows 2e6 [--repeat 3]   # PostgreSQL -> Parquet vs psql copy and plain ADBC
    python -m benchmarks ui --rows 1e7 [--repeat 3]   # seeknal ui: column statistics, cache, preview
    python -m benchmarks ordering --before DIR [--rows 1e7] [--runs 3]   # cost of the defined row order
    python -m benchmarks consolidation [--rows 3e6] [--repeat 3]   # incremental consolidation vs full rebuild

``--append`` adds the printed tables, with the command, to benchmarks/RESULTS.md
under "Full pipeline and scale (issue 7)".
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys

# Each subcommand's module; its main(args) runs it (imported only when chosen: each pulls heavy deps).
_MODULES = {
    "run": "benchmarks.harness.run",
    "pipeline": "benchmarks.harness.pipeline",
    "sink": "benchmarks.bench_sink",
    "incremental": "benchmarks.harness.incremental",
    "compare": "benchmarks.harness.compare",
    "scale": "benchmarks.harness.scale",
    "db": "benchmarks.bench_db",
    "serve": "benchmarks.bench_serve",
    "lookup": "benchmarks.bench_lookup",
    "ui": "benchmarks.bench_ui",
    "ordering": "benchmarks.bench_ordering",
    "consolidation": "benchmarks.bench_consolidation",
}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command_name", required=True)

    r = sub.add_parser("run", help="SOA, PIT and pipeline tasks of each system at one scale")
    r.add_argument("--scale", default="1e6", help="transactions rows, e.g. 1e7 (spine: rows/20)")
    r.add_argument("--systems", default="seeknal_flow,duckdb,polars,seeknal")
    r.add_argument("--tasks", default="soa,pit,pipeline", help="soa, soa_region, soa_customer, pit, pipeline")
    r.add_argument("--repeat", type=int, default=1, help="interleaved runs per task and system; best wall kept")
    r.add_argument("--memory-limit", default=None, help="passed to every system that has one, e.g. 2GB")
    r.add_argument("--append", action="store_true", help="append the tables to benchmarks/RESULTS.md")

    pl = sub.add_parser("pipeline", help="the user path (sources, feature group, 2 SOA, PIT, consolidation) "
                                         "vs one DuckDB script and one Polars script")
    pl.add_argument("--rows", nargs="+", default=["3e6", "1e7"], help="transactions rows (spine: rows/20)")
    pl.add_argument("--repeat", type=int, default=3, help="alternating rounds; medians reported")
    pl.add_argument("--before", default=None,
                    help="an earlier checkout of seeknal-flow: its run alternates with this one (seeknal_before)")

    lk = sub.add_parser("lookup", help="in-process get_features latency (1 and 10 keys): this checkout vs another")
    lk.add_argument("--keys", default="5e5", help="entity keys")
    lk.add_argument("--rounds", type=int, default=3, help="alternating child processes per checkout")
    lk.add_argument("--iterations", type=int, default=3000, help="timed calls per size in each child")
    lk.add_argument("--before", default=None, help="an earlier checkout of seeknal-flow, measured alternately")

    k = sub.add_parser("sink", help="a feature group's copy (DuckDB projection -> Parquet sink): this sink vs "
                                     "another checkout's, alternating")
    k.add_argument("--rows", default="3e6")
    k.add_argument("--rounds", type=int, default=10)
    k.add_argument("--before", default=None, help="an earlier checkout of seeknal-flow (its operators/sink.py)")
    k.add_argument("--data", default=None, help="folder for the generated transactions (default benchmarks/data)")

    i = sub.add_parser("incremental", help="partitioned sources: one changed partition vs the full run")
    i.add_argument("--rows", default="1e7")
    i.add_argument("--days", type=int, default=365)
    i.add_argument("--repeat", type=int, default=3, help="incremental runs, each after changing another day")
    i.add_argument("--downstream", default="none,sums,distinct",
                   help="variants, comma-separated: none (partitioned pipeline only), sums or distinct (plus a "
                        "non-partitioned node counting days with COUNT(*) or COUNT(DISTINCT order_date)), soa "
                        "(an SOA over the daily partitions; one new day per step)")
    i.add_argument("--before", default=None,
                   help="soa variant: an earlier checkout whose steps alternate with this code's (PYTHONPATH)")
    i.add_argument("--append", action="store_true")

    s = sub.add_parser("scale", help="the pipeline (SOA by customer + PIT) at a large scale under a memory limit")
    s.add_argument("--rows", default="1e8")
    s.add_argument("--memory-limit", default="2GB")
    s.add_argument("--systems", default="seeknal_flow")
    s.add_argument("--append", action="store_true")

    c = sub.add_parser("compare", help="two checkouts of seeknal-flow, alternating runs: engine tasks and commands")
    c.add_argument("--before", required=True, help="a checkout of the earlier code (e.g. a git worktree)")
    c.add_argument("--after", required=True, help="a checkout of the later code")
    c.add_argument("--runs", type=int, default=10, help="alternating pairs per measurement (after one warm-up pair)")
    c.add_argument("--scale", default="1e7", help="transactions rows of the engine tasks (spine: rows/20)")

    d = sub.add_parser("db", help="a PostgreSQL table to Parquet: seeknal vs psql \\copy and plain ADBC (own server)")
    d.add_argument("--rows", default="2e6")
    d.add_argument("--repeat", type=int, default=3, help="alternating rounds; medians reported")
    v = sub.add_parser("serve", help="seeknal serve under ab -k -c 8 and Arrow Flight, embedded vs Redis vs a raw ASGI app")
    v.add_argument("--keys", default="1e5", help="keys of the entity (Flight exchanges all of them)")
    v.add_argument("--requests", type=int, default=20000, help="ab requests per measurement (1 key)")
    v.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians reported")
    v.add_argument("--flight-runs", type=int, default=10, help="exchanges per round (median)")
    v.add_argument("--workers", type=int, default=1, help="seeknal serve --workers (and the raw app's)")

    u = sub.add_parser("ui", help="seeknal ui's column statistics (cold, cached) and preview vs DuckDB SUMMARIZE")
    u.add_argument("--rows", default="1e7")
    u.add_argument("--repeat", type=int, default=3, help="alternating rounds; medians reported")

    o = sub.add_parser("ordering", help="seeknal run --full with and without the defined row order (issue 14)")
    o.add_argument("--before", required=True, help="a seeknal-flow tree without the change")
    o.add_argument("--rows", default="1e7")
    o.add_argument("--runs", type=int, default=3, help="alternating runs after a warm-up pair; medians reported")
    o.add_argument("--memory-limit", default="2GB")

    cs = sub.add_parser("consolidation", help="entity consolidation after one changed group / one new partition: "
                                              "incremental (kept latest rows) vs full rebuild, whole processes")
    cs.add_argument("--rows", default="3e6", help="transactions rows the three groups are written from")
    cs.add_argument("--repeat", type=int, default=3, help="alternating rounds; medians reported")
    cs.add_argument("--data", default=None, help="folder for the generated data (default benchmarks/data)")

    sub.add_parser("setup-seeknal", help="create benchmarks/.venvs/seeknal213 with uv (needs PyPI)")

    args = p.parse_args(argv)
    args.command = "python -m benchmarks " + " ".join(shlex.quote(a) for a in argv)
    module = _MODULES.get(args.command_name)
    if module is not None:
        importlib.import_module(module).main(args)
    else:
        from benchmarks.harness.systems import install_seeknal213

        print(install_seeknal213())


if __name__ == "__main__":
    main()
