"""The cost of a defined row order (issue 14): `seeknal run --full` of one project, two trees.

``python -m benchmarks ordering --before DIR [--rows 1e7] [--runs 3] [--memory-limit 2GB]``

The project reads the harness's transactions in place (``benchmarks/datagen.py``) and has two
nodes: ``feature_group.daily`` (one row per customer and day, ~0.95 rows per input row: the worst
case for the sort the run stage now adds, since nearly every input row survives the GROUP BY)
and ``transform.by_region`` (16 rows, no ORDER BY). ``--before`` is a checkout without the
ordering (e.g. ``git archive <commit> | tar -x -C /tmp/before``); the current tree is "after".
Runs alternate before/after after one warm-up pair; medians of wall time, CPU and peak RSS.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks import datagen
from benchmarks.harness.measure import loadavg, measure
from benchmarks.harness.systems import base_env

HERE = Path(__file__).resolve().parent.parent
DAILY = """kind: feature_group
name: daily
entity: customer
event_time_col: order_date
sql: |
  SELECT customer_id, order_date, SUM(revenue) AS amount, COUNT(*) AS orders
  FROM ref('source.tx')
  GROUP BY customer_id, order_date
"""
BY_REGION = """kind: transform
name: by_region
sql: SELECT region, SUM(revenue) AS revenue FROM ref('source.tx') GROUP BY region
"""


def _project(root: Path, data: Path, memory_limit: str) -> Path:
    (root / "seeknal/sources").mkdir(parents=True)
    (root / "seeknal/feature_groups").mkdir(parents=True)
    (root / "seeknal/transforms").mkdir(parents=True)
    (root / "seeknal_project.yml").write_text(f"name: ordering\nmemory_limit: {memory_limit}\n")
    (root / "data").mkdir()
    (root / "data/tx.parquet").symlink_to(data)
    (root / "seeknal/sources/tx.yml").write_text("kind: source\nname: tx\ntable: data/tx.parquet\n")
    (root / "seeknal/feature_groups/daily.yml").write_text(DAILY)
    (root / "seeknal/transforms/by_region.yml").write_text(BY_REGION)
    return root


def main(args: argparse.Namespace) -> None:
    rows = int(float(args.rows))
    data = datagen.write_transactions(HERE / "benchmarks" / "data", rows)
    trees = {"before": Path(args.before).resolve(), "after": HERE}
    samples: dict[str, list] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="bench-ordering-") as tmp:
        projects = {name: _project(Path(tmp) / name, data, args.memory_limit) for name in trees}
        print(f"load at start: {loadavg()}", file=sys.stderr)
        for i in range(args.runs + 1):
            for name, tree in trees.items():
                cmd = [sys.executable, "-m", "seeknal_flow.cli.main", "run", "--full", "-q"]
                sample = measure(cmd, cwd=projects[name], env={**base_env(), "PYTHONPATH": str(tree)}, timeout=1800)
                if not sample.ok:
                    raise SystemExit(f"{name}: {sample.failure()}")
                if i:  # the first pair warms the page cache
                    samples[name].append(sample)
                print(f"run {i} {name}: {sample.wall_s:.2f} s, {sample.rss_mb:.0f} MB", file=sys.stderr)
        out_rows = None
        import pyarrow.parquet as pq

        out_rows = pq.ParquetFile(projects["after"] / "target/intermediate/feature_group_daily.parquet").metadata.num_rows
        print(f"load at end: {loadavg()}", file=sys.stderr)
    med = {n: (statistics.median(s.wall_s for s in v), statistics.median(s.cpu_s for s in v),
               statistics.median(s.rss_mb for s in v)) for n, v in samples.items()}
    print(f"`seeknal run --full`, {rows:,} transactions -> feature_group.daily {out_rows:,} rows + transform.by_region; "
          f"memory_limit {args.memory_limit}; medians of {args.runs} alternating runs\n")
    print("| tree | wall s | CPU s | peak RSS MB | wall / before |")
    print("|---|---:|---:|---:|---:|")
    for name in trees:
        wall, cpu, rss = med[name]
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {rss:.0f} | {wall / med['before'][0]:.2f}x |")

