"""Loopback simulator of the Totalis parlay-RFQ post-trade WebSocket and its MM REST calls
(protocols.md §4.2-§4.4).

Written from protocols.md only, never from the adapter, so the two check each other. One
uvicorn server (``riskmon.asgi_server.AsgiServer``) serves REST and ``/ws`` on one port.

Public API (``TotalisRfqSimulator(api_key, *, mm_id, event_key, clock)``):
- ``start()`` / ``stop()`` (idempotent; closes every socket with 1001), ``reset()``, ``rest_url``, ``ws_url``.
- Quote driver: ``accept_quote(...)`` (four emission orders, optional epoch-ms timestamps),
  ``confirm``, ``execute``, ``expire``, ``reject``, ``withdraw``; RFQ driver: ``position_created``,
  ``position_settled``, ``position_cancelled``, ``position_error``. Each returns the event ``data``.
- Faults: ``disconnect_all``, ``send_raw``, ``send_malformed``, ``set_answer_pings``,
  ``set_event_key``, ``fail_rest`` / ``heal_rest``, ``set_insufficient_balance``, ``add_foreign_quote``.
- Observation: ``events`` (every emitted event with its delivery count), ``rest_calls``,
  ``heartbeats``, ``quote_row``, ``connection_count``, ``wait_for_connections`` /
  ``wait_for_authenticated`` / ``wait_for_subscribed``.

Wire shapes the sources leave open ([?]/[I] in protocols.md), fixed here:
- subscribe ack ``{"type":"subscribed","channel":ch}``, unsubscribe ack ``{"type":"unsubscribed","channel":ch}``,
  errors ``{"type":"error","message":"not authenticated"|"forbidden"|"unknown channel"|...}``, bad key
  ``auth:error`` then close 4001.
- event frames ``{"<event_key>":"quote:accepted","channel":ch,"data":{...}}``, event_key "type" or "event".
- ``mm_quote:accepted.quote`` / ``exposure_legs`` and the ``GET /mm/quotes`` rows: see ``sim_frames``.
- position events go to ``rfq:<id>`` and, when this MM has a quote on that RFQ, to ``mm:quotes:<mm_id>``.

Fidelity gaps, accepted on purpose:
- no pre-trade SSE stream and no quote submission: quotes enter at acceptance (``accept_quote``).
- no timers: deadlines never lapse by themselves (REST confirm past the deadline answers 409
  ``deadline_passed`` and leaves the status alone); the test scripts the unwind with
  ``withdraw``/``expire``. No auth timeout on the socket, no rate limit, no webhooks.
- the venue's unknown error strings are replaced by the plain messages above.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, get_args

import base58

from riskmon.venues.sim_base_asgi import AsgiSimServer
from riskmon.venues.totalis.sim_frames import (
    AcceptOrder,
    EventKey,
    MalformedKind,
    QuoteStatus,
    SimQuote,
    check_economics,
    dumps,
    iso_ms,
    malformed_frame,
    parse_legs,
    to_unix,
)
from riskmon.venues.totalis.sim_rest import RestApi, RestCall
from riskmon.venues.totalis.sim_ws import SocketHub

__all__ = ["AcceptOrder", "EventKey", "MalformedKind", "RestCall", "SentEvent", "TotalisRfqSimulator"]

logger = logging.getLogger(__name__)

_ORDERS: tuple[str, ...] = get_args(AcceptOrder)
_HISTORY = 10_000  # events and REST calls kept for inspection


@dataclass(frozen=True)
class SentEvent:
    """An event the venue emitted, and to how many sockets (0: lost, the venue never redelivers)."""

    channel: str
    event: str
    data: dict[str, Any]
    delivered: int


def _checked_event_key(event_key: EventKey) -> EventKey:
    if event_key not in ("type", "event"):
        raise ValueError(f"event_key must be 'type' or 'event', got {event_key!r}")
    return event_key


class TotalisRfqSimulator(AsgiSimServer):
    """A real REST + WebSocket server on loopback speaking the Totalis MM post-trade protocol."""

    def __init__(
        self,
        api_key: str,
        *,
        mm_id: str = "did:privy:mm-sim",
        event_key: EventKey = "type",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        self._mm_id = mm_id
        self._initial_event_key: EventKey = _checked_event_key(event_key)
        self._event_key = event_key
        self._clock = clock
        self._quotes: dict[str, SimQuote] = {}
        self._foreign: dict[str, str] = {}  # quote_id -> owning MM
        self._positions: dict[str, str] = {}  # rfq_id -> position_pda
        self._hub = SocketHub(api_key, mm_id, clock)
        self._executions = 0
        # Bounded: the demo runs the simulator for hours.
        self.events: deque[SentEvent] = deque(maxlen=_HISTORY)
        self._rest = RestApi(
            api_key, mm_id, self._quotes, self._foreign, clock, self._confirm_quote, self._withdraw_quote, _HISTORY
        )
        super().__init__(name="totalis rfq", http=self._rest.handle, websocket=self._hub.serve)

    # ---- lifecycle ---------------------------------------------------------------

    def _accept_sockets(self, accepting: bool) -> None:
        self._hub.refuse_new = not accepting

    async def _close_sockets(self) -> None:
        await self.disconnect_all()

    async def reset(self) -> None:
        """Back to a fresh venue on the same port: every socket closed (1001), quotes, positions,
        events, REST calls and faults forgotten, the constructor's event key restored."""
        await self.disconnect_all()
        self._quotes.clear()
        self._foreign.clear()
        self._positions.clear()
        self.events.clear()
        self._executions = 0
        self._event_key = self._initial_event_key
        self._hub.answer_pings = True
        self._rest.reset()

    @property
    def ws_url(self) -> str:
        return f"{self.ws_host}/ws"

    @property
    def mm_id(self) -> str:
        return self._mm_id

    @property
    def quotes_channel(self) -> str:
        return self._hub.quotes_channel

    @property
    def connection_count(self) -> int:
        return self._hub.connection_count

    @property
    def rest_calls(self) -> deque[RestCall]:
        return self._rest.calls

    @property
    def heartbeats(self) -> int:
        """How many ``POST /v1/mm/heartbeat`` calls succeeded."""
        return self._rest.heartbeats

    @property
    def last_heartbeat_at(self) -> float | None:
        return self._rest.last_heartbeat_at

    # The timeout parameters are part of the simulators' agreed test API.
    async def wait_for_connections(self, n: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Return once at least ``n`` sockets are open; TimeoutError otherwise."""
        await self._hub.wait_for(lambda clients: len(clients) >= n, timeout)

    async def wait_for_authenticated(self, n: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        await self._hub.wait_for(lambda clients: sum(c.authenticated for c in clients) >= n, timeout)

    async def wait_for_subscribed(self, n: int = 1, channel: str | None = None, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Return once ``n`` sockets are subscribed to ``channel`` (default: our quotes channel)."""
        ch = channel or self.quotes_channel
        await self._hub.wait_for(lambda clients: sum(ch in c.channels for c in clients) >= n, timeout)

    # ---- quote lifecycle (mm:quotes:<mm_id>) -------------------------------------

    async def accept_quote(
        self,
        *,
        quote_id: str,
        rfq_id: str,
        user_cost: float,
        payout_odds: float,
        legs: list[dict[str, Any]],
        confirmation_deadline: datetime | float,
        order: AcceptOrder = "quote_first",
        epoch_ms_timestamps: bool = False,
        user_id: str = "did:privy:user-sim",
    ) -> dict[str, Any]:
        """A user accepted our quote: emit the accept event(s) in ``order``; returns the
        ``mm_quote:accepted`` data (emitted or not)."""
        if order not in _ORDERS:
            raise ValueError(f"order must be one of {_ORDERS}, got {order!r}")
        if quote_id in self._quotes or quote_id in self._foreign:
            raise ValueError(f"quote {quote_id!r} already exists")
        cost, odds = Decimal(str(user_cost)), Decimal(str(payout_odds))
        check_economics(cost, odds)
        quote = SimQuote(
            quote_id=quote_id,
            rfq_id=rfq_id,
            market_maker_id=self._mm_id,
            user_id=user_id,
            user_cost=cost,
            payout_odds=odds,
            legs=parse_legs(legs, odds),
            confirmation_deadline=to_unix(confirmation_deadline),
            accepted_at=self._clock(),
        )
        self._quotes[quote_id] = quote
        short = quote.quote_accepted(epoch_ms_timestamps)
        detail = quote.mm_quote_accepted(epoch_ms_timestamps)
        emissions = {
            "quote_first": [("quote:accepted", short), ("mm_quote:accepted", detail)],
            "mm_first": [("mm_quote:accepted", detail), ("quote:accepted", short)],
            "quote_only": [("quote:accepted", short)],
            "mm_only": [("mm_quote:accepted", detail)],
        }[order]
        for event, data in emissions:
            await self._emit(self.quotes_channel, event, data)
        return detail

    async def confirm(self, quote_id: str, execution_id: str | None = None) -> dict[str, Any]:
        """The venue confirmed the quote (as if our confirm call landed): ``quote:confirmed``."""
        return await self._confirm_quote(self._quote(quote_id), execution_id)

    async def execute(self, quote_id: str) -> dict[str, Any]:
        return await self._transition(self._quote(quote_id), "executed", {})

    async def expire(self, quote_id: str) -> dict[str, Any]:
        return await self._transition(self._quote(quote_id), "expired", {})

    async def reject(self, quote_id: str, reason: str) -> dict[str, Any]:
        return await self._transition(self._quote(quote_id), "rejected", {"reason": reason})

    async def withdraw(self, quote_id: str) -> dict[str, Any]:
        return await self._withdraw_quote(self._quote(quote_id))

    def quote_row(self, quote_id: str) -> dict[str, Any]:
        """The quote as ``GET /mm/quotes`` shows it."""
        return self._quote(quote_id).rest_row()

    def add_foreign_quote(self, quote_id: str, owner_mm_id: str = "did:privy:mm-other") -> None:
        """A quote id owned by another MM: REST confirm/withdraw on it answers 403."""
        if quote_id in self._quotes:
            raise ValueError(f"quote {quote_id!r} is ours")
        self._foreign[quote_id] = owner_mm_id

    # ---- RFQ position events (rfq:<rfq_id>) -------------------------------------

    async def position_created(self, rfq_id: str, position_pda: str) -> dict[str, Any]:
        self._positions[rfq_id] = position_pda
        return await self._position(rfq_id, "position:created", {"rfq_id": rfq_id, "position_pda": position_pda})

    async def position_settled(self, rfq_id: str, outcome: str, tx_signature: str) -> dict[str, Any]:
        self._set_rfq_status(rfq_id, ("confirmed", "executed"), "settled")
        data = {"rfq_id": rfq_id, "position_pda": self._pda(rfq_id), "outcome": outcome, "tx_signature": tx_signature}
        return await self._position(rfq_id, "position:settled", data)

    async def position_cancelled(self, rfq_id: str, reason: str) -> dict[str, Any]:
        self._set_rfq_status(rfq_id, ("accepted", "confirmed", "executed"), "cancelled")
        data = {"rfq_id": rfq_id, "position_pda": self._pda(rfq_id), "reason": reason}
        return await self._position(rfq_id, "position:cancelled", data)

    async def position_error(self, rfq_id: str, error: str) -> dict[str, Any]:
        return await self._position(rfq_id, "position:error", {"rfq_id": rfq_id, "error": error})

    # ---- faults ----------------------------------------------------------------------

    async def disconnect_all(self, code: int = 1001, reason: str = "going away") -> None:
        """Close every socket; returns once their handlers have cleaned up."""
        await self._hub.disconnect_all(code, reason)

    async def send_raw(self, text: str) -> int:
        """Send ``text`` as-is to every open socket; returns how many got it."""
        return await self._hub.send_all(text)

    async def send_malformed(self, kind: MalformedKind) -> int:
        """One defective event frame to the subscribers of our quotes channel."""
        frame = malformed_frame(kind, self._event_key, self.quotes_channel, self._clock())
        return await self._hub.deliver(self.quotes_channel, frame)

    def set_answer_pings(self, answer: bool) -> None:
        """False: app-level pings go unanswered (a half-dead socket); the transport still answers."""
        self._hub.answer_pings = answer

    def set_event_key(self, event_key: EventKey) -> None:
        """Name of the event frames' event key from now on ("type" or "event"; the real one is [?])."""
        self._event_key = _checked_event_key(event_key)

    def fail_rest(self, status: int = 503, *, times: int | None = None) -> None:
        """Answer the next ``times`` REST calls (None: all, until ``heal_rest``) with ``status``."""
        self._rest.fail(status, times)

    def heal_rest(self) -> None:
        self._rest.heal()

    def set_insufficient_balance(self, insufficient: bool) -> None:
        """True: REST confirm answers 409 ``insufficient_balance``."""
        self._rest.insufficient_balance = insufficient

    # ---- internals -------------------------------------------------------------------

    def _quote(self, quote_id: str) -> SimQuote:
        try:
            return self._quotes[quote_id]
        except KeyError:
            raise KeyError(f"unknown quote {quote_id!r}") from None

    def _pda(self, rfq_id: str) -> str:
        # A position can settle or cancel in a test that never scripted its creation; a stable
        # address derived from the rfq id keeps such frames complete.
        if rfq_id not in self._positions:
            self._positions[rfq_id] = str(base58.b58encode(hashlib.sha256(rfq_id.encode()).digest()).decode())
        return self._positions[rfq_id]

    def _set_rfq_status(self, rfq_id: str, from_statuses: tuple[QuoteStatus, ...], status: QuoteStatus) -> None:
        for quote in self._quotes.values():
            if quote.rfq_id == rfq_id and quote.status in from_statuses:
                quote.status = status

    async def _confirm_quote(self, quote: SimQuote, execution_id: str | None) -> dict[str, Any]:
        if execution_id is None:
            self._executions += 1
            execution_id = f"exec-{self._executions:06d}"
        quote.execution_id = execution_id
        return await self._transition(quote, "confirmed", {"execution_id": execution_id})

    async def _withdraw_quote(self, quote: SimQuote) -> dict[str, Any]:
        return await self._transition(quote, "withdrawn", {})

    async def _transition(self, quote: SimQuote, status: QuoteStatus, extra: dict[str, Any]) -> dict[str, Any]:
        # The driver does not police the lifecycle: a test may script out-of-order venue behaviour.
        quote.status = status
        data = {"quote_id": quote.quote_id, "rfq_id": quote.rfq_id, **extra}
        await self._emit(self.quotes_channel, f"quote:{status}", data)
        return data

    async def _position(self, rfq_id: str, event: str, data: dict[str, Any]) -> dict[str, Any]:
        data["timestamp"] = iso_ms(self._clock())
        await self._emit(f"rfq:{rfq_id}", event, data)
        # protocols.md §4.2: status/error position events are also copied to the MM channel.
        if any(q.rfq_id == rfq_id for q in self._quotes.values()):
            await self._emit(self.quotes_channel, event, data)
        return data

    async def _emit(self, channel: str, event: str, data: dict[str, Any]) -> None:
        frame = dumps({self._event_key: event, "channel": channel, "data": data})
        delivered = await self._hub.deliver(channel, frame)
        self.events.append(SentEvent(channel, event, data, delivered))
