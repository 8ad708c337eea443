"""FeatureFrames of Python nodes under ``--engine spark``: ``pit_join`` runs on Spark.

A Python node runs on the driver (it is the user's code); the frames it gets
from ``ctx.ref`` read Parquet locally as usual, except that ``pit_join`` is
compiled to Spark (:mod:`operators.spark.pit`) and its result is written by
Spark to a Parquet directory under ``target/tmp/``. When the node returns that
frame, the Spark engine moves the directory into place: the join's rows never pass
through the driver.

The local engine still decides what the join means: it validates the call and
computes the output schema on zero-row copies of both inputs
(:func:`seeknal_flow.frames.pit.pit_join`), so errors and types are the same on both
engines. ``as_of`` and ``ctx.features`` stay local.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa

from operators.errors import EngineError
from operators.spark.pit import pit_join_spark
from operators.spark.session import ORDER_COL, from_arrow, read_parquet, write_parquet
from seeknal_flow.errors import FrameError
from seeknal_flow.frames.frame import FeatureFrame, frame_meta
from seeknal_flow.frames.pit import join_keys, pit_join, spine_table


class SparkPit:
    """What a Spark-backed ``pit_join`` needs: the session and where to write results."""

    def __init__(self, spark, tmp: Path) -> None:
        self.spark = spark
        self.tmp = tmp
        self.outputs: set[Path] = set()  # result directories this run wrote (the Spark engine may move them)

    def join(self, features: FeatureFrame, spine: Any, date_col: str, keep_cols: list[str] | None,
             max_age) -> FeatureFrame:
        name = features.node_id or "features"
        spine_is_files = isinstance(spine, FeatureFrame) and spine.paths is not None
        spine_arrow = None if spine_is_files else spine_table(spine)
        spine_schema = spine.schema if spine_is_files else spine_arrow.schema
        # The local engine validates and fixes the output on empty inputs.
        empty = FeatureFrame(features.schema.empty_table(), node_id=features.node_id, entity=features.entity,
                             join_keys=features.join_keys, event_time_col=features.event_time_col)
        expected = pit_join(empty, spine_schema.empty_table(), date_col, keep_cols=keep_cols, max_age=max_age).schema
        keys = join_keys(features, spine_schema, date_col)
        spine_cols = [c for c in expected.names if c in spine_schema.names]
        spark = self.spark
        spine_df = read_parquet(spark, spine.paths, ordered=True) if spine_is_files else \
            from_arrow(spark, spine_arrow, ordered=True)
        if expected.field(date_col).type != spine_schema.field(date_col).type:  # ISO text parsed as in pit.py
            spine_df = spine_df.withColumn(date_col, spine_df[date_col].cast("TIMESTAMP_NTZ"))
        spine_df = spine_df.select(*spine_cols, ORDER_COL)
        spine_out = pa.schema([expected.field(c) for c in spine_cols])
        features_df = read_parquet(spark, features.paths, ordered=True) if features.paths is not None else \
            from_arrow(spark, features.to_arrow(), ordered=True)
        try:
            joined = pit_join_spark(spark, spine_df, spine_out, features_df, features.schema, left_on=date_col,
                                    right_on=features.event_time_col, by=list(keys), max_age=max_age)
            out = self.tmp / f"spark-pit-{uuid.uuid4().hex[:12]}.parquet"
            write_parquet(joined, out)
        except EngineError as e:
            raise FrameError(f"pit_join of {name} onto the spine: {e}") from e
        self.outputs.add(out)
        return FeatureFrame(out)


class SparkFeatureFrame(FeatureFrame):
    """A FeatureFrame whose :meth:`pit_join` runs on Spark.

    >>> issubclass(SparkFeatureFrame, FeatureFrame)
    True
    """

    def __init__(self, data, *, pit: SparkPit, **kwargs) -> None:
        super().__init__(data, **kwargs)
        self._pit = pit

    def pit_join(self, spine, date_col: str, keep_cols: list[str] | None = None, max_age=None) -> FeatureFrame:
        """Point-in-time join onto ``spine``, executed by Spark (see :meth:`FeatureFrame.pit_join`)."""
        return self._pit.join(self, spine, date_col, keep_cols, max_age)


def spark_frame_for(spec, data, memory, pit: SparkPit) -> SparkFeatureFrame:
    """Like :func:`seeknal_flow.frames.frame.frame_for`, with a Spark-backed ``pit_join``."""
    return SparkFeatureFrame(data, pit=pit, memory=memory, **frame_meta(spec))
