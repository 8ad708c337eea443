"""``python -m benchmarks pipeline``: the pipeline a user writes vs one hand-written script.

The seeknal project is built the way docs/getting-started.md teaches:

- ``source.transactions`` and ``source.spine``: Parquet sources, read in place;
- ``feature_group.tx_features``: entity ``customer`` (join key ``customer_id``), event
  time ``event_time``, a YAML ``sql:`` projecting the transactions (every column but
  ``application_date``);
- ``second_order_aggregation.soa_region`` / ``soa_customer``: YAML SOA nodes over the
  transactions (the features of ``benchmarks/harness/projects.py``);
- ``transform.pit``: Python, ``ctx.ref("feature_group.tx_features").pit_join(spine=...)``;
- after the nodes, the run consolidates the entity (latest row per customer) and
  publishes it online — counted, as it is part of the process.

The references write the same five files in one process: the feature-group copy, the
entity's latest row per key, both SOA tables and the PIT table — a DuckDB script (one
connection, five ``COPY`` statements) and, when polars is importable, a Polars script.

Each measurement is a whole process (``benchmarks/harness/measure.py``: wall, peak RSS),
systems alternate, ``--repeat`` rounds, medians reported. Outputs are compared after
the first round: the same rows, sorted, column by column (floating point within 1e-9
relative). The latest row per key and the PIT table are compared on the columns that
ties cannot change (a customer with two transactions at the same second may keep
either row). The seeknal run's per-node durations come from
``target/run_results.json``.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
from pathlib import Path

from benchmarks import datagen
from benchmarks.harness.measure import loadavg, measure
from benchmarks.harness.projects import _SOA_FEATURES
from benchmarks.harness.systems import REPO, base_env
from benchmarks.harness.tasks import SOA_COLS, SOA_IDS

FG_COLS = ("customer_id", "order_id", "order_date", "event_time", "revenue", "product_category", "region")
OUTPUTS = ("tx_features", "latest", "soa_region", "soa_customer", "pit")
# Columns compared per output (sort keys first). Ties on (customer_id, event_time) may
# pick different rows in "latest" and "pit", so those compare the key and the time only.
COMPARE = {
    "tx_features": FG_COLS[1:2] + tuple(c for c in FG_COLS if c != "order_id"),
    "latest": ("customer_id", "event_time"),
    "soa_region": ("region", *SOA_COLS),
    "soa_customer": ("customer_id", *SOA_COLS),
    "pit": ("customer_id", "application_date", "churned", "event_time"),
}
SEEKNAL_FILES = {
    "tx_features": "target/intermediate/feature_group_tx_features.parquet",
    "latest": "target/feature_store/customer/features.parquet",
    "soa_region": "target/intermediate/second_order_aggregation_soa_region.parquet",
    "soa_customer": "target/intermediate/second_order_aggregation_soa_customer.parquet",
    "pit": "target/intermediate/transform_pit.parquet",
}

FG_YAML = f"""kind: feature_group
name: tx_features
description: "Every transaction, as features of its customer at its event time"
entity: customer
event_time_col: event_time
sql: |
  SELECT {", ".join(FG_COLS)}
  FROM ref('source.transactions')
"""

PIT_PY = '''"""Each spine row joined to the customer's latest transaction at or before its date."""

from seeknal_flow import transform


@transform(name="pit", description="Spine rows with the transaction known on their date")
def pit(ctx):
    features = ctx.ref("feature_group.tx_features")
    return features.pit_join(spine=ctx.ref("source.spine"), date_col="application_date")
