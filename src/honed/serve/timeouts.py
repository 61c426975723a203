"""Time limits on a connection, below the app: uvicorn's own h11 protocol with a deadline for a request's
headers. uvicorn closes idle keep-alive connections (timeout_keep_alive) but waits for headers as long as a
client trickles them; a few slow clients would hold the server's connections and its shutdown forever."""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class TimedH11Protocol(H11Protocol):
    """H11Protocol that closes a connection whose request headers are not complete `header_timeout` seconds
    after the connection opened (or after its previous response): slow-header and silent clients alike."""

    header_timeout = 10.0  # set by honed.serve.serve from Limits

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:  # still waiting for a whole request line and headers
            self._arm()
        else:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._disarm()  # the idle (keep-alive) timer takes over until the next request starts
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()
