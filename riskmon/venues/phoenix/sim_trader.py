"""traderState model and frames for the Phoenix simulator (protocols.md §5.3).

Written from protocols.md only. Where §5.3 is silent the shapes below are fixed by the
simulator brief and marked [I]:
- snapshot rows: ``positions`` is ``[{"symbol", "position": {...}}]`` and ``orders`` is
  ``[{"symbol", "orders": [{...}]}]``, i.e. the delta shapes without ``change``;
- every delta carries all keys (``collateral``/``spotCollaterals`` as full values, the
  row lists possibly empty), so an adapter that treats a list as a full replacement fails;
- ``virtualQuotePositionLots = -(basePositionLots * entryPriceTicks * tickSize)``: the quote
  lots paid for a long are negative;
- order sequence numbers: the counter for asks, its u64 bitwise NOT for bids (top bit set).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import base58

from riskmon.venues.phoenix.sim_frames import (
    JsonObj,
    SimMarket,
    base_units,
    decimal_str,
    price_usd,
    quote_lots,
    quote_usd,
)

__all__ = ["SimOrder", "SimPosition", "Subaccount", "TraderState", "order_sequence_for"]

_U64_MAX = 2**64 - 1
_CAPABILITIES = (
    "placeLimitOrder",
    "placeMarketOrder",
    "riskIncreasingTrade",
    "riskReducingTrade",
    "depositCollateral",
    "withdrawCollateral",
)
# A primary subaccount that has seen one deposit; new isolated subaccounts start at 0.
_PRIMARY_FIRST_SEQUENCE = 1

MarketLookup = Callable[[str], SimMarket]


def order_sequence_for(counter: int, side: str) -> int:
    return _U64_MAX ^ counter if side == "bid" else counter


@dataclass
class SimPosition:
    symbol: str
    base_lots: int
    entry_price_ticks: int
    sequence_number: int
    unsettled_funding_lots: int = 0
    accumulated_funding_lots: int = 0

    def row(self, m: SimMarket) -> JsonObj:
        return {
            "positionSequenceNumber": str(self.sequence_number),
            "basePositionLots": str(self.base_lots),
            "entryPriceTicks": str(self.entry_price_ticks),
            "entryPriceUsd": decimal_str(price_usd(self.entry_price_ticks, m.tick_size, m.base_lots_decimals)),
            "virtualQuotePositionLots": str(-quote_lots(self.base_lots, self.entry_price_ticks, m.tick_size)),
            "unsettledFundingQuoteLots": str(self.unsettled_funding_lots),
            "accumulatedFundingQuoteLots": str(self.accumulated_funding_lots),
        }


@dataclass
class SimOrder:
    symbol: str
    order_sequence_number: int
    side: str
    price_ticks: int
    size_remaining_lots: int
    initial_size_lots: int
    order_type: str = "limit"
    reduce_only: bool = False
    is_stop_loss: bool = False
    status: str = "open"

    def row(self, m: SimMarket) -> JsonObj:
        return {
            "orderSequenceNumber": str(self.order_sequence_number),
            "side": self.side,
            "orderType": self.order_type,
            "priceTicks": str(self.price_ticks),
            "priceUsd": decimal_str(price_usd(self.price_ticks, m.tick_size, m.base_lots_decimals)),
            "sizeRemainingLots": str(self.size_remaining_lots),
            "initialSizeLots": str(self.initial_size_lots),
            "reduceOnly": self.reduce_only,
            "isStopLoss": self.is_stop_loss,
            "status": self.status,
        }


@dataclass
class Subaccount:
    index: int
    sequence: int = 0
    collateral: str = "0"
    positions: dict[str, SimPosition] = field(default_factory=dict)
    orders: dict[tuple[str, int], SimOrder] = field(default_factory=dict)

    def snapshot(self, market: MarketLookup) -> JsonObj:
        by_symbol: dict[str, list[JsonObj]] = {}
        for order in self.orders.values():
            by_symbol.setdefault(order.symbol, []).append(order.row(market(order.symbol)))
        return {
            "subaccountIndex": self.index,
            "sequence": self.sequence,
            "collateral": self.collateral,
            "spotCollaterals": [],
            "positions": [{"symbol": s, "position": p.row(market(s))} for s, p in self.positions.items()],
            "orders": [{"symbol": s, "orders": rows} for s, rows in by_symbol.items()],
            "splines": [],
            "triggers": [],
        }

    def delta(self, sequence: int, **rows: list[JsonObj]) -> JsonObj:
        body: JsonObj = {
            "subaccountIndex": self.index,
            "sequence": sequence,
            "collateral": self.collateral,
            "spotCollaterals": [],
            "positions": [],
            "orders": [],
            "splines": [],
            "triggers": [],
            "tradeHistory": [],
            "orderHistory": [],
        }
        for key, value in rows.items():
            if key not in body:
                raise KeyError(f"not a delta list: {key}")
            body[key] = value
        return body


@dataclass
class TraderState:
    """One trader PDA: its subaccounts plus the counters that number its rows."""

    authority: str
    pda_index: int
    subaccounts: dict[int, Subaccount] = field(default_factory=dict)
    pending_skip: int = 0  # fault: the next delta's sequence jumps by this much
    _position_counter: int = 0
    _order_counter: int = 0
    _fill_counter: int = 0

    def __post_init__(self) -> None:
        if not self.subaccounts:
            self.subaccounts[0] = Subaccount(0, sequence=_PRIMARY_FIRST_SEQUENCE)

    def subaccount(self, index: int) -> Subaccount:
        if not 0 <= index <= 255:
            raise ValueError(f"subaccount index {index} is not a u8")
        return self.subaccounts.setdefault(index, Subaccount(index))

    def next_sequence(self, sub: Subaccount) -> int:
        step, self.pending_skip = (self.pending_skip or 1), 0
        sub.sequence += step
        return sub.sequence

    def next_position_number(self) -> int:
        self._position_counter += 1
        return self._position_counter

    def next_order_number(self, side: str) -> int:
        self._order_counter += 1
        return order_sequence_for(self._order_counter, side)

    def envelope(self, slot: int, message_type: str) -> JsonObj:
        return {
            "channel": "traderState",
            "authority": self.authority,
            "traderPdaIndex": self.pda_index,
            "slot": slot,
            "messageType": message_type,
        }

    def snapshot_frame(self, slot: int, market: MarketLookup) -> JsonObj:
        flag = {"immediate": True, "viaColdActivation": True}
        return {
            **self.envelope(slot, "snapshot"),
            # [?] version's type is undocumented; a small number is the likeliest serde shape.
            "version": 1,
            "capabilities": {
                "flags": 0,
                "state": "active",
                "capabilities": {name: dict(flag) for name in _CAPABILITIES},
            },
            "makerFeeOverrideMultiplier": 1.0,
            "takerFeeOverrideMultiplier": 1.0,
            "subaccounts": [s.snapshot(market) for _, s in sorted(self.subaccounts.items())],
        }

    def delta_frame(self, slot: int, deltas: list[JsonObj]) -> JsonObj:
        return {**self.envelope(slot, "delta"), "deltas": deltas}

    def trade_row(
        self,
        m: SimMarket,
        *,
        before_lots: int,
        after_lots: int,
        price_ticks: int,
        slot: int,
        timestamp: int,
        overrides: dict[str, Any],
    ) -> JsonObj:
        """A tradeHistory row for the fill that moved the position; ``overrides`` win."""
        self._fill_counter += 1
        digest = hashlib.sha512(f"{self.authority}/{self.pda_index}/{self._fill_counter}".encode()).digest()
        signature = base58.b58encode(digest).decode("ascii")
        size_lots = abs(after_lots - before_lots)
        notional = quote_lots(size_lots, price_ticks, m.tick_size)
        row: JsonObj = {
            "signature": signature,
            "fillId": str(uuid.uuid3(uuid.NAMESPACE_URL, f"phoenix-sim:{signature}:0:0")),
            "timestamp": timestamp,
            "slot": slot,
            "slotIndex": 0,
            "instructionIndex": 0,
            "eventIndex": 0,
            "market": f"{m.symbol}-PERP",
            # [?] the instructionType/tradeType vocabularies are undocumented.
            "instructionType": "placeMarketOrder",
            "tradeType": "fill",
            "baseQtyBefore": decimal_str(base_units(before_lots, m.base_lots_decimals)),
            "baseQtyAfter": decimal_str(base_units(after_lots, m.base_lots_decimals)),
            "size": decimal_str(base_units(size_lots, m.base_lots_decimals)),
            "liquidity": "taker",
            "price": decimal_str(price_usd(price_ticks, m.tick_size, m.base_lots_decimals)),
            "fee": decimal_str(quote_usd(notional * m.taker_fee_micro // 1_000_000)),
            "realizedPnl": "0",
        }
        row.update(overrides)
        return row
