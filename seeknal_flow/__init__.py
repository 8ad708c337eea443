"""seeknal-flow: Arrow-native streaming dataflow for feature-store pipelines.

Heavy classes (which import pyarrow) load on first access, so the CLI starts fast.
"""

from seeknal_flow.authoring.decorators import feature_group, second_order_aggregation, source, transform
from seeknal_flow.version import __version__

_LAZY = {
    "FeatureFrame": "seeknal_flow.frames.frame",
    "Context": "seeknal_flow.run.context",
    "FeatureLookup": "seeknal_flow.store.historical",
    "FillNull": "seeknal_flow.store.historical",
    "HistoricalFeaturesDuckDB": "seeknal_flow.store.historical",
    "OnlineFeaturesDuckDB": "seeknal_flow.store.online",
    "load_model": "seeknal_flow.store.models",
}

__all__ = [
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


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'seeknal_flow' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
