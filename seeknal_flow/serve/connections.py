"""uvicorn's HTTP protocol (httptools) with a deadline for request headers.

uvicorn closes a keep-alive connection that stays idle after a response, but not one that
never sends a request, nor one that trickles its headers a byte at a time (each byte
cancels the idle timer). Here a deadline is armed when a connection opens and after each
response, and cancelled once a request's headers are complete; past it the connection is
closed. A slow body is the app's to time out (``limits.read_body``, 408). Other clients are
never blocked meanwhile: every connection is a coroutine of the same event loop.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` whose request headers must arrive within ``timeout_keep_alive`` seconds."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn arms its idle timer only when no pipelined request is waiting; so do we.
        if self.timeout_keep_alive_task is not None:
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.timeout_keep_alive, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()
