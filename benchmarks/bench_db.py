"""``python -m benchmarks db``: a PostgreSQL table to Parquet, seeknal-flow against psql and plain ADBC.

Starts its own temporary PostgreSQL server (benchmarks/pg_server.py), loads a
table ``t(id int8, key text, val float8, day date)`` of ``--rows`` rows, then
times, as whole processes, alternating, ``--repeat`` rounds of:

- ``seeknal run --full`` of a project whose one node is ``source: postgres, table: t``;
- ``psql -c "\\copy (SELECT * FROM t) TO 'f.csv' CSV"`` (the reference);
- a plain ADBC script: ``cursor.fetch_arrow_table()`` + ``pq.write_table``;

and the incremental case: an incremental source on ``id`` after a full read, with
10 new rows inserted before each timed ``seeknal run``. Prints a Markdown table of
medians (wall, peak RSS) and the ratios; nothing is asserted.
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.harness.measure import Sample, loadavg, measure
from benchmarks.pg_server import PostgresServer

REPO = Path(__file__).resolve().parent.parent

_ADBC_SCRIPT = """import sys
import adbc_driver_postgresql.dbapi as pg
import pyarrow.parquet as pq
with pg.connect(sys.argv[1]) as con, con.cursor() as cur:
    cur.execute("SELECT * FROM t")
    table = cur.fetch_arrow_table()
pq.write_table(table, sys.argv[2], compression="zstd")
"""


def _project(root: Path, body: str) -> None:
    (root / "seeknal" / "sources").mkdir(parents=True, exist_ok=True)
    (root / "seeknal_project.yml").write_text("name: dbbench\n")
    (root / "seeknal" / "sources" / "t.yml").write_text(
        f"kind: source\nname: t\nsource: postgres\nconnection: ${{BENCH_PG_URL}}\ntable: t\n{body}")


def main(args) -> None:
    rows = int(float(args.rows))
    work = Path(tempfile.mkdtemp(prefix="seeknal-dbbench-"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with PostgresServer.start() as pg:
        env["BENCH_PG_URL"] = pg.url
        env["PGPASSWORD"] = pg.password
        pg.psql("CREATE TABLE t (id int8 PRIMARY KEY, key text, val float8, day date); "
                f"INSERT INTO t SELECT g, 'key-' || (g % 100000), g * 0.5, date '2020-01-01' + (g % 2000) "
                f"FROM generate_series(1, {rows}) g")
        pg.psql("VACUUM ANALYZE t")
        full, inc = work / "full", work / "incremental"
        _project(full, "")
        _project(inc, "incremental:\n  column: id\n")
        seeknal = [sys.executable, "-m", "seeknal_flow.cli.main"]
        first = measure([*seeknal, "run"], cwd=inc, env=env)
        assert first.ok, first.failure()
        commands = {
            # -v: the node line carries the node's own time ("ok: N rows in 1.23s")
            "seeknal": ([*seeknal, "run", "--full", "-v"], full),
            "psql": ([*pg.psql_command(), "-c", f"\\copy (SELECT * FROM t) TO '{work / 'f.csv'}' CSV"], work),
            "adbc": ([sys.executable, "-c", _ADBC_SCRIPT, pg.url, str(work / "adbc.parquet")], work),
            "incremental": ([*seeknal, "run", "-v"], inc),
            "plan": ([*seeknal, "plan"], inc),
        }
        samples: dict[str, list[Sample]] = {k: [] for k in commands}
        next_id = rows + 1
        load_before = loadavg()
        for _ in range(args.repeat):
            for name, (cmd, cwd) in commands.items():
                if name == "incremental":
                    pg.psql(f"INSERT INTO t SELECT g, 'new', 1, date '2030-01-01' "
                            f"FROM generate_series({next_id}, {next_id + 9}) g")
                    next_id += 10
                sample = measure(cmd, cwd=cwd, env=env)
                if not sample.ok:
                    raise SystemExit(f"{name} failed: {sample.failure()}")
                samples[name].append(sample)
        check = measure([sys.executable, "-c", "import pyarrow.parquet as pq, sys; "
                         "print(pq.ParquetFile(sys.argv[1]).metadata.num_rows)",
                         str(full / "target" / "intermediate" / "source_t.parquet")], cwd=work, env=env)
        written = int(check.stdout.strip())
    print(report(args.command, rows, samples, written, load_before))


def _median(samples: list[Sample], attr: str) -> float:
    return statistics.median(getattr(s, attr) for s in samples)


def report(command: str, rows: int, samples: dict[str, list[Sample]], written: int, load: str) -> str:
    psql = _median(samples["psql"], "wall_s")
    adbc = _median(samples["adbc"], "wall_s")
    full = _median(samples["seeknal"], "wall_s")
    lines = [
        f"`{command}` — {rows:,} rows (id int8, key text, val float8, day date); {len(samples['psql'])} "
        f"alternating rounds, medians, whole processes; load average at start {load}; "
        f"seeknal wrote {written:,} rows.",
        "",
        "| command | wall median s (min) | node time median s | peak RSS MB | / psql | / plain ADBC |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    names = {"seeknal": "`seeknal run --full` (source: postgres)", "psql": "`psql \\copy (SELECT * FROM t) TO CSV`",
             "adbc": "plain ADBC: `fetch_arrow_table` + `pq.write_table`",
             "incremental": "`seeknal run`, incremental, 10 new rows",
             "plan": "`seeknal plan` (the process floor: start-up and imports)"}
    for key, label in names.items():
        wall = _median(samples[key], "wall_s")
        low = min(s.wall_s for s in samples[key])
        rss = max(s.rss_mb for s in samples[key])
        node = _node_seconds(samples[key])
        lines.append(f"| {label} | {wall:.3f} ({low:.3f}) | {node} | {rss:.0f} | {wall / psql:.2f}× | "
                     f"{wall / adbc:.2f}× |")
    inc = _median(samples["incremental"], "wall_s")
    inc_node = statistics.median(_node_times(samples["incremental"]))
    full_node = statistics.median(_node_times(samples["seeknal"]))
    lines += ["", f"Incremental / full seeknal read: **{inc / full:.1%}** (goal <= 10 %). "
                  f"seeknal / psql: **{full / psql:.2f}×** (goal <= 2.0×); seeknal / plain ADBC: "
                  f"**{full / adbc:.2f}×** (goal < 1). Node time alone (as `seeknal run` reports it): "
                  f"incremental {inc_node:.3f} s / full {full_node:.3f} s = **{inc_node / full_node:.1%}**."]
    return "\n".join(lines)


def _node_times(samples: list[Sample]) -> list[float]:
    return [float(m.group(1)) for s in samples if (m := re.search(r"ok: .* in ([\d.]+)s", s.stdout))]


def _node_seconds(samples: list[Sample]) -> str:
    times = _node_times(samples)
    return f"{statistics.median(times):.3f}" if times else "—"
