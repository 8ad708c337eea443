"""Incremental consolidation (store/latest.py): after any sequence of edits to an entity's groups,
the entity table built from the kept latest rows equals a full rebuild from scratch.

Each consolidation runs twice: in project A, which keeps its state across the edits, and in a
project B whose state is wiped first (a rebuild from scratch); the two tables must be equal as
Arrow tables (schema, nullability, column and row order). The values are also compared with the
one-query ``consolidation_sql`` (the rebuild before kept state existed).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operators.datasets import footer_summary
from operators.memory import MemoryConfig
from seeknal_flow.load.project import Project
from seeknal_flow.store.consolidation import GroupInput, build_entity, consolidation_sql
from seeknal_flow.store.latest import MANIFEST, STATE_DIR

MEMORY = MemoryConfig(threads=1)
KEYS = ("k",)
_TIMES = [dt.datetime(2026, 1, d, h) for d in (1, 2) for h in (0, 12)]  # few: ties are common


class World:
    """Group outputs under ``data/``, written with strictly increasing mtimes (as real rewrites are)."""

    def __init__(self, root: Path, keys: tuple[str, ...] = KEYS) -> None:
        self.keys = keys
        self.root, self.data = root, root / "data"
        self.data.mkdir()
        self.groups: dict[str, dict] = {}  # name -> {"partitioned", "parts" or "rows", "value_type"}
        self.clock = 1_800_000_000 * 10**9
        self.a, self.b = Project(root / "a"), Project(root / "b")
        self.catalog_a = None

    def _touch(self, path: Path) -> None:
        self.clock += 10**9
        os.utime(path, ns=(self.clock, self.clock))

    def _table(self, rows, value_type) -> pa.Table:
        table = pa.table({"k": pa.array([r[0] for r in rows], pa.string()),
                          "v": pa.array([r[2] for r in rows], pa.int64()).cast(value_type),
                          "t": pa.array([r[1] for r in rows], pa.timestamp("us"))})
        if "k2" in self.keys:  # a second join key (last, so the value column keeps its place)
            table = table.append_column("k2", pa.array([r[2] % 2 for r in rows], pa.int64()))
        return table

    def write_file(self, path: Path, rows, value_type) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(self._table(rows, value_type), path, row_group_size=2)
        self._touch(path)

    def write_partition(self, name: str, part: str, files: list) -> None:
        folder = self.data / name / f"day={part}"
        shutil.rmtree(folder, ignore_errors=True)
        for i, rows in enumerate(files):
            self.write_file(folder / f"part-{i}.parquet", rows, self.groups[name]["value_type"])

    def path(self, name: str) -> Path:
        return self.data / name if self.groups[name]["partitioned"] else self.data / f"{name}.parquet"

    def inputs(self) -> list[GroupInput]:
        return [GroupInput(n, self.path(n), "t") for n in sorted(self.groups)]

    def consolidate(self) -> str:
        groups = self.inputs()
        self.catalog_a = build_entity(self.a, "e", self.keys, groups, MEMORY, self.catalog_a)
        shutil.rmtree(self.b.entity_dir("e"), ignore_errors=True)
        build_entity(self.b, "e", self.keys, groups, MEMORY, None)
        got, full = pq.read_table(self.a.entity_table("e")), pq.read_table(self.b.entity_table("e"))
        assert got.equals(full), (self.catalog_a["consolidation"], got.to_pylist(), full.to_pylist())
        assert got.schema.equals(full.schema)
        schemas = {g.name: footer_summary(g.path)[0].names for g in groups}
        reference = duckdb.connect().sql(consolidation_sql(self.keys, groups, schemas)).to_arrow_table()
        assert got.to_pylist() == reference.to_pylist()
        return self.catalog_a["consolidation"]


_rows = st.lists(st.tuples(st.sampled_from(["A", "B", "C", "D"]), st.sampled_from(_TIMES), st.integers(0, 99)),
                 min_size=0, max_size=5)
_files = st.lists(_rows, min_size=1, max_size=2)  # a partition of one or two files: ties across files
_part_names = st.integers(10, 30).map(str)


@st.composite
def _group(draw):
    if draw(st.sampled_from([True, True, False])):  # partitioned groups are where the merges happen
        parts = draw(st.dictionaries(_part_names, _files, min_size=1, max_size=3))
        return {"partitioned": True, "parts": parts}
    return {"partitioned": False, "rows": draw(_rows)}


# Adding a partition, the incremental case, is drawn most often.
_KINDS = ["add_partition"] * 4 + ["rewrite", "change_partition", "remove_partition", "add_group", "remove_group",
                                  "schema"]
_edit = st.tuples(st.sampled_from(_KINDS), _group(), _part_names, _files)


def _write_group(w: World, name: str, spec: dict) -> None:
    shutil.rmtree(w.data / name, ignore_errors=True)
    (w.data / f"{name}.parquet").unlink(missing_ok=True)
    w.groups[name] = {"partitioned": spec["partitioned"], "value_type": w.groups.get(name, {}).get(
        "value_type", pa.int64())}
    if spec["partitioned"]:
        for part, files in spec["parts"].items():
            w.write_partition(name, part, files)
    else:
        w.write_file(w.path(name), spec["rows"], w.groups[name]["value_type"])


def _apply(w: World, edit, pick: int) -> None:
    names = sorted(w.groups)
    name = names[pick % len(names)]
    kind, group, part, files = edit
    parts = sorted(p.name.removeprefix("day=") for p in (w.data / name).iterdir()) \
        if w.groups[name]["partitioned"] else []
    if kind == "add_partition" and not parts:  # the partitioned group, when there is one
        name = next((n for n in names if w.groups[n]["partitioned"]), name)
        parts = sorted(p.name.removeprefix("day=") for p in (w.data / name).iterdir()) \
            if w.groups[name]["partitioned"] else []
    if kind == "rewrite":
        _write_group(w, name, group)
    elif kind == "add_partition" and parts and part not in parts:
        w.write_partition(name, part, files)
    elif kind == "change_partition" and parts:
        w.write_partition(name, parts[pick % len(parts)], files)
    elif kind == "remove_partition" and len(parts) > 1:
        shutil.rmtree(w.data / name / f"day={parts[pick % len(parts)]}")
    elif kind == "add_group" and len(names) < 3:
        _write_group(w, f"g{max(int(n[1:]) for n in names) + 1}", group)
    elif kind == "remove_group" and len(names) > 1:
        _write_group(w, name, {"partitioned": False, "rows": []})
        (w.data / f"{name}.parquet").unlink()
        del w.groups[name]
    elif kind == "schema":  # the value column changes type: every file of the group is rewritten
        spec = w.groups[name]
        spec["value_type"] = pa.float64() if spec["value_type"] == pa.int64() else pa.int64()
        for f in sorted(w.path(name).rglob("*.parquet")) if spec["partitioned"] else [w.path(name)]:
            table = pq.read_table(f, partitioning=None)
            pq.write_table(table.set_column(1, "v", table["v"].cast(spec["value_type"])), f)
            w._touch(f)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_group(), min_size=1, max_size=3), st.lists(st.tuples(_edit, st.integers(0, 5)), min_size=2, max_size=5))
def test_incremental_equals_full_rebuild(groups, edits):
    _edits_keep_incremental_equal_to_full(groups, edits, KEYS)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_group(), min_size=1, max_size=2), st.lists(st.tuples(_edit, st.integers(0, 5)), min_size=2, max_size=4))
def test_incremental_equals_full_rebuild_with_two_join_keys(groups, edits):
    _edits_keep_incremental_equal_to_full(groups, edits, ("k", "k2"))


def _edits_keep_incremental_equal_to_full(groups, edits, keys: tuple[str, ...]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        w = World(Path(tmp), keys)
        for i, spec in enumerate(groups):
            _write_group(w, f"g{i}", spec)
        w.consolidate()
        for edit, pick in edits:
            _apply(w, edit, pick)
            w.consolidate()


# ---------------------------------------------------------------- targeted


def _two_groups(tmp_path: Path) -> World:
    w = World(tmp_path)
    _write_group(w, "g0", {"partitioned": True, "parts": {"10": [[("A", _TIMES[0], 1), ("B", _TIMES[1], 2)]],
                                                           "11": [[("A", _TIMES[1], 3)]]}})
    _write_group(w, "g1", {"partitioned": False, "rows": [("A", _TIMES[0], 5), ("C", _TIMES[2], 6)]})
    return w


def test_notes_say_what_was_done(tmp_path):
    w = _two_groups(tmp_path)
    assert w.consolidate() == "rebuilt in full (no kept state)"
    assert w.consolidate() == "0 of 2 groups recomputed"
    # a new partition whose rows tie on time with the kept latest row: the later file wins, as in full
    w.write_partition("g0", "12", [[("A", _TIMES[1], 7)], [("A", _TIMES[1], 8), ("D", _TIMES[0], 9)]])
    assert w.consolidate() == "1 new partition of g0 merged"
    w.write_partition("g0", "1", [[("B", _TIMES[3], 10)]])  # day=1/ sorts first: still merged
    assert w.consolidate() == "1 new partition of g0 merged"
    # day=09 is read as text, which turns the whole Hive column into text in a full pass: in full
    w.write_partition("g0", "09", [[("B", _TIMES[3], 13)]])
    assert w.consolidate() == "1 of 2 groups recomputed"
    _write_group(w, "g1", {"partitioned": False, "rows": [("C", _TIMES[3], 11)]})
    assert w.consolidate() == "1 of 2 groups recomputed"
    w.write_partition("g0", "11", [[("A", _TIMES[0], 12)]])  # a changed partition: the group in full
    assert w.consolidate() == "1 of 2 groups recomputed"
    files = sorted(p.name for p in (w.a.entity_dir("e") / STATE_DIR).iterdir())
    assert len(files) == 3 and MANIFEST in files  # replaced kept files are gone


def test_damaged_state_rebuilds_in_full(tmp_path):
    w = _two_groups(tmp_path)
    w.consolidate()
    state = w.a.entity_dir("e") / STATE_DIR
    (state / MANIFEST).write_text("{not json")
    assert w.consolidate().startswith("rebuilt in full (kept state damaged: manifest.json")
    kept = next(state.glob("g1-*.parquet"))
    kept.write_bytes(kept.read_bytes()[:20])  # cut short: its footer is gone
    assert w.consolidate() == "1 of 2 groups recomputed, kept rows of g1 unreadable"
    kept = next(state.glob("g0-*.parquet"))
    data = bytearray(kept.read_bytes())
    data[4:40] = b"\xff" * 36  # damaged inside, footer intact: the join fails and everything is redone
    kept.write_bytes(bytes(data))
    assert w.consolidate().startswith("rebuilt in full (kept state unreadable")
    assert w.consolidate() == "0 of 2 groups recomputed"


def test_killed_at_any_rename_leaves_a_consistent_state(tmp_path, monkeypatch):
    w = _two_groups(tmp_path)
    w.consolidate()
    real = os.replace
    for n in range(1, 4):  # the renames: kept-state manifest, entity table, catalog
        w.write_partition("g0", str(20 + n), [[("A", _TIMES[3], 100 + n), ("E", _TIMES[0], n)]])
        _write_group(w, "g1", {"partitioned": False, "rows": [("C", _TIMES[n % 4], n)]})
        calls = []

        def dying(src, dst, _n=n, _calls=calls):
            _calls.append(dst)
            if len(_calls) == _n:
                raise KeyboardInterrupt
            return real(src, dst)

        monkeypatch.setattr(os, "replace", dying)
        with pytest.raises(KeyboardInterrupt):
            build_entity(w.a, "e", KEYS, w.inputs(), MEMORY, w.catalog_a)
        monkeypatch.setattr(os, "replace", real)
        manifest = json.loads((w.a.entity_dir("e") / STATE_DIR / MANIFEST).read_text())
        for entry in manifest["groups"].values():  # every file the manifest names is there
            assert (w.a.entity_dir("e") / STATE_DIR / entry["file"]).is_file()
        w.consolidate()  # and the next consolidation equals a full rebuild


def test_single_file_group_keeps_no_state(tmp_path):
    w = World(tmp_path)
    _write_group(w, "g0", {"partitioned": False, "rows": [("A", _TIMES[0], 1)]})
    assert w.consolidate() == "rebuilt in full (one group)"
    assert not (w.a.entity_dir("e") / STATE_DIR).exists()
