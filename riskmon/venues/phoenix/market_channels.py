"""Phoenix's public market channels (protocols.md §5.4) read into prices: `market` into the mark,
`allMids` into mids, `trades` into TradeExecuted (replays dropped by tradeSequenceNumber) and
`orderbook` into BookSnapshot.

Decoding and plausibility only: which frame goes where, and the malformed-frame reasons, are the
codec's. A bad field raises BadField or ArithmeticError for the codec to name the frame by.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import msgspec

from riskmon.events import BookLevel, BookSide, BookSnapshot, Event, MarkKind, MarkPrice, TradeExecuted
from riskmon.venues.codec_support import BoundedMemo
from riskmon.venues.phoenix.frames import (
    MAX_MAGNITUDE,
    AllMids,
    BadField,
    MarketStats,
    Orderbook,
    PublicTrade,
    Trades,
    lots_to_base,
    parse_u64,
    plausible,
)

_QUOTE_LOTS_PER_USD = Decimal(1_000_000)  # quote lots have 6 decimals (§5.5)
_MARK = MarkKind.MARK
_MID = MarkKind.MID

_market = msgspec.json.Decoder(MarketStats)
_all_mids = msgspec.json.Decoder(AllMids)
_trades = msgspec.json.Decoder(Trades)
_orderbook = msgspec.json.Decoder(Orderbook)


class MarketChannels:
    def __init__(self, venue: str, units: Callable[[str], int | None]) -> None:
        """`units` gives a symbol's base lot decimals, or None while the market's units are unknown."""
        self.venue = venue
        self._units = units
        self._last_trade: dict[str, int] = {}  # symbol -> newest tradeSequenceNumber seen

    def market_frame(self, frame: str | bytes) -> list[Event]:
        return self.market(_market.decode(frame))

    def market(self, stats: MarketStats) -> list[Event]:
        price = stats.mark_px
        if price is None:
            return []
        if not price.is_finite() or (price and not -MAX_MAGNITUDE <= price.adjusted() <= MAX_MAGNITUDE):
            plausible(price, "markPx")  # raises, naming the field
        # The market channel carries no timestamp (§5.4): 0.0 says "the venue did not stamp it".
        return [MarkPrice(self.venue, stats.symbol, price, 0.0, _MARK)]

    def all_mids_frame(self, frame: str | bytes) -> list[Event]:
        return self.all_mids(_all_mids.decode(frame))

    def all_mids(self, message: AllMids) -> list[Event]:
        # plausible() inlined: allMids is the busiest channel, and a call per mid costs more than the test.
        venue = self.venue
        events: list[Event] = []
        append = events.append
        for symbol, mid in message.mids.items():
            if not mid.is_finite() or (mid and not -MAX_MAGNITUDE <= mid.adjusted() <= MAX_MAGNITUDE):
                plausible(mid, "mid")  # raises, naming the field; the frame's marks go with it
            append(MarkPrice(venue, symbol, mid, 0.0, _MID))
        return events

    def trades_frame(self, frame: str | bytes) -> list[Event]:
        return self.trades(_trades.decode(frame))

    def trades(self, message: Trades) -> list[Event]:
        symbol = message.symbol
        executed = [self._trade(symbol, trade) for trade in message.trades]  # all parsed first
        events: list[Event] = []
        last = self._last_trade.get(symbol, -1)
        for sequence, trade in executed:
            if sequence > last:  # tradeSequenceNumber only grows (§5.4): lower ones are replays
                last = sequence
                events.append(trade)
        self._last_trade[symbol] = last
        return events

    def _trade(self, symbol: str, trade: PublicTrade) -> tuple[int, TradeExecuted]:
        sequence = parse_u64(trade.trade_sequence_number, "tradeSequenceNumber")
        timestamp = _trade_times[trade.timestamp]
        quantity = trade.base_amount
        if quantity is None:
            if trade.base_lots_filled is None:
                raise BadField("trade has no positive base amount")
            decimals = self._units(symbol)
            if decimals is None:
                raise BadField("trade has no baseAmount and the market's units are unknown")
            quantity = lots_to_base(parse_u64(trade.base_lots_filled, "baseLotsFilled"), decimals)
        if not quantity.is_finite() or (quantity and not -MAX_MAGNITUDE <= quantity.adjusted() <= MAX_MAGNITUDE):
            plausible(quantity, "baseAmount")  # raises, naming the field
        if quantity <= 0:
            raise BadField("trade has no positive base amount")
        notional = trade.quote_amount
        if notional is not None:
            if not notional.is_finite() or (notional and not -MAX_MAGNITUDE <= notional.adjusted() <= MAX_MAGNITUDE):
                plausible(notional, "quoteAmount")
        elif trade.quote_lots_filled is not None:
            notional = parse_u64(trade.quote_lots_filled, "quoteLotsFilled") / _QUOTE_LOTS_PER_USD
        else:
            raise BadField("trade has no quote amount")
        return sequence, TradeExecuted(self.venue, symbol, notional / quantity, quantity, sequence, timestamp)

    def orderbook_frame(self, frame: str | bytes) -> list[Event]:
        return self.orderbook(_orderbook.decode(frame))

    def orderbook(self, message: Orderbook) -> list[Event]:
        sides = tuple(
            BookSide(name, tuple(BookLevel(plausible(p, "price"), plausible(s, "size")) for p, s in levels))
            for name, levels in (("bid", message.orderbook.bids), ("ask", message.orderbook.asks))
        )
        return [BookSnapshot(self.venue, message.symbol, sides)]


def _trade_time(timestamp: str | int) -> float:
    return float(parse_u64(timestamp, "timestamp"))


# Trades are stamped in whole seconds: a busy market repeats each stamp many times. A bad one raises, uncached.
_trade_times: BoundedMemo[str | int, float] = BoundedMemo(_trade_time, limit=4096)
