"""The node decorators under their pipeline-module name (same objects as ``seeknal_flow``)."""

from seeknal_flow.authoring.decorators import feature_group, second_order_aggregation, source, transform

__all__ = ["feature_group", "second_order_aggregation", "source", "transform"]
