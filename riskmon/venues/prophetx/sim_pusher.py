"""The Pusher Channels v7 subset the ProphetX simulator serves at ``/app/{key}`` (protocols.md §3.1).

Server side of: ``pusher:connection_established`` on open, ``pusher:signin`` and
``pusher:subscribe`` with HMAC checks against the socket's own id, ``pusher:ping``/``pusher:pong``
both ways, ``pusher:error`` on failures, and per-channel fan-out of event frames.

Channels are authorised by the REST register call (``authorize``), never by the socket:
a subscribe is accepted only with a valid signature for a channel registered for that socket id.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from riskmon.asgi_server import Receive, Scope, Send
from riskmon.venues.prophetx.sim_frames import dumps, pusher_frame, sign
from riskmon.venues.sim_base_asgi import client_texts

__all__ = ["ACTIVITY_TIMEOUT", "AppConfig", "PusherHub", "SimSocket"]

logger = logging.getLogger(__name__)

ACTIVITY_TIMEOUT = 120  # seconds, Pusher's default, announced in connection_established
_SUPPORTED_PROTOCOLS = frozenset({"5", "6", "7"})
# Pusher close/error codes: 4001 app does not exist, 4007 unsupported protocol, 4009 unauthorized.
_APP_NOT_FOUND = 4001
_BAD_PROTOCOL = 4007
_UNAUTHORIZED = 4009
# Keeps close_all/stop prompt when a client never answers the closing handshake.
_CLOSE_WAIT = 2.0


@dataclass
class AppConfig:
    """The Pusher app the REST connection-config advertises; the key and cluster can rotate."""

    app_id: str
    key: str
    secret: str
    cluster: str


@dataclass(frozen=True)
class _Close:
    code: int
    reason: str


@dataclass(eq=False)
class SimSocket:
    socket_id: str
    app_key: str  # the key it connected with; its auth strings must carry this key
    outbox: asyncio.Queue[str | _Close] = field(default_factory=asyncio.Queue)
    registered: set[str] = field(default_factory=set)  # channels the last register call granted
    ever_registered: set[str] = field(default_factory=set)  # counts against channel_limit
    subscribed: set[str] = field(default_factory=set)
    user_data: str | None = None  # set by a successful pusher:signin
    gone: asyncio.Event = field(default_factory=asyncio.Event)


class _Waiters:
    """Futures woken on every state change; waiters re-check their own predicate."""

    def __init__(self) -> None:
        self._futures: list[asyncio.Future[None]] = []

    def notify(self) -> None:
        futures, self._futures = self._futures, []
        for fut in futures:
            if not fut.done():
                fut.set_result(None)

    async def wait_for(self, predicate: Callable[[], bool], limit_s: float) -> None:
        async with asyncio.timeout(limit_s):
            while not predicate():
                fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._futures.append(fut)
                await fut


class PusherHub:
    def __init__(self, app: AppConfig) -> None:
        self._app = app
        self._sockets: dict[str, SimSocket] = {}
        self._ids = itertools.count(101_000)
        self._closing = False
        self.waiters = _Waiters()
        self.pongs: list[str] = []  # socket ids, one per pusher:pong received

    # ---- views -------------------------------------------------------------------

    def socket(self, socket_id: str) -> SimSocket | None:
        return self._sockets.get(socket_id)

    @property
    def sockets(self) -> list[SimSocket]:
        return list(self._sockets.values())

    def subscriber_count(self, channel: str | None = None) -> int:
        if channel is None:
            return sum(len(s.subscribed) for s in self._sockets.values())
        return sum(channel in s.subscribed for s in self._sockets.values())

    # ---- server -> clients -----------------------------------------------------------

    def authorize(self, sock: SimSocket, channels: Iterable[str]) -> None:
        """Replace the socket's registered channel set (the register call is declarative)."""
        sock.registered = set(channels)
        sock.ever_registered |= sock.registered

    def publish(self, channel: str, frame: str) -> int:
        """Queue ``frame`` to every socket subscribed to ``channel``; returns how many."""
        targets = [s for s in self._sockets.values() if channel in s.subscribed]
        for sock in targets:
            sock.outbox.put_nowait(frame)
        return len(targets)

    def send_all(self, frame: str) -> int:
        for sock in self._sockets.values():
            sock.outbox.put_nowait(frame)
        return len(self._sockets)

    async def close_all(self, code: int, reason: str) -> None:
        """Close every socket and wait (bounded) until their handlers have cleaned up."""
        socks = list(self._sockets.values())
        for sock in socks:
            sock.outbox.put_nowait(_Close(code, reason))
        if not socks:
            return
        waits = [asyncio.create_task(s.gone.wait()) for s in socks]
        _, pending = await asyncio.wait(waits, timeout=_CLOSE_WAIT)
        for task in pending:
            task.cancel()

    def set_accepting(self, accepting: bool) -> None:
        self._closing = not accepting

    # ---- ASGI websocket handler ---------------------------------------------------------

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        path: str = scope["path"]
        if self._closing or not path.startswith("/app/"):
            await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
            return
        await send({"type": "websocket.accept"})
        key = path.removeprefix("/app/")
        protocol = parse_qs(scope["query_string"].decode("latin-1")).get("protocol", [""])[0]
        if key != self._app.key:
            await self._refuse(send, _APP_NOT_FOUND, f"App key {key} not in this cluster. Did you forget the cluster?")
            return
        if protocol not in _SUPPORTED_PROTOCOLS:
            await self._refuse(send, _BAD_PROTOCOL, f"Unsupported protocol version {protocol or 'none'}")
            return
        sock = SimSocket(f"{next(self._ids)}.{secrets.randbelow(9_000_000) + 1_000_000}", key)
        established = dumps({"socket_id": sock.socket_id, "activity_timeout": ACTIVITY_TIMEOUT})
        sock.outbox.put_nowait(pusher_frame("pusher:connection_established", established))
        self._sockets[sock.socket_id] = sock
        self.waiters.notify()
        sender = asyncio.create_task(self._send_loop(sock, send))
        try:
            async for text in client_texts(receive):
                self._on_client_frame(sock, text)
        finally:
            self._sockets.pop(sock.socket_id, None)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            sock.gone.set()
            self.waiters.notify()

    @staticmethod
    async def _refuse(send: Send, code: int, message: str) -> None:
        # Pusher reports the reason as pusher:error first, then closes with the same code.
        await send({"type": "websocket.send", "text": pusher_frame("pusher:error", {"message": message, "code": code})})
        await send({"type": "websocket.close", "code": code, "reason": message[:120]})

    @staticmethod
    async def _send_loop(sock: SimSocket, send: Send) -> None:
        try:
            while True:
                item = await sock.outbox.get()
                if isinstance(item, _Close):
                    await send({"type": "websocket.close", "code": item.code, "reason": item.reason})
                    return
                await send({"type": "websocket.send", "text": item})
        except OSError:  # uvicorn's ClientDisconnected: the receive side sees the disconnect too
            logger.debug("socket %s gone while sending", sock.socket_id)

    # ---- client -> server ------------------------------------------------------------

    def _on_client_frame(self, sock: SimSocket, text: str) -> None:
        try:
            msg = json.loads(text)
            event = msg["event"]
            if not isinstance(event, str):
                raise TypeError("event is not a string")
        except (ValueError, KeyError, TypeError):
            self._error(sock, "Invalid message format", None)
            return
        data: Any = msg.get("data")
        if isinstance(data, str):  # clients may double-encode data like the server does
            try:
                data = json.loads(data)
            except ValueError:
                data = {}
        if not isinstance(data, dict):
            data = {}
        if event == "pusher:ping":
            sock.outbox.put_nowait(pusher_frame("pusher:pong", "{}"))
        elif event == "pusher:pong":
            self.pongs.append(sock.socket_id)
            self.waiters.notify()
        elif event == "pusher:subscribe":
            self._subscribe(sock, data)
        elif event == "pusher:unsubscribe":
            sock.subscribed.discard(str(data.get("channel")))
            self.waiters.notify()
        elif event == "pusher:signin":
            self._signin(sock, data)
        else:
            logger.debug("socket %s: ignoring client event %s", sock.socket_id, event)

    def _subscribe(self, sock: SimSocket, data: dict[str, Any]) -> None:
        channel, auth = data.get("channel"), data.get("auth")
        if not isinstance(channel, str) or not isinstance(auth, str):
            self._error(sock, "Subscribe needs channel and auth", _UNAUTHORIZED)
            return
        expected = sign(sock.app_key, self._app.secret, f"{sock.socket_id}:{channel}")
        if not hmac.compare_digest(auth.encode(), expected.encode()):
            self._error(sock, f"Invalid signature for channel {channel}", _UNAUTHORIZED)
            return
        if channel not in sock.registered:
            self._error(sock, f"Channel {channel} is not registered for socket {sock.socket_id}", _UNAUTHORIZED)
            return
        sock.subscribed.add(channel)
        sock.outbox.put_nowait(pusher_frame("pusher_internal:subscription_succeeded", "{}", channel))
        self.waiters.notify()

    def _signin(self, sock: SimSocket, data: dict[str, Any]) -> None:
        auth, user_data = data.get("auth"), data.get("user_data")
        if not isinstance(auth, str) or not isinstance(user_data, str):
            self._error(sock, "Signin needs auth and user_data", _UNAUTHORIZED)
            return
        expected = sign(sock.app_key, self._app.secret, f"{sock.socket_id}::user::{user_data}")
        if not hmac.compare_digest(auth.encode(), expected.encode()):
            self._error(sock, "Invalid signature for signin", _UNAUTHORIZED)
            return
        sock.user_data = user_data
        sock.outbox.put_nowait(pusher_frame("pusher:signin_success", dumps({"user_data": user_data})))
        self.waiters.notify()

    @staticmethod
    def _error(sock: SimSocket, message: str, code: int | None) -> None:
        sock.outbox.put_nowait(pusher_frame("pusher:error", {"message": message, "code": code}))
