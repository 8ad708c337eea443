"""``python -m benchmarks lookup``: in-process ``get_features`` latency, this checkout vs another.

The project of ``benchmarks/bench_online.py`` (entity ``customer``, two feature groups,
7 features; ``--keys`` keys) is built and run once; then child processes alternate
between this checkout and ``--before`` (same published snapshot, same random existing
keys, seeded), ``--rounds`` each. Every child warms up, then times ``--iterations`` calls
of ``OnlineFeaturesDuckDB.get_features`` (pandas) and ``get_features_arrow`` with 1 and
10 keys and prints p50 / p99 in ms. Medians over the rounds are reported.

Usage: ``python -m benchmarks lookup --keys 5e5 --rounds 3 --before DIR [--iterations 3000]``
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIZES = (1, 10)


def child(project: str, iterations: int) -> None:
    """Run by path (``python benchmarks/bench_lookup.py child ...``) so that only ``seeknal_flow``
    comes from PYTHONPATH: the code under test, this checkout's or ``--before``'s."""
    import time

    import numpy as np

    from seeknal_flow import OnlineFeaturesDuckDB

    online = OnlineFeaturesDuckDB(entity="customer", features=None, project=project)
    ids = online.store.table["customer_id"].to_pylist()
    rng = np.random.default_rng(11)
    out = {}
    for label, fn in (("get_features (pandas)", online.get_features), ("get_features_arrow", online.get_features_arrow)):
        for size in SIZES:
            batches = [[{"customer_id": ids[i]} for i in row] for row in rng.integers(0, len(ids), (iterations, size))]
            for b in batches[:200]:
                fn(b)
            samples = []
            for b in batches:
                t0 = time.perf_counter_ns()
                fn(b)
                samples.append(time.perf_counter_ns() - t0)
            a = np.asarray(samples, dtype=np.float64) / 1e6
            out[f"{label}, {size} key{'s' if size > 1 else ''}"] = (float(np.percentile(a, 50)),
                                                                      float(np.percentile(a, 99)))
    print(json.dumps(out))


def main(args) -> None:
    from benchmarks.bench_online import build_project, seeknal

    n = int(float(args.keys))
    checkouts = {"this checkout": REPO}
    if args.before:
        checkouts["before"] = Path(args.before).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        project = build_project(Path(tmp) / "bench", n)
        wall, _ = seeknal("run", project=project)
        print(f"seeknal run ({n:,} keys): {wall:.2f} s; load {os.getloadavg()[0]:.1f}", flush=True)
        results: dict[str, list[dict]] = {name: [] for name in checkouts}
        for rnd in range(args.rounds):
            order = list(checkouts.items())
            for name, code in (order if rnd % 2 == 0 else order[::-1]):
                env = dict(os.environ, PYTHONPATH=str(code))
                proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "child", str(project),
                                       str(args.iterations)], env=env, cwd=tmp, capture_output=True, text=True,
                                      check=False)
                if proc.returncode != 0:
                    raise SystemExit(f"{name}: {proc.stderr.strip().splitlines()[-1:]}")
                results[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
                print(f"  round {rnd + 1} {name}: " + "; ".join(
                    f"{k} p50 {v[0]:.3f} p99 {v[1]:.3f}" for k, v in results[name][-1].items()), flush=True)
        load = os.getloadavg()
    names = list(checkouts)
    lines = [f"`python -m benchmarks lookup --keys {args.keys} --rounds {args.rounds}"
             f"{' --before DIR' if args.before else ''} --iterations {args.iterations}` — medians of "
             f"{args.rounds} alternating child processes (load at the end {load[0]:.1f})", "",
             "| call | " + " | ".join(f"{n} p50 / p99 ms" for n in names) + " |",
             "|---|" + "---:|" * len(names)]
    for call in results[names[0]][0]:
        cells = []
        for name in names:
            p50 = statistics.median(r[call][0] for r in results[name])
            p99 = statistics.median(r[call][1] for r in results[name])
            cells.append(f"{p50:.3f} / {p99:.3f}")
        lines.append(f"| {call} | " + " | ".join(cells) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        child(sys.argv[2], int(sys.argv[3]))
