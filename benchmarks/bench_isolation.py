"""Per-node overhead of PEP 723 isolation (uv), warm, vs the same node in-process.

Usage: ``python -m benchmarks.bench_isolation [--runs 5] [--append]``. Builds a
temp project with one tiny source and one Python transform, runs it with
``isolation: inprocess`` and ``isolation: uv`` (after one warm-up that builds
the uv environment), each ``seeknal run --full`` a separate process, and
reports the median wall time of the transform node and of the whole command.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import results_file

SECTION = "## PEP 723 isolation overhead (issue 6)"

NODE = '''# /// script
# dependencies = ["pyarrow"]
# ///
from seeknal_flow import transform


@transform(name="t")
def t(ctx):
    rows = ctx.ref("source.s")
    return ctx.duckdb.sql("SELECT k, SUM(v) AS v FROM rows GROUP BY k")
'''


def _run(project: Path) -> tuple[float, float]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "seeknal_flow.cli.main", "run", "--full"], cwd=project,
                         capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - start
    node = float(re.search(r"transform\.t\n(?:.*\n)*?\s+ok: .* in ([0-9.]+)s", out).group(1))
    return wall, node


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--append", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        subprocess.run([sys.executable, "-m", "seeknal_flow.cli.main", "init", "--name", "iso"], cwd=project,
                       check=True, capture_output=True)
        (project / "data" / "s.csv").write_text("k,v\n" + "".join(f"k{i % 10},{i}\n" for i in range(1000)))
        (project / "seeknal/sources/s.yml").write_text("kind: source\nname: s\ntable: data/s.csv\n")
        (project / "seeknal/transforms/t.py").write_text(NODE)
        config = project / "seeknal_project.yml"
        base = config.read_text()
        results = {}
        for mode in ("inprocess", "uv"):
            config.write_text(base + f"isolation: {mode}\n")
            _run(project)  # warm-up: builds and caches the uv environment
            runs = [_run(project) for _ in range(args.runs)]
            results[mode] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
    load = os.getloadavg()[0]
    lines = [
        "| mode | command wall (median s) | node time (median s) |",
        "|---|---:|---:|",
        *[f"| {m} | {w:.2f} | {n:.2f} |" for m, (w, n) in results.items()],
        "",
        f"Isolation overhead per node, warm: {results['uv'][1] - results['inprocess'][1]:.2f} s "
        f"({args.runs} runs each, load average {load:.1f}; seeknal 2.13 pays 1–2 s).",
    ]
    table = "\n".join(lines)
    print(table)
    if args.append:
        results_file.append_to_section(SECTION, f"Command: `python -m benchmarks.bench_isolation --runs {args.runs} "
                                                f"--append` ({time.strftime('%Y-%m-%d')}, 2 cores)\n\n{table}\n")


if __name__ == "__main__":
    main()
