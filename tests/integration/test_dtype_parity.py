"""Issue 14, item 8: get_features and HistoricalFeaturesDuckDB.to_dataframe return the same dtypes."""

from __future__ import annotations

import pandas as pd
import pytest

from seeknal_flow import FeatureLookup, HistoricalFeaturesDuckDB, OnlineFeaturesDuckDB

FEATURES = {
    "customer_features": ["total_orders", "total_revenue", "first_order_date", "last_order_date"],
    "product_preferences": ["top_category", "category_count", "electronics_ratio"],
}


@pytest.mark.parametrize("keys", [["CUST-100", "CUST-101"], ["CUST-100", "nobody"], ["nobody"]],
                         ids=["all-known", "one-missing", "all-missing"])
def test_online_and_offline_dtypes_match(seeknal, example_project, keys):
    assert seeknal("run", cwd=example_project).code == 0
    names = [f"{g}.{f}" for g, fs in FEATURES.items() for f in fs]
    online = OnlineFeaturesDuckDB(entity="customer", features=names, project=example_project)
    got = online.get_features([{"customer_id": k} for k in keys])
    spine = pd.DataFrame({"customer_id": keys, "at": pd.to_datetime(["2026-03-01"] * len(keys))})
    hist = HistoricalFeaturesDuckDB(lookups=[FeatureLookup(source=f"feature_group.{g}", features=fs)
                                             for g, fs in FEATURES.items()], project=example_project)
    offline = hist.to_dataframe(spine, "at")
    bare = [f for fs in FEATURES.values() for f in fs]
    assert {c: str(got[c].dtype) for c in bare} == {c: str(offline[c].dtype) for c in bare}
    assert str(got["total_orders"].dtype) == "Int64" and str(got["category_count"].dtype) == "Int64"
    assert str(got["first_order_date"].dtype).startswith("datetime64")
    if "nobody" in keys:
        assert got.loc[keys.index("nobody"), "total_orders"] is pd.NA
