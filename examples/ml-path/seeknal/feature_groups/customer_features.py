# /// script
# dependencies = ["pandas", "duckdb"]
# ///
"""Per-customer order totals."""

from seeknal_flow import feature_group


@feature_group(name="customer_features", entity="customer", description="Per-customer order totals")
def customer_features(ctx):
    txn = ctx.ref("source.transactions")  # noqa: F841 - the SQL below reads it by name
    return ctx.duckdb.sql(
        """
        SELECT customer_id,
               COUNT(*)                           AS total_orders,
               SUM(revenue)                       AS total_revenue,
               AVG(revenue)                       AS avg_order_value,
               MIN(order_date)                    AS first_order_date,
               MAX(order_date)                    AS last_order_date,
               CAST(MAX(order_date) AS TIMESTAMP) AS event_time
        FROM txn
        GROUP BY customer_id
        """
    )
