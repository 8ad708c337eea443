"""``python -m benchmarks pipeline`` at a tiny scale: the project runs and its outputs equal the scripts'."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `benchmarks/` is not an installed package
    sys.path.insert(0, str(REPO))

from benchmarks.harness import pipeline  # noqa: E402


@pytest.mark.slow
def test_the_user_path_agrees_with_the_duckdb_and_polars_scripts(tmp_path):
    systems = ["duckdb"] + (["polars"] if importlib.util.find_spec("polars") else [])
    result = pipeline.run_size(20_000, 1, tmp_path / "work", systems, log=lambda _: None, data=tmp_path / "data")
    assert result["mismatches"] == []
    assert set(result["median"]) == {"seeknal", *systems}
    profile = result["profile"]["seeknal"]
    # every node of the walk-through project ran, and consolidation was timed
    assert {"feature_group.tx_features", "second_order_aggregation.soa_region",
            "second_order_aggregation.soa_customer", "transform.pit"} <= set(profile)
    assert profile["consolidation + publish"] > 0
    text = pipeline.report([result], "python -m benchmarks pipeline --rows 2e4", "0 0 0")
    assert "| 2e+04 | seeknal |" in text and "| consolidation + publish |" in text


def test_compare_outputs_finds_a_changed_value_and_ignores_row_order(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = {"region": ["a", "b"], **{c: [1.0, 2.0] for c in pipeline.COMPARE["soa_region"][1:]}}
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(pa.table(cols), a)
    pq.write_table(pa.table(cols).take([1, 0]), b)  # same rows, other order
    assert pipeline.compare_outputs(a, b, "soa_region") is None
    changed = dict(cols, revenue_MAX=[1.0, 2.5])
    pq.write_table(pa.table(changed), b)
    assert pipeline.compare_outputs(a, b, "soa_region") == "revenue_MAX: row 1: 2.5, reference 2.0"
    pq.write_table(pa.table(cols).slice(0, 1), b)
    assert pipeline.compare_outputs(a, b, "soa_region") == "1 rows, reference 2"


def test_the_sink_benchmark_runs_both_sinks(tmp_path, capsys):
    from benchmarks.__main__ import main

    main(["sink", "--rows", "2e4", "--rounds", "2", "--before", str(REPO), "--data", str(tmp_path)])
    out = capsys.readouterr().out
    assert "| this checkout |" in out and "| before |" in out
    assert len(list((tmp_path / "sink_bench").glob("*.parquet"))) == 2
