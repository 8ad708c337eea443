"""``python -m benchmarks incremental --downstream soa``: one new day under an SOA over daily partitions.

Project: ``source.tx`` (``--days`` daily Hive partitions, the transactions) →
``transform.daily`` (YAML, ``partitioned: true``: per customer and day, orders and
revenue, the application date carried) → ``second_order_aggregation.spend`` (YAML,
by customer: sum/mean/min/max/stddev of daily revenue, orders, a 30-day window sum and a
30/90-day ratio; all mergeable (stddev as count, sum and population variance), so it keeps partial aggregates per input partition
under ``target/state/soa/``).

The last ``--repeat`` days are held out: ``--repeat`` times ``seeknal run --full`` over the others, then
each step adds one held-out day (a new partition) and runs ``seeknal run``. With
``--before DIR`` the same steps run on a second copy with the code of DIR (an
earlier checkout, which recomputes the SOA from scratch), alternating with this
code step by step. At the end ``seeknal run --full`` recomputes everything and its
SOA output is compared with the incremental one (floats within 1e-9 relative), and
both with DuckDB straight over the partitions.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.harness.measure import Sample, measure
from benchmarks.harness.systems import REPO

DAILY_SOA = """kind: transform
name: daily
description: Orders and revenue per customer and day, with the application date (one output partition per day)
partitioned: true
sql: |
  SELECT customer_id, CAST(order_date AS DATE) AS order_date, application_date,
         COUNT(*) AS orders, SUM(revenue) AS revenue
  FROM ref('source.tx')
  GROUP BY ALL
"""

SPEND = """kind: second_order_aggregation
name: spend
description: Per customer, daily revenue and orders over the year, the last 30 days and a 30/90-day trend
source: transform.daily
id_col: customer_id
feature_date_col: order_date
application_date_col: application_date
features:
  revenue:
    basic: [sum, mean, min, max, stddev]
  orders:
    basic: [sum, count]
  recent:
    source_feature: revenue
    window: [0, 30]
    basic: [sum]
  trend:
    source_feature: revenue
    ratio:
      numerator: [0, 30]
      denominator: [31, 90]
"""

OUTPUT = "target/intermediate/second_order_aggregation_spend.parquet"


_NODE_OK = re.compile(r"^\[\d+/\d+\] (\S+)\s+ok: [\d,]+ rows in ([\d.]+)s", re.M)
_DONE = re.compile(r"^Done in ([\d.]+)s", re.M)


def node_times(stdout: str) -> dict[str, float]:
    """Per-node seconds (``seeknal run -v``: ``[2/3] node  ok: N rows in 0.12s``) and the scheduler total."""
    times = {m.group(1): float(m.group(2)) for m in _NODE_OK.finditer(stdout)}
    if m := _DONE.search(stdout):
        times["scheduler total"] = float(m.group(1))
    return times


def _median(samples: list[Sample]) -> Sample:
    return sorted(samples, key=lambda s: s.wall_s)[len(samples) // 2]


@dataclass
class SOARun:
    """One code's figures: its full runs and each one-new-day run."""

    label: str
    fulls: list = field(default_factory=list)  # Samples of `seeknal run --full`
    steps: list = field(default_factory=list)  # (partition added, Sample)

    @property
    def full(self) -> Sample:
        return _median(self.fulls)

    @property
    def median(self) -> Sample:
        return _median([s for _, s in self.steps])

    @property
    def ratio(self) -> float:
        return self.median.wall_s / self.full.wall_s


def setup(root: Path, seeknal: str, pristine: Path, hold: list[str]) -> None:
    subprocess.run([seeknal, "init", "--name", "incremental_soa", "--path", str(root)], check=True,
                   capture_output=True)
    shutil.copytree(pristine, root / "data" / "tx", ignore=lambda _d, names: [n for n in names if n in hold])
    (root / "seeknal" / "sources" / "tx.yml").write_text(
        "kind: source\nname: tx\nsource: parquet\ntable: data/tx/\npartition_by: [order_date]\n")
    (root / "seeknal" / "transforms" / "daily.yml").write_text(DAILY_SOA)
    (root / "seeknal" / "second_order_aggregations").mkdir(exist_ok=True)
    (root / "seeknal" / "second_order_aggregations" / "spend.yml").write_text(SPEND)


def run_soa(work: Path, pristine: Path, seeknal: str, env: dict, repeat: int, before: str | None, log) -> list[SOARun]:
    """The SOA variant on its own copies (this code, and ``before`` if given), alternating."""
    partitions = sorted(p.name for p in pristine.iterdir())
    hold = partitions[-repeat:]
    codes = [("this code", str(REPO))] + ([("before", str(Path(before).resolve()))] if before else [])
    roots = {}
    for label, code in codes:
        root = work / ("soa_before" if label == "before" else "soa")
        setup(root, seeknal, pristine, hold)
        roots[label] = (root, {**env, "PYTHONPATH": code})

    def cmd(label: str, *a: str) -> Sample:
        root, e = roots[label]
        s = measure([seeknal, *a, "--project", str(root)], cwd=REPO, env=e, timeout=3600)
        if not s.ok:
            raise SystemExit(f"[soa, {label}] `seeknal {' '.join(a)}` failed: {s.failure(6)}")
        log(f"[soa, {label}] seeknal {' '.join(a):<10} {s.wall_s:7.2f}s {s.rss_mb:6.0f} MB (load {s.load})")
        return s

    runs = {label: SOARun(label) for label, _ in codes}
    for k in range(repeat):  # full runs, alternating which code goes first
        for label, _ in (codes if k % 2 == 0 else codes[::-1]):
            runs[label].fulls.append(cmd(label, "run", "--full", "-v"))
    for k, part in enumerate(hold):
        order = codes if k % 2 == 0 else codes[::-1]
        for label, _ in order:
            root = roots[label][0]
            shutil.copytree(pristine / part, root / "data" / "tx" / part)
            runs[label].steps.append((part, cmd(label, "run", "-v")))
    return [runs[label] for label, _ in codes]


