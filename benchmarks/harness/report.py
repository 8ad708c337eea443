"""Markdown tables of harness results, and appending them to benchmarks/RESULTS.md."""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks import results_file
from benchmarks.harness.measure import Sample
from benchmarks.harness.systems import LABELS

RESULTS = results_file.RESULTS
SECTION = "## Full pipeline and scale (issue 7)"
REF = "seeknal_flow"
SUM_TASKS = ("soa_region", "soa_customer", "pit")


@dataclass
class Result:
    """Every measured run of one task by one system, and the agreement verdict."""

    system: str
    task: str
    samples: list[Sample] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)  # of the best run
    check: str = ""
    summaries: dict = field(default_factory=dict)  # output -> verify.summarize(...) of the first run

    @property
    def ok(self) -> bool:
        return bool(self.samples) and all(s.ok for s in self.samples)

    @property
    def best(self) -> Sample:
        return min(self.samples, key=lambda s: s.wall_s)

    @property
    def wall(self) -> float:
        return self.best.wall_s

    @property
    def rss(self) -> float:
        return max(s.rss_mb for s in self.samples)

    @property
    def tree(self) -> float:
        return max(s.tree_mb for s in self.samples)


def _ratio(a: float, b: float | None) -> str:
    return f"{a / b:.2f}×" if b else "—"


def _mb(r: Result) -> str:
    # The sampled sum over the process tree, when overlapping processes make it larger.
    extra = f" (tree {r.tree:,.0f})" if r.tree > r.rss * 1.05 + 20 else ""
    return f"{r.rss:,.0f}{extra}"


def tasks_table(results: dict[tuple[str, str], Result], tasks: list[str], systems: list[str]) -> list[str]:
    out = ["| task | system | wall s | peak RSS MB | wall vs seeknal-flow | RSS vs seeknal-flow | load 1/5/15 m | outputs |",
           "|---|---|---:|---:|---:|---:|---|---|"]
    for task in tasks:
        ref = results.get((REF, task))
        ref_ok = ref is not None and ref.ok
        for system in systems:
            r = results.get((system, task))
            if r is None:
                continue
            name = LABELS[system]
            if not r.ok:
                failed = next(s for s in r.samples if not s.ok)
                out.append(f"| {task} | {name} | failed | | | | {failed.load} | {failed.failure()[:300]} |")
                continue
            vs_w = _ratio(r.wall, ref.wall) if ref_ok else "—"
            vs_m = _ratio(r.rss, ref.rss) if ref_ok else "—"
            out.append(f"| {task} | {name} | {r.wall:.2f} | {_mb(r)} | {vs_w} | {vs_m} | {r.best.load} | {r.check} |")
    return out


def sums_table(results: dict[tuple[str, str], Result], systems: list[str]) -> tuple[list[str], dict]:
    """Sum of the separate tasks vs the pipeline, per system."""
    out = ["| system | SOA region + SOA customer + PIT, separate processes: sum of wall s | max peak RSS MB | pipeline wall s | pipeline peak RSS MB |",
           "|---|---:|---:|---:|---:|"]
    sums = {}
    for system in systems:
        parts = [results.get((system, t)) for t in SUM_TASKS]
        pipe = results.get((system, "pipeline"))
        if all(p is not None and p.ok for p in parts):
            sums[system] = (sum(p.wall for p in parts), max(p.rss for p in parts))
        s = sums.get(system)
        cells = [f"{s[0]:.2f}", f"{s[1]:,.0f}"] if s else ["—", "—"]
        cells += [f"{pipe.wall:.2f}", _mb(pipe)] if pipe is not None and pipe.ok else ["—", "—"]
        if s or (pipe is not None and pipe.ok):
            out.append(f"| {LABELS[system]} | " + " | ".join(cells) + " |")
    return out, sums


def targets(results: dict, sums: dict, rss_target_mb: float = 1536) -> list[str]:
    """The issue's targets for the pipeline at this scale: met or missed, with the numbers."""
    lines = []
    ours = results.get((REF, "pipeline"))
    if ours is None or not ours.ok:
        return lines
    if "duckdb" in sums:
        ratio = ours.wall / sums["duckdb"][0]
        verdict = "met" if ratio <= 1.0 else "**MISSED**"
        lines.append(f"seeknal-flow pipeline {ours.wall:.2f} s vs DuckDB's sum of tasks {sums['duckdb'][0]:.2f} s: "
                     f"{ratio:.2f}× (target ≤ 1.0×: {verdict}).")
    duck_pipe = results.get(("duckdb", "pipeline"))
    if duck_pipe is not None and duck_pipe.ok:
        lines.append(f"Against DuckDB doing the pipeline in one process ({duck_pipe.wall:.2f} s): "
                     f"{ours.wall / duck_pipe.wall:.2f}×.")
    verdict = "met" if ours.rss <= rss_target_mb else "**MISSED**"
    lines.append(f"seeknal-flow pipeline peak RSS {ours.rss:,.0f} MB (target ≤ {rss_target_mb:,.0f} MB: {verdict}).")
    return lines


def stages(results: dict, systems: list[str]) -> list[str]:
    lines = []
    for system in systems:
        r = results.get((system, "pipeline"))
        if r is not None and r.ok and r.stages:
            parts = ", ".join(f"{k} {v:.2f}s" for k, v in r.stages.items())
            first = ""
            if len(r.samples) > 1 and r.samples[0] is not r.best:
                first = (f" First run {r.samples[0].wall_s:.2f}s (a fresh project: no run state yet"
                         + (", so the planner content-hashes every source file" if system == REF else "") + ").")
            lines.append(f"{LABELS[system]} `seeknal run --full`, per node (best run): {parts}; "
                         f"process wall {r.wall:.2f}s.{first}")
    return lines


def append(command: str, body: str) -> None:
    """Append one block at the end of our section (created if missing); other sections untouched."""
    block = f"```\n{command}\n```\n\n{results_file.run_header(commit=True)}\n\n{body.rstrip()}\n"
    results_file.append_to_section(SECTION, block, RESULTS)
