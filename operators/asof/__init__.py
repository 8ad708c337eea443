"""The point-in-time (ASOF) join.

``join`` (the API and its in-memory and bucketed paths), ``sources`` (input readers),
``kernel`` (the matching) and ``key_encoding`` (keys and times as int64).
"""
