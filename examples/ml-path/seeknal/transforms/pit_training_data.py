"""Point-in-time training data: each label joined to the customer's latest daily aggregate."""

from seeknal_flow import transform


@transform(name="pit_training_data", description="Labels with the daily features known on their date")
def pit_training_data(ctx):
    labels = ctx.ref("source.churn_labels")
    daily = ctx.ref("feature_group.customer_daily_agg")
    return daily.pit_join(spine=labels, date_col="application_date", keep_cols=["churned"])
