"""Deterministic synthetic data for the benchmarks.

``transactions``: N rows, N/20 customers, 365 days of 2025, 16 regions,
8 categories, fixed seed. Columns: customer_id (string), order_id (int64),
order_date (date32), event_time (timestamp[us], order_date + random second),
revenue (double), product_category (string), region (string),
application_date (date32, constant 2026-01-01, for SOA).

``spine``: M rows of (customer_id, application_date timestamp[us], churned).

Usage: ``python -m benchmarks.datagen --rows 1e7 --spine 5e5 --out benchmarks/data``.
Files are reused when they already exist (same N, same seed, same bytes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SEED = 20260101
REGIONS = [f"region_{i:02d}" for i in range(16)]
CATEGORIES = ["electronics", "clothing", "food", "books", "toys", "home", "sports", "beauty"]
START = np.datetime64("2025-01-01", "D")
APPLICATION_DATE = np.datetime64("2026-01-01", "D")
_CHUNK = 2_000_000


def _customer_ids(idx: np.ndarray) -> pa.Array:
    # Fixed-width string keys, as real ids usually are; dictionary-free on purpose.
    return pa.array(np.char.add("C", np.char.zfill(idx.astype(str), 8)).astype(object), pa.string())


def transactions_path(out: Path, rows: int) -> Path:
    return out / f"transactions_{_tag(rows)}.parquet"


def spine_path(out: Path, rows: int, spine: int) -> Path:
    return out / f"spine_{_tag(spine)}_for_{_tag(rows)}.parquet"


def _tag(n: int) -> str:
    exp = int(round(np.log10(n)))
    return f"1e{exp}" if 10**exp == n else str(n)


def write_transactions(out: Path, rows: int) -> Path:
    path = transactions_path(out, rows)
    if path.exists():
        return path
    out.mkdir(parents=True, exist_ok=True)
    customers = max(rows // 20, 1)
    rng = np.random.default_rng(SEED)
    # Each customer lives in one region: SOA by region and by customer then agree.
    cust_region = rng.integers(0, len(REGIONS), customers)
    tmp = path.with_suffix(".parquet.tmp")
    writer = None
    for start in range(0, rows, _CHUNK):
        n = min(_CHUNK, rows - start)
        cust = rng.integers(0, customers, n)
        day = rng.integers(0, 365, n)
        second = rng.integers(0, 86_400, n)
        order_date = START + day.astype("timedelta64[D]")
        event_time = order_date.astype("datetime64[us]") + second.astype("timedelta64[s]")
        table = pa.table(
            {
                "customer_id": _customer_ids(cust),
                "order_id": pa.array(np.arange(start, start + n, dtype=np.int64)),
                "order_date": pa.array(order_date, pa.date32()),
                "event_time": pa.array(event_time, pa.timestamp("us")),
                "revenue": pa.array(np.round(rng.gamma(2.0, 40.0, n), 2)),
                "product_category": pa.DictionaryArray.from_arrays(
                    pa.array(rng.integers(0, len(CATEGORIES), n).astype(np.int32)),
                    pa.array(CATEGORIES),
                ).cast(pa.string()),
                "region": pa.DictionaryArray.from_arrays(
                    pa.array(cust_region[cust].astype(np.int32)), pa.array(REGIONS)
                ).cast(pa.string()),
                "application_date": pa.array(np.full(n, APPLICATION_DATE), pa.date32()),
            }
        )
        if writer is None:
            writer = pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table, row_group_size=1_000_000)
    writer.close()
    tmp.rename(path)
    return path


def write_spine(out: Path, rows: int, spine: int) -> Path:
    path = spine_path(out, rows, spine)
    if path.exists():
        return path
    out.mkdir(parents=True, exist_ok=True)
    customers = max(rows // 20, 1)
    rng = np.random.default_rng(SEED + 1)
    # A few keys beyond the customer range have no features at all.
    cust = rng.integers(0, int(customers * 1.02) + 1, spine)
    seconds = rng.integers(0, 400 * 86_400, spine)
    app = START.astype("datetime64[us]") + seconds.astype("timedelta64[s]")
    table = pa.table(
        {
            "customer_id": _customer_ids(cust),
            "application_date": pa.array(app, pa.timestamp("us")),
            "churned": pa.array(rng.integers(0, 2, spine).astype(np.int8)),
        }
    )
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp, row_group_size=1_000_000)
    tmp.rename(path)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=1e6)
    parser.add_argument("--spine", type=float, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    args = parser.parse_args(argv)
    rows = int(args.rows)
    print(write_transactions(args.out, rows))
    if args.spine:
        print(write_spine(args.out, rows, int(args.spine)))


if __name__ == "__main__":
    main()
