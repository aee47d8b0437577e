"""Transport keepalive of one venue websocket: RFC 6455 pings that prove the socket is alive.

A ping goes out every `interval`; when `timeout` passes without the pong that echoes it, the peer
is dead (a silent venue, a half-open TCP link) and the connection fails with 1011, which the
session reports as a ping timeout and reconnects. Venues whose stream can be quiet for minutes
(Mango has no heartbeat) need this to tell silence from death. The timers run on the event loop;
sending the ping and failing the connection are the connection's, through the two callbacks.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

__all__ = ["TransportKeepalive"]


class TransportKeepalive:
    """The ping and pong timers of one connection; `stop()` once the socket is gone."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        interval: float | None,
        timeout: float | None,
        send_ping: Callable[[bytes], bool],
        timed_out: Callable[[], None],
    ) -> None:
        """`interval` None: no pings. `timeout` None: pings go out but an unanswered one is let be.

        `send_ping(payload)` sends a ping and says whether it went out (not once the connection is
        closing); `timed_out()` fails the connection.
        """
        self._loop = loop
        self._interval = interval
        self._timeout = timeout
        self._send_ping = send_ping
        self._timed_out = timed_out
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._payload: bytes | None = None  # of the ping awaiting its pong
        self._stopped = False

    def start(self) -> None:
        """Schedule the first ping, once the opening handshake is done."""
        interval = self._interval
        if interval is not None and not self._stopped:
            self._ping_timer = self._loop.call_later(interval, self._ping)

    def pong(self, payload: bytes | bytearray | memoryview) -> bool:
        """A pong arrived; True when it answers our outstanding ping (others are unsolicited)."""
        if payload != self._payload:
            return False
        self._payload = None
        if self._pong_timer is not None:
            self._pong_timer.cancel()
            self._pong_timer = None
            self.start()
        return True

    def stop(self) -> None:
        self._stopped = True
        for timer in (self._ping_timer, self._pong_timer):
            if timer is not None:
                timer.cancel()

    def _ping(self) -> None:
        payload = os.urandom(4)
        if not self._send_ping(payload):
            return
        self._payload = payload
        if self._timeout is None:
            self.start()
        else:
            self._pong_timer = self._loop.call_later(self._timeout, self._pong_overdue)

    def _pong_overdue(self) -> None:
        self._pong_timer = None
        self._timed_out()
