"""ProphetX Pusher codec (protocols.md §3): handshake state, triple-decoded events, REST answers.

The session does the REST calls; this core says what is needed (`needs_registration` once the
server has given a socket_id) and turns the registration answer into signin and subscribe frames.
Orders, books and trades are decoded statelessly: the engine drops older sequence numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import msgspec

from riskmon.events import (
    BookLevel,
    BookSide,
    BookSnapshot,
    Event,
    FrameMalformed,
    Heartbeat,
    OrderStatus,
    OrderUpdate,
    Subscribed,
    SubscriptionFailed,
    TradeExecuted,
)
from riskmon.venues.codec_support import BoundedMemo
from riskmon.venues.prophetx.frames import (
    AuthorizedChannel,
    BookPayload,
    ConnectionEstablished,
    Identifier,
    LayerError,
    LevelInfo,
    OrderInfo,
    OrderPayload,
    PusherError,
    PusherFrame,
    RegistrationResponse,
    TradePayload,
    decode_data,
    decode_envelope,
    decode_frame,
    decode_json,
    decode_payload,
    decode_rest_markets,
    decode_rest_order,
)

# §3.3 status -> our lifecycle.
ORDER_STATUSES: Mapping[str, OrderStatus] = MappingProxyType(
    {
        "inactive": OrderStatus.PENDING,
        "open": OrderStatus.OPEN,
        "invalid": OrderStatus.REJECTED,
        "canceled": OrderStatus.CANCELED,
        "void": OrderStatus.VOID,
        "wiped": OrderStatus.VOID,
        "settled": OrderStatus.SETTLED,
        "manually_settled": OrderStatus.SETTLED,
        "closed": OrderStatus.SETTLED,
    }
)
# Backing an outcome at American odds risks the stake; a cancel leaves the matched part standing.
_MATCHED_STAKE_AT_RISK = frozenset({OrderStatus.PENDING, OrderStatus.OPEN, OrderStatus.CANCELED})
_ZERO = Decimal(0)

# The private event was renamed with Talaria/v4 (§3.2): `wagers`/`wager` then `orders`/`order`.
_ORDER_EVENTS = frozenset({"wagers", "orders"})
_ORDER_CHANGES = frozenset({"wager", "order", "wagers", "orders"})
# The CFTC-wording docs use the singular / trade_execution names for the same broadcasts.
_BOOK_CHANGES = frozenset({"market_selections", "market_selection"})
_TRADE_CHANGES = frozenset({"matched_bet", "trade_execution"})
_CATALOGUE_CHANGES = frozenset({"tournament", "sport_event", "market", "market_line"})
_HEARTBEAT_CHANGE = "private_system_signal"
# REST sources: an order read (the activation watchdog's is `reconcile_order`), and the books of
# get_multiple_markets / get_markets (`markets:<event id>` for a get_markets answer naming no event).
_ORDER_SOURCES = frozenset({"get_order", "get_wager", "reconcile_order"})
_MARKETS_SOURCE = "markets"

_IDENTIFIER = re.compile(r"[A-Za-z0-9_.:-]{1,48}")

_connection_decoder = msgspec.json.Decoder(ConnectionEstablished)
_error_decoder = msgspec.json.Decoder(PusherError)
_order_decoder = msgspec.json.Decoder(OrderPayload)
_book_decoder = msgspec.json.Decoder(BookPayload)
_trade_decoder = msgspec.json.Decoder(TradePayload)
# A payload read only to check it is JSON: Raw validates it without building its objects.
_json_checker = msgspec.json.Decoder(msgspec.Raw)
_registration_decoder = msgspec.json.Decoder(RegistrationResponse)
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class ChannelBinding:
    """A channel the registration authorized: what it carries and what it is about (no auth)."""

    name: str
    binding_events: tuple[tuple[str, str | None], ...]  # (event name, type)
    scope: Mapping[str, Any]


class ProphetXCodec:
    def __init__(self, venue: str, accounts: Mapping[str, str], default_desk: str | None) -> None:
        """`accounts` maps ProphetX account/user ids to desks; `default_desk` owns unmapped orders
        (the private channel only carries our own account's orders)."""
        self.venue = venue
        self._owners = dict(accounts)
        self._default_desk = default_desk
        default_accounts = [a for a, desk in self._owners.items() if desk == default_desk]
        self._default_account = default_accounts[0] if len(default_accounts) == 1 else ""
        self._outbox: list[str | bytes] = []
        self._pong_outstanding = False
        self._socket_id: str | None = None
        self._activity_timeout: float | None = None
        self._needs_registration = False
        self._bindings: dict[str, ChannelBinding] = {}
        self._auths: dict[str, str] = {}  # channel -> signature; also redacted out of error text
        self._requested: set[str] = set()
        self._subscribed: set[str] = set()
        self._signin_requested = False

    # ---- VenueCodec / PingingCodec ------------------------------------------------------------

    def connection_opened(self) -> None:
        # A new socket means a new socket_id: every signature of the old one is worthless.
        self._outbox.clear()
        self._pong_outstanding = False
        self._socket_id = None
        self._activity_timeout = None
        self._needs_registration = False
        self._bindings.clear()
        self._auths.clear()
        self._requested.clear()
        self._subscribed.clear()
        self._signin_requested = False

    def data_to_send(self) -> list[str | bytes]:
        frames, self._outbox = self._outbox, []
        return frames

    def send_ping(self) -> None:
        self._send("pusher:ping", {})
        self._pong_outstanding = True

    @property
    def pong_outstanding(self) -> bool:
        return self._pong_outstanding

    @property
    def socket_id(self) -> str | None:
        return self._socket_id

    @property
    def activity_timeout(self) -> float | None:
        """Seconds of silence after which the client should ping, as the server said."""
        return self._activity_timeout

    @property
    def needs_registration(self) -> bool:
        return self._needs_registration

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self._bindings)

    @property
    def channel_bindings(self) -> Mapping[str, ChannelBinding]:
        return MappingProxyType(self._bindings)

    @property
    def subscribed_channels(self) -> frozenset[str]:
        return frozenset(self._subscribed)

    def receive_bytes(self, data: bytes) -> list[Event]:
        return [self._malformed("binary frame on a text-only feed")]

    def receive_rest(self, source: str, body: str) -> list[Event]:
        try:
            if source == "register":
                return self._registration(body)
            if source in _ORDER_SOURCES:
                return [self._rest_order(body)]
            books_of, colon, asked = source.partition(":")
            if books_of == _MARKETS_SOURCE and (not colon or _IDENTIFIER.fullmatch(asked)):
                books = decode_rest_markets(body, asked or None)
                return [
                    self._book(book, f"book {_safe(book.sport_event_id)}/{_safe(book.market_id)}") for book in books
                ]
        except LayerError as exc:
            return [self._malformed(f"{source}: {exc}")]  # a source named above: safe
        return [self._malformed(f"no REST call {_safe(source)}")]

    def receive_text(self, text: str) -> list[Event]:
        try:
            frame = decode_frame(text)
            if frame.event.startswith(("pusher:", "pusher_internal:")):
                return self._protocol(frame)
            return self._channel_event(frame)
        except LayerError as exc:
            return [self._malformed(str(exc))]

    # ---- handshake ------------------------------------------------------------------------------

    def _protocol(self, frame: PusherFrame) -> list[Event]:
        event = frame.event
        if event == "pusher:connection_established":
            established = decode_data(frame, ConnectionEstablished, _connection_decoder, "connection_established")
            self._socket_id = established.socket_id
            timeout = established.activity_timeout
            self._activity_timeout = float(timeout) if timeout is not None else None
            self._needs_registration = True
            return []
        if event == "pusher:ping":
            self._send("pusher:pong", {})
            return []
        if event == "pusher:pong":
            self._pong_outstanding = False
            return []
        if event == "pusher:signin_success":
            return [Subscribed(self.venue, "user signin")]
        if event == "pusher_internal:subscription_succeeded":
            if frame.channel is None:
                raise LayerError("subscription_succeeded without a channel")
            self._subscribed.add(frame.channel)
            return [Subscribed(self.venue, frame.channel)]
        if event in ("pusher:error", "pusher:subscription_error", "pusher_internal:subscription_error"):
            return [self._pusher_error(frame)]
        return []  # other protocol chatter (subscription_count, cache_miss) carries no risk

    def _pusher_error(self, frame: PusherFrame) -> SubscriptionFailed:
        try:
            error = decode_data(frame, PusherError, _error_decoder, "pusher error")
        except LayerError:
            error = PusherError()  # a refusal is still a refusal when its details are unreadable
        message = error.message or "no message"
        for auth in self._auths.values():
            # Pusher's invalid-signature message quotes the signature it was sent.
            for part in (auth, auth.rpartition(":")[2]):
                if part:  # an empty part would match between every character
                    message = message.replace(part, "<auth>")
        code = "?" if error.code is None else str(error.code)
        # Pusher protocol: 4000-4099 means do not reconnect unchanged (app unknown, disabled, ...).
        misconfigured = error.code is not None and 4000 <= error.code <= 4099
        if frame.channel is not None:
            self._subscribed.discard(frame.channel)
        return SubscriptionFailed(self.venue, frame.channel or "pusher", f"code {code}: {message[:200]}", misconfigured)

    def _registration(self, body: str) -> list[Event]:
        if self._socket_id is None:
            raise LayerError("registration answer without an established connection")
        response = decode_json(_registration_decoder, body, "registration")
        data = response.data
        if data is None or data.success is False or not data.authorized_channel:
            words = [_safe(w) for w in (response.error, response.code, response.message) if w is not None]
            if data is not None and data.status is not None:
                words.append(_safe(data.status))
            reason = ", ".join(words) or "no channels authorized"
            return [SubscriptionFailed(self.venue, "channel registration", reason, misconfigured=False)]
        # Read names and signatures from the answer only (§3.1): service numbers differ by docs.
        authorized: dict[str, AuthorizedChannel] = {c.channel_name: c for c in data.authorized_channel}
        if data.authenticated is not None and not self._signin_requested:
            raw_user = bytes(data.authenticated.user_data)
            # A JSON string as documented; any other JSON value is passed on as its exact text.
            user_data = msgspec.json.decode(raw_user, type=str) if raw_user.startswith(b'"') else raw_user.decode()
            self._send("pusher:signin", {"auth": data.authenticated.auth, "user_data": user_data})
            self._signin_requested = True
        # The v4 registration is declarative: a new answer on the same socket replaces the set.
        for name in sorted(self._requested - authorized.keys()):
            self._send("pusher:unsubscribe", {"channel": name})
            self._subscribed.discard(name)
            self._requested.discard(name)
        self._bindings = {
            name: ChannelBinding(
                name, tuple((b.name, b.type) for b in channel.binding_events), MappingProxyType(channel.scope or {})
            )
            for name, channel in authorized.items()
        }
        self._auths = {name: channel.auth for name, channel in authorized.items()}
        for name, channel in authorized.items():
            if name not in self._requested:
                self._send("pusher:subscribe", {"auth": channel.auth, "channel": name})
                self._requested.add(name)
        self._needs_registration = False
        return []

    # ---- channel events -------------------------------------------------------------------------

    def _channel_event(self, frame: PusherFrame) -> list[Event]:
        envelope = decode_envelope(frame)
        change = envelope.change_type
        event = frame.event
        if change in _BOOK_CHANGES and event != "health_check" and event not in _ORDER_EVENTS:
            return [self._book(decode_payload(envelope, _book_decoder), f"{change} payload")]  # most frames
        venue_ts = envelope.timestamp / 1_000_000_000  # int / int: correctly rounded, unlike float(ns) / 1e9
        if change == _HEARTBEAT_CHANGE or event == "health_check":
            decode_payload(envelope, _json_checker)  # `e30=`, i.e. {}: checked, not used
            return [Heartbeat(self.venue, self._socket_id or "", venue_ts)]
        if change in _ORDER_CHANGES or event in _ORDER_EVENTS:
            return [self._order_update(decode_payload(envelope, _order_decoder).info, venue_ts)]
        if change in _TRADE_CHANGES:
            return [self._trade(decode_payload(envelope, _trade_decoder), venue_ts)]
        if change in _CATALOGUE_CHANGES:
            decode_payload(envelope, _json_checker)
            return []  # tournaments, events, markets and lines: catalogue, not risk
        return [self._malformed(f"unknown change_type {_safe(change)}")]

    def _order_update(self, info: OrderInfo, venue_ts: float) -> Event:
        not_finite = info.non_finite()
        if not_finite is not None:
            return self._malformed(f"order {_safe(str(info.id))}: `{not_finite}` is not a finite number")
        venue_status = info.status
        status = ORDER_STATUSES.get(venue_status)
        if status is None:
            return self._malformed(f"order {_safe(str(info.id))}: unknown status {_safe(venue_status)}")
        user_id = info.user_id
        if user_id is not None:
            account = str(user_id)
            desk = self._owners.get(account, self._default_desk)
        else:
            account, desk = self._default_account, self._default_desk
        if desk is None:
            return self._malformed("order for an account no desk lists")
        filled = info.totally_matched_stake
        if filled is None:
            filled = info.matched_stake
        # The matched stake is None when the venue did not say how much matched: unknown, not 0.
        worst_case = filled if status in _MATCHED_STAKE_AT_RISK else _ZERO
        external_id = info.external_id
        odds, stake = info.odds, info.stake
        return OrderUpdate(
            self.venue,
            desk,
            account,
            str(info.id),
            _markets[(info.sport_event_id, info.market_id, info.outcome_id)],
            status,
            venue_status,
            info.sequence_number,
            venue_ts,
            info.why,
            None if external_id is None else str(external_id),
            # [?] §3.2: v4 may call odds/stake `price`/`quantity`; the legacy names win if both.
            info.price if odds is None else odds,
            info.quantity if stake is None else stake,
            filled,
            info.matched_odds,
            worst_case,
        )

    def _book(self, payload: BookPayload, layer: str) -> Event:
        """The stream's and REST's books alike, so the two compare equal when the venue agrees."""
        sides: list[BookSide] = []
        for selection in payload.info.selections:
            levels: list[BookLevel] = []
            for level in selection:
                price, size = level.odds, level.stake
                # One test for the usual level (legacy names, both finite); anything else is sorted out,
                # and named, by _level_amounts.
                if (
                    price is None
                    or size is None
                    or level.price is not None
                    or level.quantity is not None
                    or not price.is_finite()
                    or not size.is_finite()
                ):
                    price, size = _level_amounts(level, layer)
                levels.append(BookLevel(price, size))
            # An empty side has no level to name its outcome: it stays, unnamed, in its place.
            outcome = selection[0].outcome_id if selection else None
            sides.append(BookSide("" if outcome is None else str(outcome), tuple(levels)))
        return BookSnapshot(
            self.venue,
            f"{payload.sport_event_id}/{payload.market_id}",
            tuple(sides),
            payload.info.sequence_number,
        )

    def _trade(self, payload: TradePayload, venue_ts: float) -> Event:
        info = payload.info
        not_finite = info.non_finite()
        if not_finite is not None:
            raise LayerError(f"matched_bet payload: `{not_finite}` is not a finite number")
        price = info.matched_odds if info.matched_odds is not None else info.odds
        if price is None:
            raise LayerError("matched_bet payload: no odds")
        return TradeExecuted(
            self.venue,
            _markets[(info.sport_event_id, info.market_id, info.outcome_id)],
            price,
            info.matched_stake,
            info.sequence_number,
            venue_ts,
        )

    def _rest_order(self, body: str) -> Event:
        info, timestamp = decode_rest_order(body)
        if isinstance(timestamp, int) and not isinstance(timestamp, bool):
            return self._order_update(info, _epoch_seconds(timestamp))
        return self._order_update(info, 0.0)

    # ---- helpers --------------------------------------------------------------------------------

    def _send(self, event: str, data: dict[str, str]) -> None:
        self._outbox.append(_encoder.encode({"event": event, "data": data}).decode())

    def _malformed(self, reason: str) -> FrameMalformed:
        return FrameMalformed(self.venue, reason)


