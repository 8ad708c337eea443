"""Foundation benchmarks: CLI start-up, REPL start-up, the example's full run, a 10M-row feature group.

Every measurement is its own subprocess. The parent starts it with ``subprocess.Popen``
(stdout/stderr to temp files, never pipes), reaps it with ``os.wait4`` and records:

- wall time: ``time.perf_counter()`` around start-to-reap;
- peak RSS: the ``ru_maxrss`` that ``wait4`` returns for that one child (Linux: the
  maximum over the child and any descendants it reaped, never a sum and never another
  benchmark's child — unlike ``RUSAGE_CHILDREN``, which is the max over all children so far).

Measurements:

1. ``seeknal --help`` (the ``seeknal`` on PATH; with pyenv that is a bash shim, so the
   console script itself and a bytecode-cached variant are measured too);
2. ``seeknal repl --project <copy of examples/ml-path> -e "SELECT 1"`` after a run;
3. ``seeknal run --project <copy of examples/ml-path in a temp dir> --full``;
4. a 10M-row feature group: ``seeknal init`` a temp project, symlink
   ``benchmarks/data/transactions_1e7.parquet`` into its ``data/``, a Parquet source and a
   Python feature group that only runs one DuckDB GROUP BY over ``ctx.ref(...)``; then
   ``seeknal run --full`` (source copy + feature group), the feature group alone
   (``--nodes``), the same aggregation as a plain DuckDB process, a bare drain of the
   source scan operator, and a DuckDB Parquet→Parquet copy (reference for the source node).
   The Arrow size of the input (``pyarrow.parquet.read_table(...).nbytes``) is measured in
   this process after all subprocesses ran.

"Bytecode cached" rows run the same command with ``PYTHONDONTWRITEBYTECODE`` unset and
``PYTHONPYCACHEPREFIX`` pointing into a temp dir (nothing is written into the repo), after
one warm-up run: what a user without ``PYTHONDONTWRITEBYTECODE=1`` gets.

Usage::

    python -m benchmarks.bench_foundation                 # --rows 1e7
    python -m benchmarks.bench_foundation --rows 1e6 --skip-big
    python -m benchmarks.bench_foundation --rows 1e7 --append   # also append to benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import results_file

HERE = Path(__file__).parent
REPO = HERE.parent
EXAMPLE = REPO / "examples" / "ml-path"
SECTION = "## Foundation (issue 2)"

AGG_SQL = (
    "SELECT customer_id, COUNT(*) AS n, SUM(revenue) AS total, "
    "CAST(MAX(order_date) AS TIMESTAMP) AS event_time FROM txn GROUP BY customer_id"
)

SOURCE_PY = '''\
from seeknal_flow import source


@source(name="transactions", source="parquet", table="data/transactions.parquet")
def transactions(ctx=None):
    pass
'''

FEATURE_GROUP_PY = f'''\
from seeknal_flow import feature_group


@feature_group(name="customer_totals", entity="customer")
def customer_totals(ctx):
    txn = ctx.ref("source.transactions")
    return ctx.duckdb.sql("{AGG_SQL}")
'''

# Plain DuckDB reference: same aggregation, Parquet in, Parquet out.
DUCKDB_AGG = f"""
import sys, duckdb
inp, out = sys.argv[1:3]
sql = {AGG_SQL!r}.replace("FROM txn", "FROM read_parquet('" + inp + "')")
duckdb.sql("COPY (" + sql + ") TO '" + out + "' (FORMAT parquet)")
"""

# DuckDB Parquet -> zstd Parquet copy: what the source node (scan + sink) does.
DUCKDB_COPY = """
import sys, duckdb
inp, out = sys.argv[1:3]
duckdb.sql("COPY (SELECT * FROM read_parquet('" + inp + "')) TO '" + out + "' (FORMAT parquet, COMPRESSION zstd)")
"""

# What any DuckDB-backed REPL pays: import duckdb, connect, one query.
DUCKDB_FLOOR = "import duckdb; duckdb.connect().sql('SELECT 1').fetchall()"

# The source node's scan operator alone, drained without a sink.
SCAN_DRAIN = """
import sys
from pathlib import Path
from operators.scan import ScanOperator
n = sum(b.num_rows for b in ScanOperator("parquet", Path(sys.argv[1])).batches())
print(n)
"""


# --------------------------------------------------------------------------- measuring


@dataclass
class Sample:
    wall_s: float
    rss_mb: float
    rc: int
    stdout: str
    stderr: str


@dataclass
class Series:
    label: str
    command: str
    samples: list[Sample] = field(default_factory=list)
    target_s: float | None = None
    load: float = 0.0
    note: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.samples) and all(s.rc == 0 for s in self.samples)

    @property
    def walls(self) -> list[float]:
        return [s.wall_s for s in self.samples]

    @property
    def median_s(self) -> float:
        return statistics.median(self.walls)

    @property
    def min_s(self) -> float:
        return min(self.walls)

    @property
    def rss_median(self) -> float:
        return statistics.median(s.rss_mb for s in self.samples)

    @property
    def rss_max(self) -> float:
        return max(s.rss_mb for s in self.samples)


def measure(cmd: list[str], *, cwd: Path = REPO, env: dict | None = None) -> Sample:
    """Run ``cmd`` once; wall time and that child's own peak RSS (MB)."""
    with tempfile.TemporaryFile() as so, tempfile.TemporaryFile() as se:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=so, stderr=se, stdin=subprocess.DEVNULL, cwd=cwd, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        so.seek(0)
        se.seek(0)
        out, err = so.read().decode(errors="replace"), se.read().decode(errors="replace")
    # ru_maxrss is KiB on Linux.
    return Sample(wall, usage.ru_maxrss / 1024, proc.returncode, out, err)


