"""Second-order aggregation: seeknal-flow's execute_soa vs the same query in DuckDB and Polars.

Task (SPEC §4 semantics) on ``benchmarks/datagen.py`` transactions, by ``region``
(16 keys) and by ``customer_id`` (rows/20 keys): ``revenue`` basic sum/mean/max/stddev,
window [1, 7] sum, ratio [1, 7] / [8, 14] sum; feature date ``order_date``,
application date ``application_date``. Each system runs in its own subprocess, reads
the same Parquet file and writes Parquet; the parent records wall time and peak RSS
and CPU time (user + system) of each child (``os.wait4``), checks that the outputs agree
(1e-6 relative) and prints a markdown table with ratios vs DuckDB. Repeats are interleaved
(system A, B, C, A, B, C, ...) so that every system sees the same load on a shared machine;
each column is its best (lowest) value over the repeats. CPU time is the least load-sensitive
figure: compare it when the load average is high.

Usage::

    python -m benchmarks.bench_soa --rows 1e6
    python -m benchmarks.bench_soa --rows 1e7 --ids customer_id --memory-limit 256MB
    python -m benchmarks.bench_soa --rows 1e7 --append   # also append to benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import results_file

HERE = Path(__file__).parent
SECTION = "## Second-order aggregation (issue 3)"
EARLIER = "\n### Earlier runs"
COL = "revenue"
OUT_COLS = [
    f"{COL}_SUM",
    f"{COL}_MEAN",
    f"{COL}_MAX",
    f"{COL}_STDDEV",
    f"{COL}_SUM_1_7",
    f"{COL}_SUM1_7_SUM8_14",
]


# --------------------------------------------------------------------------- children


def _child_seeknal(inp: str, out: str, id_col: str, memory_limit: str | None, spill: str) -> None:
    import pyarrow.parquet as pq

    from operators.memory import MemoryConfig, parse_size
    from operators.soa.execute import execute_soa
    from operators.soa.spec import SOAFeature, SOAQuery, SOARatio

    query = SOAQuery(
        id_col=id_col,
        feature_date_col="order_date",
        application_date_col="application_date",
        features={
            COL: SOAFeature(basic=("sum", "mean", "max", "stddev")),
            "recent": SOAFeature(source_feature=COL, window=(1, 7), basic=("sum",)),
            "trend": SOAFeature(source_feature=COL, ratio=SOARatio(numerator=(1, 7), denominator=(8, 14))),
        },
    )
    mem = MemoryConfig(
        memory_limit=parse_size(memory_limit) if memory_limit else None,
        spill_dir=Path(spill),
    )
    reader = execute_soa(query, inp, memory=mem)
    with pq.ParquetWriter(out, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)


def _duckdb_sql(inp: str, id_col: str) -> str:
    c = f'"{COL}"'
    return f"""
SELECT "{id_col}",
  SUM({c}) FILTER (WHERE d >= 0) AS {COL}_SUM,
  AVG({c}) FILTER (WHERE d >= 0) AS {COL}_MEAN,
  MAX({c}) FILTER (WHERE d >= 0) AS {COL}_MAX,
  STDDEV_SAMP({c}) FILTER (WHERE d >= 0) AS {COL}_STDDEV,
  SUM({c}) FILTER (WHERE d BETWEEN 1 AND 7) AS {COL}_SUM_1_7,
  CAST(SUM({c}) FILTER (WHERE d BETWEEN 1 AND 7) AS DOUBLE)
    / NULLIF(CAST(SUM({c}) FILTER (WHERE d BETWEEN 8 AND 14) AS DOUBLE), 0) AS {COL}_SUM1_7_SUM8_14
