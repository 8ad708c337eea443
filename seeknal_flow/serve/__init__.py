"""Serving the online store over the network (``seeknal serve``)."""
