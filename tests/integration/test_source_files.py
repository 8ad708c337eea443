"""How a source's files are listed, counted and fingerprinted across runs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def _project(seeknal, root: Path, table: str) -> Path:
    root.mkdir()
    assert seeknal("init", "--name", root.name, cwd=root).code == 0
    (root / "seeknal/sources/tx.yml").write_text(f"kind: source\nname: tx\nsource: parquet\ntable: {table}\n")
    (root / "seeknal/transforms/n.yml").write_text(
        "kind: transform\nname: n\nsql: SELECT COUNT(*) AS n FROM ref('source.tx')\n")
    return root


def _source_rows(out: str) -> str:
    return out.split("source.tx", 1)[1].split("ok: ", 1)[1].split(" rows", 1)[0]


def _count(seeknal, root: Path) -> str:
    return seeknal("repl", "--format", "csv", "-e", "SELECT n FROM transform_n", cwd=root).out.splitlines()[1]


def test_single_files_whatever_their_name(seeknal, tmp_path):
    for name in ("orders.pq", "_staging_orders.parquet"):
        root = _project(seeknal, tmp_path / name.replace(".", "_"), f"data/{name}")
        pq.write_table(pa.table({"x": [1, 2, 3]}), root / "data" / name)
        r = seeknal("run", cwd=root)
        assert r.code == 0, r.text
        assert _source_rows(r.out) == "3" and _count(seeknal, root) == "3"


def test_symlinked_folders_are_not_followed(seeknal, tmp_path):
    """As DuckDB's ** glob and pyarrow do: a loop does not hang, a linked folder is not counted."""
    root = _project(seeknal, tmp_path / "links", "data/tx/")
    for day in ("2026-01-01", "2026-01-02"):
        (root / f"data/tx/day={day}").mkdir(parents=True)
        pq.write_table(pa.table({"x": [1, 2]}), root / f"data/tx/day={day}/part-0.parquet")
    elsewhere = tmp_path / "elsewhere" / "day=2026-01-03"
    elsewhere.mkdir(parents=True)
    pq.write_table(pa.table({"x": [1, 2, 3, 4]}), elsewhere / "part-0.parquet")
    (root / "data/tx/day=2026-01-03").symlink_to(elsewhere, target_is_directory=True)
    (root / "data/tx/loop").symlink_to(root / "data", target_is_directory=True)
    assert seeknal("plan", cwd=root).code == 0
    r = seeknal("run", cwd=root)
    assert r.code == 0, r.text
    assert _source_rows(r.out) == "4" and _count(seeknal, root) == "4"


def _padded(table: pa.Table, pad: int) -> pa.Table:
    return table.replace_schema_metadata({"pad": "x" * pad})


def _pads_of_equal_size(a: pa.Table, b: pa.Table, path: Path) -> tuple[int, int]:
    """Metadata paddings that make ``a`` and ``b`` equally large Parquet files."""
    def sizes(table):
        out = {}
        for pad in range(256):
            pq.write_table(_padded(table, pad), path)
            out.setdefault(path.stat().st_size, pad)
        return out

    sa, sb = sizes(a), sizes(b)
    size = min(set(sa) & set(sb))
    return sa[size], sb[size]


def test_full_recounts_a_file_rewritten_with_the_same_size_and_mtime(seeknal, tmp_path):
    root = _project(seeknal, tmp_path / "same", "data/tx.parquet")
    path = root / "data/tx.parquet"
    three, four = pa.table({"x": [1, 2, 3]}), pa.table({"x": [1, 2, 3, 4]})
    pad3, pad4 = _pads_of_equal_size(three, four, path)
    pq.write_table(_padded(three, pad3), path)
    assert seeknal("run", cwd=root).code == 0
    st = path.stat()
    pq.write_table(_padded(four, pad4), path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    r = seeknal("run", "--full", cwd=root)
    assert r.code == 0 and _source_rows(r.out) == "4", r.out


def _legacy_fingerprint(path: Path, previous: dict[str, dict]) -> dict[str, dict]:
    """data_fingerprint as states before SHA-256 were written: BLAKE2b-128, no `algorithm`."""
    from seeknal_flow.plan.fingerprint import data_files

    base = path if path.is_dir() else path.parent
    return {str(f.relative_to(base)): {"size": f.stat().st_size, "mtime_ns": f.stat().st_mtime_ns,
                                       "hash": hashlib.blake2b(f.read_bytes(), digest_size=16).hexdigest()}
            for f in data_files(path)}


def test_a_state_from_before_sha256_keeps_touched_files_unchanged(seeknal, tmp_path, monkeypatch):
    """Entries hashed with BLAKE2b (no `algorithm`) are re-hashed the same way when touched."""
    import seeknal_flow.plan.planner as planner

    root = _project(seeknal, tmp_path / "legacy", "data/tx.parquet")
    path = root / "data/tx.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3]}), path)
    with monkeypatch.context() as m:
        m.setattr(planner, "data_fingerprint", _legacy_fingerprint)
        assert seeknal("run", cwd=root).code == 0
    state = json.loads((root / "target/run_state.json").read_text())
    assert "algorithm" not in state["nodes"]["source.tx"]["files"]["tx.parquet"]
    os.utime(path, None)  # touched, same bytes
    plan = seeknal("plan", cwd=root).out
    assert "SKIP  source.tx" in plan and "RUN " not in plan, plan
    pq.write_table(pa.table({"x": [1, 2, 3, 4]}), path)  # changed bytes still re-run
    assert "RUN   source.tx" in seeknal("plan", cwd=root).out
