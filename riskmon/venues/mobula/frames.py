"""Wire shapes of the Mobula Perp Events stream (protocols.md §2) and the exact parsers for its values.

Every Struct tolerates unknown keys: the data-model page is only partly known ([?] §2.3) and the
exchanges behind the stream (Gains, Lighter) name the same things differently, so every field the
codec reads is optional here and the codec decides what a given event type cannot do without.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

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


class Envelope(msgspec.Struct, frozen=True):
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


class TradeInfo(msgspec.Struct, frozen=True):
    long: bool | None = None


class Extra(msgspec.Struct, frozen=True):
    open: bool | None = None
    long: bool | None = None  # TRADE_STORED puts the direction here rather than under `trade`
    cancelReason: int | str | None = None
    trade: TradeInfo | None = None


class PerpEvent(msgspec.Struct, frozen=True):
    """`data` of a push. Gains names (traderAddress, baseAmountRaw, priceUSD/priceQuote) and the
    Lighter names of the multi-events page (account, size, price) are both accepted (§2.3)."""

    type: str | None = None
    market: str | None = None
    exchange: str | None = None
    chainId: str | int | None = None
    traderAddress: str | None = None
    account: str | int | None = None  # Lighter: may be a numeric account index
    tradeId: str | int | None = None
    transactionHash: str | None = None
    blockNumber: int | str | None = None
    priceUSD: Decimal | None = None
    priceQuote: Decimal | None = None
    price: Decimal | None = None
    baseAmountRaw: str | int | None = None
    size: Decimal | None = None
    date: str | None = None
    long: bool | None = None
    extra: Extra | None = None


envelope_decoder = msgspec.json.Decoder(Envelope)
event_decoder = msgspec.json.Decoder(PerpEvent)
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


def finite(value: Decimal, name: str) -> Decimal:
    if not value.is_finite():
        raise BadValue(f"{name} is not a finite number")
    return value


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
