"""Loopback simulator of the Mobula Perp Events stream (protocols.md §2, row in §6).

Written from protocols.md only, never from the adapter, so the two check each other.

Protocol served (ws://127.0.0.1:PORT/):
- The client's first frame must be the subscribe envelope of §2.1 within ``idle_timeout``
  seconds, else the server closes with 4001 "Idle timeout - no subscription received".
  JSON pings are answered before the subscription too, but do not reset that deadline.
- Valid subscribe -> ``{"event":"subscribed","subscriptionId":...}`` (the client's
  ``payload.subscriptionId`` when given, else ``sub_<32 hex>``). Further subscribe frames on the
  same socket add subscriptions; each matching one gets its own copy of an event.
- ``{"event":"ping"}`` -> ``{"event":"pong"}``.
- Events go to a subscription only when ``data.chainId`` is in its ``chainIds`` and its optional
  ``filters`` tree matches; envelope ``{"data":...,"chainId":...,"duplicateCount":N,"subscriptionId":...}``.

Shapes fixed here where protocols.md is silent ([I]):
- Wrong or missing ``authorization``: close 4003 "Invalid API key", no error frame.
- Any other invalid first/subscribe frame (not JSON, not an object, ``type`` not "stream", bad
  ``name``/``chainIds``/``events``/``filters``/``subscriptionId``, ``subscriptionTracking`` not the
  string "true"): ``{"event":"error","message":...}`` then close 4002 "Invalid subscription".
  A boolean ``subscriptionTracking`` (the positions WSS form) gets the message
  "subscriptionTracking must be a string".
- Once subscribed, client frames that are neither pings nor ``"type":"stream"`` subscribes are ignored.
- Frame field shapes where §2.3 is [?]: see the docstring of ``sim_frames``.

Public API of ``MobulaPerpEventsSimulator(api_key, *, idle_timeout=10.0, host="127.0.0.1", port=0)``:
``start()``/``stop()`` (idempotent, closes clients with 1001), ``url``, ``connections``,
``subscribed_count``, ``subscriptions`` (every non-ping JSON-object client frame), ``pings_received``,
``wait_for_connections(n)``/``wait_for_subscribed(n)``/``wait_for_pings(n)``, ``push(data,
duplicate_count=1)``, ``repeat_last(n=1)``, ``send_raw(text)``, ``send_malformed(kind)``,
``disconnect_all(code=1011, reason="")``, ``set_answer_pings(bool)``. The ``data`` builders
(``gains_trade``, ``lighter_liquidation``, ``trade_stored``, ``tp_sl_update``, ``position_size``,
``leverage_update``, ``market_cancel``, ``raw_amount``) live in ``sim_frames`` and are re-exported here.

Fidelity gaps, accepted on purpose:
- no unsubscribe (its outer frame is undocumented), no ``tag``/``personalizedId`` handling,
  no hawk ``activePosition``/``historicalPosition`` blocks;
- ``set_answer_pings(False)`` stops JSON pongs only: the ``websockets`` library still answers
  transport-level (RFC 6455) pings by itself;
- the real stream's idle timer and ping cadence tolerances are only approximated; close codes
  4002/4003, the error texts and pongs before a subscription are inventions ([I], above);
- frames are sent in push order to every subscriber from the pushing task; the real fan-out
  order between subscribers is unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from riskmon.venues.mobula.sim_filters import filter_matches, filter_problem
from riskmon.venues.mobula.sim_frames import (
    GAINS_CHAIN_ID,
    LIGHTER_CHAIN_ID,
    LIGHTER_POSITIONS_CHAIN_ID,
    JsonDict,
    gains_trade,
    leverage_update,
    lighter_liquidation,
    market_cancel,
    position_size,
    raw_amount,
    tp_sl_update,
    trade_stored,
)
from riskmon.venues.sim_base_ws import SimClient, WsSimServer

__all__ = [
    "CLOSE_IDLE",
    "CLOSE_INVALID_KEY",
    "CLOSE_INVALID_SUBSCRIPTION",
    "GAINS_CHAIN_ID",
    "LIGHTER_CHAIN_ID",
    "LIGHTER_POSITIONS_CHAIN_ID",
    "MAX_FRAME",
    "MalformedKind",
    "MobulaPerpEventsSimulator",
    "gains_trade",
    "leverage_update",
    "lighter_liquidation",
    "market_cancel",
    "position_size",
    "raw_amount",
    "tp_sl_update",
    "trade_stored",
]

logger = logging.getLogger(__name__)

MalformedKind = Literal["not_json", "not_object", "missing_data", "bad_amount", "unknown_type", "oversized"]

CLOSE_IDLE = (4001, "Idle timeout - no subscription received")  # [C] §2.1
CLOSE_INVALID_SUBSCRIPTION = (4002, "Invalid subscription")  # [I]
CLOSE_INVALID_KEY = (4003, "Invalid API key")  # [I]
MAX_FRAME = 1 << 20  # the default max_size of websockets clients; "oversized" goes past it
_HISTORY = 1024  # pushed frames kept for repeat_last
_SAMPLE_TRADER = "0x5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"
_SAMPLE_TX = "0x" + "ab" * 32


@dataclass(eq=False)
class _Subscription:
    id: str
    chain_ids: frozenset[str]
    filters: JsonDict | None


@dataclass(eq=False)
class _Client(SimClient):
    subs: list[_Subscription] = field(default_factory=list)


@dataclass(frozen=True)
class _Pushed:
    data: JsonDict
    text: str  # kept so that repeats are byte-identical
    chain_id: str
    duplicate_count: int


class _Rejected(Exception):
    def __init__(self, code: int, reason: str, message: str | None) -> None:
        super().__init__(reason)
        self.code, self.reason, self.message = code, reason, message


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _envelope(data_text: str, chain_id: str, duplicate_count: int, sub_id: str) -> str:
    # Built around the already-serialised data so that a repeat reuses its exact bytes.
    return (
        f'{{"data":{data_text},"chainId":{_dumps(chain_id)},'
        f'"duplicateCount":{duplicate_count},"subscriptionId":{_dumps(sub_id)}}}'
    )


def _invalid(message: str) -> _Rejected:
    return _Rejected(*CLOSE_INVALID_SUBSCRIPTION, message)


class MobulaPerpEventsSimulator(WsSimServer[_Client]):
    """A real WebSocket server on loopback speaking the Mobula Perp Events stream protocol."""

    def __init__(self, api_key: str, *, idle_timeout: float = 10.0, host: str = "127.0.0.1", port: int = 0) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        if idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive")
        if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the simulator only listens on loopback, not {host!r}")
        super().__init__(name="mobula perp events", host=host, port=port, path="/")
        self._api_key = api_key
        self._idle_timeout = idle_timeout
        self._history: deque[_Pushed] = deque(maxlen=_HISTORY)
        self._answer_pings = True
        self.subscriptions: list[JsonDict] = []
        """Every JSON-object client frame other than a ping, in arrival order, valid or not."""
        self.pings_received = 0

    # Keepalive is the JSON ping of §2.1: no transport pings, no compression (the base's defaults).

    @property
    def subscribed_count(self) -> int:
        """Live subscriptions over all connections."""
        return sum(len(c.subs) for c in self._clients)

    # The timeout parameters are part of the simulator's agreed test API.
    async def wait_for_subscribed(self, n: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Return once ``n`` subscriptions are live and acknowledged; TimeoutError otherwise."""
        await self._wait(lambda: self.subscribed_count >= n, timeout)

    async def wait_for_pings(self, n: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Return once ``n`` JSON pings have been received in total (answered or not)."""
        await self._wait(lambda: self.pings_received >= n, timeout)

    # ---- events ----------------------------------------------------------------------

    async def push(self, data: JsonDict, *, duplicate_count: int = 1) -> int:
        """Send ``data`` to every matching subscription; returns how many received it."""
        chain_id = data.get("chainId")
        if not isinstance(chain_id, str):
            raise ValueError("data must carry a string chainId")
        if duplicate_count < 1:
            raise ValueError("duplicate_count must be >= 1")
        text = _dumps(data)
        pushed = _Pushed(json.loads(text), text, chain_id, duplicate_count)
        self._history.append(pushed)
        return await self._deliver([pushed])

    async def repeat_last(self, n: int = 1) -> int:
        """Re-send the last ``n`` pushed frames unchanged (a venue duplicate); returns frames sent."""
        if not 1 <= n <= len(self._history):
            raise ValueError(f"cannot repeat {n} frames: {len(self._history)} pushed")
        return await self._deliver(list(self._history)[-n:])

    # ---- faults ----------------------------------------------------------------------

    async def send_raw(self, text: str) -> int:
        """Send ``text`` as is to every connection, subscribed or not; returns how many got it."""
        return await self._send_each({c: [text] for c in self._clients})

    async def send_malformed(self, kind: MalformedKind) -> int:
        """Send one defective frame per subscription (per connection for the non-JSON kinds).

        Malformed frames bypass chain and filter matching: they test the client's parser.
        """
        if kind == "not_json":
            return await self._send_each({c: ['{"data":{"type":"MARKET_BUY","exchange":"ga'] for c in self._clients})
        if kind == "not_object":
            return await self._send_each({c: ['["order",1]'] for c in self._clients})
        sample = gains_trade(
            "MARKET_BUY",
            _SAMPLE_TRADER,
            trade_id="1",
            tx_hash=_SAMPLE_TX,
            base_amount_raw=raw_amount(1),
            price_usd=65000.5,
            long=True,
        )
        padding = ""
        if kind == "bad_amount":
            sample["baseAmountRaw"] = "12.5x"
        elif kind == "unknown_type":
            sample["type"] = "SOMETHING_NEW"
        elif kind == "oversized":
            padding = " " * (MAX_FRAME + 1)  # JSON whitespace: the frame stays valid
        elif kind != "missing_data":
            raise ValueError(f"unknown malformed kind: {kind!r}")
        frames: dict[_Client, list[str]] = {}
        for client in self._clients:
            for sub in client.subs:
                if kind == "missing_data":
                    frame = _dumps({"chainId": GAINS_CHAIN_ID, "duplicateCount": 1, "subscriptionId": sub.id})
                else:
                    frame = _envelope(_dumps(sample) + padding, GAINS_CHAIN_ID, 1, sub.id)
                frames.setdefault(client, []).append(frame)
        return await self._send_each(frames)

    async def disconnect_all(self, code: int = 1011, reason: str = "") -> None:
        """Close every client with ``code``; returns once their handlers have cleaned up."""
        await self._close_clients(list(self._clients), code, reason)

    def set_answer_pings(self, answer: bool) -> None:
        """False: JSON pings are counted but never answered, as by a dead server; the socket stays open."""
        self._answer_pings = answer

    # ---- internals -------------------------------------------------------------------

    async def _deliver(self, pushed: list[_Pushed]) -> int:
        frames: dict[_Client, list[str]] = {}
        for client in self._clients:
            for item in pushed:
                for sub in client.subs:
                    if item.chain_id in sub.chain_ids and (
                        sub.filters is None or filter_matches(sub.filters, item.data)
                    ):
                        env = _envelope(item.text, item.chain_id, item.duplicate_count, sub.id)
                        frames.setdefault(client, []).append(env)
        return await self._send_each(frames)

    async def _send_each(self, frames: dict[_Client, list[str]]) -> int:
        async def send(client: _Client, texts: list[str]) -> int:
            sent = 0
            try:
                for text in texts:
                    await client.conn.send(text)
                    sent += 1
            except ConnectionClosed:
                # A client gone mid-broadcast only loses its own frames; its handler cleans up.
                logger.debug("client %s closed while sending", client.conn.remote_address)
            return sent

        return sum(await asyncio.gather(*(send(c, t) for c, t in frames.items())))

    async def _serve_client(self, conn: ServerConnection) -> None:
        client = _Client(conn)
        async with self._connected(client):
            try:
                await self._serve(client)
            except ConnectionClosed:
                pass
            except _Rejected as rejected:
                if rejected.message is not None:
                    with contextlib.suppress(ConnectionClosed):
                        await conn.send(_dumps({"event": "error", "message": rejected.message}))
                await conn.close(rejected.code, rejected.reason)

    async def _serve(self, client: _Client) -> None:
        deadline = asyncio.get_running_loop().time() + self._idle_timeout
        while not client.subs:
            try:
                async with asyncio.timeout_at(deadline):
                    message = await client.conn.recv()
            except TimeoutError:
                logger.debug("client %s sent no subscription in time", client.conn.remote_address)
                await client.conn.close(*CLOSE_IDLE)
                return
            await self._on_message(client, message)
        async for message in client.conn:
            await self._on_message(client, message)

    async def _on_message(self, client: _Client, message: str | bytes) -> None:
        try:
            frame = json.loads(message)
        except (ValueError, UnicodeDecodeError):
            raise _invalid("Invalid JSON") from None
        if not isinstance(frame, dict):
            raise _invalid("Message must be a JSON object")
        if frame.get("event") == "ping":
            self.pings_received += 1
            if self._answer_pings:
                await client.conn.send('{"event":"pong"}')
            await self._notify()
            return
        self.subscriptions.append(frame)
        if client.subs and frame.get("type") != "stream":
            logger.debug("ignoring client frame %.200s", message)
            return
        sub = self._parse_subscribe(frame)
        await client.conn.send(_dumps({"event": "subscribed", "subscriptionId": sub.id}))
        # Registered only after the ack, so no event can overtake it.
        client.subs.append(sub)
        await self._notify()

    def _parse_subscribe(self, frame: JsonDict) -> _Subscription:
        if frame.get("type") != "stream":
            raise _invalid('type must be "stream"')
        if frame.get("authorization") != self._api_key:
            raise _Rejected(*CLOSE_INVALID_KEY, None)
        payload = frame.get("payload")
        if not isinstance(payload, dict):
            raise _invalid("payload must be an object")
        if not isinstance(payload.get("name"), str):
            raise _invalid("payload.name must be a string")
        chain_ids = payload.get("chainIds")
        if not isinstance(chain_ids, list) or not chain_ids or not all(isinstance(c, str) for c in chain_ids):
            raise _invalid("payload.chainIds must be a non-empty list of strings")
        if payload.get("events") != ["order"]:
            raise _invalid('payload.events must be ["order"]')
        if "subscriptionTracking" in payload:
            tracking = payload["subscriptionTracking"]
            if not isinstance(tracking, str):
                raise _invalid("subscriptionTracking must be a string")
            if tracking != "true":
                raise _invalid('subscriptionTracking must be "true"')
        filters = payload.get("filters")
        if filters is not None and (problem := filter_problem(filters)) is not None:
            raise _invalid(f"payload.filters: {problem}")
        sub_id = payload.get("subscriptionId")
        if sub_id is None:
            sub_id = "sub_" + secrets.token_hex(16)
        elif not isinstance(sub_id, str) or not sub_id:
            raise _invalid("payload.subscriptionId must be a non-empty string")
        return _Subscription(sub_id, frozenset(chain_ids), filters)
