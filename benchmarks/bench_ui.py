"""``python -m benchmarks ui``: column statistics and a preview of a 1e7-row output, as ``seeknal ui`` computes them.

Data: ``benchmarks/datagen.py``'s transactions (``--rows``, 8 columns: text, integer, date,
timestamp, double). Each measurement is a fresh process (harness ``measure``: wall time and peak
RSS), alternating, ``--repeat`` rounds; medians reported:

- ``SUMMARIZE`` alone in DuckDB (the reference: the scan every statistic starts from);
- ``column_stats`` cold (cache removed first): SUMMARIZE, histograms and top values, then the cache write;
- ``column_stats`` again (served from ``target/ui_cache/``);
- ``preview`` of 50 rows (a LIMIT read).

Prints a Markdown table; nothing is asserted.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.datagen import write_transactions
from benchmarks.harness.measure import loadavg, measure

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "benchmarks" / "data"

_CHILD = """import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
mode, path, root = sys.argv[1:]
if mode == "summarize":
    import duckdb
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SUMMARIZE SELECT * FROM read_parquet('{path}')").fetchall()
else:
    from seeknal_flow.load.project import Project
    from seeknal_flow.ui import stats
    if mode == "preview":
        stats.preview(Path(path), 50)
    else:
        stats.column_stats(Project(Path(root)), Path(path))
print(json.dumps({"inner_s": time.perf_counter() - t0}))
"""

LABELS = {"summarize": "DuckDB `SUMMARIZE` alone (reference)", "cold": "`column_stats`, first time (computed, cached)",
          "cached": "`column_stats`, again (from target/ui_cache)", "preview": "`preview`, 50 rows (LIMIT read)"}


def main(args) -> None:
    rows = int(float(args.rows))
    path = write_transactions(DATA, rows)
    env = {"PYTHONPATH": str(REPO)}
    samples: dict[str, list] = {k: [] for k in LABELS}
    load = loadavg()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for _ in range(args.repeat):
            for key in LABELS:
                if key == "cold":
                    shutil.rmtree(root / "target" / "ui_cache", ignore_errors=True)
                mode = {"cold": "stats", "cached": "stats"}.get(key, key)
                s = measure([sys.executable, "-c", _CHILD, mode, str(path), str(root)], cwd=REPO, env=env)
                if not s.ok:
                    raise SystemExit(f"{key}: {s.failure()}")
                samples[key].append((s.wall_s, json.loads(s.stdout.strip().splitlines()[-1])["inner_s"], s.rss_mb))
    ref = statistics.median(w for w, _, _ in samples["summarize"])
    print(f"`{args.command}` — {rows:,} rows, {path.stat().st_size / 1e6:.0f} MB Parquet, {args.repeat} alternating "
          f"rounds, medians; load average at start {load}\n")
    print("| step | wall s (process) | inside s | peak RSS MB | / SUMMARIZE |\n|---|---:|---:|---:|---:|")
    for key, label in LABELS.items():
        wall = statistics.median(w for w, _, _ in samples[key])
        inner = statistics.median(i for _, i, _ in samples[key])
        rss = statistics.median(r for _, _, r in samples[key])
        print(f"| {label} | {wall:.2f} | {inner:.2f} | {rss:.0f} | {wall / ref:.2f}× |")
