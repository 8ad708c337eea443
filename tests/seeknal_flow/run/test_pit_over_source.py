"""A PIT join straight over a source's Parquet (FeatureFrame.as_features): no feature-group copy."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seeknal_flow import FeatureFrame
from seeknal_flow.errors import FrameError

TX = pa.table({
    "customer_id": ["a", "a", "b", "b"],
    "event_time": [dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 5), dt.datetime(2026, 1, 2), dt.datetime(2026, 1, 9)],
    "revenue": [1.0, 2.0, 3.0, 4.0],
})
SPINE = pa.table({"customer_id": ["a", "b", "c"],
                  "application_date": [dt.datetime(2026, 1, 3), dt.datetime(2026, 1, 8), dt.datetime(2026, 1, 8)]})


def test_pit_join_over_a_source_file_equals_the_in_memory_join(tmp_path):
    path = tmp_path / "transactions.parquet"
    pq.write_table(TX, path)
    source = FeatureFrame(path, node_id="source.transactions")
    features = source.as_features(join_keys=["customer_id"], event_time_col="event_time")
    assert features.paths == [path]  # still the file: nothing was read or copied
    got = features.pit_join(SPINE, "application_date").to_arrow()
    assert got["revenue"].to_pylist() == [1.0, 3.0, None]
    same = FeatureFrame(TX, join_keys=("customer_id",), event_time_col="event_time").pit_join(SPINE, "application_date")
    assert got.equals(same.to_arrow())


def test_pit_join_through_seeknal_run_reads_the_source_in_place(seeknal, tmp_path):
    root = tmp_path / "p"
    assert seeknal("init", "--name", "p", "--path", str(root), cwd=tmp_path).code == 0
    pq.write_table(TX, root / "data" / "tx.parquet")
    pq.write_table(SPINE, root / "data" / "spine.parquet")
    for name in ("tx", "spine"):
        (root / "seeknal" / "sources" / f"{name}.yml").write_text(
            f"kind: source\nname: {name}\nsource: parquet\ntable: data/{name}.parquet\n")
    (root / "seeknal" / "transforms" / "pit.py").write_text(
        "from seeknal_flow import transform\n\n\n"
        "@transform(name='pit')\n"
        "def pit(ctx):\n"
        "    tx = ctx.ref('source.tx').as_features(join_keys='customer_id', event_time_col='event_time')\n"
        "    return tx.pit_join(spine=ctx.ref('source.spine'), date_col='application_date')\n")
    r = seeknal("run", cwd=root)
    assert r.code == 0, r.text
    out = pq.read_table(root / "target" / "intermediate" / "transform_pit.parquet")
    assert out["revenue"].to_pylist() == [1.0, 3.0, None]
    assert not (root / "target" / "intermediate" / "source_tx.parquet").exists()  # read in place


def test_as_features_names_missing_columns():
    frame = FeatureFrame(TX, node_id="source.transactions")
    with pytest.raises(FrameError, match=r"source\.transactions: no column\(s\) ts \(columns: customer_id, "):
        frame.as_features(join_keys="customer_id", event_time_col="ts")
    with pytest.raises(FrameError, match="join_keys is empty"):
        frame.as_features(join_keys=[], event_time_col="event_time")
