"""``python -m benchmarks run``: every system's SOA, PIT and pipeline tasks at one scale.

Data is generated once per scale (``benchmarks/datagen.py``: N transactions, a spine
of N/20 rows) under ``benchmarks/data/``. Repeats are interleaved (for each repeat,
each task, each system, the system order rotating per repeat) so that the load of
other work on the machine falls on every system alike; the best wall time and the
largest peak RSS of each (task, system) are reported, with ``/proc/loadavg`` as it
was when that best run started. After the runs, each output is compared with
seeknal-flow's (or, without it, the first system's).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import report, verify
from benchmarks.harness.measure import measure
from benchmarks.harness.report import Result
from benchmarks.harness.systems import ORDER, REPO, SYSTEMS, Data
from benchmarks.harness.tasks import OUTPUTS, PIPELINE_PARTS, TASK_WORDS, outputs_of

DATA = REPO / "benchmarks" / "data"
TIMEOUT_S = 3600


def expand_tasks(words: str) -> list[str]:
    tasks: list[str] = []
    for word in words.split(","):
        word = word.strip()
        if word not in TASK_WORDS:
            raise SystemExit(f"unknown task {word!r}; choose from {', '.join(TASK_WORDS)}")
        tasks += [t for t in TASK_WORDS[word] if t not in tasks]
    return tasks


def make_data(rows: int, out: Path = DATA, spine: int | None = None) -> Data:
    from benchmarks import datagen

    spine = spine or max(rows // 20, 1)
    return Data(datagen.write_transactions(out, rows), datagen.write_spine(out, rows, spine))


def run(rows: int, systems: list[str], tasks: list[str], *, repeat: int = 1, memory_limit: str | None = None,
        parts: tuple[str, ...] = PIPELINE_PARTS, data_dir: Path = DATA, work_dir: Path | None = None,
        log=print, timeline: bool = False) -> tuple[dict, list[str]]:
    """Measure, verify; return results keyed by (system, task) and notes (skips).

    ``timeline``: sample memory and the spill folder's size during each run.
    """
    notes, active = [], []
    for name in systems:
        if name not in SYSTEMS:
            raise SystemExit(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")
        why = SYSTEMS[name].missing()
        if why:
            notes.append(f"{SYSTEMS[name].label} skipped: {why}.")
            log(f"skip {name}: {why}")
        else:
            active.append(name)
    active.sort(key=ORDER.index)
    log(f"data: {rows:,} rows")
    data = make_data(rows, data_dir)
    results: dict[tuple[str, str], Result] = {}
    work = Path(tempfile.mkdtemp(prefix="harness-", dir=work_dir or data_dir))
    try:
        for name in list(active):
            system = SYSTEMS[name]
            for cmd in system.warmup():
                s = measure(cmd, cwd=REPO, env=system.env(), timeout=900)
                if not s.ok:
                    notes.append(f"{system.label} skipped: warm-up `{' '.join(cmd[-3:])}` failed ({s.failure()}).")
                    active.remove(name)
                    break
            if name in active and "pipeline" in tasks:
                try:
                    system.prepare(work, data, parts, memory_limit)
                except Exception as e:  # a peer that cannot set up its project is skipped, not fatal
                    notes.append(f"{system.label}: pipeline project setup failed ({e}); its pipeline is skipped.")
        for rep in range(repeat):
            order = active[rep % len(active):] + active[:rep % len(active)] if active else []
            for task in tasks:
                for name in order:
                    system = SYSTEMS[name]
                    r = results.setdefault((name, task), Result(name, task))
                    if r.samples and not r.ok:
                        continue  # failed once: not retried
                    spec = system.spec(task, work, data, parts, memory_limit)
                    sample = measure(spec.cmd, cwd=spec.cwd, env=spec.env, timeout=TIMEOUT_S,
                                     watch=spec.spill if timeline else None)
                    for path in spec.cleanup:
                        shutil.rmtree(path, ignore_errors=True)
                        try:
                            path.parent.rmdir()  # only when nothing else is left in it
                        except OSError:
                            pass
                    missing = [o for o, p in spec.outputs.items() if not p.exists()]
                    if sample.ok and missing:
                        sample.rc = -1
                        sample.stderr += f"\nexited 0 but wrote no {', '.join(missing)}"
                    r.samples.append(sample)
                    log(f"[{rep + 1}/{repeat}] {task:<12} {name:<12} "
                        + (f"{sample.wall_s:7.2f}s {sample.rss_mb:7.0f} MB" if sample.ok else sample.failure())
                        + f"  (load {sample.load})")
                    if sample.ok and sample is r.best:
                        r.stages = system.stage_times(sample.stdout)
                    if sample.ok and rep == 0:
                        r.summaries = {o: verify.summarize(p, OUTPUTS[o].columns) for o, p in spec.outputs.items()}
        _check(results, tasks, active, parts)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results, notes


def _check(results: dict, tasks: list[str], systems: list[str], parts: tuple[str, ...]) -> None:
    for task in tasks:
        done = [s for s in systems if (s, task) in results and results[(s, task)].ok]
        if not done:
            continue
        ref = done[0]  # seeknal-flow first when present (ORDER)
        results[(ref, task)].check = "reference" + ("" if ref == "seeknal_flow" else f" ({ref})")
        ref_sum = results[(ref, task)].summaries
        rows = ", ".join(f"{o} {ref_sum[o]['rows']:,} rows" for o in outputs_of(task, parts))
        results[(ref, task)].check += f": {rows}"
        for s in done[1:]:
            problems = [f"{o}: {p}" for o in outputs_of(task, parts)
                        if (p := verify.compare(ref_sum[o], results[(s, task)].summaries[o]))]
            results[(s, task)].check = "agrees" if not problems else "DIFFERS: " + "; ".join(problems)


def render(rows: int, results: dict, notes: list[str], tasks: list[str], systems: list[str], repeat: int,
           memory_limit: str | None) -> str:
    systems = [s for s in ORDER if s in systems]
    label = f"{rows:.0e}".replace("e+0", "e").replace("e+", "e")
    lines = [f"{label} transactions ({rows:,} rows), spine {max(rows // 20, 1):,} rows"
             + (f", memory limit {memory_limit}" if memory_limit else "")
             + f"; best wall of {repeat} interleaved run(s) per task and system, max peak RSS "
             "(`ru_maxrss` of the process via `wait4`; \"tree\" = sampled sum over its live subprocesses "
             "when larger). Outputs are compared with seeknal-flow's: rows, NULL counts and per-column sums "
             "within 1e-6 relative.", ""]
    lines += report.tasks_table(results, tasks, systems)
    sums_lines, sums = report.sums_table(results, systems)
    if len(sums_lines) > 2:
        lines += ["", *sums_lines]
    extra = report.targets(results, sums) + report.stages(results, systems) + notes
    if extra:
        lines += ["", *[f"- {x}" for x in extra]]
    return "\n".join(lines)


def main(args) -> None:
    rows = int(float(args.scale))
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    tasks = expand_tasks(args.tasks)
    results, notes = run(rows, systems, tasks, repeat=args.repeat, memory_limit=args.memory_limit,
                         log=lambda m: print(m, file=sys.stderr, flush=True))
    body = render(rows, results, notes, tasks, systems, args.repeat, args.memory_limit)
    print(body)
    if args.append:
        report.append(args.command, body)
