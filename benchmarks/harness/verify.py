"""Do the systems agree? Row counts, and per compared column: NULL count and sum.

Sums are over values normalised across systems' types: numbers as float, dates and
timestamps as seconds since the epoch (a DATE from one system and a TIMESTAMP from
another compare equal), strings by their total length. Two summaries agree when
row counts and NULL counts are equal and every sum is within 1e-6 relative.
"""

from __future__ import annotations

import math
from pathlib import Path

REL_TOL = 1e-6


def summarize(path: Path, columns: tuple[str, ...]) -> dict:
    """``{"rows": n, "columns": {name: (nulls, sum)}, "missing": [...]}`` of a Parquet file."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    names = pf.schema_arrow.names
    present = [c for c in columns if c in names]
    result = {"rows": pf.metadata.num_rows, "columns": {}, "missing": [c for c in columns if c not in names]}
    for col in present:
        nulls, total = 0, 0.0
        for batch in pf.iter_batches(columns=[col], batch_size=1 << 20):
            arr = batch.column(0)
            if pa.types.is_dictionary(arr.type):
                arr = arr.cast(arr.type.value_type)
            nulls += arr.null_count
            t = arr.type
            if pa.types.is_date(t):
                vals = pc.multiply(arr.cast(pa.date32()).cast(pa.int32()).cast(pa.float64()), 86400.0)
            elif pa.types.is_timestamp(t):
                vals = pc.divide(arr.cast(pa.timestamp("us", t.tz)).cast(pa.int64()).cast(pa.float64()), 1e6)
            elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
                vals = pc.utf8_length(arr.cast(pa.large_string())).cast(pa.float64())
            elif pa.types.is_boolean(t):
                vals = arr.cast(pa.float64())
            else:
                vals = arr.cast(pa.float64())
            # NaN (pandas writes it for an empty ratio in some paths) counts as NULL.
            nan = pc.is_nan(vals) if pa.types.is_floating(vals.type) else None
            if nan is not None:
                n_nan = pc.sum(nan).as_py() or 0
                nulls += n_nan
                if n_nan:
                    vals = pc.if_else(nan, None, vals)
            total += pc.sum(vals).as_py() or 0.0
        result["columns"][col] = (nulls, total)
    return result


def compare(ref: dict, other: dict) -> str | None:
    """None when ``other`` agrees with ``ref``; else the first difference, in words."""
    if other["missing"]:
        return f"missing column(s) {', '.join(other['missing'])}"
    if other["rows"] != ref["rows"]:
        return f"{other['rows']:,} rows, reference {ref['rows']:,}"
    for col, (rn, rs) in ref["columns"].items():
        on, os_ = other["columns"].get(col, (None, None))
        if on != rn:
            return f"{col}: {on:,} NULLs, reference {rn:,}"
        if not math.isclose(os_, rs, rel_tol=REL_TOL, abs_tol=1e-9):
            return f"{col}: sum {os_!r}, reference {rs!r}"
    return None
