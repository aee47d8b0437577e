"""Totalis post-trade WebSocket and `GET /mm/quotes` vocabulary and shapes (protocols.md §4.2-§4.4),
and the pure helpers that turn their fields into normalized values: timestamps, worst-case loss, legs.

Every struct tolerates unknown keys and makes every field optional: §4.2 shows field names only, the
inner shapes of `quote` and `exposure_legs[]` are [I] guesses (the docs' example was truncated), and
the codec decides which missing field makes a frame unusable.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, DecimalException

import msgspec

from riskmon.events import QuoteLeg, QuoteStatus, RfqPositionStatus

QUOTE_EVENTS = {
    "quote:accepted": QuoteStatus.ACCEPTED,
    "mm_quote:accepted": QuoteStatus.ACCEPTED,
    "quote:confirmed": QuoteStatus.CONFIRMED,
    "quote:executed": QuoteStatus.EXECUTED,
    "quote:expired": QuoteStatus.EXPIRED,
    "quote:rejected": QuoteStatus.REJECTED,
    "quote:withdrawn": QuoteStatus.WITHDRAWN,
}
POSITION_EVENTS = {
    "position:created": RfqPositionStatus.CREATED,
    "position:settled": RfqPositionStatus.SETTLED,
    "position:cancelled": RfqPositionStatus.CANCELLED,
    "position:error": RfqPositionStatus.ERROR,
}
CONTROL_EVENTS = frozenset({"auth:success", "auth:error", "subscribed", "error", "pong"})
KNOWN_EVENTS = frozenset(QUOTE_EVENTS) | frozenset(POSITION_EVENTS) | CONTROL_EVENTS

# Quotes in these states hold exposure (reserved or converted): their RFQ stays followed.
LIVE_QUOTE = frozenset({QuoteStatus.ACCEPTED, QuoteStatus.CONFIRMED, QuoteStatus.EXECUTED})
CLOSED_POSITION = frozenset({RfqPositionStatus.SETTLED, RfqPositionStatus.CANCELLED})

# [I] GET /mm/quotes statuses: the quote lifecycle of §4.2 plus the RFQ's terminal words of §4.3,
# which mean the quote executed and its position then closed.
RECORD_STATUS: dict[str, tuple[QuoteStatus, RfqPositionStatus | None]] = {
    "accepted": (QuoteStatus.ACCEPTED, None),
    "confirmed": (QuoteStatus.CONFIRMED, None),
    "executed": (QuoteStatus.EXECUTED, None),
    "expired": (QuoteStatus.EXPIRED, None),
    "rejected": (QuoteStatus.REJECTED, None),
    "withdrawn": (QuoteStatus.WITHDRAWN, None),
    "settled": (QuoteStatus.EXECUTED, RfqPositionStatus.SETTLED),
    "cancelled": (QuoteStatus.EXECUTED, RfqPositionStatus.CANCELLED),
    "canceled": (QuoteStatus.EXECUTED, RfqPositionStatus.CANCELLED),
    # [I] a bought-back position (webhook-only event in §4.4) is closed: nothing left at risk.
    "bought_back": (QuoteStatus.EXECUTED, RfqPositionStatus.SETTLED),
}
# [I] A quote listed before anyone accepted it carries no exposure yet: not ours to report.
PRE_TRADE_STATUSES = frozenset({"active", "open", "pending", "quoted", "submitted", "replaced", "superseded"})


class Header(msgspec.Struct, frozen=True):
    # [?] §4.2: the event name may sit under `type` or `event`; the payload under `data` or at the
    # top level. Both shapes are accepted.
    type: str | None = None
    event: str | None = None
    channel: str | None = None
    message: str | None = None
    user_id: str | None = None


class Envelope(Header, frozen=True):
    """Any frame: the payload kept raw, to be read from `data` or from the top level."""

    data: msgspec.Raw = msgspec.Raw()


class ExposureLeg(msgspec.Struct, frozen=True):
    # [I] §4.2: per-leg `{leg_id, venue, event_ticker, market_ticker, side, ...exposure amount}`.
    leg_id: str | None = None
    venue: str | None = None
    market_ticker: str | None = None
    side: str | None = None
    exposure_usd: Decimal | None = None
    exposure: Decimal | None = None  # [I] the amount's name is unknown: both plausible spellings


class QuoteTerms(msgspec.Struct, frozen=True):
    # [I] §4.1 submit-quote answer: `id, payout_odds, user_cost, total_payout, mm_cost, valid_until`.
    id: str | None = None
    payout_odds: Decimal | None = None
    user_cost: Decimal | None = None
    total_payout: Decimal | None = None
    mm_cost: Decimal | None = None


class ErrorDetail(msgspec.Struct, frozen=True):
    code: str | None = None
    message: str | None = None


class QuoteEvent(msgspec.Struct, frozen=True):
    """Payload of every `quote:*`, `mm_quote:*` and `position:*` event: the union of their fields."""

    quote_id: str | None = None
    rfq_id: str | None = None
    # Timestamps are typed loosely on purpose: ISO strings and epoch numbers both occur ([I] §4.2).
    confirmation_deadline: object = None
    accepted_at: object = None
    timestamp: object = None
    execution_id: str | None = None
    reason: str | None = None
    quote: QuoteTerms | None = None
    exposure_legs: list[ExposureLeg] | None = None
    # [I] the quote's economics may also arrive flat, as in the REST quote object.
    payout_odds: Decimal | None = None
    user_cost: Decimal | None = None
    total_payout: Decimal | None = None
    mm_cost: Decimal | None = None
    position_pda: str | None = None
    outcome: str | int | float | bool | None = None
    error: str | ErrorDetail | None = None
    # auth:success, subscribe acks and errors may carry these inside `data`. (In mm_quote:accepted
    # `user_id` is the bettor, not us: ownership comes from the channel and the auth answer.)
    user_id: str | None = None
    channel: str | None = None
    message: str | None = None


class Framed(Header, frozen=True):
    """The usual frame, a `data` object, header and payload in one decode. A frame this refuses,
    or one without `data`, is read as an Envelope, whose rules decide."""

    data: QuoteEvent | None = None


class QuoteRecord(msgspec.Struct, frozen=True):
    """[I] One quote of the `GET /mm/quotes` reconciliation answer."""

    id: str | None = None
    quote_id: str | None = None
    rfq_id: str | None = None
    status: str | None = None
    market_maker_id: str | None = None
    payout_odds: Decimal | None = None
    user_cost: Decimal | None = None
    total_payout: Decimal | None = None
    mm_cost: Decimal | None = None
    confirmation_deadline: object = None
    accepted_at: object = None
    updated_at: object = None
    execution_id: str | None = None
    reason: str | None = None
    outcome: str | int | float | bool | None = None
    position_pda: str | None = None
    exposure_legs: list[ExposureLeg] | None = None


class QuotesBody(msgspec.Struct, frozen=True):
    # [I] `{"data":{"quotes":[...]}}`; also `{"data":[...]}` and `{"quotes":[...]}`.
    data: msgspec.Raw = msgspec.Raw()
    quotes: list[msgspec.Raw] | None = None
    error: ErrorDetail | None = None


class QuotesHolder(msgspec.Struct, frozen=True):
    quotes: list[msgspec.Raw] | None = None


envelope_decoder = msgspec.json.Decoder(Envelope)
framed_decoder = msgspec.json.Decoder(Framed)
quote_event_decoder = msgspec.json.Decoder(QuoteEvent)
quote_record_decoder = msgspec.json.Decoder(QuoteRecord)
quotes_body_decoder = msgspec.json.Decoder(QuotesBody)
quotes_holder_decoder = msgspec.json.Decoder(QuotesHolder)
raw_list_decoder = msgspec.json.Decoder(list[msgspec.Raw])


class Unusable(Exception):
    """A field the codec cannot use; the message is safe to put in a FrameMalformed reason."""


def is_object(raw: msgspec.Raw) -> bool:
    return bytes(memoryview(raw)[:1]) == b"{"


def is_array(raw: msgspec.Raw) -> bool:
    return bytes(memoryview(raw)[:1]) == b"["


# Epoch numbers above this are milliseconds (1e11 s is the year 5138).
_EPOCH_MS_ABOVE = 1e11
_LATEST_SECONDS = 253402300799.0  # 9999-12-31T23:59:59Z, as far as ISO-8601 strings reach


def unix_seconds(value: object) -> float | None:
    """ISO-8601 (`Z` or an offset, with or without fractions; naive means UTC), epoch ms or epoch s.

    None when absent; raises Unusable when present but unreadable.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            if text.isascii() and text.isdigit():
                return _epoch(int(text))
            parsed = datetime.fromisoformat(text)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.timestamp()
        except (ValueError, OverflowError):
            raise Unusable("not an ISO-8601 or epoch timestamp") from None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _epoch(value)
    raise Unusable("not an ISO-8601 or epoch timestamp")


