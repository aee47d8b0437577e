"""WebSocket half of the Totalis RFQ simulator: auth, subscriptions, ping/pong and delivery
(protocols.md §4.2).

Client frames and the replies ([I] where the sources are silent):
- ``{"type":"auth","api_key":k}`` -> ``{"type":"auth:success","user_id":<mm_id>,"user_type":"market_maker"}``,
  or ``{"type":"auth:error","message":"Invalid API key"}`` then close 4001 [I].
- before auth, anything else -> ``{"type":"error","message":"not authenticated"}``.
- ``{"type":"subscribe","channel":"mm:quotes:<mm_id>"|"rfq:<id>"}`` -> ``{"type":"subscribed","channel":ch}`` [I];
  another MM's quotes channel -> ``{"type":"error","message":"forbidden"}``; anything else ->
  ``{"type":"error","message":"unknown channel"}``.
- ``{"type":"unsubscribe","channel":ch}`` -> ``{"type":"unsubscribed","channel":ch}`` [I].
- ``{"type":"ping"}`` -> ``{"type":"pong","timestamp":"<ISO ms Z>"}`` (unless pings are switched off).
- not a JSON object / no string ``type`` -> ``{"type":"error","message":"invalid message"}``; an
  unknown ``type`` -> ``{"type":"error","message":"unknown message type"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from riskmon.asgi_server import Receive, Scope, Send
from riskmon.venues.sim_base_asgi import client_texts
from riskmon.venues.totalis.sim_frames import dumps, iso_ms

__all__ = ["SocketHub"]

_AUTH_FAILED_CODE = 4001  # [I] close code after auth:error
_CLOSE_TIMEOUT = 5.0  # bounds disconnect_all when a handler is slow to notice its close


@dataclass(eq=False)
class _WsClient:
    send: Send
    # Replies and broadcast events come from different tasks; the lock keeps frames in order
    # and stops sends after our own close (uvicorn raises on those).
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    authenticated: bool = False
    channels: set[str] = field(default_factory=set)
    closed: bool = False
    gone: asyncio.Event = field(default_factory=asyncio.Event)

    async def send_text(self, text: str) -> bool:
        async with self.lock:
            if self.closed:
                return False
            try:
                await self.send({"type": "websocket.send", "text": text})
            except OSError:  # uvicorn's ClientDisconnected: the peer went away mid-send
                self.closed = True
                return False
            return True

    async def close(self, code: int, reason: str) -> None:
        async with self.lock:
            if self.closed:
                return
            self.closed = True
            with contextlib.suppress(OSError):
                await self.send({"type": "websocket.close", "code": code, "reason": reason})


def _parse_object(text: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


class SocketHub:
    """Every open ``/ws`` socket, what each may receive, and the waits tests synchronise on."""

    def __init__(self, api_key: str, mm_id: str, clock: Callable[[], float]) -> None:
        self._api_key = api_key.encode()
        self._mm_id = mm_id
        self._clock = clock
        self._clients: set[_WsClient] = set()
        self._changed = asyncio.Condition()
        self.answer_pings = True
        self.refuse_new = False  # set while stopping, so no socket races in behind disconnect_all

    @property
    def quotes_channel(self) -> str:
        return f"mm:quotes:{self._mm_id}"

    @property
    def connection_count(self) -> int:
        return len(self._clients)

    async def wait_for(self, predicate: Callable[[list[_WsClient]], bool], timeout: float) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(list(self._clients)))

    async def deliver(self, channel: str, frame: str) -> int:
        """Send ``frame`` to the authenticated subscribers of ``channel``; returns how many got it."""
        targets = [c for c in self._clients if c.authenticated and channel in c.channels]
        return sum([await c.send_text(frame) for c in targets])

    async def send_all(self, text: str) -> int:
        return sum([await c.send_text(text) for c in list(self._clients)])

    async def disconnect_all(self, code: int, reason: str) -> None:
        clients = list(self._clients)
        await asyncio.gather(*(c.close(code, reason) for c in clients))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await asyncio.gather(*(c.gone.wait() for c in clients))

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        if scope["path"] != "/ws" or self.refuse_new:
            await send({"type": "websocket.close", "code": 1008})  # uvicorn answers HTTP 403
            return
        await send({"type": "websocket.accept"})
        client = _WsClient(send)
        self._clients.add(client)
        await self._notify()
        try:
            async for text in client_texts(receive):
                await self._on_frame(client, text)
        finally:
            client.closed = True
            self._clients.discard(client)
            client.gone.set()
            await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _on_frame(self, client: _WsClient, text: str) -> None:
        msg = _parse_object(text)
        kind = msg.get("type") if msg is not None else None
        if msg is None or not isinstance(kind, str):
            await self._reply(client, {"type": "error", "message": "invalid message"})
        elif kind == "auth":
            key = msg.get("api_key")
            if isinstance(key, str) and hmac.compare_digest(key.encode(), self._api_key):
                client.authenticated = True
                await self._reply(client, {"type": "auth:success", "user_id": self._mm_id, "user_type": "market_maker"})
                await self._notify()
            else:
                await self._reply(client, {"type": "auth:error", "message": "Invalid API key"})
                await client.close(_AUTH_FAILED_CODE, "Invalid API key")
        elif not client.authenticated:
            await self._reply(client, {"type": "error", "message": "not authenticated"})
        elif kind == "ping":
            if self.answer_pings:
                await self._reply(client, {"type": "pong", "timestamp": iso_ms(self._clock())})
        elif kind in ("subscribe", "unsubscribe"):
            await self._on_subscription(client, kind, msg.get("channel"))
        else:
            await self._reply(client, {"type": "error", "message": "unknown message type"})

    async def _on_subscription(self, client: _WsClient, kind: str, channel: object) -> None:
        if not isinstance(channel, str) or not channel:
            await self._reply(client, {"type": "error", "message": "invalid channel"})
        elif kind == "unsubscribe":
            client.channels.discard(channel)
            await self._reply(client, {"type": "unsubscribed", "channel": channel})
            await self._notify()
        elif channel.startswith("mm:quotes:") and channel != self.quotes_channel:
            await self._reply(client, {"type": "error", "message": "forbidden"})
        elif channel != self.quotes_channel and not (channel.startswith("rfq:") and len(channel) > len("rfq:")):
            await self._reply(client, {"type": "error", "message": "unknown channel"})
        else:
            client.channels.add(channel)
            await self._reply(client, {"type": "subscribed", "channel": channel})
            await self._notify()

    @staticmethod
    async def _reply(client: _WsClient, frame: dict[str, Any]) -> None:
        await client.send_text(dumps(frame))