FROM (SELECT "{id_col}", {c}, application_date - order_date AS d FROM read_parquet('{inp}'))
GROUP BY "{id_col}"
"""


def _child_duckdb(inp: str, out: str, id_col: str, memory_limit: str | None, spill: str) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET temp_directory = '{spill}'")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute(f"COPY ({_duckdb_sql(inp, id_col)}) TO '{out}' (FORMAT parquet)")


def _child_polars(inp: str, out: str, id_col: str, memory_limit: str | None, spill: str) -> None:
    import polars as pl

    d = pl.col("d")
    x = pl.col(COL)
    past, w1, w2 = d >= 0, d.is_between(1, 7), d.is_between(8, 14)

    def fsum(cond):  # SQL SUM: NULL (not 0) over an empty filter
        return pl.when(x.filter(cond).count() > 0).then(x.filter(cond).sum())

    lf = (
        pl.scan_parquet(inp)
        .select(id_col, COL, d=(pl.col("application_date") - pl.col("order_date")).dt.total_days())
        .group_by(id_col)
        .agg(
            fsum(past).alias(f"{COL}_SUM"),
            x.filter(past).mean().alias(f"{COL}_MEAN"),
            x.filter(past).max().alias(f"{COL}_MAX"),
            x.filter(past).std(ddof=1).alias(f"{COL}_STDDEV"),
            fsum(w1).alias(f"{COL}_SUM_1_7"),
            (fsum(w1).cast(pl.Float64) / pl.when(fsum(w2) != 0).then(fsum(w2))).alias(f"{COL}_SUM1_7_SUM8_14"),
        )
    )
    lf.sink_parquet(out, engine="streaming")


CHILDREN = {"seeknal": _child_seeknal, "duckdb": _child_duckdb, "polars": _child_polars}


_ENGINES = {"seeknal": ("operators.soa.execute",), "duckdb": ("duckdb",), "polars": ("polars",)}


def _child_main(args: argparse.Namespace) -> None:
    import importlib

    # Engine imports are outside "query s" (datafusion alone takes ~0.3 s); "process s" has them.
    for mod in ("pyarrow.parquet", *_ENGINES[args.child]):
        importlib.import_module(mod)
    if args.child == "seeknal":
        # DataFusion as execute_soa imports it (without pandas), not a plain `import datafusion`.
        importlib.import_module("operators.soa.df_session").import_datafusion()
    t0 = time.perf_counter()
    CHILDREN[args.child](args.input, args.output, args.id, args.memory_limit, args.spill)
    print(json.dumps({"query_s": time.perf_counter() - t0}))


# --------------------------------------------------------------------------- parent


def _run_child(system: str, inp: Path, out: Path, id_col: str, memory_limit: str | None, spill: Path) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_soa", "--child", system, "--input", str(inp)]
    cmd += ["--output", str(out), "--id", id_col, "--spill", str(spill)]
    if memory_limit:
        cmd += ["--memory-limit", memory_limit]
    t0 = time.perf_counter()
    # Output to files, not pipes: we reap the child with wait4 (its own peak RSS;
    # RUSAGE_CHILDREN would be the max over all children), so nothing may block on a pipe.
    with tempfile.TemporaryFile() as so, tempfile.TemporaryFile() as se:
        proc = subprocess.Popen(cmd, stdout=so, stderr=se, cwd=HERE.parent)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        so.seek(0)
        se.seek(0)
        stdout, stderr = so.read().decode(), se.read().decode()
    if proc.returncode != 0:
        lines = stderr.strip().splitlines() or ["failed"]
        errors = [ln for ln in lines if "Error" in ln]
        return {"system": system, "error": (errors or lines)[-1:]}
    info = json.loads(stdout.strip().splitlines()[-1])
    # ru_maxrss is in KiB on Linux.
    return {
        "system": system,
        "wall_s": wall,
        "query_s": info["query_s"],
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024,
    }


def _compare(ref_path: Path, other_path: Path, id_col: str) -> str | None:
    import pyarrow.parquet as pq

    ref = pq.read_table(ref_path).to_pydict()
    other = pq.read_table(other_path).to_pydict()
    if len(ref[id_col]) != len(other[id_col]):
        return f"row count {len(other[id_col])} != {len(ref[id_col])}"
    ro = sorted(range(len(ref[id_col])), key=lambda i: ref[id_col][i])
    oo = sorted(range(len(other[id_col])), key=lambda i: other[id_col][i])
    for col in OUT_COLS:
        a, b = ref[col], other[col]
        for i, j in zip(ro, oo, strict=False):
            x, y = a[i], b[j]
            if x is None or y is None or (isinstance(x, float) and math.isnan(x)):
                if not ((x is None or x != x) and (y is None or y != y)):
                    return f"{col} for {ref[id_col][i]}: {y} != {x}"
            elif not math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9):
                return f"{col} for {ref[id_col][i]}: {y} != {x}"
    return None


def _available(system: str) -> bool:
    if system != "polars":
        return True
    try:
        import polars  # noqa: F401
    except ImportError:
        return False
    return True


def run(rows: int, ids: list[str], systems: list[str], memory_limit: str | None, repeat: int) -> str:
    from benchmarks.datagen import write_transactions

    inp = write_transactions(HERE / "data", rows)
    lines = []
    label = f"{rows:.0e}".replace("+0", "").replace("+", "")
    limit = f", memory limit {memory_limit}" if memory_limit else ""
    with tempfile.TemporaryDirectory(prefix="bench_soa_") as tmp:
        tmpdir = Path(tmp)
        for id_col in ids:
            # Other work on the machine skews wall times: say how loaded it was (1-min average,
            # sampled before and after the runs).
            load0 = os.getloadavg()[0]
            header = len(lines)
            lines.append("")
            lines.append(
                "| system | query s | process s | CPU s | peak RSS MB "
                "| vs DuckDB (query) | vs DuckDB (CPU) | vs DuckDB (RSS) | output |"
            )
            lines.append("|---|---|---|---|---|---|---|---|---|")
            results: dict[str, dict] = {}
            active = [s for s in systems if _available(s)]
            for _ in range(repeat):
                for system in active:  # interleaved: A, B, C, A, B, C, ...
                    if "error" in results.get(system, {}):
                        continue
                    out = tmpdir / f"{system}_{id_col}.parquet"
                    r = _run_child(system, inp, out, id_col, memory_limit, tmpdir / f"spill_{system}")
                    if "error" in r:
                        results[system] = r
                        continue
                    best = results.setdefault(system, {"runs": [], "out": out})
                    best["runs"].append(r)
            for best in results.values():
                if "error" in best:
                    continue
                for k in ("query_s", "wall_s", "cpu_s", "rss_mb"):
                    best[k] = min(r[k] for r in best["runs"])
            load1 = os.getloadavg()[0]
            lines[header] = (
                f"\n{label} rows, by `{id_col}`{limit} (best of {repeat}, interleaved; "
                f"load average {load0:.1f} → {load1:.1f}):\n"
            )
            base = results.get("duckdb")
            for system, r in results.items():
                if "error" in r:
                    lines.append(f"| {system} | failed: {r['error'][0][:120]} | | | | | | | |")
                    continue
                check = "reference" if system == "duckdb" else "unchecked (no DuckDB output)"
                if system != "duckdb" and base and "error" not in base:
                    problem = _compare(base["out"], r["out"], id_col)
                    check = "agrees" if problem is None else f"DIFFERS: {problem}"
                vs_q = vs_c = vs_m = "—"
                if base and "error" not in base:
                    vs_q = f"{r['query_s'] / base['query_s']:.2f}×"
                    vs_c = f"{r['cpu_s'] / base['cpu_s']:.2f}×"
                    vs_m = f"{r['rss_mb'] / base['rss_mb']:.2f}×"
                lines.append(
                    f"| {system} | {r['query_s']:.2f} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {r['rss_mb']:.0f} "
                    f"| {vs_q} | {vs_c} | {vs_m} | {check} |"
                )
    return "\n".join(lines)


def append_results(command: str, table: str) -> None:
    """Append this run at the end of our section's current runs (before its "### Earlier runs")."""
    results_file.append_to_section(SECTION, f"```\n{command}\n```\n{table}\n", before=EARLIER)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=float, default=1e6)
    p.add_argument("--ids", default="region,customer_id")
    p.add_argument("--systems", default="seeknal,duckdb,polars")
    p.add_argument("--memory-limit", default=None)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--append", action="store_true", help="append the table to benchmarks/RESULTS.md")
    # child mode (internal)
    p.add_argument("--child", choices=sorted(CHILDREN))
    p.add_argument("--input")
    p.add_argument("--output")
    p.add_argument("--id")
    p.add_argument("--spill")
    args = p.parse_args(argv)
    if args.child:
        _child_main(args)
        return
    table = run(int(args.rows), args.ids.split(","), args.systems.split(","), args.memory_limit, args.repeat)
    print(table)
    if args.append:
        command = "python -m benchmarks.bench_soa " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
        append_results(command, table)


if __name__ == "__main__":
    main()
