"""The benchmark harness at a tiny scale: every system's outputs agree (no timing asserts)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `benchmarks/` is not an installed package
    sys.path.insert(0, str(REPO))

from benchmarks.harness import report, run, verify  # noqa: E402

SYSTEMS = ["seeknal_flow", "duckdb"] + (["polars"] if importlib.util.find_spec("polars") else [])


@pytest.mark.slow
def test_systems_agree_on_soa_pit_and_pipeline(tmp_path):
    tasks = run.expand_tasks("soa,pit,pipeline")
    results, notes = run.run(20_000, SYSTEMS, tasks, data_dir=tmp_path, log=lambda _: None)
    assert not notes
    assert set(results) == {(s, t) for s in SYSTEMS for t in tasks}
    for (system, task), r in results.items():
        assert r.ok, f"{system} {task}: {r.samples[-1].failure()}"
        if system == "seeknal_flow":
            assert r.check.startswith("reference")
        else:
            assert r.check == "agrees", f"{system} {task}: {r.check}"
    pit = results[("seeknal_flow", "pit")].summaries["pit"]
    assert pit["rows"] == 1_000 and pit["columns"]["revenue"][0] > 0  # some spine rows match nothing
    assert results[("seeknal_flow", "pipeline")].stages  # per-node times parsed from `seeknal run`
    body = run.render(20_000, results, notes, tasks, SYSTEMS, 1, None)
    assert "| pipeline | seeknal-flow |" in body and "DIFFERS" not in body


def test_compare_names_the_first_difference(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(pa.table({"k": ["x", "y"], "v": [1.0, None]}), a)
    pq.write_table(pa.table({"k": ["x", "y"], "v": [1.0, float("nan")]}), b)  # NaN counts as NULL
    cols = ("k", "v")
    assert verify.compare(verify.summarize(a, cols), verify.summarize(b, cols)) is None
    pq.write_table(pa.table({"k": ["x", "y"], "v": [1.0, 2.0]}), b)
    assert verify.compare(verify.summarize(a, cols), verify.summarize(b, cols)) == "v: 0 NULLs, reference 1"
    pq.write_table(pa.table({"k": ["x", "y"]}), b)
    assert verify.compare(verify.summarize(a, cols), verify.summarize(b, cols)) == "missing column(s) v"


def test_append_keeps_other_sections(tmp_path, monkeypatch):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Other (issue 1)\n\nkeep me\n")
    monkeypatch.setattr(report, "RESULTS", results)
    report.append("python -m benchmarks run", "| a |")
    report.append("python -m benchmarks run --scale 1e3", "| b |")
    text = results.read_text()
    assert text.startswith("# Benchmark results\n\n## Other (issue 1)\n\nkeep me\n")
    assert text.count(report.SECTION) == 1 and text.index("| a |") < text.index("| b |")


@pytest.mark.slow
def test_incremental_benchmark_changes_one_partition_and_agrees(tmp_path):
    from benchmarks.harness import incremental
    from benchmarks.harness.systems import SeeknalFlow

    results = incremental.run_variants(3_000, 4, ["none", "sums"], 1, data_dir=tmp_path)
    assert [v.name for v in results] == ["none", "sums"]
    for v in results:
        part, plan, run_ = v.steps[0]
        assert f"RUN 1/4 partitions (changed: {part})" in plan.stdout
        assert "1 partition(s) written, 0 removed, 3 unchanged" in run_.stdout
        assert "agree" in v.check and "DIFFER" not in v.check, v.check
    assert results[1].duckdb_downstream_s is not None and results[0].duckdb_downstream_s is None
    body = incremental.render(3_000, 4, results, SeeknalFlow())
    assert "| none (partitioned pipeline) |" in body and "| `COUNT(*)` |" in body


@pytest.mark.slow
def test_incremental_soa_benchmark_adds_a_day_and_equals_the_full_run(tmp_path):
    from benchmarks.harness import incremental

    body = incremental.run_soa_variant(3_000, 6, 2, None, data_dir=tmp_path)
    assert "| this code |" in body and "| before |" not in body
    assert body.count("`seeknal run` after adding order_date=") == 2
    assert "incremental SOA output equals `seeknal run --full`" in body and "DIFFERS" not in body, body
    assert "second_order_aggregation.spend" in body  # per-node times parsed from -v


def test_node_seconds_reads_the_verbose_node_lines():
    from benchmarks.bench_foundation import node_seconds

    out = ("[1/2] source.a  ok: 6 rows in 0.12s (50 rows/s)  (new)\n  | a note\n"
           "[2/2] feature_group.b  ok: 1,000 rows in 1.50s (667 rows/s)\nDone in 2.00s: 2 ok, 0 failed\n")
    assert node_seconds(out) == ({"source.a": 0.12, "feature_group.b": 1.5}, 2.0)
