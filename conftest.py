"""Doctest collection: modules of an optional extra are skipped when the extra is not installed
(`pip install -e '.[test]'` alone must still collect and pass)."""

from __future__ import annotations

import importlib.util

collect_ignore = []
if importlib.util.find_spec("uvicorn") is None or importlib.util.find_spec("httptools") is None:
    collect_ignore.append("seeknal_flow/serve/connections.py")  # the `serve` extra
if importlib.util.find_spec("redis") is None:
    collect_ignore.append("seeknal_flow/store/redis_online.py")  # the `serve` extra
