"""``python -m benchmarks incremental``: re-running one changed partition vs the full run.

Project (seeknal-flow, in a temp folder under ``benchmarks/data/``):

- ``source.tx``: the datagen transactions as ``data/tx/order_date=YYYY-MM-DD/data_0.parquet``
  (``--days`` daily Hive partitions, written by DuckDB ``COPY ... PARTITION_BY``;
  with fewer than 365 days, day d of the year goes to partition d mod days);
- ``transform.daily`` (YAML, ``partitioned: true``): per day, per customer, orders and
  revenue;
- with ``--downstream sums|distinct``, ``transform.customer_totals`` (YAML, not
  partitioned): per customer, totals over every day of ``transform.daily``, active days
  counted with COUNT(*) or COUNT(DISTINCT order_date) (see ``TOTALS``). By the spec a
  node that is not partitioned re-runs in full when any partition of its input changed,
  so its whole cost is in every incremental run; ``none`` measures the partitioned
  pipeline alone.

Per variant (``--downstream none,sums,distinct`` runs each on its own copy of the
data): ``seeknal run --full``; ``seeknal run`` with nothing changed (start-up and
planning only); then ``--repeat`` times: rewrite one day's file (revenue + 1 on every
row: new size/mtime and content), ``seeknal plan`` and ``seeknal run``. The
incremental figure is the median ``seeknal run`` wall against the full run's. For
the downstream variants the same downstream query straight in DuckDB (in this
process, over the same partitions) is timed too: the floor any full re-run of it has.
At the end the outputs are checked against DuckDB over the changed data.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import report
from benchmarks.harness.measure import Sample, measure
from benchmarks.harness.run import DATA, make_data
from benchmarks.harness.systems import REPO, SeeknalFlow, base_env

DAILY = """kind: transform
name: daily
description: Orders and revenue per customer and day (one output partition per input partition)
partitioned: true
sql: |
  SELECT customer_id, COUNT(*) AS orders, SUM(revenue) AS revenue
  FROM ref('source.tx')
  GROUP BY customer_id
"""

# The downstream node (``--downstream``): ``none`` leaves it out; ``distinct`` counts active days
# with COUNT(DISTINCT order_date) — a hash set per customer, the costly part of the
# node; ``sums`` counts them with COUNT(*) (the same value: one daily row per
# customer and day), so the node is a plain aggregation.
TOTALS = {
    "distinct": "COUNT(DISTINCT order_date)",
    "sums": "COUNT(*)",
}


def totals_sql(variant: str, daily: str) -> str:
    return (f"SELECT customer_id, SUM(orders) AS orders, SUM(revenue) AS revenue, {TOTALS[variant]} AS days\n"
            f"  FROM {daily}\n  GROUP BY customer_id\n")


def totals_yaml(variant: str) -> str:
    return ("kind: transform\nname: customer_totals\ndescription: Totals per customer over every day\nsql: |\n  "
            + totals_sql(variant, "ref('transform.daily')"))


def write_partitions(tx: Path, folder: Path, days: int) -> None:
    import duckdb

    folder.parent.mkdir(parents=True, exist_ok=True)
    day = "order_date" if days == 365 else (
        f"DATE '2025-01-01' + CAST((order_date - DATE '2025-01-01') % {days} AS INTEGER)")
    duckdb.sql(f"""COPY (SELECT * REPLACE ({day} AS order_date) FROM read_parquet('{tx}'))
                   TO '{folder}' (FORMAT parquet, PARTITION_BY (order_date), COMPRESSION zstd)""")


def change_partition(folder: Path) -> None:
    """Rewrite a partition's file(s): revenue + 1 on every row."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    for f in sorted(folder.glob("*.parquet")):
        t = pq.read_table(f, partitioning=None)
        i = t.schema.get_field_index("revenue")
        t = t.set_column(i, "revenue", pc.add(t["revenue"], 1.0))
        tmp = f.with_name(f".{f.name}.tmp")
        pq.write_table(t, tmp, compression="zstd")
        tmp.replace(f)


