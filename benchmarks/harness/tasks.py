"""The benchmark tasks, and how each system does each one.

Tasks (on ``benchmarks/datagen.py`` data: transactions of N rows, spine of N/20 rows):

- ``soa_region`` / ``soa_customer``: second-order aggregation of ``revenue`` by
  ``region`` (16 ids) / ``customer_id`` (N/20 ids): basic sum, mean, max, stddev;
  window [1, 7] sum; ratio [1, 7] / [8, 14] sum; feature date ``order_date``,
  application date ``application_date`` (SPEC §4).
- ``pit``: point-in-time join of the spine (``customer_id``, ``application_date``)
  onto the transactions as features (``customer_id``, ``event_time``): per spine
  row, the latest transaction at or before its date; all columns of both sides.
- ``pipeline``: the three outputs above in one run (``--tasks`` word ``pipeline``);
  for seeknal-flow and seeknal 2.13 a real project run with ``seeknal run --full``
  (see ``benchmarks/harness/projects.py``), for DuckDB and Polars the same work
  hand-written in one process.

Each task reads the same Parquet files and writes Parquet (``<output>.parquet`` in
an output folder). This module holds the code a child process runs
(``python -m benchmarks.harness.child``); it imports engines lazily, so seeknal
2.13's virtual environment (no seeknal-flow, no datafusion) can import it too.
SOA children for seeknal-flow, DuckDB and Polars are the ones in
``benchmarks/bench_soa.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

COL = "revenue"
SOA_COLS = [f"{COL}_SUM", f"{COL}_MEAN", f"{COL}_MAX", f"{COL}_STDDEV", f"{COL}_SUM_1_7", f"{COL}_SUM1_7_SUM8_14"]
PIT_COLS = ["customer_id", "application_date", "churned", "order_id", "order_date", "event_time", "revenue",
            "product_category", "region"]
SOA_IDS = {"soa_region": "region", "soa_customer": "customer_id"}


@dataclass(frozen=True)
class Output:
    """One table a task writes, and the columns compared across systems."""

    name: str
    columns: tuple[str, ...]


OUTPUTS = {
    "soa_region": Output("soa_region", ("region", *SOA_COLS)),
    "soa_customer": Output("soa_customer", ("customer_id", *SOA_COLS)),
    "pit": Output("pit", tuple(PIT_COLS)),
}

# Task -> the outputs it writes. "pipeline" writes its ``parts`` (default: all three).
TASKS = {"soa_region": ("soa_region",), "soa_customer": ("soa_customer",), "pit": ("pit",)}
PIPELINE_PARTS = ("soa_region", "soa_customer", "pit")
# Words accepted by ``--tasks``.
TASK_WORDS = {"soa": ["soa_region", "soa_customer"], "soa_region": ["soa_region"],
              "soa_customer": ["soa_customer"], "pit": ["pit"], "pipeline": ["pipeline"]}


def outputs_of(task: str, parts: tuple[str, ...] = PIPELINE_PARTS) -> tuple[str, ...]:
    return parts if task == "pipeline" else TASKS[task]


# --------------------------------------------------------------------------- seeknal-flow


def flow_soa(tx: str, out: str, id_col: str, memory_limit: str | None, spill: str) -> None:
    from benchmarks.bench_soa import _child_seeknal

    _child_seeknal(tx, out, id_col, memory_limit, spill)


def flow_pit(tx: str, spine: str, out: str, memory_limit: str | None, spill: str) -> None:
    import pyarrow.parquet as pq

    from operators.asof.join import asof_join
    from operators.memory import MemoryConfig, parse_size
    from operators.sink import write_parquet

    mem = MemoryConfig(memory_limit=parse_size(memory_limit) if memory_limit else None, spill_dir=Path(spill))
    # As FeatureFrame.pit_join does: the spine as a table read by its ParquetFile (not
    # pq.read_table: its pyarrow.dataset brings pandas, ~0.3 s), the features as a path
    # (the kernel reads key and time columns first, value columns only for matches).
    table = asof_join(pq.ParquetFile(spine).read(), tx, left_on="application_date", right_on="event_time",
                      by="customer_id", memory=mem)
    write_parquet(table.schema, table.to_batches(), Path(out), buffer_bytes=mem.sink_buffer_bytes)


# --------------------------------------------------------------------------- DuckDB


def duckdb_soa(tx: str, out: str, id_col: str, memory_limit: str | None, spill: str) -> None:
    from benchmarks.bench_soa import _child_duckdb

    _child_duckdb(tx, out, id_col, memory_limit, spill)


def _duckdb_pit_sql(tx: str, spine: str) -> str:
    return f"""
