"""The benchmark's webhook receiver: an HTTP/1.1 server (h11 on an asyncio protocol) that times
each notification when its first bytes reach the socket.

A notification is received when its request arrives, not when some framework gets round to
calling an app: uvicorn, sharing a loop with the paced sender, added ~0.5 ms (p50) between the
two, which is the receiver's cost, not riskmon's. Each request is answered 200 at once.
"""

from __future__ import annotations

import asyncio
import json
import time

import h11

_BODY_LIMIT = 1024 * 1024
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class NotificationLog:
    """When each notification arrived, its status, and each alert's `value` annotation (which names
    the breach it reports)."""

    def __init__(self) -> None:
        self.notifications: list[tuple[float, str, list[str]]] = []
        self.arrived = asyncio.Event()
        self.rejected = 0  # requests that were not an Alertmanager webhook payload

    def add(self, arrived_at: float, body: bytes) -> bool:
        try:
            payload = json.loads(body)
            alerts = payload.get("alerts", [])
            values = [str(alert.get("annotations", {}).get("value", "")) for alert in alerts]
            status = str(payload.get("status", "?"))
        except (ValueError, AttributeError, TypeError):
            self.rejected += 1
            return False
        self.notifications.append((arrived_at, status, values))
        self.arrived.set()
        return True

    def firing(self) -> int:
        return sum(status == "firing" for _, status, _ in self.notifications)


class _Connection(asyncio.Protocol):
    def __init__(self, log: NotificationLog) -> None:
        self._log = log
        self._h11 = h11.Connection(h11.SERVER)
        self._transport: asyncio.Transport | None = None
        self._first_byte_at: float | None = None
        self._body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if self._first_byte_at is None:
            self._first_byte_at = now
        self._h11.receive_data(data)
        try:
            self._handle_events(now)
        except h11.ProtocolError:
            # h11 sends nothing more on a connection the peer broke: answer by hand, and hang up.
            if self._transport is not None:
                self._transport.write(_BAD_REQUEST)
            self._close()

    def _handle_events(self, now: float) -> None:
        while True:
            event = self._h11.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > _BODY_LIMIT:
                    raise h11.RemoteProtocolError("request body too large")
            elif isinstance(event, h11.EndOfMessage):
                arrived_at, body = self._first_byte_at or now, bytes(self._body)
                self._first_byte_at, self._body = None, bytearray()
                if self._log.add(arrived_at, body):
                    self._answer(200, b"ok")
                else:
                    self._answer(400, b"not an Alertmanager webhook payload")
                if self._h11.our_state is not h11.DONE or self._h11.their_state is not h11.DONE:
                    self._close()  # the client asked to close (or HTTP/1.0): no next request here
                    return
                self._h11.start_next_cycle()
                if self._h11.trailing_data[0]:
                    self._first_byte_at = now  # the next request began in this same read
            elif isinstance(event, h11.ConnectionClosed):
                self._close()
                return

    def _answer(self, status: int, body: bytes) -> None:
        transport = self._transport
        if transport is None or self._h11.our_state is not h11.SEND_RESPONSE:
            return
        headers = [("content-type", "text/plain"), ("content-length", str(len(body)))]
        transport.write(
            self._h11.send(h11.Response(status_code=status, headers=headers))
            + (self._h11.send(h11.Data(data=body)) or b"")
            + (self._h11.send(h11.EndOfMessage()) or b"")
        )

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


class NotificationReceiver:
    """Listens on 127.0.0.1 (port 0: any free port) and logs every notification it is sent."""

    def __init__(self) -> None:
        self.log = NotificationLog()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self.log), "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