def series(
    label: str,
    cmd: list[str],
    runs: int,
    *,
    warmup: int = 1,
    target_s: float | None = None,
    cwd: Path = REPO,
    env: dict | None = None,
) -> Series:
    s = Series(label, " ".join(shlex.quote(c) for c in cmd), target_s=target_s)
    for _ in range(warmup):
        w = measure(cmd, cwd=cwd, env=env)
        if w.rc != 0:
            s.samples.append(w)
            _report_failure(s, w)
            return s
    s.load = os.getloadavg()[0]
    for _ in range(runs):
        r = measure(cmd, cwd=cwd, env=env)
        s.samples.append(r)
        if r.rc != 0:
            _report_failure(s, r)
            break
    status = f"median {s.median_s:.3f}s min {s.min_s:.3f}s RSS {s.rss_median:.0f} MB" if s.ok else "FAILED"
    print(f"  {label}: {status}", file=sys.stderr)
    return s


def _report_failure(s: Series, r: Sample) -> None:
    tail = (r.stderr.strip() or r.stdout.strip()).splitlines()[-3:]
    s.note = "failed: " + " / ".join(tail)[:200]
    print(f"  {s.label}: FAILED rc={r.rc}\n    " + "\n    ".join(tail), file=sys.stderr)


_NODE = re.compile(r"^\[\d+/\d+\] (\S+)")
# `seeknal run -v` puts the time on the node's line ("[1/3] source.x  ok: 6 rows in 0.12s (...)");
# older releases printed it on a line of its own.
_OK = re.compile(r"^(?:\[\d+/\d+\] \S+)?\s+ok: ([\d,]+) rows in ([\d.]+)s")
_DONE = re.compile(r"^Done in ([\d.]+)s")


def node_seconds(stdout: str) -> tuple[dict[str, float], float | None]:
    """Per-node seconds and the scheduler's total, from ``seeknal run`` output."""
    nodes, current, done = {}, None, None
    for line in stdout.splitlines():
        if m := _NODE.match(line):
            current = m.group(1)
        if (m := _OK.match(line)) and current:
            nodes[current] = float(m.group(2))
        elif m := _DONE.match(line):
            done = float(m.group(1))
    return nodes, done


# --------------------------------------------------------------------------- environment


def cached_env(pyc_dir: Path) -> dict:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pyc_dir)
    return env