SELECT s.*, f.* EXCLUDE (customer_id, application_date)
FROM read_parquet('{spine}') s ASOF LEFT JOIN read_parquet('{tx}') f
  ON s.customer_id = f.customer_id AND s.application_date >= f.event_time"""


def _duckdb(memory_limit: str | None, spill: str):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET temp_directory = '{spill}'")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    return con


def duckdb_pit(tx: str, spine: str, out: str, memory_limit: str | None, spill: str) -> None:
    con = _duckdb(memory_limit, spill)
    con.execute(f"COPY ({_duckdb_pit_sql(tx, spine)}) TO '{out}' (FORMAT parquet)")


def duckdb_pipeline(tx: str, spine: str, out_dir: str, parts, memory_limit: str | None, spill: str) -> None:
    from benchmarks.bench_soa import _duckdb_sql

    con = _duckdb(memory_limit, spill)
    for part in parts:
        sql = _duckdb_pit_sql(tx, spine) if part == "pit" else _duckdb_sql(tx, SOA_IDS[part])
        con.execute(f"COPY ({sql}) TO '{Path(out_dir) / (part + '.parquet')}' (FORMAT parquet)")


# --------------------------------------------------------------------------- Polars


def polars_soa(tx: str, out: str, id_col: str, memory_limit: str | None, spill: str) -> None:
    from benchmarks.bench_soa import _child_polars

    _child_polars(tx, out, id_col, memory_limit, spill)


def polars_pit(tx: str, spine: str, out: str, memory_limit: str | None, spill: str) -> None:
    import polars as pl

    s = pl.read_parquet(spine).with_row_index("__row")
    f = pl.read_parquet(tx).drop("application_date")
    (s.sort("application_date")
      .join_asof(f.sort("event_time"), left_on="application_date", right_on="event_time",
                 by="customer_id", strategy="backward", check_sortedness=False)
      .sort("__row").drop("__row").write_parquet(out))


def polars_pipeline(tx: str, spine: str, out_dir: str, parts, memory_limit: str | None, spill: str) -> None:
    for part in parts:
        out = str(Path(out_dir) / f"{part}.parquet")
        if part == "pit":
            polars_pit(tx, spine, out, memory_limit, spill)
        else:
            polars_soa(tx, out, SOA_IDS[part], memory_limit, spill)


# --------------------------------------------------------------------------- seeknal 2.13 (its API)


def seeknal213_soa(tx: str, out: str, id_col: str, memory_limit: str | None, spill: str) -> None:
    """What seeknal 2.13's SOA executor does for a YAML node (DuckDB engine): its
    ``SecondOrderAggregator`` over a view of the input, result via pandas to Parquet."""
    import duckdb
    from seeknal.tasks.duckdb.aggregators.second_order_aggregator import AggregationSpec, SecondOrderAggregator

    con = duckdb.connect()
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute(f"CREATE OR REPLACE VIEW tx AS SELECT * FROM read_parquet('{tx}')")
    rules = [AggregationSpec("basic", COL, a) for a in ("sum", "mean", "max", "stddev")]
    rules.append(AggregationSpec("basic_days", COL, "sum", dayLimitLower1="1", dayLimitUpper1="7"))
    rules.append(AggregationSpec("ratio", COL, "sum", dayLimitLower1="1", dayLimitUpper1="7",
                                 dayLimitLower2="8", dayLimitUpper2="14"))
    agg = SecondOrderAggregator(idCol=id_col, featureDateCol="order_date", featureDateFormat="yyyy-MM-dd",
                                applicationDateCol="application_date", applicationDateFormat="yyyy-MM-dd",
                                conn=con)
    agg.setRules(rules)
    agg.transform("tx").df().to_parquet(out, index=False)


def seeknal213_pit(tx: str, spine: str, out: str, memory_limit: str | None, spill: str) -> None:
    """What ``ctx.ref("feature_group.x").pit_join(...)`` does in seeknal 2.13: pandas
    frames of both sides, a DuckDB range join ranked by ROW_NUMBER."""
    import pandas as pd
    from seeknal.pipeline.feature_frame import FeatureFrame

    features = FeatureFrame(pd.read_parquet(tx), "customer", ["customer_id"], "event_time")
    features.pit_join(spine=pd.read_parquet(spine), date_col="application_date").to_parquet(out, index=False)


# --------------------------------------------------------------------------- dispatch

SOA = {"seeknal_flow": flow_soa, "duckdb": duckdb_soa, "polars": polars_soa, "seeknal": seeknal213_soa}
PIT = {"seeknal_flow": flow_pit, "duckdb": duckdb_pit, "polars": polars_pit, "seeknal": seeknal213_pit}
PIPELINE = {"duckdb": duckdb_pipeline, "polars": polars_pipeline}  # the others run a project
ENGINE_MODULES = {
    "seeknal_flow": ("pyarrow.parquet", "datafusion", "operators.soa.execute", "operators.asof.join"),
    "duckdb": ("duckdb",),
    "polars": ("polars",),
    "seeknal": ("duckdb", "pandas", "seeknal.tasks.duckdb.aggregators.second_order_aggregator",
                "seeknal.pipeline.feature_frame"),
}


def run_task(system: str, task: str, tx: str, spine: str, out_dir: str, parts: tuple[str, ...],
             memory_limit: str | None, spill: str) -> None:
    """Run one task of one system in this process, writing ``out_dir/<output>.parquet``."""
    Path(spill).mkdir(parents=True, exist_ok=True)
    if task == "pipeline":
        PIPELINE[system](tx, spine, out_dir, parts, memory_limit, spill)
    elif task == "pit":
        PIT[system](tx, spine, str(Path(out_dir) / "pit.parquet"), memory_limit, spill)
    else:
        SOA[system](tx, str(Path(out_dir) / f"{task}.parquet"), SOA_IDS[task], memory_limit, spill)
