"""``python -m benchmarks sink``: a feature group's copy (DuckDB projection -> Parquet sink), this
checkout's ``operators/sink.py`` against another checkout's, alternating in one process.

The copy is what a feature group that only projects its source costs: DuckDB streams the
projection (``SqlOperator``), ``write_parquet`` encodes and compresses it. Each round runs
both sinks on the same data (the order reversed every other round); medians of wall and CPU
seconds are printed, with every round's wall time.
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import time
from pathlib import Path

from benchmarks import datagen

COLUMNS = "customer_id, order_id, order_date, event_time, revenue, product_category, region"


def _load_sink(checkout: Path):
    spec = importlib.util.spec_from_file_location("before_sink", checkout / "operators" / "sink.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"{checkout}/operators/sink.py not found (--before must be a seeknal-flow checkout)")
    module = importlib.util.module_from_spec(spec)
    sys.modules["before_sink"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def main(args) -> None:
    import operators.sink as current
    from operators.memory import MemoryConfig, shared_duckdb
    from operators.sql import SqlOperator

    rows = int(float(args.rows))
    data = Path(args.data) if args.data else Path(__file__).parent / "data"
    tx = datagen.write_transactions(data, rows)
    sinks = {"this checkout": current}
    if args.before:
        sinks["before"] = _load_sink(Path(args.before).resolve())
    sql = f"SELECT {COLUMNS} FROM ref('source.transactions')"
    mem = MemoryConfig()
    walls: dict[str, list[float]] = {name: [] for name in sinks}
    cpus: dict[str, list[float]] = {name: [] for name in sinks}
    out = data / "sink_bench"
    out.mkdir(parents=True, exist_ok=True)
    for rnd in range(args.rounds):
        order = list(sinks.items()) if rnd % 2 == 0 else list(sinks.items())[::-1]
        for name, module in order:
            with shared_duckdb(mem):
                op = SqlOperator(sql, {"source.transactions": ("source_transactions", tx)}, memory=mem)
                t, c = time.perf_counter(), time.process_time()
                module.write_parquet(op.schema, op.batches(), out / f"{name.replace(' ', '_')}.parquet")
                walls[name].append(time.perf_counter() - t)
                cpus[name].append(time.process_time() - c)
                op.close()
    print(f"`{args.command}` — {rows:,} rows, {args.rounds} alternating rounds, medians")
    print("| sink | wall s | CPU s | rounds (wall s) |\n|---|---:|---:|---|")
    for name in sinks:
        print(f"| {name} | {statistics.median(walls[name]):.3f} | {statistics.median(cpus[name]):.2f} | "
              + " ".join(f"{w:.2f}" for w in walls[name]) + " |")