def _epoch(value: int | float) -> float:
    try:
        seconds = float(value)
    except OverflowError:
        raise Unusable("epoch timestamp out of range") from None
    if seconds > _EPOCH_MS_ABOVE:
        seconds /= 1000
    if not 0 <= seconds <= _LATEST_SECONDS:
        raise Unusable("epoch timestamp out of range")
    return seconds


def lenient_unix_seconds(value: object) -> float | None:
    """For timestamps that only stamp an event: an unreadable one must not drop the lifecycle fact."""
    try:
        return unix_seconds(value)
    except Unusable:
        return None


def _finite(value: Decimal | None, name: str) -> Decimal | None:
    if value is not None and not value.is_finite():
        raise Unusable(f"{name} is not a finite amount")
    return value


def legs_of(exposure_legs: list[ExposureLeg] | None) -> tuple[QuoteLeg, ...]:
    if not exposure_legs:
        return ()
    legs = []
    for leg in exposure_legs:
        exposure = leg.exposure_usd if leg.exposure_usd is not None else leg.exposure
        if exposure is not None and not exposure.is_finite():
            raise Unusable("exposure_usd is not a finite amount")
        # Missing names become "" rather than dropping the quote: its reservation matters more.
        legs.append(QuoteLeg(leg.venue or "", leg.market_ticker or leg.leg_id or "", leg.side or "", exposure))
    return tuple(legs)


