"""``python -m benchmarks scale``: the pipeline (SOA by customer + PIT) at a large scale
under a memory limit — for seeknal-flow ``seeknal run --full --memory-limit 2GB`` on the
harness's pipeline project without the SOA by region; for DuckDB (optional) the same
work in one process with ``SET memory_limit``.

Reports wall time, peak RSS against the limit, per-node times, and whether the
outputs agree. Needs disk for the data: about 2.2 GB per 1e8 transactions.
"""

from __future__ import annotations

import shutil
import sys

from benchmarks.harness import report, run
from benchmarks.harness.measure import loadavg
from operators.memory import parse_size

PARTS = ("soa_customer", "pit")


def main(args) -> None:
    rows = int(float(args.rows))
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    free = shutil.disk_usage(run.DATA.parent).free
    need = rows * 30  # ~22 bytes/row of transactions Parquet, plus the spine and outputs
    if free < need:
        raise SystemExit(f"{free / 1e9:.1f} GB free under {run.DATA}, need about {need / 1e9:.1f} GB")
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    log(f"before: load {loadavg()}, {free / 1e9:.0f} GB free")
    results, notes = run.run(rows, systems, ["pipeline"], memory_limit=args.memory_limit, parts=PARTS, log=log,
                             timeline=True)
    limit_mb = parse_size(args.memory_limit) / 2**20
    lines = [f"Pipeline = SOA by customer + PIT (spine {max(rows // 20, 1):,} rows) over {rows:,} transactions, "
             f"`--memory-limit {args.memory_limit}`.", ""]
    lines += report.tasks_table(results, ["pipeline"], [s for s in run.ORDER if s in systems])
    extra = []
    ours = results.get(("seeknal_flow", "pipeline"))
    if ours is not None:
        if ours.ok:
            verdict = "within" if ours.rss <= limit_mb else "**ABOVE**"
            extra.append(f"seeknal-flow completed in {ours.wall:.1f} s; peak RSS {ours.rss:,.0f} MB is {verdict} "
                         f"the {args.memory_limit} limit ({limit_mb:,.0f} MB), "
                         f"{(ours.rss - limit_mb):+,.0f} MB from it.")
        else:
            failed = next(s for s in ours.samples if not s.ok)
            extra.append(f"seeknal-flow FAILED after {failed.wall_s:.1f} s, peak RSS {failed.rss_mb:,.0f} MB: "
                         f"{failed.failure(6)}")
    extra += report.stages(results, systems) + notes
    lines += ["", *[f"- {x}" for x in extra]]
    for system in systems:
        r = results.get((system, "pipeline"))
        if r is not None and r.samples and r.samples[0].timeline:
            lines += ["", *phases(r, system)]
    body = "\n".join(lines)
    print(body)
    if args.append:
        report.append(args.command, body)


def phases(r, system: str) -> list[str]:
    """Where memory went: peak process-tree RSS and spill-folder size per phase of the run.

    Phases of a ``seeknal run`` come from its per-node times (nodes run one after
    another; what precedes the first node is start-up, discovery and planning).
    The samples are every ``measure.SAMPLE_S`` s, so short spikes can be missed.
    """
    from benchmarks.harness.systems import LABELS, SYSTEMS

    sample = r.samples[0]
    stages = SYSTEMS[system].stage_times(sample.stdout)
    total = stages.pop("scheduler total", None)
    bounds, t = [], 0.0
    if total is not None and stages:
        t = max(sample.wall_s - total, 0.0)
        bounds.append(("start-up, discovery, planning", 0.0, t))
        for node, sec in stages.items():
            bounds.append((node, t, t + sec))
            t += sec
    bounds.append(("end" if bounds else "whole run", t, float("inf")))
    out = [f"{LABELS[system]}: memory over the run (sampled every 0.1 s: summed RSS of the process tree, "
           "and the size of its spill folder):", "",
           "| phase | seconds | peak RSS MB | RSS at phase end MB | peak spill MB |", "|---|---:|---:|---:|---:|"]
    for name, a, b in bounds:
        pts = [p for p in sample.timeline if a <= p[0] < b]
        if not pts:
            continue
        span = (min(b, sample.wall_s) - a)
        out.append(f"| {name} | {span:.1f} | {max(p[1] for p in pts):,.0f} | {pts[-1][1]:,.0f} | "
                   f"{max(p[2] for p in pts):,.0f} |")
    return out