def check_outputs(root: Path, variant: str) -> str:
    """Compare the run's last node with DuckDB straight over the (changed) partitions."""
    import duckdb

    source = f"read_parquet('{root}/data/tx/**/*.parquet', hive_partitioning = true)"
    if variant == "none":
        out = root / "target" / "intermediate" / "transform_daily.parquet"
        got = duckdb.sql(f"SELECT COUNT(*), SUM(orders), SUM(revenue) FROM read_parquet('{out}/**/*.parquet')").fetchall()[0]
        want = duckdb.sql(f"""SELECT COUNT(*), SUM(orders), SUM(revenue) FROM (SELECT order_date, customer_id,
                                  COUNT(*) AS orders, SUM(revenue) AS revenue FROM {source} GROUP BY ALL)""").fetchall()[0]
        same = got[:2] == want[:2] and abs(got[2] - want[2]) <= 1e-6 * abs(want[2])
        what = f"transform.daily agrees with DuckDB over the changed data ({got[0]:,} customer-days)"
        return what if same else f"transform.daily DIFFERS: seeknal-flow {got}, DuckDB {want}"
    out = root / "target" / "intermediate" / "transform_customer_totals.parquet"
    got = duckdb.sql(f"SELECT COUNT(*), SUM(orders), SUM(revenue), SUM(days) FROM read_parquet('{out}')").fetchall()[0]
    want = duckdb.sql(f"""SELECT COUNT(DISTINCT customer_id), COUNT(*), SUM(revenue),
                              (SELECT SUM(d) FROM (SELECT COUNT(DISTINCT order_date) d FROM {source} GROUP BY customer_id))
                          FROM {source}""").fetchall()[0]
    same = got[0] == want[0] and got[1] == want[1] and got[3] == want[3] and abs(got[2] - want[2]) <= 1e-6 * abs(want[2])
    return (f"downstream totals agree with DuckDB over the changed data ({got[0]:,} customers, {got[1]:,} orders)"
            if same else f"downstream totals DIFFER: seeknal-flow {got}, DuckDB {want}")


def downstream_in_duckdb(root: Path, variant: str) -> float:
    """Seconds for the downstream query straight in DuckDB over the daily partitions (best of 2)."""
    import duckdb

    daily = root / "target" / "intermediate" / "transform_daily.parquet"
    sql = totals_sql(variant, f"read_parquet('{daily}/**/*.parquet', hive_partitioning = true)")
    best = float("inf")
    for _ in range(2):
        con = duckdb.connect()
        started = time.perf_counter()
        con.execute(f"COPY ({sql}) TO '{root}/duckdb_totals.parquet' (FORMAT parquet)")
        best = min(best, time.perf_counter() - started)
        con.close()
    return best


_PART = re.compile(r"RUN (\d+)/(\d+) partitions \(changed: ([^)]*)\)")


