"""benchmarks/results_file.py: sections of RESULTS.md created, replaced and appended to, on temp files."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `benchmarks/` is not an installed package
    sys.path.insert(0, str(REPO))

from benchmarks import results_file  # noqa: E402

H = "## Mine (issue 9)"
BEFORE = "# Benchmark results\n\n## First (issue 1)\n\nfirst body\n\n"
AFTER = "## Last (issue 2)\n\nlast body\n| x |\n"


@pytest.fixture
def md(tmp_path: Path) -> Path:
    return tmp_path / "RESULTS.md"


def test_missing_file_and_section_are_created(md):
    results_file.append_to_section(H, "block one\n", md)
    assert md.read_text() == f"# Benchmark results\n\n{H}\n\nblock one\n"
    md.unlink()
    results_file.replace_section(H, "body", md)
    assert md.read_text() == f"# Benchmark results\n\n{H}\n\nbody\n"


R, A = results_file.replace_section, results_file.append_to_section
MACHINE = "Machine: 2 cores."
EARLIER = "### Earlier runs (before X)\n\nold\n\n"
# start of the file, the edits in order (function, text, keywords), the file after them
CASES = {
    "missing section goes at the end, intro once": (
        BEFORE + AFTER, [(A, "`cmd`\n\n| a |", {"intro": MACHINE}), (A, "| b |\n", {"intro": MACHINE})],
        BEFORE + AFTER + f"\n{H}\n\n{MACHINE}\n\n`cmd`\n\n| a |\n\n| b |\n"),
    "replace keeps other sections byte-identical": (
        BEFORE + f"{H}\n\n{MACHINE}\n\nold run\n\n\n" + AFTER,
        [(R, f"{MACHINE}\n\nnew run\n", {}), (R, "newer run", {})],
        BEFORE + f"{H}\n\nnewer run\n\n" + AFTER),
    "replace the last section": (BEFORE + f"{H}\n\nold run\n", [(R, "new run", {})], BEFORE + f"{H}\n\nnew run\n"),
    "append lands before the next heading": (
        BEFORE + f"{H}\n\nrun 1\n\n\n" + AFTER, [(A, "```\ncmd\n```\n\nrun 2\n", {}), (A, "run 3", {})],
        BEFORE + f"{H}\n\nrun 1\n\n```\ncmd\n```\n\nrun 2\n\nrun 3\n\n" + AFTER),
    "append to the section at the end of the file": (
        BEFORE + f"{H}\n\nrun 1\n", [(A, "run 2\n", {})], BEFORE + f"{H}\n\nrun 1\n\nrun 2\n"),
    "append stops at the before marker": (
        BEFORE + f"{H}\n\nrun 1\n\n{EARLIER}" + AFTER, [(A, "run 2\n", {"before": "\n### Earlier runs"})],
        BEFORE + f"{H}\n\nrun 1\n\nrun 2\n\n{EARLIER}" + AFTER),
    "heading matched as a whole line": (  # "### Mine (issue 9)" contains "## Mine (issue 9)"
        BEFORE + f"#{H}\n\nnot ours\n", [(A, "run 1\n", {})], BEFORE + f"#{H}\n\nnot ours\n\n{H}\n\nrun 1\n"),
}


@pytest.mark.parametrize(("start", "edits", "expected"), CASES.values(), ids=list(CASES))
def test_edits(md, start, edits, expected):
    md.write_text(start)
    for edit, text, keywords in edits:
        edit(H, text, md, **keywords)
    assert md.read_text() == expected


def test_write_is_atomic_and_keeps_the_mode(md):
    md.write_text(BEFORE)
    md.chmod(0o640)
    results_file.append_to_section(H, "run 1\n", md)
    assert md.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in md.parent.iterdir()] == ["RESULTS.md"]  # no temp file left behind


def test_default_path_is_looked_up_when_called(md, monkeypatch):
    monkeypatch.setattr(results_file, "RESULTS", md)
    results_file.append_to_section(H, "run 1\n")
    results_file.replace_section("## Other", "body")
    assert md.read_text() == f"# Benchmark results\n\n{H}\n\nrun 1\n\n## Other\n\nbody\n"


def test_run_header():
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d \S+"
    cores = r"\d+ cores \(.+\)"
    assert re.fullmatch(rf"{stamp}; {cores}, \S+ \S+, Python [\d.]+\w*\.", results_file.run_header())
    line = results_file.machine(memory=True, libraries={"DuckDB": "1.0", "pyarrow": "2.0"})
    assert re.fullmatch(rf"{cores}, \d+ GB RAM, \S+ \S+, Python [\d.]+\w*, DuckDB 1\.0, pyarrow 2\.0", line)
    header = results_file.run_header("the machine", commit=True)
    assert re.fullmatch(rf"{stamp}; the machine; commit (\w+|\?|unknown)( \+ uncommitted changes to .+)?\.", header)


def test_scripts_write_through_it(md, monkeypatch):
    from benchmarks import bench_foundation, bench_soa, bench_spark

    monkeypatch.setattr(results_file, "RESULTS", md)
    md.write_text(BEFORE + f"{bench_soa.SECTION}\n\nrun 1\n\n### Earlier runs\n\nold\n\n" + AFTER)
    bench_soa.append_results("python -m benchmarks.bench_soa --append", "\n1e3 rows:\n\n| s |")
    soa_block = "```\npython -m benchmarks.bench_soa --append\n```\n\n1e3 rows:\n\n| s |\n"
    assert f"run 1\n\n{soa_block}\n### Earlier" in md.read_text()
    bench_foundation.append_results("python -m benchmarks.bench_foundation --append", "| f |")
    assert re.search(r"\n## Foundation \(issue 2\)\n\n\d{4}-.+; \d+ cores .+ GB RAM, .+, DuckDB .+\.\n\n"
                     r"```\npython -m benchmarks.bench_foundation --append\n```\n\n\| f \|\n$", md.read_text())
    monkeypatch.setattr(bench_spark, "run", lambda scales, repeat: "| t |")
    bench_spark.main(["--rows", "1e3", "--append"])
    text = md.read_text()
    assert text.startswith(BEFORE + f"{bench_soa.SECTION}\n\nrun 1\n\n```\n")
    assert re.search(r"\| f \|\n\n## Spark engine \(issue 8\)\n\n"
                     r"`python -m benchmarks.bench_spark --rows 1e3 --append` "
                     r"\(pyspark 4.3.0, Java 17, \d{4}-\d\d-\d\d\)\n\n\| t \|\n$", text)