def _level_amounts(level: LevelInfo, layer: str) -> tuple[Decimal, Decimal]:
    not_finite = level.non_finite()
    if not_finite is not None:
        raise LayerError(f"{layer}: `{not_finite}` is not a finite number")
    price = level.odds if level.odds is not None else level.price
    size = level.stake if level.stake is not None else level.quantity
    if price is None or size is None:
        raise LayerError(f"{layer}: a level without odds or stake")
    return price, size


def _market(ids: tuple[Identifier | None, Identifier | None, Identifier | None]) -> str:
    return "/".join("?" if part is None else str(part) for part in ids)


# An order's or trade's market name, per (event, market, outcome): a busy desk trades a few of them.
_markets: BoundedMemo[tuple[Identifier | None, Identifier | None, Identifier | None], str] = BoundedMemo(
    _market, limit=4096
)


def _safe(word: object) -> str:
    """A venue word fit for a log line: short identifiers pass, anything else is elided."""
    text = str(word)
    return repr(text) if _IDENTIFIER.fullmatch(text) else "<unprintable>"


def _epoch_seconds(value: int) -> float:
    # [I] REST timestamps are undocumented in unit; epoch magnitudes tell ns, µs, ms and s apart.
    for divisor, above in ((1_000_000_000, 10**17), (1_000_000, 10**14), (1_000, 10**11)):
        if abs(value) >= above:
            return value / divisor
    return float(value)
