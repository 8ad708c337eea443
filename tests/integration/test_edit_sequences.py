"""Issue 14: random sequences of edits, each followed by `seeknal run`, end with the outputs of a clean
`seeknal run --full` of the final project (same files, same rows, same order)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seeknal_flow.cli.main import main

CUSTOMERS = ["c1", "c2", "c3", "c4"]
FEATURE_GROUP = """kind: feature_group
name: spend
entity: customer
sql: |
  SELECT customer_id, SUM(amount) AS total, COUNT(*) AS orders, CAST(MAX(day) AS TIMESTAMP) AS event_time
  FROM ref('source.sales')
  GROUP BY customer_id
"""
LEAF = """kind: transform
name: {name}
sql: |
  SELECT customer_id, {expr} AS value FROM ref('{upstream}') ORDER BY customer_id, value
"""
UPSTREAMS = ["source.sales", "feature_group.spend"]
EXPRS = {"source.sales": ["amount * {k}", "amount + {k}"], "feature_group.spend": ["total * {k}", "orders + {k}"]}


def _cli(*args: str) -> None:
    try:
        main([*args])
    except SystemExit as e:
        assert e.code in (0, None), f"seeknal {' '.join(args)} exited {e.code}"


def _write_day(root: Path, day: int, rows: int) -> None:
    folder = root / "data/sales" / f"day=2026-01-{day:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    ids = [CUSTOMERS[(day + i) % len(CUSTOMERS)] for i in range(rows)]
    pq.write_table(pa.table({"customer_id": ids, "amount": [float(day * 10 + i) for i in range(rows)]}),
                   folder / "part-0.parquet")


def _new_project(root: Path) -> None:
    root.mkdir(parents=True)
    (root / "seeknal_project.yml").write_text("name: edits\n")
    for folder in ("sources", "transforms", "feature_groups"):
        (root / "seeknal" / folder).mkdir(parents=True)
    for day in (1, 2):
        _write_day(root, day, 3)
    (root / "seeknal/sources/sales.yml").write_text(
        "kind: source\nname: sales\nsource: parquet\ntable: data/sales/\npartition_by: [day]\n")
    (root / "seeknal/feature_groups/spend.yml").write_text(FEATURE_GROUP)


def _leaves(root: Path) -> list[Path]:
    return sorted((root / "seeknal/transforms").glob("*.yml"))


def _apply(root: Path, edit: tuple, counter: list[int]) -> None:
    kind, pick, k = edit
    leaves = _leaves(root)
    counter[0] += 1
    if kind == "add" or (not leaves and kind in ("remove", "rename", "sql")):
        upstream = UPSTREAMS[pick % 2]
        name = f"leaf{counter[0]}"
        expr = EXPRS[upstream][k % 2].format(k=k)
        (root / f"seeknal/transforms/{name}.yml").write_text(LEAF.format(name=name, expr=expr, upstream=upstream))
    elif kind == "remove":
        leaves[pick % len(leaves)].unlink()
    elif kind == "rename":
        old = leaves[pick % len(leaves)]
        new_name = f"renamed{counter[0]}"
        text = old.read_text().replace(f"name: {old.stem}", f"name: {new_name}")
        old.unlink()
        (root / f"seeknal/transforms/{new_name}.yml").write_text(text)
    elif kind == "sql":
        leaf = leaves[pick % len(leaves)]
        text = leaf.read_text()
        upstream = "feature_group.spend" if "feature_group.spend" in text else "source.sales"
        line = next(x for x in text.splitlines() if x.strip().startswith("SELECT"))
        new = f"  SELECT customer_id, {EXPRS[upstream][(k + 1) % 2].format(k=k + 1)} AS value FROM ref('{upstream}') " \
              "ORDER BY customer_id, value"
        leaf.write_text(text.replace(line, new))
    elif kind == "data":  # rewrite an existing day with more rows (its size changes)
        days = sorted((root / "data/sales").iterdir())
        day = int(days[pick % len(days)].name[-2:])
        _write_day(root, day, 3 + k)
    elif kind == "append":  # a new day partition
        days = sorted((root / "data/sales").iterdir())
        _write_day(root, int(days[-1].name[-2:]) + 1, 2 + k % 3)


def _outputs(root: Path) -> dict[str, pa.Table]:
    target = root / "target"
    files = sorted(target.glob("intermediate/*.parquet")) + sorted(target.glob("feature_store/*/features.parquet"))
    return {str(p.relative_to(target)): pq.read_table(p) for p in files}


EDIT = st.tuples(st.sampled_from(["add", "remove", "rename", "sql", "data", "append"]),
                 st.integers(0, 7), st.integers(1, 4))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(EDIT, min_size=1, max_size=4))
def test_incremental_runs_equal_a_clean_full_run(edits):
    with tempfile.TemporaryDirectory(prefix="seeknal-edits-") as tmp:
        root = Path(tmp) / "p"
        _new_project(root)
        _cli("run", "--project", str(root), "-q")
        counter = [0]
        for edit in edits:
            _apply(root, edit, counter)
            _cli("run", "--project", str(root), "-q")
        clean = Path(tmp) / "clean"
        shutil.copytree(root, clean, ignore=shutil.ignore_patterns("target"))
        _cli("run", "--full", "--project", str(clean), "-q")
        got, want = _outputs(root), _outputs(clean)
        assert sorted(got) == sorted(want), edits
        for name, table in want.items():
            assert got[name].equals(table), (name, edits)
