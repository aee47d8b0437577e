"""ProphetX REST answer shapes (protocols.md §3.1, §3.4) and their decode into the stream's types.

Channel registration says which channels the key may bind; get_order and the markets reads answer
with an order or books that are read as the private channel's OrderInfo and market_selections'
BookPayload, so a REST read and a stream frame become the same events. Failures raise LayerError
naming the part of the body, never its content.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from riskmon.venues.prophetx.frames import (
    BookInfo,
    BookPayload,
    Identifier,
    LayerError,
    LevelInfo,
    OrderInfo,
    decode_json,
)

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


# ---- orders (get_order, §3.2 field list) ---------------------------------------------------


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

_rest_wrapper_decoder = msgspec.json.Decoder(RestOrderWrapper)
_rest_info_decoder = msgspec.json.Decoder(OrderInfo)


def decode_rest_order(body: str) -> tuple[OrderInfo, object]:
    """The order of a get_order answer, and the answer's `timestamp` (undocumented: any value)."""
    wrapper = decode_json(_rest_wrapper_decoder, body, "body")
    timestamp = wrapper.timestamp
    info_text: bytes | str = body
    holder = wrapper
    if wrapper.data:
        holder = decode_json(_rest_wrapper_decoder, bytes(wrapper.data), "data")
        info_text = bytes(wrapper.data)
        timestamp = timestamp if timestamp is not None else holder.timestamp
    for nested in (holder.info, holder.wager, holder.order):
        if nested:
            info_text = bytes(nested)
            break
    return decode_json(_rest_info_decoder, info_text, "order info"), timestamp


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
    response = decode_json(_markets_response_decoder, body, "body")
    if not response.data:
        raise LayerError("body: no data")
    raw = bytes(response.data)
    data = decode_json(_markets_data_decoder, raw, "data")
    if isinstance(data, list):
        return _books(data, None, event_id, "data")
    if "markets" in data:
        event = decode_json(_event_object_decoder, raw, "data")
        return _books(event.markets, _first(event.sport_event_id, event.event_id), event_id, "data")
    books: list[BookPayload] = []
    for key, value in data.items():
        if not _EVENT_ID.fullmatch(key) and bytes(value).lstrip()[:1] not in (b"[", b"{"):
            continue  # a scalar beside the events is metadata (v4 answers carry `last_synced_at`)
        if not _EVENT_KEY.fullmatch(key):
            raise LayerError("data: a key that is not an event id")
        layer = f"event {key}"
        markets = decode_json(_event_markets_decoder, bytes(value), layer)
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
