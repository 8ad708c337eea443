"""Per-customer spending features for the churn model (decorator form)."""

from seeknal_flow import second_order_aggregation


@second_order_aggregation(
    name="customer_training_features",
    id_col="customer_id",
    feature_date_col="order_date",
    application_date_col="application_date",
    description="Per-customer spending statistics for training",
    features={
        "daily_amount": {"basic": ["sum", "mean", "max"]},
        "daily_count": {"basic": ["sum", "mean"]},
        "recent_spending": {"source_feature": "daily_amount", "window": [1, 7], "basic": ["sum"]},
        "spending_trend": {
            "source_feature": "daily_amount",
            "ratio": {"numerator": [1, 7], "denominator": [8, 14], "aggs": ["sum"]},
        },
    },
)
def customer_training_features(ctx):
    return ctx.ref("feature_group.customer_daily_agg")
