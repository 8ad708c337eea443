"""Request limits of ``seeknal serve``: body size, keys per request, how long a body may take."""

from __future__ import annotations

import asyncio

from seeknal_flow.errors import ServeError

MAX_BODY = 1 << 20  # bytes
MAX_KEYS = 10_000
BODY_TIMEOUT = 10.0  # seconds for a whole request body; a slow client gets 408, others are unaffected


class HTTPError(ServeError):
    """A request refused with ``status`` and a one-line message (caught by the app, never escapes it)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_body(receive, headers: dict[bytes, bytes], timeout: float = BODY_TIMEOUT) -> bytes:
    """The request body, chunked or not, refused past ``MAX_BODY`` (413) or ``timeout`` (408)."""
    declared = headers.get(b"content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            length = -1
        if length < 0:
            raise HTTPError(400, f"Content-Length must be between 0 and {MAX_BODY} bytes")
        if length > MAX_BODY:
            raise HTTPError(413, f"request body of {length} bytes is over the limit of {MAX_BODY} bytes")
    parts: list[bytes] = []
    size = 0
    # One deadline for the whole body (asyncio.timeout, not wait_for: no task per receive).
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise HTTPError(400, "client disconnected before sending the whole body")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > MAX_BODY:
                    raise HTTPError(413, f"request body is over the limit of {MAX_BODY} bytes")
                parts.append(chunk)
                if not message.get("more_body", False):
                    return parts[0] if len(parts) == 1 else b"".join(parts)
    except TimeoutError as e:
        raise HTTPError(408, f"request body not received within {timeout:g} s") from e