def check(root: Path, seeknal: str, env: dict) -> str:
    """The incremental SOA output against ``seeknal run --full`` and against DuckDB over the partitions."""
    import duckdb
    import pyarrow.parquet as pq

    incremental = pq.read_table(root / OUTPUT)
    r = measure([seeknal, "run", "--full", "--project", str(root)], cwd=REPO, env=env, timeout=3600)
    if not r.ok:
        return f"`seeknal run --full` failed: {r.failure(3)}"
    full = pq.read_table(root / OUTPUT)
    if incremental.schema != full.schema or incremental.num_rows != full.num_rows:
        return f"incremental SOA output DIFFERS from the full recompute ({incremental.num_rows} vs {full.num_rows} rows)"
    worst = 0.0
    for name in full.column_names:
        a, b = incremental.column(name).to_pylist(), full.column(name).to_pylist()
        for x, y in zip(a, b, strict=True):
            if isinstance(y, float) and isinstance(x, float):
                if math.isnan(y) and math.isnan(x):
                    continue
                if not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9):
                    return f"incremental SOA output DIFFERS from the full recompute in {name}: {x} vs {y}"
                worst = max(worst, abs(x - y) / max(abs(y), 1e-300))
            elif x != y:
                return f"incremental SOA output DIFFERS from the full recompute in {name}: {x!r} vs {y!r}"
    source = f"read_parquet('{root}/data/tx/**/*.parquet', hive_partitioning = true)"
    want = duckdb.sql(f"""WITH d AS (SELECT customer_id, order_date, COUNT(*) AS o, SUM(revenue) AS r FROM {source}
                          GROUP BY ALL)
                          SELECT COUNT(DISTINCT customer_id), SUM(o), SUM(r), COUNT(*) FROM d""").fetchall()[0]
    got = duckdb.sql(f"""SELECT COUNT(*), SUM(orders_SUM), SUM(revenue_SUM), SUM(orders_COUNT)
                         FROM read_parquet('{root / OUTPUT}')""").fetchall()[0]
    same = got[0] == want[0] and got[1] == want[1] and got[3] == want[3] and math.isclose(got[2], want[2], rel_tol=1e-9)
    if not same:
        return f"SOA output DIFFERS from DuckDB: seeknal-flow {got}, DuckDB {want}"
    return (f"incremental SOA output equals `seeknal run --full` ({full.num_rows:,} customers, same rows, ids and "
            f"counts; floats within {worst:.1e} relative) and agrees with DuckDB over the partitions")


def render(rows: int, days: int, repeat: int, runs: list[SOARun], verdict: str) -> str:
    """The SOA variant's table and per-run breakdown (markdown)."""
    this = runs[0]
    lines = [f"SOA downstream: {rows:,} transactions in {days} daily Hive partitions, the last {repeat} held out; "
             "`source.tx` → `transform.daily` (partitioned) → `second_order_aggregation.spend` (by customer, "
             "mergeable aggregates). Full run over the other days, then each step adds one held-out day.", "",
             "| code | full run s | peak RSS MB | one new day, median s | peak RSS MB | ratio | goal ≤ 10 % |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in runs:
        lines.append(f"| {r.label} | {r.full.wall_s:.2f} | {r.full.rss_mb:,.0f} | {r.median.wall_s:.2f} | "
                     f"{r.median.rss_mb:,.0f} | {r.ratio:.1%} | {'met' if r.ratio <= 0.10 else '**MISSED**'} |")
    lines += ["", "| step | code | wall s | peak RSS MB | load 1/5/15 m | per node (scheduler) |", "|---|---|---:|---:|---|---|"]
    for r in runs:
        for s in r.fulls:
            fmt = ", ".join(f"{k} {v:.2f}s" for k, v in node_times(s.stdout).items())
            lines.append(f"| `seeknal run --full` | {r.label} | {s.wall_s:.2f} | {s.rss_mb:,.0f} | {s.load} | {fmt} |")
        for part, s in r.steps:
            fmt = ", ".join(f"{k} {v:.2f}s" for k, v in node_times(s.stdout).items())
            lines.append(f"| `seeknal run` after adding {part} | {r.label} | {s.wall_s:.2f} | {s.rss_mb:,.0f} | "
                         f"{s.load} | {fmt} |")
    st = node_times(this.median.stdout)
    soa = st.get("second_order_aggregation.spend")
    if soa is not None:
        lines += ["", f"- Median one-new-day run (this code) {this.median.wall_s:.2f} s: the SOA merge {soa:.2f} s, "
                  f"the new daily partition {st.get('transform.daily', 0.0):.2f} s."]
    lines.append(f"- {verdict}.")
    return "\n".join(lines)
