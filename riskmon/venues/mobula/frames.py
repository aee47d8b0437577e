"""Wire shapes of the Mobula Perp Events stream (protocols.md §2), the exact parsers for its values,
and what one event's values say: its family, its direction, its dedupe key (§2.4).

Every Struct tolerates unknown keys: the data-model page is only partly known ([?] §2.3) and the
exchanges behind the stream (Gains, Lighter) name the same things differently, so every field the
codec reads is optional here and the codec decides what a given event type cannot do without.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from riskmon.events import Side
from riskmon.venues.codec_support import BoundedMemo

FILL_TYPES = frozenset({"MARKET_BUY", "MARKET_SELL", "LIMIT_BUY", "LIMIT_SELL", "TAKE_PROFIT", "STOP_LOSS"})
LIQUIDATION_TYPES = frozenset({"LIQUIDATION_LONG", "LIQUIDATION_SHORT", "LIQUIDATION"})
AMEND_TYPES = frozenset(
    {
        "TRADE_STORED",
        "UPDATE_TP",
        "UPDATE_SL",
        "POSITION_SIZE_INCREASE_EXECUTED",
        "POSITION_SIZE_DECREASE_EXECUTED",
        "LEVERAGE_UPDATE_EXECUTED",
        "LEVRAGE_UPDATE_EXECUTED",  # the data-model page once spelled it so (§2.3): accept both
    }
)
CANCEL_TYPES = frozenset({"MARKET_OPEN_CANCELED", "MARKET_CLOSE_CANCELED"})
KNOWN_TYPES = FILL_TYPES | LIQUIDATION_TYPES | AMEND_TYPES | CANCEL_TYPES

BASE_DECIMALS = 18  # baseAmountRaw is wei-style: an integer of 10**-18 base units (§2.3)


class Envelope(msgspec.Struct, frozen=True, gc=False):
    """Any frame: a push (`data`), a control answer (`event`), or an error in one of several shapes."""

    data: msgspec.Raw = msgspec.Raw()  # decoded on its own, so a bad event names its own fields
    event: str | None = None
    type: str | None = None
    chainId: str | int | None = None
    subscriptionId: str | int | None = None
    # The error frame's shape is not documented: take the text from whichever key carries it.
    message: Any = None
    error: Any = None
    reason: Any = None


class TradeInfo(msgspec.Struct, frozen=True, gc=False):
    long: bool | None = None


class Extra(msgspec.Struct, frozen=True, gc=False):
    open: bool | None = None
    long: bool | None = None  # TRADE_STORED puts the direction here rather than under `trade`
    cancelReason: int | str | None = None
    trade: TradeInfo | None = None


class TradeFacts(msgspec.Struct, frozen=True, gc=False):
    """What every push is read for: whose event it is and, for an execution, the market's trade price.

    Nearly every frame is another trader's, and all riskmon takes from it is that mark: a frame is
    first decoded this far only (unknown keys are skipped unbuilt), and decoded whole as a PerpEvent
    only when it is a desk's or this first pass refuses it. `priceQuote` stays raw JSON: it is read
    only when `priceUSD` is missing (read_price_quote).
    """

    type: str | None = None
    market: str | None = None
    traderAddress: str | None = None
    account: str | int | None = None  # Lighter: may be a numeric account index
    priceUSD: Decimal | None = None
    priceQuote: msgspec.Raw = msgspec.Raw()
    price: Decimal | None = None
    baseAmountRaw: str | int | None = None
    size: Decimal | None = None
    date: str | None = None


class PerpEvent(TradeFacts, frozen=True, gc=False):
    """`data` of a push. Gains names (traderAddress, baseAmountRaw, priceUSD/priceQuote) and the
    Lighter names of the multi-events page (account, size, price) are both accepted (§2.3)."""

    exchange: str | None = None
    chainId: str | int | None = None
    tradeId: str | int | None = None
    transactionHash: str | None = None
    blockNumber: int | str | None = None
    long: bool | None = None
    extra: Extra | None = None


class TradeFactsFrame(msgspec.Struct, frozen=True, gc=False):
    """The first pass over any frame: `data` is UNSET on a control frame (decoded again as an Envelope)."""

    data: TradeFacts | msgspec.UnsetType = msgspec.UNSET


facts_decoder = msgspec.json.Decoder(TradeFactsFrame)
envelope_decoder = msgspec.json.Decoder(Envelope)
event_decoder = msgspec.json.Decoder(PerpEvent)
_price_quote_decoder: msgspec.json.Decoder[Decimal | None] = msgspec.json.Decoder(Decimal | None)
# Untyped, for PositionAmended details: JSON reals become exact Decimals, never floats.
loose_decoder = msgspec.json.Decoder(float_hook=Decimal)


class BadValue(ValueError):
    """A field holds something the codec cannot use; the message names the field, never its value."""


_RAW_AMOUNT = re.compile(r"[0-9]{1,78}")  # a uint256 in decimal has at most 78 digits
_BLOCK = re.compile(r"[0-9]{1,20}")


def raw_base_amount(raw: str | int) -> Decimal:
    """baseAmountRaw → base units, exactly: the string constructor never rounds, scaleb would."""
    text = str(raw)
    if not _RAW_AMOUNT.fullmatch(text):
        raise BadValue("baseAmountRaw is not a non-negative integer")
    return Decimal(f"{text}e-{BASE_DECIMALS}")


def read_price_quote(facts: TradeFacts) -> Decimal | None:
    """`priceQuote`; msgspec.ValidationError with the text a whole-event decode gives."""
    if not facts.priceQuote:
        return None
    try:
        return _price_quote_decoder.decode(facts.priceQuote)
    except msgspec.ValidationError as exc:
        raise msgspec.ValidationError(f"{exc} - at `$.priceQuote`") from None


def block_number(value: int | str | None) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        if value < 0:
            raise BadValue("blockNumber is negative")
        return value
    if not _BLOCK.fullmatch(value):
        raise BadValue("blockNumber is not an integer")
    return int(value)


def iso_seconds(date: str | None) -> float | None:
    """ISO-8601 (`2026-06-08T00:18:34.613Z`) → unix seconds; a date without offset is taken as UTC."""
    if date is None:
        return None
    try:
        parsed = datetime.fromisoformat(date)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    except (ValueError, OverflowError):
        raise BadValue("date is not ISO-8601") from None


# Fields PositionAmended.details leaves out: the event already carries them, or they only identify.
_IDENTITY_FIELDS = frozenset(
    {"type", "market", "exchange", "chainId", "traderAddress", "account", "tradeId", "transactionHash", "date"}
)


def amendment_details(data: bytes) -> tuple[tuple[str, str], ...]:
    """The scalar fields of an amendment, flattened from data, data.extra and data.extra.trade.

    The full `extra` schemas are unknown ([?] §2.3), so rather than a fixed list every scalar is kept;
    when a name repeats, the outer level wins. Nested objects (Lighter position blocks) are skipped.
    """
    try:
        loose = loose_decoder.decode(data)
    except msgspec.DecodeError:
        return ()
    found: dict[str, str] = {}
    levels: list[Any] = [loose]
    extra = loose.get("extra") if isinstance(loose, dict) else None
    if isinstance(extra, dict):
        levels.append(extra)
        levels.append(extra.get("trade"))
    for level in levels:
        if not isinstance(level, dict):
            continue
        for name, value in level.items():
            if name in _IDENTITY_FIELDS or name in found or value is None:
                continue
            if isinstance(value, str | int | Decimal | bool):
                found[name] = str(value)
    return tuple(sorted(found.items()))


# The four families of event type: what a frame can become. Executions (a trade price) come first,
# so `family < FAMILY_AMEND` is an execution.
FAMILY_FILL, FAMILY_LIQUIDATION, FAMILY_AMEND, FAMILY_CANCEL = range(4)
FAMILIES: dict[str, int] = {
    **dict.fromkeys(FILL_TYPES, FAMILY_FILL),
    **dict.fromkeys(LIQUIDATION_TYPES, FAMILY_LIQUIDATION),
    **dict.fromkeys(AMEND_TYPES, FAMILY_AMEND),
    **dict.fromkeys(CANCEL_TYPES, FAMILY_CANCEL),
}
assert FAMILIES.keys() == KNOWN_TYPES

# venue_ts, price field, price, quantity field, quantity: see trade_values
TradeValues = tuple[float | None, str, Decimal | None, str, Decimal | None]

# Trade sizes repeat across traders: each distinct baseAmountRaw is parsed once.
_base_amount: BoundedMemo[str | int, Decimal] = BoundedMemo(raw_base_amount, 16_384)


def trade_values(facts: TradeFacts) -> TradeValues:
    """The values a mark and a desk's event share, checked in one call: it runs for nearly every frame.

    Raises BadValue naming the field, or msgspec.ValidationError for a priceQuote of the wrong type.
    """
    venue_ts = iso_seconds(facts.date)
    price: Decimal | None
    if (price := facts.priceUSD) is not None:
        price_field = "priceUSD"
    elif (price := read_price_quote(facts)) is not None:
        price_field = "priceQuote"
    else:
        price_field, price = "price", facts.price
    if price is not None and not price.is_finite():
        raise BadValue(f"{price_field} is not a finite number")
    quantity: Decimal | None
    if (raw := facts.baseAmountRaw) is not None:
        quantity_field, quantity = "baseAmountRaw", _base_amount[raw]
    else:
        quantity_field, quantity = "size", facts.size
        if quantity is not None and not quantity.is_finite():
            raise BadValue("size is not a finite number")
    return venue_ts, price_field, price, quantity_field, quantity


class ParsedEvent:
    """The values of one desk's perp event, parsed and checked once: BadValue or
    msgspec.ValidationError when one is unusable.

    Only a desk's event gets one (other traders' executions are only marks); the dedupe key is
    built on first use.
    """

    __slots__ = (
        "_key",
        "chain",
        "event",
        "kind",
        "market",
        "price",
        "price_field",
        "quantity",
        "quantity_field",
        "sequence",
        "venue_ts",
        "wallet",
    )

    def __init__(
        self,
        event: PerpEvent,
        kind: str,
        market: str,
        wallet: str,
        chain: str | int | None,
        values: TradeValues,
    ) -> None:
        self.event = event
        self.kind = kind
        self.market = market
        self.wallet = wallet
        self.chain = chain  # the envelope's, when the event names none
        self.venue_ts, self.price_field, self.price, self.quantity_field, self.quantity = values
        self.sequence = block_number(event.blockNumber)
        read_price_quote(event)  # a desk's event is checked whole, even a field it does not read
        self._key: str | None = None

    @property
    def stream(self) -> str:
        event = self.event
        chain = event.chainId if event.chainId is not None else self.chain
        return event.exchange or (str(chain) if chain is not None else "")

    @property
    def key(self) -> str:
        if self._key is None:
            self._key = _dedupe_key(self.event, self.kind, self.wallet, self)
        return self._key


def _dedupe_key(event: PerpEvent, kind: str, wallet: str, p: ParsedEvent) -> str:
    trade_id = "" if event.tradeId is None else str(event.tradeId)
    tx = event.transactionHash
    if not tx:
        # [I] Lighter frames may lack a transaction hash; without a stand-in, two liquidations of one
        # wallet would share a key and the engine would drop the second. What the frame says about the
        # trade is stable across a replay, so a digest of it keeps repeats identical.
        facts = f"{p.market}|{event.date}|{p.sequence}|{p.quantity}|{p.price}"
        tx = "~" + hashlib.blake2b(facts.encode(), digest_size=10).hexdigest()
    return f"{tx}:{kind}:{wallet}:{trade_id}"


def closing_side(p: ParsedEvent) -> Side:
    """The side of a trade that closes the position: SELL closes a long, BUY a short."""
    extra = p.event.extra
    long = extra.trade.long if extra is not None and extra.trade is not None else None
    if long is None:
        long = p.event.long
    if long is None and extra is not None:
        long = extra.long  # TRADE_STORED's place for it; accepted in case TP/SL frames use it too
    if long is None:
        raise BadValue("direction unknown (no long flag)")
    return Side.SELL if long else Side.BUY


def fill_side(p: ParsedEvent) -> Side:
    extra = p.event.extra
    long = extra.trade.long if extra is not None and extra.trade is not None else None
    opening = extra.open if extra is not None else None
    if long is not None and opening is not None:
        # Opening a long or closing a short adds to the position; the other two take from it.
        return Side.BUY if long == opening else Side.SELL
    if p.kind in ("MARKET_BUY", "LIMIT_BUY"):
        return Side.BUY
    if p.kind in ("MARKET_SELL", "LIMIT_SELL"):
        return Side.SELL
    return closing_side(p)  # TAKE_PROFIT / STOP_LOSS close a position: never guessed
