"""Chapter 3's churn_model: trained inside the pipeline, saved, reloadable, scored."""

from __future__ import annotations

import json

import numpy as np


def test_churn_model_trains_saves_and_scores(seeknal, example_project):
    r = seeknal("run", cwd=example_project)
    assert r.code == 0, r.text
    section = r.out.split("transform.churn_model", 1)[1]
    assert "| cross-validated accuracy:" in section and "| feature importances:" in section
    r = seeknal("repl", "--format", "json", "-e", "SELECT * FROM transform_churn_model ORDER BY customer_id",
                cwd=example_project)
    rows = json.loads(r.out)
    assert len(rows) == 6
    assert {"customer_id", "churned", "churn_probability", "churn_prediction", "daily_amount_SUM"} <= set(rows[0])
    assert all(0.0 <= row["churn_probability"] <= 1.0 for row in rows)
    assert all(row["churn_prediction"] in (0, 1) for row in rows)

    from seeknal_flow import OnlineFeaturesDuckDB, load_model

    model = load_model("churn_model", project=example_project)
    features = [k for k in rows[0] if k.startswith("daily_")]
    x = np.array([[row[f] if row[f] is not None else 0.0 for f in features] for row in rows])
    probabilities = model.predict_proba(x)[:, 1]
    assert np.allclose(probabilities, [row["churn_probability"] for row in rows])
    # serving side: the online store answers for the same customers
    online = OnlineFeaturesDuckDB(entity="customer", features=["customer_features.total_revenue"], project=example_project)
    assert online.get_features([{"customer_id": "CUST-100"}])["total_revenue"].tolist() == [184.98]