'''


def write_project(root: Path, tx: Path, spine: Path) -> Path:
    """Create (or refresh) the walk-through-shaped project in ``root``."""
    if not (root / "seeknal_project.yml").exists():
        _seeknal(["init", "--name", "bench_user_path", "--description", "benchmarks: the user path",
                  "--path", str(root)])
    for name, data in (("transactions", tx), ("spine", spine)):
        link = root / "data" / f"{name}.parquet"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(Path(data).resolve())
        (root / "seeknal" / "sources" / f"{name}.yml").write_text(
            f"kind: source\nname: {name}\nsource: parquet\ntable: data/{name}.parquet\n")
    (root / "seeknal" / "feature_groups" / "tx_features.yml").write_text(FG_YAML)
    for part in ("soa_region", "soa_customer"):
        (root / "seeknal" / "second_order_aggregations" / f"{part}.yml").write_text(
            f"kind: second_order_aggregation\nname: {part}\nsource: source.transactions\n"
            f"id_col: {SOA_IDS[part]}\nfeature_date_col: order_date\n"
            f"application_date_col: application_date\n" + _SOA_FEATURES)
    (root / "seeknal" / "transforms" / "pit.py").write_text(PIT_PY)
    return root


def _seeknal(args: list[str]) -> None:
    import subprocess

    env = base_env()
    env["PYTHONPATH"] = str(REPO)
    subprocess.run([sys.executable, "-m", "seeknal_flow.cli.main", *args], check=True, capture_output=True,
                   text=True, env=env, cwd=REPO)


# --------------------------------------------------------------------------- the reference scripts


def duckdb_script(tx: str, spine: str, out: Path) -> None:
    """The five outputs in one DuckDB connection."""
    import duckdb

    from benchmarks.bench_soa import _duckdb_sql

    con = duckdb.connect()
    fg = str(out / "tx_features.parquet")
    con.execute(f"COPY (SELECT {', '.join(FG_COLS)} FROM read_parquet('{tx}')) TO '{fg}' (FORMAT parquet)")
    con.execute(f"COPY (SELECT arg_max(COLUMNS(*), event_time) FROM read_parquet('{fg}') GROUP BY customer_id) "
                f"TO '{out / 'latest.parquet'}' (FORMAT parquet)")
    for part in ("soa_region", "soa_customer"):
        con.execute(f"COPY ({_duckdb_sql(tx, SOA_IDS[part])}) TO '{out / (part + '.parquet')}' (FORMAT parquet)")
    con.execute(f"""COPY (SELECT s.*, f.* EXCLUDE (customer_id)
        FROM read_parquet('{spine}') s ASOF LEFT JOIN read_parquet('{fg}') f
          ON s.customer_id = f.customer_id AND s.application_date >= f.event_time)
        TO '{out / 'pit.parquet'}' (FORMAT parquet)""")


def polars_script(tx: str, spine: str, out: Path) -> None:
    """The five outputs in one Polars process."""
    import polars as pl

    from benchmarks.bench_soa import _child_polars

    fg = str(out / "tx_features.parquet")
    pl.scan_parquet(tx).select(FG_COLS).sink_parquet(fg, engine="streaming")
    (pl.scan_parquet(fg).sort("event_time").group_by("customer_id").last()
       .sink_parquet(str(out / "latest.parquet"), engine="streaming"))
    for part in ("soa_region", "soa_customer"):
        _child_polars(tx, str(out / f"{part}.parquet"), SOA_IDS[part], None, str(out / "spill"))
    s = pl.read_parquet(spine).with_row_index("__row")
    f = pl.read_parquet(fg)
    (s.sort("application_date")
      .join_asof(f.sort("event_time"), left_on="application_date", right_on="event_time",
                 by="customer_id", strategy="backward", check_sortedness=False)
      .sort("__row").drop("__row").write_parquet(str(out / "pit.parquet")))


SCRIPTS = {"duckdb": duckdb_script, "polars": polars_script}


# --------------------------------------------------------------------------- comparing outputs


def _table(path: Path, columns: tuple[str, ...]):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    if "tx_features" in table.column_names and "customer_id" not in table.column_names:
        table = table.flatten()
    if "customer_id" not in table.column_names and "tx_features.customer_id" in table.column_names:
        table = table.rename_columns([c.removeprefix("tx_features.") for c in table.column_names])
    elif "customer_id" in table.column_names and "tx_features.event_time" in table.column_names:
        table = table.drop_columns(["event_time"]).rename_columns(
            [c.removeprefix("tx_features.") for c in table.column_names if c != "event_time"])
    cols = []
    for c in columns:
        arr = table[c]
        if pa.types.is_date(arr.type):  # a DATE in one system, a TIMESTAMP in another
            arr = arr.cast(pa.timestamp("us"))
        elif pa.types.is_integer(arr.type):
            arr = arr.cast(pa.int64())
        cols.append(arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr)
    t = pa.table(cols, names=list(columns))
    return t.take(pc.sort_indices(t, [(c, "ascending") for c in columns]))


def compare_outputs(ref: Path, other: Path, name: str) -> str | None:
    """None when equal (sorted rows, floats within 1e-9 relative); else the first difference."""
    import numpy as np
    import pyarrow as pa

    cols = COMPARE[name]
    a, b = _table(ref, cols), _table(other, cols)
    if a.num_rows != b.num_rows:
        return f"{b.num_rows:,} rows, reference {a.num_rows:,}"
    for c in cols:
        x, y = a[c].combine_chunks(), b[c].combine_chunks()
        if pa.types.is_floating(x.type):
            xs = x.to_numpy(zero_copy_only=False)
            ys = y.cast(x.type).to_numpy(zero_copy_only=False)
            if not np.array_equal(np.isnan(xs), np.isnan(ys)):
                return f"{c}: NULLs differ"
            ok = np.isnan(xs) | np.isclose(xs, ys, rtol=1e-9, atol=1e-9, equal_nan=True)
            if not ok.all():
                i = int(np.argmin(ok))
                return f"{c}: row {i}: {float(ys[i])!r}, reference {float(xs[i])!r}"
        elif not x.equals(y.cast(x.type)):
            return f"{c}: values differ"
    return None


# --------------------------------------------------------------------------- driver


def child_main(argv: list[str]) -> None:
    """``python -m benchmarks.harness.pipeline SYSTEM TX SPINE OUT``: one reference script."""
    system, tx, spine, out = argv
    SCRIPTS[system](tx, spine, Path(out))


def _profile(root: Path) -> dict[str, float]:
    doc = json.loads((root / "target" / "run_results.json").read_text())
    prof = {n["id"]: n["duration_s"] or 0.0 for n in doc["nodes"]}
    prof["consolidation + publish"] = doc.get("consolidation_s") or 0.0
    prof["run service total (elapsed_s)"] = doc.get("elapsed_s") or 0.0
    return prof


def run_size(rows: int, repeat: int, work: Path, systems: list[str], log, before: Path | None = None,
             data: Path = REPO / "benchmarks" / "data") -> dict:
    """Measure one size: ``repeat`` alternating rounds of the seeknal run (and ``before``'s) and
    of each script in ``systems`` (``duckdb`` first: the reference); outputs compared after round 1."""
    tx = datagen.write_transactions(data, rows)
    spine = datagen.write_spine(data, rows, max(rows // 20, 1))
    root = write_project(work / f"project_{rows}", tx, spine)
    env = base_env()
    env["PYTHONPATH"] = str(REPO)
    run = [sys.executable, "-m", "seeknal_flow.cli.main", "run", "--full", "--project"]
    cmds = {"seeknal": [*run, str(root)]}
    envs = {"seeknal": env}
    cwds = {"seeknal": REPO}
    roots = {"seeknal": root}
    if before is not None:  # the same project, run by an earlier checkout's code (same data, same session)
        roots["seeknal_before"] = write_project(work / f"project_{rows}_before", tx, spine)
        cmds["seeknal_before"] = [*run, str(roots["seeknal_before"])]
        envs["seeknal_before"] = dict(env, PYTHONPATH=str(before))
        cwds["seeknal_before"] = before  # `python -m` puts the working folder first on sys.path
    outs = {}
    for s in systems:
        outs[s] = work / f"{s}_{rows}"
        cmds[s] = [sys.executable, "-m", "benchmarks.harness.pipeline", s, str(tx), str(spine), str(outs[s])]
    samples: dict[str, list] = {s: [] for s in cmds}
    profiles: dict[str, list[dict]] = {}
    mismatches: list[str] = []
    for rnd in range(repeat):
        # Every other round in reverse order: whoever runs first does not always meet a cold cache.
        for name, cmd in (list(cmds.items()) if rnd % 2 == 0 else list(cmds.items())[::-1]):
            if name in outs:
                shutil.rmtree(outs[name], ignore_errors=True)
                outs[name].mkdir(parents=True)
            s = measure(cmd, cwd=cwds.get(name, REPO), env=envs.get(name, env))
            if not s.ok:
                raise SystemExit(f"{name} failed: {s.failure()}")
            samples[name].append(s)
            if name in roots:
                profiles.setdefault(name, []).append(_profile(roots[name]))
            log(f"  {rows:.0e} round {rnd + 1}: {name:8s} {s.wall_s:6.2f} s {s.rss_mb:7.0f} MB (load {s.load})")
        if rnd == 0:
            ref = outs["duckdb"]
            others = {**{n: {o: r / SEEKNAL_FILES[o] for o in OUTPUTS} for n, r in roots.items()},
                      **{n: {o: d / f"{o}.parquet" for o in OUTPUTS} for n, d in outs.items() if n != "duckdb"}}
            for name, files in others.items():
                for o in OUTPUTS:
                    diff = compare_outputs(ref / f"{o}.parquet", files[o], o)
                    if diff:
                        mismatches.append(f"{name} {o}: {diff}")
    med = {n: (statistics.median(x.wall_s for x in v), statistics.median(x.rss_mb for x in v))
           for n, v in samples.items()}
    prof = {name: {k: statistics.median(p[k] for p in ps) for k in ps[0]} for name, ps in profiles.items()}
    return {"rows": rows, "median": med, "profile": prof, "mismatches": mismatches,
            "walls": {n: [round(x.wall_s, 2) for x in v] for n, v in samples.items()}}


def report(results: list[dict], command: str, load: str) -> str:
    lines = [f"`{command}` — load at start {load}; medians of alternating rounds, whole processes.", "",
             "| rows | system | wall s | peak RSS MB | wall / DuckDB | RSS / DuckDB | outputs equal to DuckDB's |",
             "|---:|---|---:|---:|---:|---:|---|"]
    for r in results:
        dw, dr = r["median"]["duckdb"]
        for name, (w, rss) in r["median"].items():
            bad = [m for m in r["mismatches"] if m.startswith(name + " ")]
            eq = "—" if name == "duckdb" else ("yes" if not bad else "; ".join(bad))
            lines.append(f"| {r['rows']:.0e} | {name} | {w:.2f} | {rss:,.0f} | {w / dw:.2f}× | {rss / dr:.2f}× | {eq} |")
    steps = list(results[0]["profile"]["seeknal"])
    names = list(results[0]["profile"])
    lines += ["", "Profile of the seeknal run (median s per node and stage, from target/run_results.json):", "",
              "| step | " + " | ".join(f"{r['rows']:.0e} {n}" for r in results for n in names) + " |",
              "|---|" + "---:|" * (len(results) * len(names))]
    for step in steps:
        lines.append(f"| {step} | " + " | ".join(f"{r['profile'][n].get(step, 0.0):.2f}" for r in results
                                                for n in names) + " |")
    lines.append("| process wall | " + " | ".join(f"{r['median'][n][0]:.2f}" for r in results for n in names) + " |")
    lines += ["", "Walls per round: " + "; ".join(f"{r['rows']:.0e} {r['walls']}" for r in results)]
    return "\n".join(lines)


def main(args) -> None:
    import importlib.util

    systems = ["duckdb"] + (["polars"] if importlib.util.find_spec("polars") else [])
    work = REPO / "benchmarks" / "data" / "user_path"
    work.mkdir(parents=True, exist_ok=True)
    load = loadavg()
    results = []
    for rows in args.rows:
        results.append(run_size(int(float(rows)), args.repeat, work, systems, lambda m: print(m, flush=True),
                                before=Path(args.before).resolve() if args.before else None))
    text = report(results, args.command, load)
    if "polars" not in systems:
        text += "\n\npolars is not importable (`pip install polars`): its script was not run."
    print(text)


if __name__ == "__main__":
    child_main(sys.argv[1:])
