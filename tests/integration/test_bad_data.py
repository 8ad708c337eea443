"""Bad data is stopped at the source or the feature group that meets it: one line naming the file
(partition, line), the column and the fix; the previous output stays."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest


def _project(root: Path, csv: bytes = b"id,amount,ts\n1,10,2026-01-01 10:00:00\n2,20,2026-01-02 10:00:00\n",
             group: str = "") -> Path:
    (root / "data").mkdir(parents=True)
    (root / "seeknal/sources").mkdir(parents=True)
    (root / "seeknal/feature_groups").mkdir(parents=True)
    (root / "seeknal_project.yml").write_text("name: bad_data\n")
    (root / "data/o.csv").write_bytes(csv)
    (root / "seeknal/sources/o.yml").write_text("kind: source\nname: o\nsource: csv\ntable: data/o.csv\n")
    (root / "seeknal/feature_groups/g.yml").write_text(
        "kind: feature_group\nname: g\nentity: {name: c, join_keys: [id]}\nevent_time_col: ts\n" + group +
        "sql: SELECT id, amount, CAST(ts AS TIMESTAMP) AS ts FROM ref('source.o')\n")
    return root


def _failed(r, *needles: str) -> None:
    assert r.code == 1, r.text
    assert "Traceback" not in r.text
    line = next(ln for ln in r.err.splitlines() if ln.startswith("error:"))
    for needle in needles:
        assert needle in line, (needle, line)


def _hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_non_utf8_bytes_in_a_csv_name_file_line_and_column(seeknal, tmp_path):
    root = _project(tmp_path / "p")
    assert seeknal("run", cwd=root).code == 0
    out = root / "target/intermediate/source_o.parquet"
    before = _hash(out)
    (root / "data/o.csv").write_bytes(b"id,amount,ts\n1,10,2026-01-01 10:00:00\n2,caf\xe9,2026-01-02 10:00:00\n")
    _failed(seeknal("run", cwd=root), "source.o", "'data/o.csv' line 3, column 'amount'", "not UTF-8",
            "encoding")
    assert _hash(out) == before


def test_a_header_only_csv_never_replaces_rows(seeknal, tmp_path):
    root = _project(tmp_path / "p")
    assert seeknal("run", cwd=root).code == 0
    out = root / "target/intermediate/source_o.parquet"
    before = _hash(out)
    (root / "data/o.csv").write_bytes(b"id,amount,ts\n")
    _failed(seeknal("run", cwd=root), "source.o", "'data/o.csv' has no data rows", "the last run read 2")
    _failed(seeknal("run", cwd=root), "source.o", "'data/o.csv' has no data rows")  # and again after a failure
    assert _hash(out) == before
    assert pq.read_table(root / "target/feature_store/c/features.parquet").num_rows == 2


def test_text_event_time_is_refused_and_mixed_offsets_are_named_at_the_source(seeknal, tmp_path):
    root = _project(tmp_path / "p", csv=b"id,amount,ts\n1,10,2026-01-01 10:00:00+01:00\n2,20,2026-01-01 10:00:00\n")
    (root / "seeknal/feature_groups/g.yml").write_text(
        "kind: feature_group\nname: g\nentity: {name: c, join_keys: [id]}\nevent_time_col: ts\n"
        "sql: SELECT * FROM ref('source.o')\n")
    r = seeknal("run", cwd=root)
    _failed(r, "feature_group.g", "event_time_col 'ts' is string, not a timestamp or date", "CAST")
    assert "'data/o.csv' column 'ts': times with and without a UTC offset" in r.out


@pytest.mark.parametrize("policy", ["drop", "fail"])
def test_null_keys_and_times_follow_the_groups_policy(seeknal, tmp_path, policy):
    csv = b"id,amount,ts\n1,10,2026-01-01 10:00:00\n,5,2026-01-02 10:00:00\n3,7,\n"
    root = _project(tmp_path / "p", csv=csv, group=f"nulls: {policy}\n")
    r = seeknal("run", cwd=root)
    if policy == "fail":
        _failed(r, "feature_group.g", "1 row(s) with a NULL id, 1 with a NULL ts (nulls: fail)")
        assert not (root / "target/feature_store/c").exists()
    else:
        assert r.code == 0, r.text
        assert "nulls: 1 row(s) with a NULL id, 1 with a NULL ts: kept out of entity 'c'" in r.out
        entity = pq.read_table(root / "target/feature_store/c/features.parquet")
        assert entity.column("id").to_pylist() == [1]


def test_csv_partitions_with_disagreeing_types_are_refused(seeknal, tmp_path):
    root = _project(tmp_path / "p")
    for day, body in (("1", "id,amount\n1,10\n"), ("2", "id,amount\n2,abc\n")):
        (root / f"data/tx/day={day}").mkdir(parents=True)
        (root / f"data/tx/day={day}/part.csv").write_text(body)
    (root / "seeknal/sources/tx.yml").write_text(
        "kind: source\nname: tx\nsource: csv\ntable: data/tx/\npartition_by: [day]\n")
    _failed(seeknal("run", "--nodes", "source.tx", cwd=root), "source.tx", "partition day=2",
            "column 'amount' is string here but int64 in day=1", "column_types")


def test_parquet_partitions_with_disagreeing_types_are_refused(seeknal, tmp_path):
    root = _project(tmp_path / "p")
    for day, value in (("1", 1.5), ("2", "x")):
        (root / f"data/pq/day={day}").mkdir(parents=True)
        pq.write_table(pa.table({"id": [int(day)], "v": [value]}), root / f"data/pq/day={day}/part.parquet")
    (root / "seeknal/sources/pq.yml").write_text(
        "kind: source\nname: pq\nsource: parquet\ntable: data/pq/\npartition_by: [day]\n")
    _failed(seeknal("run", "--nodes", "source.pq", cwd=root), "source.pq",
            "day=2/part.parquet has column 'v' as string but day=1/part.parquet has double")
