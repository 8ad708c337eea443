"""Unit tests of the server's limits, token check and metrics (the server itself: tests/integration/test_serve.py)."""

from __future__ import annotations

import asyncio

import pytest

from seeknal_flow.errors import ServeError
from seeknal_flow.serve.auth import authorized, is_loopback, require_token_off_loopback
from seeknal_flow.serve.limits import MAX_BODY, HTTPError, read_body
from seeknal_flow.serve.metrics import Metrics


def _receiver(messages: list[dict], delay: float = 0.0):
    queue = list(messages)

    async def receive():
        if delay:
            await asyncio.sleep(delay)
        return queue.pop(0)

    return receive


def test_read_body_joins_chunks():
    parts = [{"type": "http.request", "body": b"ab", "more_body": True},
             {"type": "http.request", "body": b"", "more_body": True},
             {"type": "http.request", "body": b"cd", "more_body": False}]
    assert asyncio.run(read_body(_receiver(parts), {})) == b"abcd"


@pytest.mark.parametrize("headers,messages,status", [
    ({b"content-length": str(MAX_BODY + 1).encode()}, [], 413),
    ({b"content-length": b"-5"}, [], 400),
    ({}, [{"type": "http.request", "body": b"x" * (MAX_BODY // 2 + 1), "more_body": True}] * 2, 413),
    ({}, [{"type": "http.disconnect"}], 400),
])
def test_read_body_refusals(headers, messages, status):
    with pytest.raises(HTTPError) as e:
        asyncio.run(read_body(_receiver(messages), headers))
    assert e.value.status == status and "\n" not in str(e.value)


def test_read_body_times_out():
    slow = _receiver([{"type": "http.request", "body": b"x", "more_body": False}], delay=0.5)
    with pytest.raises(HTTPError) as e:
        asyncio.run(read_body(slow, {}, timeout=0.05))
    assert e.value.status == 408


def test_token_compare_and_loopback_rule():
    assert authorized("Bearer abc", "abc") and authorized(b"bearer abc", "abc")
    assert not authorized("Bearer abcd", "abc") and not authorized("abc", "abc") and not authorized(None, "abc")
    assert is_loopback("::1") and is_loopback("localhost") and not is_loopback("10.0.0.1")
    require_token_off_loopback("10.0.0.1", "t")  # a token: allowed
    with pytest.raises(ServeError, match="SEEKNAL_SERVE_TOKEN"):
        require_token_off_loopback("10.0.0.1", None)


def test_metrics_text():
    m = Metrics()
    m.observe("/features", 200, 0.0007)
    m.observe("/features", 400, 3.0)
    m.keys("customer", 5, 2)
    text = m.render({"customer": ("1700000000000000000", "2026-01-01T00:00:00+00:00")}).decode()
    assert f'seeknal_requests_total{{route="/features",status="400",pid="{m.pid}"}} 1' in text
    assert f'seeknal_request_duration_seconds_bucket{{route="/features",le="0.001",pid="{m.pid}"}} 1' in text
    assert f'seeknal_request_duration_seconds_bucket{{route="/features",le="+Inf",pid="{m.pid}"}} 2' in text
    assert f'seeknal_unknown_keys_total{{entity="customer",pid="{m.pid}"}} 2' in text
    assert f'seeknal_store_version{{entity="customer",pid="{m.pid}"}} 1700000000000000000' in text
