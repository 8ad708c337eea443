"""Two source trees of seeknal-flow against each other: did a change make anything slower?

``python -m benchmarks compare --before DIR --after DIR [--runs 10] [--scale 1e7]``

Each tree is a checkout (e.g. ``git worktree add /tmp/before <commit>``); every measured
process runs with ``PYTHONPATH=<tree>``, so it imports that tree's ``seeknal_flow``,
``operators`` and ``benchmarks`` (an editable install elsewhere is shadowed). Runs alternate
before, after, before, ... after one warm-up pair, on the same data, so a change in the
machine's load hits both trees alike. Two groups:

- engine tasks: SOA by region, SOA by customer and the PIT join over the harness's
  transactions (``benchmarks/datagen.py``), each a fresh process through the harness's
  own children (``benchmarks.harness.tasks``);
- commands: ``seeknal --help``, ``seeknal plan``, a ``seeknal run`` with nothing to do, and
  ``seeknal run --full`` on a copy of each tree's ``examples/ml-path``.

Medians are reported with minimums; CPU (user + sys) moves less with the load than wall
time does. No figure is asserted: this prints tables for ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import datagen
from benchmarks.harness.measure import Sample, loadavg, measure
from benchmarks.harness.systems import base_env

TASK_CODE = {
    "SOA by region": "from benchmarks.harness.tasks import flow_soa as f; f({tx!r}, {out!r}, 'region', None, {spill!r})",
    "SOA by customer": "from benchmarks.harness.tasks import flow_soa as f; "
                       "f({tx!r}, {out!r}, 'customer_id', None, {spill!r})",
    "PIT join": "from benchmarks.harness.tasks import flow_pit as f; f({tx!r}, {spine!r}, {out!r}, None, {spill!r})",
}
COMMANDS = {
    "`seeknal --help`": ["--help"],
    "`seeknal plan`, example project (up to date)": ["plan", "--project", "{project}"],
    "`seeknal run`, example project, nothing to do": ["run", "--project", "{project}"],
    "`seeknal run --full`, example project": ["run", "--full", "--project", "{project}"],
}


@dataclass
class Compared:
    """The samples of one measurement, per tree."""

    label: str
    samples: dict[str, list[Sample]] = field(default_factory=lambda: {"before": [], "after": []})

    def row(self) -> str:
        runs = len(self.samples["before"])
        wall = {k: statistics.median(s.wall_s for s in v) for k, v in self.samples.items()}
        low = {k: min(s.wall_s for s in v) for k, v in self.samples.items()}
        cpu = {k: statistics.median(s.cpu_s for s in v) for k, v in self.samples.items()}
        rss = {k: max(s.rss_mb for s in v) for k, v in self.samples.items()}
        return (f"| {self.label} | {runs} | {wall['before']:.3f} ({low['before']:.3f}) | "
                f"{wall['after']:.3f} ({low['after']:.3f}) | **{wall['after'] / wall['before']:.2f}×** | "
                f"{cpu['before']:.2f} / {cpu['after']:.2f} | {cpu['after'] / max(cpu['before'], 1e-9):.2f}× | "
                f"{rss['before']:,.0f} / {rss['after']:,.0f} |")


HEADER = ("| measurement | runs | before wall median (min) s | after wall median (min) s | after / before wall "
          "| CPU median s before / after | after / before CPU | peak RSS MB before / after |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|")


def _alternate(label: str, trees: dict[str, Path], command, runs: int, log) -> Compared:
    """``command(tree_name, tree) -> (cmd, cwd)``; one warm-up pair, then ``runs`` pairs."""
    result = Compared(label)
    for i in range(runs + 1):
        for name, tree in trees.items():
            cmd, cwd = command(name, tree)
            env = {**base_env(), "PYTHONPATH": str(tree)}
            sample = measure(cmd, cwd=cwd, env=env, timeout=1800)
            if not sample.ok:
                raise SystemExit(f"{label} failed in the {name} tree: {sample.failure()}")
            if i:
                result.samples[name].append(sample)
        log(f"{label}: pair {i}/{runs} done (load {loadavg()})")
    return result


def compare(before: Path, after: Path, *, runs: int, rows: int, work: Path, log=print) -> list[Compared]:
    trees = {"before": before.resolve(), "after": after.resolve()}
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    tx = datagen.write_transactions(data, rows)
    spine = datagen.write_spine(data, rows, max(1, rows // 20))
    out: list[Compared] = []
    for label, code in TASK_CODE.items():
        def task(name: str, tree: Path, code=code):
            text = code.format(tx=str(tx), spine=str(spine), out=str(work / f"{name}.parquet"),
                               spill=str(work / f"spill-{name}"))
            return [sys.executable, "-c", text], tree
        out.append(_alternate(label, trees, task, runs, log))
    projects = {}
    for name, tree in trees.items():
        projects[name] = work / f"project-{name}"
        shutil.rmtree(projects[name], ignore_errors=True)
        shutil.copytree(tree / "examples" / "ml-path", projects[name], ignore=shutil.ignore_patterns("target"))
    for label, args in COMMANDS.items():
        def command(name: str, tree: Path, args=args):
            return [sys.executable, "-m", "seeknal_flow.cli.main",
                    *(a.format(project=projects[name]) for a in args)], projects[name]
        n = runs if "--full" not in args else max(3, runs // 3)
        out.append(_alternate(label, trees, command, n, log))
    return out


def main(args) -> None:
    rows = int(float(args.scale))
    with tempfile.TemporaryDirectory(prefix="seeknal-compare-") as tmp:
        results = compare(Path(args.before), Path(args.after), runs=args.runs, rows=rows, work=Path(tmp),
                          log=lambda text: print(text, file=sys.stderr))
    print(f"\n`{args.command}` ({rows:,} transactions; load at the end {loadavg()})\n")
    print(HEADER)
    for r in results:
        print(r.row())

