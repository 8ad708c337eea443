"""Column statistics, the cache and previews (seeknal_flow.ui.stats) and the server's input checks."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seeknal_flow.errors import UiError
from seeknal_flow.load.project import Project
from seeknal_flow.ui import stats
from seeknal_flow.ui.server import _bad_path, check_binding


def _write(path: Path, n: int = 1000) -> Path:
    pq.write_table(pa.table({
        "x": pa.array([None if i % 10 == 0 else float(i) for i in range(n)]),
        'we"ird': pa.array([7] * n),
        "d": pa.array([date(2026, 1, 1 + i % 28) for i in range(n)]),
        "s": pa.array(["a" if i % 3 else "b" for i in range(n)]),
        "flag": pa.array([i % 2 == 0 for i in range(n)]),
    }), path)
    return path


def test_statistics_histograms_and_top_values(tmp_path):
    out = _write(tmp_path / "t.parquet")
    cols = {c["name"]: c for c in stats.column_stats(Project(tmp_path), out)["columns"]}
    x = cols["x"]
    assert x["count"] == 1000 and x["null_count"] == 100 and x["null_pct"] == pytest.approx(10.0)
    assert float(x["min"]) == 1.0 and float(x["max"]) == 999.0
    assert len(x["histogram"]["counts"]) == 20 and sum(x["histogram"]["counts"]) == 900
    assert x["histogram"]["counts"][-1] > 0  # the maximum falls in the last bin, not past it
    assert cols['we"ird']["histogram"] == {"lo": 7.0, "hi": 7.0, "counts": [1000], "temporal": False}
    assert cols["d"]["histogram"]["temporal"] and sum(cols["d"]["histogram"]["counts"]) == 1000
    assert cols["s"]["top_values"] == [{"value": "a", "count": 666}, {"value": "b", "count": 334}]
    assert cols["flag"]["histogram"] is None and cols["flag"]["top_values"] is None


def test_the_cache_follows_the_materialization(tmp_path):
    project = Project(tmp_path)
    out = _write(tmp_path / "t.parquet", 100)
    first = stats.column_stats(project, out)
    files = list((tmp_path / "target/ui_cache").glob("stats-*.json"))
    assert len(files) == 1
    files[0].write_bytes(files[0].read_bytes().replace(b'"count":100', b'"count":12345'))
    assert stats.column_stats(project, out)["columns"][0]["count"] == 12345  # served from the cache
    _write(out, 50)
    os.utime(out, ns=(1, 1))  # a rewrite with another size and mtime: another key
    assert stats.column_stats(project, out)["columns"][0]["count"] == 50
    assert first["columns"][0]["count"] == 100
    assert len(list((tmp_path / "target/ui_cache").glob("stats-*.json"))) == 2


def test_a_hive_partitioned_output_and_a_limited_preview(tmp_path):
    for day in ("2026-01-01", "2026-01-02"):
        (tmp_path / "out" / f"day={day}").mkdir(parents=True)
        _write(tmp_path / "out" / f"day={day}" / "part-0.parquet", 300)
    out = tmp_path / "out"
    assert stats.row_count(out) == 600
    assert "day" in [c["name"] for c in stats.schema_of(out)]
    p = stats.preview(out, 7)
    assert len(p["rows"]) == 7 and p["columns"][0] == "x"
    assert sum(c["count"] for c in stats.column_stats(Project(tmp_path), out)["columns"][:1]) == 600


@pytest.mark.parametrize("text", ["..", "a/../b", "%2e%2e", "%2E%2E/x", "/etc/passwd", "a%2fb", "a\\b", "C:x"])
def test_traversal_is_recognised(text):
    assert _bad_path(text)


@pytest.mark.parametrize("text", ["api/nodes/source.transactions", "api/graph", "50", "feature_group.a_b"])
def test_ordinary_paths_pass(text):
    assert not _bad_path(text)


def test_binding_off_loopback_needs_a_token():
    check_binding("127.0.0.1", None)
    check_binding("::1", None)
    check_binding("0.0.0.0", "t")
    with pytest.raises(UiError, match="SEEKNAL_UI_TOKEN"):
        check_binding("0.0.0.0", None)
    with pytest.raises(UiError, match="--token"):
        check_binding("192.168.1.5", "")


def test_graph_survives_a_failing_plan(monkeypatch, tmp_path):
    """A planner error (say a preflight schema problem) leaves the graph usable and says why."""
    import shutil

    from seeknal_flow.errors import PlanError
    from seeknal_flow.ui import api as api_module
    from tests.conftest import EXAMPLE

    shutil.copytree(EXAMPLE, tmp_path / "p", ignore=shutil.ignore_patterns("target"))

    def failing(ws):
        raise PlanError("second_order_aggregation.x: column 'y' not found\nmore detail")

    monkeypatch.setattr(api_module, "plan_project", failing)
    graph = api_module.UiApi(Project(tmp_path / "p")).graph()
    assert graph["plan_error"] == "second_order_aggregation.x: column 'y' not found"
    assert len(graph["nodes"]) == 11 and {n["status"] for n in graph["nodes"]} == {"never_run"}
