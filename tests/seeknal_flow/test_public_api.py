"""The public surface: pinned __all__, pipeline re-exports, decorators that leave functions alone."""

from __future__ import annotations

import re
import subprocess
import sys

import pyarrow as pa
import pytest

import seeknal_flow
import seeknal_flow.pipeline as pipeline
from seeknal_flow import Context, FeatureFrame, feature_group, second_order_aggregation, source, transform
from seeknal_flow.errors import SeeknalError, SpecError

PINNED_ALL = [
    "Context",
    "FeatureFrame",
    "FeatureLookup",
    "FillNull",
    "HistoricalFeaturesDuckDB",
    "OnlineFeaturesDuckDB",
    "__version__",
    "feature_group",
    "load_model",
    "second_order_aggregation",
    "source",
    "transform",
]


def test_all_is_pinned():
    # Changing the public API is a deliberate act: update this list with it.
    assert sorted(seeknal_flow.__all__) == PINNED_ALL


def test_every_public_name_resolves():
    for name in seeknal_flow.__all__:
        assert getattr(seeknal_flow, name) is not None
    assert seeknal_flow.__version__ == "0.1.0"
    assert seeknal_flow.Context.__module__ == "seeknal_flow.run.context"
    assert seeknal_flow.FeatureFrame.__module__ == "seeknal_flow.frames.frame"


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match=re.escape("module 'seeknal_flow' has no attribute 'nope'")):
        seeknal_flow.nope  # noqa: B018


def test_spec_section_3_import_line_works():
    namespace: dict = {}
    exec("from seeknal_flow import source, feature_group, transform, second_order_aggregation", namespace)
    assert namespace["second_order_aggregation"] is second_order_aggregation


def test_import_is_light():
    code = "import sys, seeknal_flow; print(sorted(m for m in ('pyarrow', 'duckdb', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_pipeline_exports_the_same_decorator_objects():
    assert pipeline.source is seeknal_flow.source
    assert pipeline.transform is seeknal_flow.transform
    assert pipeline.feature_group is seeknal_flow.feature_group
    assert pipeline.second_order_aggregation is seeknal_flow.second_order_aggregation
    assert sorted(pipeline.__all__) == ["feature_group", "second_order_aggregation", "source", "transform"]


# ------------------------------------------------------------------- decorators


def _plain(ctx):
    """Docstring stays."""
    return ctx


@pytest.mark.parametrize(
    ("decorator", "kind"),
    [
        (lambda: source(name="s", table="data/s.csv"), "source"),
        (lambda: transform(name="t", tags=["x"]), "transform"),
        (lambda: transform(), "transform"),
        (lambda: feature_group(name="f", entity="customer"), "feature_group"),
        (lambda: feature_group(entity={"name": "customer", "join_keys": ["cid"]}), "feature_group"),
        (
            lambda: second_order_aggregation(
                name="m", id_col="region", feature_date_col="d", application_date_col="a",
                features={"amount": {"basic": ["sum"]}},
            ),
            "second_order_aggregation",
        ),
    ],
)
def test_decorators_return_the_function_unchanged(decorator, kind):
    def fn(ctx):
        """Docstring stays."""
        return ctx

    decorated = decorator()(fn)
    assert decorated is fn
    assert fn.__name__ == "fn"
    assert fn.__doc__ == "Docstring stays."
    assert fn.__seeknal_node__[0] == kind
    assert fn("plain value") == "plain value"


def test_decorator_records_its_arguments():
    fn = feature_group(name="f", entity="customer", ttl="30d")(lambda ctx: ctx)
    kind, args = fn.__seeknal_node__
    assert kind == "feature_group"
    assert args["name"] == "f" and args["entity"] == "customer" and args["ttl"] == "30d"


def test_decorated_node_is_callable_with_a_plain_context():
    @feature_group(name="customer_features", entity="customer")
    def customer_features(ctx):
        txn = ctx.ref("source.transactions")  # noqa: F841 - the SQL below reads it by name
        return ctx.duckdb.sql(
            "SELECT customer_id, SUM(amount) AS total FROM txn WHERE amount >= $min GROUP BY 1 ORDER BY 1",
            params={"min": ctx.params["min"]},
        )

    txns = pa.table({"customer_id": ["a", "b", "a"], "amount": [5.0, 1.0, 2.0]})
    ctx = Context("feature_group.customer_features", {"source.transactions": FeatureFrame(txns)}, {"min": 2})
    try:
        result = customer_features(ctx).fetchall()
    finally:
        ctx.close()
    assert result == [("a", 7.0)]


def test_decorated_transform_returning_pandas_is_plain_python():
    @transform(name="double")
    def double(ctx):
        df = ctx.ref("source.x").to_pandas()
        df["v"] = df["v"] * 2
        return df

    ctx = Context("transform.double", {"source.x": FeatureFrame(pa.table({"v": [1, 2]}))})
    assert double(ctx)["v"].tolist() == [2, 4]


def test_ctx_ref_to_a_non_input_names_the_inputs():
    ctx = Context("transform.t", {"source.a": FeatureFrame(pa.table({"v": [1]}))})
    with pytest.raises(SeeknalError, match=re.escape("transform.t: ctx.ref('source.b') is not an input of this node (inputs: source.a)")):
        ctx.ref("source.b")


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda: source(table=3), "@source: field 'table': expected `str`, got `int`"),
        (lambda: transform(isolation="docker"), "@transform: field 'isolation': invalid enum value 'docker'; valid: inprocess, uv, auto"),
        (lambda: source(table="x.csv", source="xml"), "@source: field 'source': invalid enum value 'xml'; valid: csv, parquet, json, jsonl"),
        (lambda: feature_group(entity={"nme": "customer"}), "@feature_group: field 'entity"),
    ],
)
def test_decorators_validate_where_written(call, expected):
    with pytest.raises(SpecError, match=re.escape(expected)):
        call()


def test_decorators_take_only_the_name_positionally():
    with pytest.raises(TypeError, match=re.escape("takes from 0 to 1 positional arguments but 2 were given")):
        transform("a", "b")  # type: ignore[misc]
    with pytest.raises(TypeError, match=re.escape("unexpected keyword argument 'colour'")):
        transform(colour="red")  # type: ignore[call-arg]
