"""consolidation_sql: the exact query text (golden) and a property against a plain-pandas reference."""

from __future__ import annotations

import datetime as dt
import tempfile
import types
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seeknal_flow.errors import StoreError
from seeknal_flow.store.consolidation import GroupInput, consolidation_sql, describe_group

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "consolidation"


def test_two_groups_golden():
    groups = [
        GroupInput("customer_features", Path("/data/fg/customer_features.parquet"), "event_time"),
        # a quote in the path and a space in a column name must be escaped, not spliced raw
        GroupInput("product_preferences", Path("/data/fg/it's/product_preferences.parquet"), "ts"),
    ]
    schemas = {
        "customer_features": ["customer_id", "total_revenue", "event_time"],
        "product_preferences": ["customer_id", "category_count", "top category", "ts"],
    }
    sql = consolidation_sql(("customer_id",), groups, schemas)
    assert sql == (FIXTURES / "two_groups.sql").read_text(encoding="utf-8").rstrip("\n")


def test_golden_sql_runs_and_fills_both_structs(tmp_path):
    # the golden shape on real files: groups whose event times differ still fill both structs
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(pa.table({"customer_id": ["C1", "C2"], "total_revenue": [1.0, 2.0],
                             "event_time": [dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2)]}), a)
    pq.write_table(pa.table({"customer_id": ["C2", "C3"], "category_count": [5, 6],
                             "ts": [dt.datetime(2026, 3, 1, 0, 0, 1), dt.datetime(2026, 3, 1, 0, 0, 1)]}), b)
    sql = consolidation_sql(("customer_id",), [GroupInput("x", a, "event_time"), GroupInput("y", b, "ts")],
                            {"x": ["customer_id", "total_revenue", "event_time"],
                             "y": ["customer_id", "category_count", "ts"]})
    rows = duckdb.connect().sql(sql).to_arrow_table().to_pylist()
    assert [r["customer_id"] for r in rows] == ["C1", "C2", "C3"]
    assert rows[0]["y"] is None and rows[2]["x"] is None
    assert rows[1]["x"]["total_revenue"] == 2.0 and rows[1]["y"]["category_count"] == 5
    assert rows[1]["event_time"] == dt.datetime(2026, 3, 1, 0, 0, 1)  # latest of the two groups
    assert rows[0]["event_time"] == dt.datetime(2026, 1, 1)


# ---------------------------------------------------------------- property

_TIMES = [dt.datetime(2026, 1, d, h) for d in (1, 2, 3) for h in (0, 12)]


@st.composite
def entity_inputs(draw):
    keys = draw(st.sampled_from([("customer_id",), ("a", "b")]))
    if len(keys) == 1:
        pool = draw(st.lists(st.sampled_from(["C1", "C2", "C3", "C4", "x' OR '1'='1"]), min_size=1, max_size=5,
                             unique=True))
        pool = [(k,) for k in pool]
    else:
        pool = draw(st.lists(st.tuples(st.sampled_from(["p", "q"]), st.integers(0, 2)), min_size=1, max_size=5,
                             unique=True))
    n_groups = draw(st.integers(1, 3))
    groups = []
    serial = 0
    for i in range(n_groups):
        suffix = draw(st.sampled_from(["feat", "select", "x y"]))
        et_col = draw(st.sampled_from(["event_time", "ts", "Event Time"]))
        value_col = draw(st.sampled_from(["v", "total", 'we"ird col']))
        date_typed = draw(st.booleans())
        n = draw(st.integers(0, 8))
        rows = []
        for _ in range(n):
            key = draw(st.sampled_from(pool))  # not every key appears in every group
            t = draw(st.sampled_from(_TIMES))  # few distinct times: ties are common
            rows.append((key, t.date() if date_typed else t, serial))
            serial += 1
        groups.append({"name": f"g{i}_{suffix}", "et": et_col, "value": value_col, "rows": rows,
                       "row_group_size": draw(st.integers(1, 4))})
    return keys, groups


def _write(folder: Path, keys, group) -> GroupInput:
    cols = {k: [r[0][j] for r in group["rows"]] for j, k in enumerate(keys)}
    types = {"customer_id": pa.string(), "a": pa.string(), "b": pa.int64()}
    table = pa.table({
        **{k: pa.array(v, types[k]) for k, v in cols.items()},
        group["value"]: pa.array([r[2] for r in group["rows"]], pa.int64()),
        group["et"]: pa.array([r[1] for r in group["rows"]],
                              pa.date32() if any(isinstance(r[1], dt.date) and not isinstance(r[1], dt.datetime)
                                                 for r in group["rows"]) else pa.timestamp("us")),
    })
    path = folder / f"{group['name']}.parquet"
    pq.write_table(table, path, row_group_size=group["row_group_size"])
    return GroupInput(group["name"], path, group["et"])


