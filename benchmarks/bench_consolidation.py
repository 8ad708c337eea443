"""``python -m benchmarks consolidation``: incremental entity consolidation vs a full rebuild.

An entity with three feature groups over ~3e6 rows (``--rows``), written from the benchmark
transactions (``benchmarks/datagen.py``):

* ``tx``: a partitioned group, one Hive folder per ``order_date`` (2/3 of the rows);
* ``spend``: a single-file group (1/3 of the rows);
* ``profile``: a single-file group, one row per customer.

Two scenarios, each a whole process per measurement (``benchmarks/harness/measure.py``: wall
and peak RSS), in alternating rounds, medians printed:

(a) ``spend`` rewritten: the incremental consolidation (kept rows of ``tx`` and ``profile``
    reused, ``spend`` recomputed) vs a full rebuild (kept state ignored) vs the one-query
    build that existed before kept state (``consolidation_sql``, nothing kept);
(b) one new daily partition of ``tx``: the incremental one (kept rows merged with the new
    day) vs the same two references.

Before each incremental measurement the kept state as it was before the change is put back,
so every round measures the same step. Each round checks that the incremental table equals
the full rebuild's (Arrow ``equals``) and has the one-query build's rows. The child prints the
consolidation's own seconds too.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
from pathlib import Path

from benchmarks import datagen
from benchmarks.harness.measure import loadavg, measure

REPO = Path(__file__).resolve().parents[1]
KEYS = ("customer_id",)

_CHILD = """
import json, sys, time
from pathlib import Path
root, mode = Path(sys.argv[1]), sys.argv[2]
groups_doc = json.loads(Path(sys.argv[3]).read_text())
t0 = time.perf_counter()
import duckdb
from operators.memory import MemoryConfig
from operators.sql_text import quote_literal
from seeknal_flow.load.project import Project
from seeknal_flow.store.consolidation import GroupInput, build_entity, consolidation_sql, describe_group
project = Project(root)
groups = [GroupInput(g["name"], Path(g["path"]), g["event_time_col"]) for g in groups_doc]
t1 = time.perf_counter()
if mode == "one-query":
    schemas = {}
    for g in groups:
        schemas[g.name] = describe_group(project, "customer", ("customer_id",), g)[0].names
    out = project.entity_table("customer")
    out.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"COPY ({consolidation_sql(('customer_id',), groups, schemas)}) TO {quote_literal(str(out))} "
                "(FORMAT parquet, COMPRESSION zstd)")
    note = "one query"
else:
    note = build_entity(project, "customer", ("customer_id",), groups, MemoryConfig(), None,
                        rebuild=mode == "full")["consolidation"]
