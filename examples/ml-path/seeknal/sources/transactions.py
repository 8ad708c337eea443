# /// script
# dependencies = ["pandas"]
# ///
"""Raw transactions, one row per order."""

from seeknal_flow import source


@source(
    name="transactions",
    source="csv",
    table="data/transactions.csv",
    description="Raw transactions, one row per order",
    columns={
        "customer_id": "customer key",
        "order_date": "day of the order",
        "revenue": "order amount",
    },
)
def transactions(ctx=None):
    pass
