"""Transport half of the Phoenix simulator: handshake/JWT, control frames, fan-out, faults.

Written from protocols.md §5.1-§5.2 only. The venue state (markets, traders) lives in
``simulator.PhoenixSimulator``, which supplies subscription validation and snapshots.

[I] ``unsubscribe`` is answered with the documented ``subscriptionStatus`` frame
(``{"channel":"subscriptionStatus","status":"unsubscribed","clientId","subscription"}``);
protocols.md shows that frame but not when it is sent. Control frames that are not a
subscribe/unsubscribe of an object get ``{"channel":"error","code":400,"error":"invalid message"}``.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from riskmon.venues.phoenix.sim_frames import (
    JsonObj,
    SubscriptionKey,
    SubscriptionRejectedError,
    UnknownChannelError,
    dumps,
)
from riskmon.venues.sim_base_ws import QueuedClient, WsSimServer

__all__ = ["JWT_SUBPROTOCOL", "WS_PATH", "PhoenixServerBase"]

logger = logging.getLogger(__name__)

WS_PATH = "/v1/ws"
JWT_SUBPROTOCOL = "phoenix-jwt"
# Codes the WebSocket protocol forbids on the wire; asking for one means "drop the TCP link".
_ABORT_CODES = frozenset({1005, 1006, 1015})


@dataclass(eq=False, kw_only=True)
class _Client(QueuedClient):
    client_id: str
    authenticated: bool
    subs: dict[SubscriptionKey, JsonObj] = field(default_factory=dict)


def _error(text: str) -> str:
    return dumps({"channel": "error", "code": 400, "error": text})


class PhoenixServerBase(WsSimServer[_Client]):
    """WebSocket plumbing; subclasses implement ``_subscription_key`` and ``_snapshot``."""

    def __init__(self, *, jwt: str | None, host: str, ping_interval: float | None) -> None:
        if host not in ("127.0.0.1", "::1"):
            raise ValueError(f"the simulator only listens on loopback, not {host!r}")
        super().__init__(name="phoenix", host=host, path=WS_PATH)
        self._ping_interval = ping_interval
        self._jwt = jwt
        self._jwt_expired = False
        self._client_counter = 0
        self._subscriptions: list[JsonObj] = []
        self._answer_pings = True

    # ---- hooks ---------------------------------------------------------------------

    def _subscription_key(self, sub: object) -> SubscriptionKey:
        raise NotImplementedError

    def _snapshot(self, key: SubscriptionKey) -> JsonObj | None:
        """The frame a (re)subscribe to ``key`` starts with, if the channel has one."""
        raise NotImplementedError

    # ---- lifecycle -----------------------------------------------------------------

    def _serve_options(self) -> dict[str, Any]:
        return {
            "process_request": self._process_request,
            "select_subprotocol": self._select_subprotocol,
            "ping_interval": self._ping_interval,
            "ping_timeout": self._ping_interval,
        }

    async def stop(self) -> None:
        if self._server is not None:
            # Paused readers would never see the clients' close frames.
            self._resume_reading()
        await super().stop()

    @property
    def subscriptions(self) -> list[JsonObj]:
        """Every subscribe message received, valid or not, once it has been answered."""
        return list(self._subscriptions)

    # The timeout parameter is part of the simulator's agreed test API.
    async def wait_for_subscriptions(self, n: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        await self._wait(lambda: len(self._subscriptions) >= n, timeout)

    # ---- transport and auth faults ---------------------------------------------------

    async def disconnect_all(self, code: int = 1011, reason: str = "simulated disconnect") -> None:
        """Close every client with ``code``; 1005/1006/1015 abort the TCP link instead."""
        await self._close_clients(list(self._clients), code, reason)

    async def expire_token(self) -> None:
        """Close JWT-authenticated sockets with 4401; the token is refused from now on."""
        self._jwt_expired = True
        await self._close_clients([c for c in self._clients if c.authenticated], 4401, "access_token_expired")

    def set_jwt(self, jwt: str) -> None:
        """Accept ``jwt`` (and only it) on later handshakes; open sockets are untouched."""
        self._jwt, self._jwt_expired = jwt, False

    async def send_raw(self, data: str | bytes) -> None:
        """Send as is to every client: str as a text frame, bytes as a binary frame."""
        self._broadcast(data)

    def set_answer_pings(self, answer: bool) -> None:
        """False: stop reading every client socket (now and on connect), so pings go unanswered."""
        self._answer_pings = answer
        if answer:
            self._resume_reading()
        else:
            for client in self._clients:
                client.conn.transport.pause_reading()

    async def ping_clients(self, timeout: float = 5.0) -> int:  # noqa: ASYNC109
        """Ping every client once; return how many answered with a pong within ``timeout``."""

        async def one(client: _Client) -> bool:
            try:
                pong = await client.conn.ping()
                async with asyncio.timeout(timeout):
                    await pong
            except (ConnectionClosed, TimeoutError):
                return False
            return True

        return sum(await asyncio.gather(*(one(c) for c in list(self._clients))))

    # ---- fan-out -------------------------------------------------------------------

    def _publish(self, key: SubscriptionKey, frame: JsonObj) -> int:
        text = dumps(frame)
        receivers = [c for c in self._clients if key in c.subs]
        for client in receivers:
            client.outbox.put_nowait(text)
        return len(receivers)

    def _broadcast(self, data: str | bytes) -> None:
        for client in self._clients:
            client.outbox.put_nowait(data)

    # ---- internals -----------------------------------------------------------------

    def _resume_reading(self) -> None:
        for client in self._clients:
            client.conn.transport.resume_reading()

    async def _close_clients(self, clients: Sequence[_Client], code: int, reason: str) -> None:
        for client in clients:
            client.conn.transport.resume_reading()
            if code in _ABORT_CODES:
                client.conn.transport.abort()
        if code not in _ABORT_CODES:
            await super()._close_clients(clients, code, reason)
        else:
            await asyncio.gather(*(c.gone.wait() for c in clients))

    def _offered_subprotocols(self, request: Request) -> list[str]:
        return [p.strip() for h in request.headers.get_all("Sec-WebSocket-Protocol") for p in h.split(",")]

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path != WS_PATH:
            return conn.respond(http.HTTPStatus.NOT_FOUND, "not found\n")
        if self._jwt is None:
            return None
        authorization = request.headers.get("Authorization")
        offered = self._offered_subprotocols(request)
        if self._jwt_expired or authorization != f"Bearer {self._jwt}" or offered != [JWT_SUBPROTOCOL, self._jwt]:
            response = conn.respond(http.HTTPStatus.UNAUTHORIZED, "invalid_access_token\n")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        return None

    def _select_subprotocol(self, conn: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
        return Subprotocol(JWT_SUBPROTOCOL) if JWT_SUBPROTOCOL in offered else None

    async def _serve_client(self, conn: ServerConnection) -> None:
        self._client_counter += 1
        authenticated = self._jwt is not None and conn.request is not None and "Authorization" in conn.request.headers
        client = _Client(conn, client_id=f"client-{self._client_counter}", authenticated=authenticated)
        if not self._answer_pings:
            conn.transport.pause_reading()
        async with self._connected(client), self._sending(client):
            try:
                async for message in conn:
                    if self._on_message(client, message):
                        await self._notify()
            except ConnectionClosed:
                logger.debug("%s closed abnormally", client.client_id)

    def _on_message(self, client: _Client, message: str | bytes) -> bool:
        """Answer one control frame; True if it was a subscribe (for the waiters)."""
        try:
            text = message.decode("utf-8") if isinstance(message, bytes) else message
            msg: Any = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError):
            client.outbox.put_nowait(_error("invalid json"))
            return False
        kind = msg.get("type") if isinstance(msg, dict) else None
        if kind not in ("subscribe", "unsubscribe"):
            client.outbox.put_nowait(_error("invalid message"))
            return False
        sub = msg.get("subscription")
        try:
            key = self._subscription_key(sub)
        except UnknownChannelError as exc:
            client.outbox.put_nowait(_error(str(exc)))
        except SubscriptionRejectedError as exc:
            reply = {"type": "subscriptionError", "subscription": sub, "code": exc.code, "message": exc.message}
            client.outbox.put_nowait(dumps(reply))
        else:
            assert isinstance(sub, dict)  # subscription_key accepts objects only
            if kind == "subscribe":
                client.subs[key] = sub
                client.outbox.put_nowait(dumps({"type": "subscriptionConfirmed", "subscription": sub}))
                snapshot = self._snapshot(key)
                if snapshot is not None:
                    client.outbox.put_nowait(dumps(snapshot))
            else:
                client.subs.pop(key, None)
                status = {"channel": "subscriptionStatus", "status": "unsubscribed", "clientId": client.client_id}
                client.outbox.put_nowait(dumps({**status, "subscription": sub}))
        if kind == "subscribe":
            self._subscriptions.append(msg)
            return True
        return False
