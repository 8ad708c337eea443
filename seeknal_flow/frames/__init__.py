"""Reading node outputs: the lazy FeatureFrame, point-in-time joins and ``as_of``, ``ctx.features``."""
