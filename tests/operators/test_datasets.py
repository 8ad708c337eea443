"""operators.datasets: schemas from footers agree with pyarrow.dataset's."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from operators.datasets import footer_schema, footer_summary, parquet_dataset


@pytest.mark.parametrize("layout", ["file", "hive", "nested hive", "key also in file", "partition folder"])
def test_footer_schema_is_the_dataset_schema(tmp_path, layout):
    table = pa.table({"id": ["a", "b"], "x": [1.5, None], "day": ["1", "1"]})
    if layout == "file":
        path = tmp_path / "out.parquet"
        pq.write_table(table, path)
    else:
        path = tmp_path / "out"
        for day in ("1", "2"):
            folder = path / f"day={day}" / ("region=eu" if layout == "nested hive" else "")
            folder.mkdir(parents=True, exist_ok=True)
            written = table if layout == "key also in file" else table.drop_columns(["day"])
            pq.write_table(written, folder / "part-0.parquet")
        if layout == "partition folder":
            path = path / "day=2"
    assert footer_schema(path) == parquet_dataset(path).schema
    assert footer_summary(path)[0] == footer_schema(path)