def machine() -> str:
    import duckdb
    import pyarrow

    versions = {"DuckDB": duckdb.__version__, "pyarrow": pyarrow.__version__}
    return results_file.machine(memory=True, libraries=versions)


# --------------------------------------------------------------------------- import costs


def import_costs(argv: list[str], env: dict, top: int = 6) -> tuple[float, list[tuple[str, float, str]]]:
    """``python -X importtime -m seeknal_flow.cli.main ARGV``: total ms and the heaviest packages.

    For each top-level package, its heaviest entry point (an import of it from another
    package, or "top level": by the ``-m`` entry module or from inside a function while running):
    cumulative ms and who imported it.
    """
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "seeknal_flow.cli.main", *argv],
        cwd=REPO, env=env, capture_output=True, text=True,
    )
    entries = []  # (depth, cumulative ms, name) in importtime order: children before parents
    for line in r.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, _self_us, cum_us, name = re.split(r"[:|]", line, maxsplit=3)
        name = name.rstrip()[1:]  # one separator space, then two per nesting level
        depth = (len(name) - len(name.lstrip(" "))) // 2
        entries.append((depth, int(cum_us) / 1000, name.strip()))
    total = sum(cum for depth, cum, _ in entries if depth == 0)
    best: dict[str, tuple[float, str]] = {}
    for i, (depth, cum, name) in enumerate(entries):
        parent = next((n for d, _, n in entries[i + 1:] if d < depth), None) if depth else None
        pkg, ppkg = _package(name), _package(parent) if parent else None
        if pkg == ppkg or pkg in sys.stdlib_module_names or pkg in ("seeknal_flow", "frozen_importlib_external"):
            continue
        if cum >= best.get(pkg, (0.0, ""))[0]:
            best[pkg] = (cum, parent or "top level")
    ranked = sorted(((p, c, via) for p, (c, via) in best.items()), key=lambda t: -t[1])[:top]
    return total, ranked


def _package(module: str) -> str:
    if module.startswith("__editable__"):
        return "editable-install finder"
    return module.split(".")[0].lstrip("_")  # _duckdb -> duckdb


# --------------------------------------------------------------------------- the benchmark


def _commands() -> tuple[str, str | None]:
    """The ``seeknal`` this benchmark runs (PATH as this process sees it) and, if different,
    the pyenv shim an interactive shell finds first (pyenv puts the version's bin/ first on
    PATH for the processes it starts, so the two differ when this runs under pyenv)."""
    seeknal = shutil.which("seeknal")
    if seeknal is None:
        raise SystemExit("`seeknal` is not on PATH; pip install -e . first")
    shim = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "shims" / "seeknal"
    if shim.exists() and shim.resolve() != Path(seeknal).resolve():
        return seeknal, str(shim)
    return seeknal, None


