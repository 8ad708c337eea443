# /// script
# dependencies = ["pandas", "scikit-learn"]
# ///
"""Churn model: a random forest on the per-customer spending features."""

from seeknal_flow import transform

FEATURES = [
    "daily_amount_SUM",
    "daily_amount_MEAN",
    "daily_amount_MAX",
    "daily_count_SUM",
    "daily_amount_SUM_1_7",
    "daily_amount_SUM1_7_SUM8_14",
]


@transform(name="churn_model", description="Trains the churn model and scores every customer")
def churn_model(ctx):
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    features = ctx.ref("second_order_aggregation.customer_training_features").to_pandas()
    labels = ctx.ref("source.churn_labels").to_pandas()[["customer_id", "churned"]]
    data = features.merge(labels, on="customer_id", how="inner").sort_values("customer_id")
    x = data[FEATURES].fillna(0.0).to_numpy()
    y = data["churned"].to_numpy()

    model = RandomForestClassifier(n_estimators=50, random_state=42)
    folds = StratifiedKFold(n_splits=2, shuffle=True, random_state=42)
    scores = cross_val_score(model, x, y, cv=folds)
    print(f"cross-validated accuracy: {scores.mean():.3f} (+/- {scores.std():.3f}, {len(scores)} folds)")

    model.fit(x, y)
    ranked = sorted(zip(FEATURES, model.feature_importances_), key=lambda p: -p[1])  # noqa: B905
    print("feature importances: " + ", ".join(f"{name} {weight:.3f}" for name, weight in ranked))
    path = ctx.save_model(model)
    print(f"model saved to {path.name}")

    out = data[["customer_id", *FEATURES, "churned"]].copy()
    out["churn_probability"] = model.predict_proba(x)[:, list(model.classes_).index(1)].astype(np.float64)
    out["churn_prediction"] = model.predict(x).astype(np.int64)
    return out
