"""Exchange state and public market-data channels of the Phoenix simulator (protocols.md §5.4).

Written from protocols.md only. [I] exchange frame shapes, fixed by the simulator brief:
- snapshot ``{"channel":"exchange","messageType":"snapshot","sequenceNumber":"<u64>","slot",
  "slotIndex","exchange":{"status","markets":[<market>]}}`` with <market> as in
  ``sim_frames.market_json``;
- delta ``{"channel":"exchange","messageType":"delta","sequenceNumber":"<prev+1>","slot",
  "slotIndex","ops":[op]}``, one op per delta: ``marketStatusChanged{symbol,status}``,
  ``marketClosed{symbol,finalized_mark_price}``, ``marketTombstoned{symbol}``,
  ``marketAdded{market}``, ``marketParameterUpdated{symbol, changed market fields}``,
  ``exchangeStatusChanged{status}``. Tombstoned markets stay in the snapshot (no
  marketDeleted) but refuse new subscriptions.
The orderbook ``mid`` is null when a side is empty [I].
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any, Literal

from riskmon.venues.phoenix.sim_frames import (
    MARKET_STATUSES,
    JsonObj,
    SimMarket,
    base_units,
    market_json,
    quote_lots,
    quote_usd,
)
from riskmon.venues.phoenix.sim_server import PhoenixServerBase

__all__ = ["PhoenixMarketsBase"]

# Plausible mainnet magnitudes so adapters see u64-sized numbers.
_FIRST_SLOT = 312_406_118
_FIRST_EXCHANGE_SEQUENCE = 58_211
_FIRST_TRADE_SEQUENCE = 1_000
# Default taker of pushed trades: any base58 pubkey will do.
_DEFAULT_TAKER = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM"


class PhoenixMarketsBase(PhoenixServerBase):
    """Markets, the exchange channel and the public channels; traders live in the subclass."""

    def __init__(
        self, *, markets: Sequence[SimMarket], jwt: str | None, host: str, ping_interval: float | None
    ) -> None:
        super().__init__(jwt=jwt, host=host, ping_interval=ping_interval)
        if not markets:
            raise ValueError("at least one market is required")
        symbols = [m.symbol for m in markets]
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"duplicate market symbols: {symbols}")
        self._markets: dict[str, SimMarket] = {m.symbol: m for m in markets}
        self._slot = _FIRST_SLOT
        self._exchange_status = "active"
        self._exchange_sequence = _FIRST_EXCHANGE_SEQUENCE
        self._exchange_skip = 0
        self._trade_sequences: dict[str, int] = {}

    # ---- views -----------------------------------------------------------------------

    def market(self, symbol: str) -> SimMarket:
        try:
            return self._markets[symbol]
        except KeyError:
            raise ValueError(f"unknown market {symbol!r}") from None

    def exchange_snapshot(self) -> JsonObj:
        return {
            "channel": "exchange",
            "messageType": "snapshot",
            "sequenceNumber": str(self._exchange_sequence),
            "slot": self._slot,
            "slotIndex": 0,
            "exchange": {
                "status": self._exchange_status,
                "markets": [market_json(m) for m in self._markets.values()],
            },
        }

    # ---- exchange --------------------------------------------------------------------

    async def set_market_status(self, symbol: str, status: str) -> JsonObj:
        self._set_status(symbol, status)
        return self._send_exchange_delta({"kind": "marketStatusChanged", "symbol": symbol, "status": status})

    async def close_market(self, symbol: str, final_price: str) -> JsonObj:
        self._set_status(symbol, "closed")
        return self._send_exchange_delta(
            {"kind": "marketClosed", "symbol": symbol, "finalized_mark_price": final_price}
        )

    async def tombstone_market(self, symbol: str) -> JsonObj:
        self._set_status(symbol, "tombstoned")
        return self._send_exchange_delta({"kind": "marketTombstoned", "symbol": symbol})

    async def add_market(self, market: SimMarket) -> JsonObj:
        if market.symbol in self._markets:
            raise ValueError(f"market {market.symbol!r} already exists")
        self._markets[market.symbol] = market
        return self._send_exchange_delta({"kind": "marketAdded", "market": market_json(market)})

    async def update_market_parameters(
        self,
        symbol: str,
        *,
        tick_size: int | None = None,
        taker_fee_micro: int | None = None,
        maker_fee_micro: int | None = None,
    ) -> JsonObj:
        """marketParameterUpdated carrying only the changed fields (snapshot spelling)."""
        m = self.market(symbol)
        changes: dict[str, Any] = {}
        if tick_size is not None:
            changes["tick_size"] = tick_size
        if taker_fee_micro is not None:
            changes["taker_fee_micro"] = taker_fee_micro
        if maker_fee_micro is not None:
            changes["maker_fee_micro"] = maker_fee_micro
        if not changes:
            raise ValueError("no parameter to update")
        updated = dataclasses.replace(m, **changes)
        self._markets[symbol] = updated
        new, before = market_json(updated), market_json(m)
        fields = {k: v for k, v in new.items() if before[k] != v}
        return self._send_exchange_delta({"kind": "marketParameterUpdated", "symbol": symbol, **fields})

    async def set_exchange_status(self, status: str) -> JsonObj:
        self._exchange_status = status
        return self._send_exchange_delta({"kind": "exchangeStatusChanged", "status": status})

    async def skip_exchange_sequence(self, n: int = 2) -> None:
        """Fault: the next exchange delta has sequenceNumber = previous + n."""
        if n < 2:
            raise ValueError("a skip must jump by at least 2")
        self._exchange_skip = n

    # ---- public channels ---------------------------------------------------------------

    async def push_market(
        self,
        symbol: str,
        mark_px: float,
        *,
        open_interest: float = 0.0,
        mid_px: float | None = None,
        oracle_px: float | None = None,
        prev_day_px: float | None = None,
        day_ntl_vlm: float = 0.0,
        funding: float = 0.0,
        cumulative_funding: str | None = None,
    ) -> JsonObj:
        self.market(symbol)
        frame: JsonObj = {
            "channel": "market",
            "symbol": symbol,
            "openInterest": open_interest,
            "markPx": mark_px,
            "midPx": mark_px if mid_px is None else mid_px,
            "oraclePx": mark_px if oracle_px is None else oracle_px,
            "prevDayPx": mark_px if prev_day_px is None else prev_day_px,
            "dayNtlVlm": day_ntl_vlm,
            "funding": funding,
        }
        if cumulative_funding is not None:
            frame["cumulativeFundingQuoteLotsPerBaseLot"] = cumulative_funding
        self._publish(("market", symbol), frame)
        return frame

    async def push_mids(self, mids: dict[str, float]) -> JsonObj:
        for symbol in mids:
            self.market(symbol)
        frame: JsonObj = {"channel": "allMids", "mids": dict(mids), "slot": self._next_slot(), "slotIndex": 0}
        self._publish(("allMids",), frame)
        return frame

    async def push_trade(
        self,
        symbol: str,
        *,
        side: Literal["bid", "ask"],
        base_lots: int,
        price_ticks: int,
        taker: str = _DEFAULT_TAKER,
        num_fills: int = 1,
        timestamp: int | None = None,
    ) -> JsonObj:
        """One trade (``side`` is the taker's); fee = notional * takerFeeMicro / 1e6, floored."""
        m = self.market(symbol)
        seq = self._trade_sequences.get(symbol, _FIRST_TRADE_SEQUENCE) + 1
        self._trade_sequences[symbol] = seq
        notional = quote_lots(base_lots, price_ticks, m.tick_size)
        trade: JsonObj = {
            "slot": str(self._next_slot()),
            "slotIndex": 0,
            "timestamp": str(int(time.time()) if timestamp is None else timestamp),
            "symbol": symbol,
            "taker": taker,
            "tradeSequenceNumber": str(seq),
            "side": side,
            "baseLotsFilled": str(base_lots),
            "quoteLotsFilled": str(notional),
            "feeInQuoteLots": str(notional * m.taker_fee_micro // 1_000_000),
            "baseAmount": float(base_units(base_lots, m.base_lots_decimals)),
            "quoteAmount": float(quote_usd(notional)),
            "numFills": num_fills,
        }
        frame: JsonObj = {"channel": "trades", "symbol": symbol, "trades": [trade]}
        self._publish(("trades", symbol), frame)
        return frame

    async def push_orderbook(
        self, symbol: str, bids: Sequence[tuple[float, float]], asks: Sequence[tuple[float, float]]
    ) -> JsonObj:
        """Full L2 book (price, size); mid is null when a side is empty [I]."""
        self.market(symbol)
        mid = (bids[0][0] + asks[0][0]) / 2 if bids and asks else None
        book = {"bids": [list(level) for level in bids], "asks": [list(level) for level in asks], "mid": mid}
        # Subscribers echo their own bypassExecutionBand flag; the book itself is shared.
        for bypass in (True, False):
            frame: JsonObj = {
                "channel": "orderbook",
                "symbol": symbol,
                "orderbook": book,
                "bypassExecutionBand": bypass,
            }
            self._publish(("orderbook", symbol, bypass), frame)
        return frame

    async def push_funding(self, symbol: str, funding: float) -> JsonObj:
        self.market(symbol)
        frame: JsonObj = {"channel": "fundingRate", "symbol": symbol, "funding": funding}
        self._publish(("fundingRate", symbol), frame)
        return frame

    # ---- internals -------------------------------------------------------------------

    def _next_slot(self) -> int:
        self._slot += 1
        return self._slot

    def _set_status(self, symbol: str, status: str) -> None:
        if status not in MARKET_STATUSES:
            raise ValueError(f"unknown market status {status!r}")
        self._markets[symbol] = dataclasses.replace(self.market(symbol), status=status)

    def _exchange_delta_frame(self, sequence: str, ops: list[JsonObj]) -> JsonObj:
        return {
            "channel": "exchange",
            "messageType": "delta",
            "sequenceNumber": sequence,
            "slot": self._slot,
            "slotIndex": 0,
            "ops": ops,
        }

    def _send_exchange_delta(self, op: JsonObj) -> JsonObj:
        self._exchange_sequence += self._exchange_skip or 1
        self._exchange_skip = 0
        self._next_slot()
        frame = self._exchange_delta_frame(str(self._exchange_sequence), [op])
        self._publish(("exchange",), frame)
        return frame
