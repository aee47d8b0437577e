"""Market model, unit conversions and subscription parsing for the Phoenix simulator.

Written from protocols.md §5 only (never from the adapter), so the two check each other.
Units follow §5.5: quote lots have 6 decimals; ``price_usd = ticks * tick_size *
10**baseLotsDecimals / 1e6`` and ``base_units = lots / 10**baseLotsDecimals``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = [
    "MARKET_STATUSES",
    "QUOTE_LOT_DECIMALS",
    "JsonObj",
    "SimMarket",
    "SubscriptionKey",
    "SubscriptionRejectedError",
    "UnknownChannelError",
    "base_lots_from_units",
    "base_units",
    "decimal_str",
    "dumps",
    "market_json",
    "price_usd",
    "quote_lots",
    "quote_usd",
    "subscription_key",
]

JsonObj = dict[str, Any]
# ("allMids",), ("trades", "SOL"), ("orderbook", "SOL", bypass), ("traderState", authority, pda),
# ("exchange",): what a client is subscribed to, independent of how it spelled the request.
SubscriptionKey = tuple[str | int | bool, ...]

QUOTE_LOT_DECIMALS = 6
MARKET_STATUSES = frozenset({"uninitialized", "active", "postOnly", "paused", "closed", "tombstoned"})
_SYMBOL_CHANNELS = frozenset({"fundingRate", "orderbook", "market", "trades"})
# Real channels the simulator does not produce: refused politely rather than as unknown,
# so an adapter never mistakes them for a typo.
_UNSIMULATED_CHANNELS = frozenset({"candles"})


@dataclass(frozen=True)
class SimMarket:
    symbol: str  # "SOL": the wire symbol, without the "-PERP" suffix used in trade history
    base_lots_decimals: int  # i8 on chain, may be negative
    tick_size: int  # tickSizeInQuoteLotsPerBaseLot
    taker_fee_micro: int = 200
    maker_fee_micro: int = 0
    status: str = "active"

    def __post_init__(self) -> None:
        if not -128 <= self.base_lots_decimals <= 127:
            raise ValueError(f"{self.symbol}: baseLotsDecimals {self.base_lots_decimals} is not an i8")
        if self.tick_size <= 0:
            raise ValueError(f"{self.symbol}: tick size must be positive")
        if self.status not in MARKET_STATUSES:
            raise ValueError(f"{self.symbol}: unknown market status {self.status!r}")


class SubscriptionRejectedError(Exception):
    """Answered with ``subscriptionError`` (the channel exists, the request is unusable)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UnknownChannelError(Exception):
    """Answered with the channel-level ``error`` frame."""


# ---- units (§5.5) -------------------------------------------------------------------


def price_usd(ticks: int, tick_size: int, base_lots_decimals: int) -> Decimal:
    return Decimal(ticks * tick_size).scaleb(base_lots_decimals - QUOTE_LOT_DECIMALS)


def base_units(lots: int, base_lots_decimals: int) -> Decimal:
    return Decimal(lots).scaleb(-base_lots_decimals)


def base_lots_from_units(units: Decimal | str, base_lots_decimals: int) -> int:
    lots = Decimal(units).scaleb(base_lots_decimals)
    if lots != lots.to_integral_value():
        raise ValueError(f"{units} is not a whole number of lots at baseLotsDecimals {base_lots_decimals}")
    return int(lots)


def quote_lots(base_lots: int, ticks: int, tick_size: int) -> int:
    # tick_size is quote lots per base lot per tick, so no decimals enter here.
    return base_lots * ticks * tick_size


def quote_usd(lots: int) -> Decimal:
    return Decimal(lots).scaleb(-QUOTE_LOT_DECIMALS)


def decimal_str(value: Decimal) -> str:
    # Plain positional notation ("3500", "0.1234"), never "3.5E+3", as the venue's
    # human-readable decimal strings are.
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def dumps(obj: Mapping[str, Any]) -> str:
    # Compact like serde_json; dict order is the field order emitted.
    return json.dumps(obj, separators=(",", ":"))


def market_json(m: SimMarket) -> JsonObj:
    # [I] exchange-snapshot market shape fixed by the brief; protocols.md names only the
    # fields. The tick size is a u64, hence a string like every other JsSafeU64.
    return {
        "symbol": m.symbol,
        "marketStatus": m.status,
        "baseLotsDecimals": m.base_lots_decimals,
        "tickSizeInQuoteLotsPerBaseLot": str(m.tick_size),
        "takerFeeMicro": m.taker_fee_micro,
        "makerFeeMicro": m.maker_fee_micro,
    }


# ---- subscriptions (§5.2) -------------------------------------------------------------


def _reject(message: str) -> SubscriptionRejectedError:
    return SubscriptionRejectedError("invalid_subscription", message)


def _symbol(sub: Mapping[str, Any], markets: Mapping[str, SimMarket]) -> str:
    symbol = sub.get("symbol")
    if not isinstance(symbol, str):
        raise _reject("missing field symbol")
    market = markets.get(symbol)
    if market is None:
        raise _reject(f"unknown symbol {symbol}")
    if market.status == "tombstoned":
        raise _reject(f"market {symbol} is tombstoned")
    return symbol


def subscription_key(sub: object, *, markets: Mapping[str, SimMarket], authorities: Collection[str]) -> SubscriptionKey:
    """Validate a ``subscription`` object; raise one of the two errors above if unusable."""
    if not isinstance(sub, dict):
        raise UnknownChannelError("subscription must be an object")
    channel = sub.get("channel")
    if channel == "allMids":
        return ("allMids",)
    if channel in _SYMBOL_CHANNELS:
        symbol = _symbol(sub, markets)
        if channel != "orderbook":
            return (channel, symbol)
        bypass = sub.get("bypassExecutionBand", False)
        if not isinstance(bypass, bool):
            raise _reject("bypassExecutionBand must be a boolean")
        return (channel, symbol, bypass)
    if channel == "traderState":
        authority = sub.get("authority")
        if not isinstance(authority, str):
            raise _reject("missing field authority")
        if authority not in authorities:
            raise _reject(f"unknown authority {authority}")
        pda = sub.get("traderPdaIndex")
        if isinstance(pda, bool) or not isinstance(pda, int):
            raise _reject("missing field traderPdaIndex")
        if not 0 <= pda <= 255:
            raise _reject("traderPdaIndex must be a u8")
        return ("traderState", authority, pda)
    if channel == "exchange":
        # [I] an absent encoding means the real default, base64+zstd, which is not simulated.
        encoding = sub.get("encoding", "base64+zstd")
        if encoding != "json":
            raise SubscriptionRejectedError("unsupported_encoding", f"encoding {encoding} is not supported")
        return ("exchange",)
    if channel in _UNSIMULATED_CHANNELS:
        raise SubscriptionRejectedError("unsupported_channel", f"{channel} is not simulated")
    raise UnknownChannelError("unknown channel")