@dataclass
class Variant:
    name: str
    full: Sample
    noop: Sample
    steps: list  # (partition, plan sample, run sample)
    check: str
    duckdb_downstream_s: float | None

    @property
    def median(self) -> Sample:
        runs = sorted((s[2] for s in self.steps), key=lambda s: s.wall_s)
        return runs[len(runs) // 2]

    @property
    def ratio(self) -> float:
        return self.median.wall_s / self.full.wall_s


def main(args) -> None:
    rows, days = int(float(args.rows)), args.days
    variants = [v.strip() for v in args.downstream.split(",") if v.strip()]
    unknown = sorted(set(variants) - {"none", "soa", *TOTALS})
    if unknown or not variants:
        raise SystemExit(f"--downstream: unknown variant(s) {unknown}; use none, sums, distinct, soa (comma-separated)")
    flow = SeeknalFlow()
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    plain = [v for v in variants if v != "soa"]
    parts = []
    if plain:
        parts.append(render(rows, days, run_variants(rows, days, plain, args.repeat, log=log), flow))
    if "soa" in variants:
        parts.append(run_soa_variant(rows, days, args.repeat, getattr(args, "before", None), log=log))
    body = "\n\n".join(parts)
    print(body)
    if args.append:
        report.append(args.command, body)


@contextmanager
def _partitioned_data(rows: int, days: int, prefix: str, data_dir: Path, log) -> Iterator[tuple[Path, Path, str, dict]]:
    """A temp folder holding ``days`` daily partitions of ``rows`` transactions, the engine warmed up.

    Yields (work folder, pristine partitions, seeknal command, environment); the folder goes at the end.
    """
    flow = SeeknalFlow()
    seeknal, env = flow.cli(), base_env()
    tx = make_data(rows, data_dir).tx
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=data_dir))
    try:
        log(f"writing {days} partitions of {rows:,} rows")
        pristine = work / "tx"
        write_partitions(tx, pristine, days)
        for cmd in flow.warmup():
            measure(cmd, cwd=REPO, env=env)
        yield work, pristine, seeknal, env
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_soa_variant(rows: int, days: int, repeat: int, before: str | None, *, data_dir: Path = DATA,
                    log=lambda _: None) -> str:
    """The SOA downstream (benchmarks/harness/incremental_soa.py): one new day, this code (and ``before``)."""
    from benchmarks.harness import incremental_soa

    with _partitioned_data(rows, days, "incremental-soa-", data_dir, log) as (work, pristine, seeknal, env):
        runs = incremental_soa.run_soa(work, pristine, seeknal, env, repeat, before, log)
        verdict = incremental_soa.check(work / "soa", seeknal, {**env, "PYTHONPATH": str(REPO)})
        return incremental_soa.render(rows, days, repeat, runs, verdict)


def run_variants(rows: int, days: int, variants: list[str], repeat: int, *, data_dir: Path = DATA,
                 log=lambda _: None) -> list[Variant]:
    """Each variant on its own copy of the partitions; the temp folders are removed at the end."""
    results = []
    with _partitioned_data(rows, days, "incremental-", data_dir, log) as (work, pristine, seeknal, env):
        for variant in variants:
            root = work / variant
            subprocess.run([seeknal, "init", "--name", f"incremental_{variant}", "--path", str(root)], check=True,
                           capture_output=True)
            shutil.copytree(pristine, root / "data" / "tx")
            (root / "seeknal" / "sources" / "tx.yml").write_text(
                "kind: source\nname: tx\nsource: parquet\ntable: data/tx/\npartition_by: [order_date]\n")
            (root / "seeknal" / "transforms" / "daily.yml").write_text(DAILY)
            if variant != "none":
                (root / "seeknal" / "transforms" / "customer_totals.yml").write_text(totals_yaml(variant))
            results.append(_run_variant(variant, root, seeknal, env, repeat, log))
            shutil.rmtree(root, ignore_errors=True)
    return results