def worst_case_loss(
    sources: tuple[QuoteTerms | QuoteEvent | QuoteRecord | None, ...], legs: tuple[QuoteLeg, ...]
) -> Decimal | None:
    """What the market maker pays if every leg hits (§4.3: mm_cost = total_payout - user_cost).

    The first source that states it wins; the sum of per-leg exposures is the last resort and is
    used only when every leg states one (a partial sum would understate the risk).
    """
    try:
        for source in sources:
            if source is None:
                continue
            mm_cost = _finite(source.mm_cost, "mm_cost")
            user_cost = _finite(source.user_cost, "user_cost")
            total_payout = _finite(source.total_payout, "total_payout")
            payout_odds = _finite(source.payout_odds, "payout_odds")
            if mm_cost is not None:
                return mm_cost
            if total_payout is not None and user_cost is not None:
                return total_payout - user_cost
            if payout_odds is not None and user_cost is not None:
                return user_cost * payout_odds - user_cost
        if legs and all(leg.exposure_usd is not None for leg in legs):
            return sum((leg.exposure_usd for leg in legs if leg.exposure_usd is not None), Decimal(0))
    except DecimalException:
        raise Unusable("amount out of range") from None
    return None


def event_payload(envelope: Envelope, text: str) -> QuoteEvent:
    # [?] §4.2: fields under `data`, or at the top level when there is no `data` object.
    source: msgspec.Raw | str = envelope.data if is_object(envelope.data) else text
    try:
        return quote_event_decoder.decode(source)
    except msgspec.ValidationError as exc:
        raise Unusable(f"unexpected payload shape: {exc}") from None


def channel_id(envelope: Header, payload: QuoteEvent, prefix: str) -> str | None:
    channel = envelope.channel or payload.channel
    if channel and channel.startswith(prefix) and len(channel) > len(prefix):
        return channel[len(prefix) :]
    return None


def outcome_text(value: str | float | bool | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def error_text(error: str | ErrorDetail | None) -> str | None:
    if error is None or isinstance(error, str):
        return error
    return error.message or error.code


def encode_frame(fields: dict[str, str]) -> str:
    return msgspec.json.encode(fields).decode()
