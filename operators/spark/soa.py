"""Second-order aggregation on Spark: the local engine's plan, compiled to Spark SQL.

The statement is :func:`operators.soa.compile.soa_sql` with ``dialect="spark"``: the same
filtered aggregates, windows, ratios and since-conditions as on DataFusion. The
query is validated and its output schema decided by the local engine
(:func:`operators.soa.check.soa_output_schema`, on schemas only), so both engines
reject the same specs with the same messages and produce the same types.

Temporal SOA: the spine carries :data:`operators.spark.session.ORDER_COL` as its
row number (not dense, but unique and in the local engine's spine order); the
statement yields (row number, features) and the spine's id and date are joined
back on it here, where DataFusion's executor zips them instead.
"""

from __future__ import annotations

import uuid

import pyarrow as pa

from operators.soa.check import soa_output_schema
from operators.soa.compile import SPINE_ROW_COL, soa_sql
from operators.soa.spec import SOAQuery
from operators.spark.session import ORDER_COL, conform
from operators.sql_text import quote_spark_ident


def soa_spark(spark, query: SOAQuery, input_df, input_schema: pa.Schema, *,
              spine_df=None, spine_schema: pa.Schema | None = None):
    """The SOA of ``input_df`` (and ``spine_df``, which must carry ``ORDER_COL``) as a Spark DataFrame.

    ``input_schema``/``spine_schema`` are the Arrow schemas the local engine sees
    for the same data; problems raise :class:`operators.errors.EngineError`
    before Spark runs anything.
    """
    schema = soa_output_schema(query, input_schema, spine_schema)
    tag = uuid.uuid4().hex[:8]
    input_view = f"soa_input_{tag}"
    input_df.createOrReplaceTempView(input_view)
    if spine_df is None:
        return conform(spark.sql(soa_sql(query, input_view, None, dialect="spark")), schema)
    spine_view = f"soa_spine_{tag}"
    spine_id = query.spine_id_col or query.id_col
    spine_date = query.spine_date_col or query.application_date_col
    spine = spine_df.selectExpr(f"{ORDER_COL} AS {SPINE_ROW_COL}", quote_spark_ident(spine_id),
                                quote_spark_ident(spine_date))
    spine.createOrReplaceTempView(spine_view)
    features = spark.sql(soa_sql(query, input_view, spine_view, dialect="spark"))
    feature_cols = [c for c in features.columns if c != SPINE_ROW_COL]
    joined = spine.join(features, SPINE_ROW_COL, "inner").orderBy(SPINE_ROW_COL)
    out = joined.selectExpr(
        f"{quote_spark_ident(spine_id)} AS {quote_spark_ident(query.id_col)}",
        f"{quote_spark_ident(spine_date)} AS {quote_spark_ident(query.application_date_col)}",
        *[quote_spark_ident(c) for c in feature_cols],
    )
    return conform(out, schema)