def run(rows: int, n_help: int, n_repl: int, n_run: int, n_big: int, skip_big: bool) -> str:
    seeknal, shim = _commands()
    rows_out: list[Series] = []
    extra: list[str] = [f"`seeknal` is `{seeknal}`" + (f"; the pyenv shim is `{shim}`." if shim else ".")]
    with tempfile.TemporaryDirectory(prefix="bench_foundation_") as tmp:
        tmpdir = Path(tmp)
        env_c = cached_env(tmpdir / "pycache")

        # 1. seeknal --help
        print("1. seeknal --help", file=sys.stderr)
        rows_out.append(series("1. `seeknal --help`", [seeknal, "--help"], n_help, target_s=0.3))
        if shim:
            rows_out.append(series("1b. same, via the pyenv shim", [shim, "--help"], n_help, target_s=0.3))
        rows_out.append(series("1c. same, bytecode cached", [seeknal, "--help"], n_help, target_s=0.3, env=env_c))

        # 3. full run of the example (before 2: the REPL runs against this copy after its run)
        print("3. seeknal run --full (examples/ml-path copy)", file=sys.stderr)
        proj = tmpdir / "ml-path"
        shutil.copytree(EXAMPLE, proj, ignore=shutil.ignore_patterns("target", "__pycache__"))
        run_cmd = [seeknal, "run", "-v", "--project", str(proj), "--full"]  # -v: per-node times
        s3 = series("3. `seeknal run --full` (copy of examples/ml-path)", run_cmd, n_run, target_s=2.0)
        rows_out.append(s3)
        if shim:
            rows_out.append(series("3b. same, via the pyenv shim", [shim, *run_cmd[1:]], n_run, target_s=2.0))
        rows_out.append(series("3c. same, bytecode cached", run_cmd, n_run, target_s=2.0, env=env_c))
        if s3.ok:
            nodes, done = node_seconds(s3.samples[len(s3.samples) // 2].stdout)
            if done is not None:
                extra.append(
                    f"ml-path run: the scheduler reports {done:.2f}s for {len(nodes)} nodes "
                    f"({', '.join(f'{k} {v:.2f}s' for k, v in nodes.items())}); the rest of the "
                    f"{s3.median_s:.2f}s median wall is interpreter start, imports, discovery and planning."
                )

        # 2. REPL after a run
        print("2. seeknal repl -e 'SELECT 1'", file=sys.stderr)
        repl_cmd = [seeknal, "repl", "--project", str(proj), "-e", "SELECT 1"]
        rows_out.append(series("2. `seeknal repl -e \"SELECT 1\"` (copy of examples/ml-path, after its run)",
                               repl_cmd, n_repl, target_s=0.6))
        if shim:
            rows_out.append(series("2b. same, via the pyenv shim", [shim, *repl_cmd[1:]], n_repl, target_s=0.6))
        rows_out.append(series("2c. same, bytecode cached", repl_cmd, n_repl, target_s=0.6, env=env_c))
        rows_out.append(series("2r. floor: `python -c` import duckdb + `SELECT 1`",
                               [sys.executable, "-c", DUCKDB_FLOOR], n_repl))
        rows_out.append(series("0. floor: `python -c pass`", [sys.executable, "-c", "pass"], n_help))

        env = dict(os.environ)
        imports = {
            "--help": import_costs(["--help"], env),
            "repl -e 'SELECT 1'": import_costs(["repl", "--project", str(proj), "-e", "SELECT 1"], env),
            "run --full (ml-path)": import_costs(["run", "--project", str(proj), "--full"], env),
        }

        big = None if skip_big else _big(rows, n_big, seeknal, tmpdir)

    return render(rows_out, extra, imports, big, rows)


def _big(rows: int, runs: int, seeknal: str, tmpdir: Path) -> dict:
    from benchmarks.datagen import write_transactions

    print(f"4. {rows:,}-row feature group", file=sys.stderr)
    data = write_transactions(HERE / "data", rows).resolve()
    proj = tmpdir / "fg_big"
    init = subprocess.run([seeknal, "init", "--name", "bench_fg", "--description", "bench_foundation 10M rows",
                           "--path", str(proj)], capture_output=True, text=True)
    if init.returncode != 0:
        raise SystemExit(f"seeknal init failed: {init.stderr.strip()}")
    (proj / "data" / "transactions.parquet").symlink_to(data)
    (proj / "seeknal" / "sources" / "transactions.py").write_text(SOURCE_PY)
    (proj / "seeknal" / "feature_groups" / "customer_totals.py").write_text(FEATURE_GROUP_PY)
    fg_out = proj / "target" / "intermediate" / "feature_group_customer_totals.parquet"
    src_out = proj / "target" / "intermediate" / "source_transactions.parquet"
    ref_out = tmpdir / "duckdb_agg.parquet"
    copy_out = tmpdir / "duckdb_copy.parquet"
    py = sys.executable

    full = series("4a. `seeknal run --full` (source + feature group)",
                  [seeknal, "run", "-v", "--project", str(proj), "--full"], runs, warmup=0)
    fg = series("4b. feature group alone (`--nodes feature_group.customer_totals`)",
                [seeknal, "run", "-v", "--project", str(proj), "--nodes", "feature_group.customer_totals"], runs,
                warmup=0)
    duck = series("4c. DuckDB reference: same aggregation, Parquet → Parquet",
                  [py, "-c", DUCKDB_AGG, str(data), str(ref_out)], runs, warmup=0)
    scan = series("4d. source scan operator alone (drain `ScanOperator`, no sink)",
                  [py, "-c", SCAN_DRAIN, str(data)], runs, warmup=0)
    copy = series("4e. DuckDB reference for the source node: Parquet → zstd Parquet copy",
                  [py, "-c", DUCKDB_COPY, str(data), str(copy_out)], runs, warmup=0)
    plan = series("4f. `seeknal plan --full` (start-up, discovery, fingerprints; no engine work)",
                  [seeknal, "plan", "--project", str(proj), "--full"], runs, warmup=0)

    # Sizes and checks, after every subprocess ran.
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    info: dict = {"series": [full, fg, duck, scan, copy, plan], "parquet_mb": data.stat().st_size / 1e6}
    info["input_row_groups"] = pq.ParquetFile(data).metadata.num_row_groups
    if src_out.exists():
        md = pq.ParquetFile(src_out).metadata
        info["source_out"] = (src_out.stat().st_size / 1e6, md.num_row_groups, md.row_group(0).num_rows)
    if full.ok:
        info["nodes"] = node_seconds(full.samples[len(full.samples) // 2].stdout)
    if fg.ok and duck.ok:
        a = pq.read_table(fg_out).sort_by("customer_id")
        b = pq.read_table(ref_out).sort_by("customer_id")
        same = (
            a.num_rows == b.num_rows
            and a["customer_id"].equals(b["customer_id"])
            and pc.all(pc.equal(a["n"], b["n"])).as_py()
            and pc.all(pc.equal(a["event_time"], b["event_time"])).as_py()
            and pc.max(pc.abs(pc.subtract(a["total"], b["total"]))).as_py()
            <= 1e-6 * max(1.0, pc.max(pc.abs(b["total"])).as_py())
        )
        info["check"] = f"outputs agree ({a.num_rows:,} rows)" if same else "OUTPUTS DIFFER"
        del a, b
    table = pq.read_table(data)
    info["arrow_mb"] = table.nbytes / 1e6
    info["rows"] = table.num_rows
    del table
    return info


# --------------------------------------------------------------------------- report


def _status(s: Series) -> str:
    if not s.ok:
        return "FAILED"
    if s.target_s is None:
        return ""
    return f"< {s.target_s:g} s: " + ("met" if s.median_s < s.target_s else "**MISSED**")


def render(rows_out: list[Series], extra: list[str], imports: dict, big: dict | None, rows: int) -> str:
    out = []
    out.append("| measurement | runs | median s | min s | peak RSS MB (median / max) | load 1m | target |")
    out.append("|---|---|---|---|---|---|---|")
    for s in rows_out:
        if not s.ok:
            out.append(f"| {s.label} | {len(s.samples)} | | | | | FAILED: {s.note} |")
            continue
        out.append(
            f"| {s.label} | {len(s.samples)} | {s.median_s:.3f} | {s.min_s:.3f} | "
            f"{s.rss_median:.0f} / {s.rss_max:.0f} | {s.load:.1f} | {_status(s)} |"
        )
    missed = [s.label for s in rows_out if s.ok and s.target_s is not None and s.median_s >= s.target_s]

    if big:
        full, fg, duck = big["series"][:3]
        arrow = big["arrow_mb"]
        out.append("")
        out.append(
            f"{big['rows']:,}-row feature group (input: Parquet {big['parquet_mb']:.0f} MB, "
            f"{big['input_row_groups']} row groups; in-memory Arrow {arrow:.0f} MB):"
        )
        out.append("")
        out.append("| measurement | runs | median s | min s | peak RSS MB (median / max) | RSS / Arrow input | vs DuckDB agg (time, RSS) | load 1m |")
        out.append("|---|---|---|---|---|---|---|---|")
        for s in big["series"]:
            if not s.ok:
                out.append(f"| {s.label} | {len(s.samples)} | | | | | FAILED: {s.note} | |")
                continue
            vs = "reference" if s is duck else "—"
            if duck.ok and s is not duck and s in (full, fg):
                vs = f"{s.median_s / duck.median_s:.2f}×, {s.rss_median / duck.rss_median:.2f}×"
            out.append(
                f"| {s.label} | {len(s.samples)} | {s.median_s:.2f} | {s.min_s:.2f} | "
                f"{s.rss_median:.0f} / {s.rss_max:.0f} | {s.rss_median / arrow:.2f} | {vs} | {s.load:.1f} |"
            )
        if "check" in big:
            extra.append(f"Feature group vs DuckDB reference: {big['check']}.")
        # "Does not materialize the input": peak RSS under half the input's Arrow size.
        for s, name in ((fg, "feature group alone"), (full, "full run (source + feature group)")):
            if s.ok:
                verdict = "below" if s.rss_median < 0.5 * arrow else "**NOT below**"
                extra.append(
                    f"{name}: peak RSS {s.rss_median:.0f} MB is {verdict} half the input's Arrow size "
                    f"({arrow:.0f} MB) — criterion for \"does not materialize the input\"."
                )
                if s.rss_median >= 0.5 * arrow:
                    missed.append(f"{name}: peak RSS {s.rss_median:.0f} MB vs Arrow input {arrow:.0f} MB")
        if "nodes" in big:
            nodes, done = big["nodes"]
            parts = ", ".join(f"{k} {v:.2f}s" for k, v in nodes.items())
            extra.append(f"Full 10M run, per node (median run): {parts}; scheduler total {done or 0:.2f}s.")
        if "source_out" in big:
            mb, groups, first = big["source_out"]
            extra.append(
                f"The source node rewrites the input to `target/intermediate/source_transactions.parquet` "
                f"({mb:.0f} MB, {groups} row groups of {first:,} rows)."
            )

    out.append("")
    out.append(
        "Import time (`python -X importtime -m seeknal_flow.cli.main …`, one run each; heaviest third-party "
        "packages, cumulative ms including what they pull in, and who imports them; "
        "`certifi` and the editable-install finder are loaded by `.pth` files at interpreter start):"
    )
    out.append("")
    out.append("| command | total import ms | heaviest imports: package ms (imported by) |")
    out.append("|---|---|---|")
    for cmd, (total, ranked) in imports.items():
        cells = ", ".join(f"{p} {ms:.0f} ({via})" for p, ms, via in ranked)
        out.append(f"| `{cmd}` | {total:.0f} | {cells} |")

    if missed:
        extra.insert(0, "Missed: " + "; ".join(missed) + ".")
    else:
        extra.insert(0, "Every target met.")
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        extra.append(
            "This environment sets `PYTHONDONTWRITEBYTECODE=1`, so the editable `seeknal_flow`/`operators` "
            "packages have no `.pyc` and are compiled on every start; the \"bytecode cached\" rows show the difference."
        )
    out.append("")
    out.extend(f"- {line}" for line in extra)
    return "\n".join(out)


def append_results(command: str, body: str) -> None:
    """Append one block at the end of our section (created if missing); other sections untouched."""
    header = results_file.run_header(machine())
    results_file.append_to_section(SECTION, f"{header}\n\n```\n{command}\n```\n\n{body}\n")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=float, default=1e7, help="rows of the feature-group input (default 1e7)")
    p.add_argument("--help-runs", type=int, default=10)
    p.add_argument("--repl-runs", type=int, default=10)
    p.add_argument("--run-runs", type=int, default=5)
    p.add_argument("--big-runs", type=int, default=3)
    p.add_argument("--skip-big", action="store_true", help="skip the large feature group")
    p.add_argument("--append", action="store_true", help="append the tables to benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    body = run(int(args.rows), args.help_runs, args.repl_runs, args.run_runs, args.big_runs, args.skip_big)
    print(machine())
    print(body)
    if args.append:
        command = "python -m benchmarks.bench_foundation " + " ".join(
            shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
        )
        append_results(command.rstrip(), body)


if __name__ == "__main__":
    main()