def _reference(keys, groups) -> list[tuple]:
    """Latest row per key per group (ties -> written last), full outer over keys, in plain pandas."""
    keys = list(keys)
    merged = None
    for g in groups:
        df = pd.DataFrame([(*r[0], r[1], r[2]) for r in g["rows"]], columns=[*keys, "et", "v"])
        df["pos"] = range(len(df))
        df["et_ts"] = pd.to_datetime(df["et"])
        latest = df.sort_values(["et_ts", "pos"], kind="stable").groupby(keys, sort=False).tail(1)
        latest = latest[[*keys, "et", "et_ts", "v"]].rename(
            columns={"et": f"et_{g['name']}", "et_ts": f"ts_{g['name']}", "v": f"v_{g['name']}"})
        merged = latest if merged is None else merged.merge(latest, on=keys, how="outer")
    if merged is None or merged.empty:
        return []
    merged = merged.sort_values(keys, kind="stable")
    out = []
    for rec in merged.to_dict("records"):
        structs, times = [], []
        for g in groups:
            v = rec[f"v_{g['name']}"]
            if pd.isna(v):
                structs.append(None)
            else:
                structs.append({g["value"]: int(v), g["et"]: rec[f"et_{g['name']}"]})
                times.append(rec[f"ts_{g['name']}"].to_pydatetime())
        out.append((tuple(rec[k] for k in keys), max(times), tuple(structs)))
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entity_inputs())
def test_consolidation_matches_pandas_reference(data):
    keys, groups = data
    groups = sorted(groups, key=lambda g: g["name"])
    with tempfile.TemporaryDirectory() as tmp:
        inputs = [_write(Path(tmp), keys, g) for g in groups]
        schemas = {gi.name: pq.read_schema(gi.path).names for gi in inputs}
        types = {gi.name: pq.read_schema(gi.path).field(gi.event_time_col).type for gi in inputs}
        # Ordered by a struct (no types given) and by one HUGEINT (the types given): the same rows.
        tables = [duckdb.connect().sql(consolidation_sql(keys, inputs, schemas, time_types)).to_arrow_table()
                  for time_types in (None, types)]
    want = _reference(keys, groups)
    for table in tables:
        assert table.column_names == [*keys, "event_time", *(g["name"] for g in groups)]
        got = [(tuple(r[k] for k in keys), r["event_time"], tuple(r[g["name"]] for g in groups))
               for r in table.to_pylist()]
        assert got == want


def test_ties_go_to_the_row_written_last_across_files_and_row_groups(tmp_path):
    # A partitioned group (a folder): files in name order, rows in file order; the last
    # written of the rows sharing the latest event time wins, even across row groups.
    t = dt.datetime(2026, 1, 2)
    folder = tmp_path / "fg"
    for day, values in (("day=1", [1, 2]), ("day=2", [3, 4])):
        (folder / day).mkdir(parents=True)
        pq.write_table(pa.table({"id": ["A", "A"], "v": values, "et": [t, t]}), folder / day / "part-0.parquet",
                       row_group_size=1)
    pq.write_table(pa.table({"id": ["A", "A", "B", "B"], "v": [9, 1, 5, 6],
                             "et": [dt.datetime(2026, 1, 3), t, t, t]}),
                   tmp_path / "flat.parquet", row_group_size=1)
    groups = [GroupInput("a", folder, "et"), GroupInput("b", tmp_path / "flat.parquet", "et")]
    sql = consolidation_sql(("id",), groups, {"a": ["id", "v", "et"], "b": ["id", "v", "et"]})
    rows = duckdb.connect().sql(sql).to_arrow_table().to_pylist()
    assert [(r["id"], r["a"] and r["a"]["v"], r["b"]["v"], r["event_time"]) for r in rows] == [
        ("A", 4, 9, dt.datetime(2026, 1, 3)),  # folder: day=2's last row; file: the later time beats the later row
        ("B", None, 6, t),
    ]


def test_a_damaged_group_output_is_a_one_line_error(tmp_path):
    bad = tmp_path / "feature_group_orders.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(StoreError) as err:
        describe_group(types.SimpleNamespace(root=tmp_path), "customer", ("customer_id",),
                       GroupInput("orders", bad, "event_time"))
    message = str(err.value)
    assert "\n" not in message and "feature group 'orders'" in message and str(bad) in message
    assert "seeknal run --nodes feature_group.orders" in message


@pytest.mark.parametrize("unit", ["us", "ns"])
def test_the_integer_order_keeps_the_finest_time_unit_ahead_of_the_row(tmp_path, unit):
    # One tick later beats any later row; equal times go to the later row.
    t = pa.array([1_700_000_000_000_001, 1_700_000_000_000_000, 1_700_000_000_000_000, 5], pa.int64())
    path = tmp_path / "g.parquet"
    pq.write_table(pa.table({"id": ["A", "A", "B", "B"], "v": [1, 2, 3, 4], "et": t.cast(pa.timestamp(unit))}),
                   path, row_group_size=1)
    group = GroupInput("g", path, "et")
    sql = consolidation_sql(("id",), [group], {"g": ["id", "v", "et"]}, {"g": pa.timestamp(unit)})
    assert "HUGEINT" in sql
    rows = duckdb.connect().sql(sql).to_arrow_table().to_pylist()
    assert [(r["id"], r["g"]["v"]) for r in rows] == [("A", 1), ("B", 3)]
