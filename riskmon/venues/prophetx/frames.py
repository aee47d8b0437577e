"""ProphetX wire shapes (protocols.md §3) and the triple decode of its event frames.

A Pusher frame's `data` is a JSON string holding an envelope whose `payload` is base64 of the
JSON that matters (§3.2). Each layer that fails raises `LayerError` naming the layer, so a
dropped frame says where it broke without echoing its content.
"""

from __future__ import annotations

import binascii
import re
from decimal import Decimal
from typing import Any, TypeVar

import msgspec


class LayerError(Exception):
    """A frame unusable at one decode layer; the message is safe to log (no frame content)."""


def first_non_finite(values: tuple[Decimal | None, ...], names: tuple[str, ...]) -> str | None:
    """The first of `names` whose value is NaN or infinite, in declaration order.

    msgspec accepts "NaN"/"Infinity" strings for Decimal fields; such an amount would make every
    later comparison in the engine raise, so the codec drops the frame. Checked where the payload
    is used rather than in a `__post_init__`, which cost a Python call per decoded struct (four
    per book), for a case no well-formed frame has.
    """
    for value, name in zip(values, names, strict=True):
        if value is not None and not value.is_finite():
            return name
    return None


# ---- Pusher protocol layer ------------------------------------------------------------------


class PusherFrame(msgspec.Struct, frozen=True):
    event: str
    channel: str | None = None
    # Pusher sends `data` as a JSON string; pusher:error and some servers send an object.
    data: str | dict[str, Any] | None = None


class ConnectionEstablished(msgspec.Struct, frozen=True):
    socket_id: str
    activity_timeout: int | float | None = None


class PusherError(msgspec.Struct, frozen=True):
    message: str | None = None
    code: int | None = None


# ---- channel registration (REST, §3.1) ------------------------------------------------------


class BindingEvent(msgspec.Struct, frozen=True):
    name: str
    type: str | None = None


class AuthorizedChannel(msgspec.Struct, frozen=True):
    channel_name: str
    auth: str
    binding_events: list[BindingEvent] = []
    scope: dict[str, Any] | None = None


class Authenticated(msgspec.Struct, frozen=True):
    auth: str
    # A JSON string in the example. Kept raw: if a server sends an object instead, its exact text
    # is what the signature covers, so it is forwarded unchanged rather than re-encoded.
    user_data: msgspec.Raw


class RegistrationData(msgspec.Struct, frozen=True):
    success: bool | None = None
    status: str | None = None
    authorized_channel: list[AuthorizedChannel] = []
    authenticated: Authenticated | None = None
    channel_count: int | None = None
    channel_limit: int | None = None


class RegistrationResponse(msgspec.Struct, frozen=True):
    data: RegistrationData | None = None
    # Error bodies (§3.1: exceed_subscription_count, wildcard_not_allowed, ...) are not documented
    # in shape: any of these short keys may carry the venue's error word.
    error: str | None = None
    code: str | int | None = None
    message: str | None = None


# ---- envelope (layer 2) ---------------------------------------------------------------------


class Envelope(msgspec.Struct, frozen=True, gc=False):
    timestamp: int  # nanoseconds
    change_type: str
    payload: str  # base64 of JSON
    op: str | None = None


class WireEnvelope(msgspec.Struct, frozen=True, gc=False):
    """Envelope with the payload base64-decoded by msgspec, in C, with the envelope itself.

    msgspec's base64 is never laxer than binascii's strict mode, so an envelope it refuses is
    decoded again as an Envelope, and the layers fail as they always did.
    """

    timestamp: int
    change_type: str
    payload: bytes  # the JSON itself
    op: str | None = None


# ---- payloads (layer 3) ---------------------------------------------------------------------

Identifier = int | str


class OrderInfo(msgspec.Struct, frozen=True):
    """One wager/order as the private channel and get_order carry it (§3.2 field list)."""

    id: Identifier
    status: str
    sequence_number: int
    user_id: Identifier | None = None
    external_id: Identifier | None = None
    sport_event_id: Identifier | None = None
    market_id: Identifier | None = None
    outcome_id: Identifier | None = None
    odds: Decimal | None = None
    stake: Decimal | None = None
    # [?] §3.2: the v4 `orders` payload may name odds/stake `price`/`quantity` (as v4 REST does).
    price: Decimal | None = None
    quantity: Decimal | None = None
    matched_stake: Decimal | None = None
    matched_odds: Decimal | None = None
    totally_matched_stake: Decimal | None = None
    # [?] the field naming why an order failed activation or was canceled is undocumented, and so
    # is its type: only a string is used, anything else must not cost the order update itself.
    reason: object = None
    failure_reason: object = None
    invalid_reason: object = None

    def non_finite(self) -> str | None:
        return first_non_finite(
            (
                self.odds,
                self.stake,
                self.price,
                self.quantity,
                self.matched_stake,
                self.matched_odds,
                self.totally_matched_stake,
            ),
            _ORDER_AMOUNTS,
        )

    @property
    def why(self) -> str | None:
        for reason in (self.reason, self.failure_reason, self.invalid_reason):
            if isinstance(reason, str) and reason:
                return reason
        return None


