"""ProphetX WebSocket wire shapes (protocols.md §3) and the triple decode of its event frames.

A Pusher frame's `data` is a JSON string holding an envelope whose `payload` is base64 of the
JSON that matters (§3.2). Each layer that fails raises `LayerError` naming the layer, so a
dropped frame says where it broke without echoing its content. The REST answers' shapes are in
rest_answers.py; they decode into the payload types defined here.
"""

from __future__ import annotations

import binascii
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


# ---- decoding -------------------------------------------------------------------------------

T = TypeVar("T")

_frame_decoder = msgspec.json.Decoder(PusherFrame)
_envelope_decoder = msgspec.json.Decoder(Envelope)
_wire_envelope_decoder = msgspec.json.Decoder(WireEnvelope)


def decode_json(decoder: msgspec.json.Decoder[T], data: str | bytes, layer: str) -> T:
    """One decode layer: msgspec's failure becomes a LayerError naming `layer`, never the data."""
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
        return decode_json(_frame_decoder, text, "pusher frame")  # again, to name the failure


def decode_data(frame: PusherFrame, kind: type[T], decoder: msgspec.json.Decoder[T], layer: str) -> T:
    """The frame's `data`, whether the JSON string Pusher specifies or an already nested object."""
    if isinstance(frame.data, str):
        return decode_json(decoder, frame.data, layer)
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
        return decode_json(decoder, payload, f"{envelope.change_type} payload")  # again, to name the failure