def _run_variant(variant: str, root: Path, seeknal: str, env: dict, repeat: int, log) -> Variant:
    def seeknal_cmd(*a: str) -> Sample:
        s = measure([seeknal, *a, "--project", str(root)], cwd=REPO, env=env, timeout=3600)
        if not s.ok:
            raise SystemExit(f"`seeknal {' '.join(a)}` failed: {s.failure(6)}")
        log(f"[{variant}] seeknal {' '.join(a):<10} {s.wall_s:7.2f}s {s.rss_mb:6.0f} MB (load {s.load})")
        return s

    full = seeknal_cmd("run", "--full")
    noop = seeknal_cmd("run")
    partitions = sorted(p.name for p in (root / "data" / "tx").iterdir())
    steps = []
    for k in range(repeat):
        part = partitions[(len(partitions) // 2 + 37 * k) % len(partitions)]
        change_partition(root / "data" / "tx" / part)
        plan = seeknal_cmd("plan")
        inc = seeknal_cmd("run")
        steps.append((part, plan, inc))
    floor = downstream_in_duckdb(root, variant) if variant != "none" else None
    return Variant(variant, full, noop, steps, check_outputs(root, variant), floor)


def render(rows: int, days: int, results: list[Variant], flow: SeeknalFlow) -> str:
    lines = [f"{rows:,} transactions in {days} daily Hive partitions; `source.tx` (Parquet, partition_by order_date) → "
             "`transform.daily` (partitioned, per customer and day), and for the downstream variants → "
             "`transform.customer_totals` (not partitioned, per customer over every day; re-runs in full by the spec).",
             "", "| downstream | full run s | incremental run s (median) | ratio | target ≤ 5% | "
             "downstream in the incremental run s | same query straight in DuckDB s (share of the full run) |",
             "|---|---:|---:|---:|---|---:|---:|"]
    for v in results:
        st = flow.stage_times(v.median.stdout)
        down = st.get("transform.customer_totals")
        floor = (f"{v.duckdb_downstream_s:.2f} ({v.duckdb_downstream_s / v.full.wall_s:.1%})"
                 if v.duckdb_downstream_s is not None else "—")
        label = "none (partitioned pipeline)" if v.name == "none" else f"`{TOTALS[v.name]}`"
        lines.append(f"| {label} | {v.full.wall_s:.2f} | {v.median.wall_s:.2f} | {v.ratio:.1%} | "
                     f"{'met' if v.ratio <= 0.05 else '**MISSED**'} | {f'{down:.2f}' if down is not None else '—'} | {floor} |")
    for v in results:
        lines += ["", f"Downstream: {v.name}.", "",
                  "| step | wall s | peak RSS MB | load 1/5/15 m | per node (scheduler) / plan |", "|---|---:|---:|---|---|",
                  f"| `seeknal run --full` | {v.full.wall_s:.2f} | {v.full.rss_mb:,.0f} | {v.full.load} | {_stages(flow, v.full)} |",
                  f"| `seeknal run`, nothing changed | {v.noop.wall_s:.2f} | {v.noop.rss_mb:,.0f} | {v.noop.load} | "
                  f"{v.noop.stdout.strip().splitlines()[-1] if v.noop.stdout.strip() else ''} |"]
        for part, plan, inc in v.steps:
            m = _PART.search(plan.stdout)
            planned = f"RUN {m.group(1)}/{m.group(2)} partitions (changed: {m.group(3)})" if m else "no partition line"
            lines.append(f"| `seeknal plan` after changing {part} | {plan.wall_s:.2f} | {plan.rss_mb:,.0f} | {plan.load} | {planned} |")
            lines.append(f"| `seeknal run` after changing {part} | {inc.wall_s:.2f} | {inc.rss_mb:,.0f} | {inc.load} | {_stages(flow, inc)} |")
        mid = v.median
        st = flow.stage_times(mid.stdout)
        lines.append("")
        if "transform.daily" in st:
            down = st.get("transform.customer_totals", 0.0)
            rest = mid.wall_s - down - st["transform.daily"] - st.get("source.tx", 0.0)
            lines.append(f"- Median incremental run {mid.wall_s:.2f} s ({v.ratio:.1%} of the full run): "
                         + (f"downstream full re-run {down:.2f} s, " if down else "")
                         + f"the changed partition {st['transform.daily']:.2f} s, the source's footers "
                         f"{st.get('source.tx', 0.0):.2f} s, everything else (interpreter, imports, discovery, "
                         f"planning with per-file stat and one content hash, state) {rest:.2f} s; "
                         f"a run with nothing to do takes {v.noop.wall_s:.2f} s.")
        fst = flow.stage_times(v.full.stdout)
        if "transform.daily" in fst:
            lines.append(f"- Full run: {days} partitions of `transform.daily` in {fst['transform.daily']:.2f} s "
                         f"= {fst['transform.daily'] / days * 1000:.0f} ms per partition of ~{rows // days:,} input rows.")
        lines.append(f"- {v.check}.")
    return "\n".join(lines)


def _stages(flow: SeeknalFlow, s: Sample) -> str:
    return ", ".join(f"{k} {v:.2f}s" for k, v in flow.stage_times(s.stdout).items())