_ORDER_AMOUNTS = ("odds", "stake", "price", "quantity", "matched_stake", "matched_odds", "totally_matched_stake")


class OrderPayload(msgspec.Struct, frozen=True):
    info: OrderInfo


class LevelInfo(msgspec.Struct, frozen=True, gc=False):
    outcome_id: Identifier | None = None
    odds: Decimal | None = None
    stake: Decimal | None = None
    price: Decimal | None = None  # the v4 names, accepted as for orders
    quantity: Decimal | None = None

    def non_finite(self) -> str | None:
        return first_non_finite((self.odds, self.stake, self.price, self.quantity), _LEVEL_AMOUNTS)


_LEVEL_AMOUNTS = ("odds", "stake", "price", "quantity")


class BookInfo(msgspec.Struct, frozen=True):
    selections: list[list[LevelInfo]]
    sequence_number: int | None = None


class BookPayload(msgspec.Struct, frozen=True):
    sport_event_id: Identifier
    market_id: Identifier
    info: BookInfo


class TradeInfo(msgspec.Struct, frozen=True):
    sport_event_id: Identifier
    market_id: Identifier
    outcome_id: Identifier
    matched_stake: Decimal
    odds: Decimal | None = None
    matched_odds: Decimal | None = None
    sequence_number: int | None = None

    def non_finite(self) -> str | None:
        return first_non_finite((self.matched_stake, self.odds, self.matched_odds), _TRADE_AMOUNTS)


_TRADE_AMOUNTS = ("matched_stake", "odds", "matched_odds")


class TradePayload(msgspec.Struct, frozen=True):
    info: TradeInfo


class RestOrderWrapper(msgspec.Struct, frozen=True):
    """get_order bodies: `{"data": info}`, info at top level, or under data.info/wager/order."""

    # msgspec.Raw cannot sit in a union: an absent key is an empty Raw.
    data: msgspec.Raw = msgspec.Raw()
    info: msgspec.Raw = msgspec.Raw()
    wager: msgspec.Raw = msgspec.Raw()
    order: msgspec.Raw = msgspec.Raw()
    timestamp: object = None  # undocumented: used only when an integer


# ---- market books (REST, §3.4) ----------------------------------------------------------------


class RestMarket(msgspec.Struct, frozen=True):
    """One market of get_markets / get_multiple_markets: the book a market_selections `info` carries.

    [I] The market's id is `id` (the simulator and ProphetX's Market Data docs); `market_id` wins if
    a server sends both, since the stream's `info.id` is not always the market id (§3.2 example).
    A flat `data` list names each market's event: `sport_event_id` as the stream, or `event_id`.
    """

    selections: list[list[LevelInfo]]
    id: Identifier | None = None
    market_id: Identifier | None = None
    sequence_number: int | None = None
    sport_event_id: Identifier | None = None
    event_id: Identifier | None = None


class RestEventMarkets(msgspec.Struct, frozen=True):
    """An event's markets as an object: get_markets' `data`, or a value of get_multiple_markets'."""

    markets: list[RestMarket]
    sport_event_id: Identifier | None = None
    event_id: Identifier | None = None


class RestMarketsResponse(msgspec.Struct, frozen=True):
    data: msgspec.Raw = msgspec.Raw()


# ---- decoding -------------------------------------------------------------------------------

T = TypeVar("T")

_frame_decoder = msgspec.json.Decoder(PusherFrame)
_envelope_decoder = msgspec.json.Decoder(Envelope)
_wire_envelope_decoder = msgspec.json.Decoder(WireEnvelope)


def _decode(decoder: msgspec.json.Decoder[T], data: str | bytes, layer: str) -> T:
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        # msgspec names the path and expected type, never the offending value.
        raise LayerError(f"{layer}: unexpected shape: {exc}") from None
    except msgspec.DecodeError:
        raise LayerError(f"{layer}: not JSON") from None
    except RecursionError:  # msgspec stops at Python's recursion limit
        raise LayerError(f"{layer}: JSON nested too deeply") from None


def _convert(data: dict[str, Any], kind: type[T], layer: str) -> T:
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        raise LayerError(f"{layer}: unexpected shape: {exc}") from None


def decode_frame(text: str) -> PusherFrame:
    try:
        return _frame_decoder.decode(text)
    except (msgspec.DecodeError, RecursionError):
        return _decode(_frame_decoder, text, "pusher frame")  # again, to name the failure