print(json.dumps({"note": note, "seconds": time.perf_counter() - t1}))
"""


def _write_groups(data: Path, rows: int) -> tuple[Path, list[dict], Path]:
    """The three group outputs under ``data/consolidation_<rows>/`` (reused when present); the new day aside."""
    import duckdb

    tx = datagen.write_transactions(data, rows)
    root = data / f"consolidation_{datagen._tag(rows)}"
    groups = [{"name": "profile", "path": str(root / "profile.parquet"), "event_time_col": "event_time"},
              {"name": "spend", "path": str(root / "spend.parquet"), "event_time_col": "event_time"},
              {"name": "tx", "path": str(root / "tx"), "event_time_col": "event_time"}]
    if (root / "done").exists():
        return root, groups, next((root / "new_day").iterdir())
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    con = duckdb.connect()
    src = f"read_parquet({str(tx)!r})"
    con.execute(f"COPY (SELECT customer_id, order_id, order_date, event_time, revenue, product_category FROM {src} "
                f"WHERE order_id % 3 <> 0) TO '{root / 'tx'}' (FORMAT parquet, PARTITION_BY (order_date))")
    con.execute(f"COPY (SELECT customer_id, event_time, revenue * 2 AS spend, region FROM {src} "
                f"WHERE order_id % 3 = 0) TO '{root / 'spend.parquet'}' (FORMAT parquet)")
    con.execute(f"COPY (SELECT customer_id, max(event_time) AS event_time, any_value(region) AS home_region, "
                f"count(*) AS orders FROM {src} GROUP BY customer_id) TO '{root / 'profile.parquet'}' (FORMAT parquet)")
    days = sorted(p for p in (root / "tx").iterdir())
    stash = root / "new_day" / days[-1].name
    stash.parent.mkdir()
    shutil.move(days[-1], stash)  # the last day: the partition that arrives in scenario (b)
    (root / "done").write_text("ok")
    return root, groups, stash


def _child(root: Path, mode: str, groups_file: Path):
    sample = measure([sys.executable, "-c", _CHILD, str(root), mode, str(groups_file)], cwd=REPO,
                     env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    if not sample.ok:
        raise SystemExit(f"consolidation child ({mode}) failed:\n{sample.stderr[-2000:]}")
    return sample, json.loads(sample.stdout.strip().splitlines()[-1])


def _same_table(a: Path, b: Path, *, values_only: bool = False) -> bool:
    """Arrow ``equals``; ``values_only``: the same rows (the one-query build may mark the keys nullable)."""
    import pyarrow.parquet as pq

    left, right = pq.read_table(a), pq.read_table(b)
    return left.to_pylist() == right.to_pylist() if values_only else left.equals(right)


def main(args) -> None:
    rows = int(float(args.rows))
    data = Path(args.data) if args.data else Path(__file__).parent / "data"
    base, groups, stash = _write_groups(data, rows)
    work = data / "consolidation_work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    groups_file = work / "groups.json"
    groups_file.write_text(json.dumps(groups))
    inc, full, one = work / "incremental", work / "full", work / "one_query"
    kept = inc / "target/feature_store/customer/latest"
    new_day = base / "tx" / stash.name
    results: dict[str, dict[str, list]] = {}

    def record(scenario: str, mode: str, sample, info) -> None:
        results.setdefault(scenario, {}).setdefault(mode, []).append((sample.wall_s, sample.rss_mb, info["seconds"],
                                                                       info["note"]))

    for scenario in ("a", "b"):
        if new_day.exists():
            shutil.move(new_day, stash)
        _child(inc, "incremental", groups_file)  # kept state of the entity before the change
        snapshot = work / "kept_before"
        shutil.rmtree(snapshot, ignore_errors=True)
        shutil.copytree(kept, snapshot)
        if scenario == "b":
            shutil.move(stash, new_day)
        for rnd in range(args.repeat):
            if scenario == "a":  # a new write of spend: same bytes, new mtime
                spend = Path(groups[1]["path"])
                spend.write_bytes(spend.read_bytes())
            order = ["incremental", "full", "one-query"]
            if rnd % 2:
                order.reverse()
            for mode in order:
                if mode == "incremental":
                    shutil.rmtree(kept)
                    shutil.copytree(snapshot, kept)
                target = {"incremental": inc, "full": full, "one-query": one}[mode]
                sample, info = _child(target, mode, groups_file)
                record(scenario, mode, sample, info)
            table = "target/feature_store/customer/features.parquet"
            if not (_same_table(inc / table, full / table)
                    and _same_table(inc / table, one / table, values_only=True)):
                raise SystemExit(f"scenario {scenario}, round {rnd + 1}: incremental table differs from the full rebuild")
    shutil.move(new_day, stash)

    print(f"`{args.command}` — {rows:,} transactions rows ({_rows(base)}), {args.repeat} alternating rounds, "
          f"medians; load at the end {loadavg()}; tables equal in every round")
    print("| scenario | consolidation | note | wall s (process) | consolidation s | peak RSS MB | wall / full |")
    print("|---|---|---|---:|---:|---:|---:|")
    names = {"a": "(a) one group (spend) rewritten", "b": "(b) one new daily partition of tx"}
    for scenario, modes in results.items():
        ref = statistics.median(w for w, *_ in modes["full"])
        for mode, samples in modes.items():
            wall = statistics.median(s[0] for s in samples)
            print(f"| {names[scenario]} | {mode} | {samples[0][3]} | {wall:.2f} | "
                  f"{statistics.median(s[2] for s in samples):.2f} | {statistics.median(s[1] for s in samples):.0f} | "
                  f"{wall / ref:.2f}× |")


def _rows(base: Path) -> str:
    import pyarrow.parquet as pq

    counts = {"tx": sum(pq.read_metadata(f).num_rows for f in (base / "tx").rglob("*.parquet")),
              "spend": pq.read_metadata(base / "spend.parquet").num_rows,
              "profile": pq.read_metadata(base / "profile.parquet").num_rows,
              "new day": sum(pq.read_metadata(f).num_rows for f in (base / "new_day").rglob("*.parquet"))}
    return ", ".join(f"{k} {v:,}" for k, v in counts.items())