def decode_data(frame: PusherFrame, kind: type[T], decoder: msgspec.json.Decoder[T], layer: str) -> T:
    """The frame's `data`, whether the JSON string Pusher specifies or an already nested object."""
    if isinstance(frame.data, str):
        return _decode(decoder, frame.data, layer)
    if isinstance(frame.data, dict):
        return _convert(frame.data, kind, layer)
    raise LayerError(f"{layer}: missing data")


def decode_envelope(frame: PusherFrame) -> Envelope | WireEnvelope:
    if isinstance(frame.data, str):
        try:
            return _wire_envelope_decoder.decode(frame.data)
        except (msgspec.DecodeError, RecursionError):
            pass  # malformed, or base64 only binascii takes: the strict decode below says which
    return decode_data(frame, Envelope, _envelope_decoder, "envelope")


def decode_payload(envelope: Envelope | WireEnvelope, decoder: msgspec.json.Decoder[T]) -> T:
    payload = envelope.payload
    if isinstance(payload, str):
        try:
            payload = binascii.a2b_base64(payload, strict_mode=True)
        except binascii.Error:
            raise LayerError("payload: not valid base64") from None
    try:
        return decoder.decode(payload)
    except (msgspec.DecodeError, RecursionError):
        return _decode(decoder, payload, f"{envelope.change_type} payload")  # again, to name the failure


def decode_json(decoder: msgspec.json.Decoder[T], data: str | bytes, layer: str) -> T:
    return _decode(decoder, data, layer)


_rest_wrapper_decoder = msgspec.json.Decoder(RestOrderWrapper)
_rest_info_decoder = msgspec.json.Decoder(OrderInfo)


def decode_rest_order(body: str) -> tuple[OrderInfo, object]:
    """The order of a get_order answer, and the answer's `timestamp` (undocumented: any value)."""
    wrapper = _decode(_rest_wrapper_decoder, body, "body")
    timestamp = wrapper.timestamp
    info_text: bytes | str = body
    holder = wrapper
    if wrapper.data:
        holder = _decode(_rest_wrapper_decoder, bytes(wrapper.data), "data")
        info_text = bytes(wrapper.data)
        timestamp = timestamp if timestamp is not None else holder.timestamp
    for nested in (holder.info, holder.wager, holder.order):
        if nested:
            info_text = bytes(nested)
            break
    return _decode(_rest_info_decoder, info_text, "order info"), timestamp


_markets_response_decoder = msgspec.json.Decoder(RestMarketsResponse)
# `data` keyed by event id (get_multiple_markets), an event's object (get_markets) or a flat list.
_markets_data_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw] | list[RestMarket])
_event_markets_decoder = msgspec.json.Decoder(list[RestMarket] | RestEventMarkets)
_event_object_decoder = msgspec.json.Decoder(RestEventMarkets)
_EVENT_ID = re.compile(r"[0-9]{1,19}")  # as every ProphetX event id seen
_EVENT_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,48}")


def decode_rest_markets(body: str, event_id: str | None) -> list[BookPayload]:
    """A markets answer as the market_selections payloads it amounts to, in the venue's order.

    `event_id` is the event a get_markets call asked about, for an answer that does not name it.
    """
    response = _decode(_markets_response_decoder, body, "body")
    if not response.data:
        raise LayerError("body: no data")
    raw = bytes(response.data)
    data = _decode(_markets_data_decoder, raw, "data")
    if isinstance(data, list):
        return _books(data, None, event_id, "data")
    if "markets" in data:
        event = _decode(_event_object_decoder, raw, "data")
        return _books(event.markets, _first(event.sport_event_id, event.event_id), event_id, "data")
    books: list[BookPayload] = []
    for key, value in data.items():
        if not _EVENT_ID.fullmatch(key) and bytes(value).lstrip()[:1] not in (b"[", b"{"):
            continue  # a scalar beside the events is metadata (v4 answers carry `last_synced_at`)
        if not _EVENT_KEY.fullmatch(key):
            raise LayerError("data: a key that is not an event id")
        layer = f"event {key}"
        markets = _decode(_event_markets_decoder, bytes(value), layer)
        if isinstance(markets, RestEventMarkets):
            markets = markets.markets
        books.extend(_books(markets, key, None, layer))
    return books


def _books(markets: list[RestMarket], event: Identifier | None, asked: str | None, layer: str) -> list[BookPayload]:
    books: list[BookPayload] = []
    for index, market in enumerate(markets):
        sport_event_id = _first(event, market.sport_event_id, market.event_id, asked)
        if sport_event_id is None:
            raise LayerError(f"{layer}: market {index} names no event")
        market_id = _first(market.market_id, market.id)
        if market_id is None:
            raise LayerError(f"{layer}: market {index} has no id")
        books.append(BookPayload(sport_event_id, market_id, BookInfo(market.selections, market.sequence_number)))
    return books


def _first(*candidates: Identifier | None) -> Identifier | None:
    return next((c for c in candidates if c is not None), None)
