"""The exchange channel (protocols.md §5.4): market units and statuses from a snapshot and
strictly sequenced deltas.

The frame shapes are [I] (see frames.py). Deltas apply strictly in `sequenceNumber` order: a
number at or below the current one is a duplicate, a skipped number is a gap that only a fresh
snapshot can repair, so the caller resubscribes and deltas are ignored until that snapshot, which
the caller then reports as the stream resynced.
Statuses and units are kept across gaps and reconnects, so a snapshot re-emits only real changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import msgspec

from riskmon.events import Event, MarketStatusChanged, SequenceGap
from riskmon.venues.phoenix.frames import (
    BadField,
    ExchangeDelta,
    ExchangeSnapshot,
    ExchangeStatusOp,
    MarketAddedOp,
    MarketClosedOp,
    MarketConfig,
    MarketParameterOp,
    MarketStatusOp,
    OpKind,
    SymbolOp,
    parse_lots_decimals,
    parse_u64,
    plausible,
)

# [I] postOnly is not tradable: every order must rest, so nothing can cross and no desk can cut
# its position until the market is active again. paused/closed/tombstoned/deleted likewise.
TRADABLE_STATUSES = frozenset({"active"})
EXCHANGE_WIDE = "*"  # the `market` of an exchange-wide MarketStatusChanged
EXCHANGE_STREAM = "exchange"  # the `stream` of the channel's SequenceGap and StreamResynced
DELETED = "deleted"  # our word for a market gone from the exchange (marketDeleted, or a snapshot lacks it)

ExchangeOp = MarketStatusOp | MarketClosedOp | SymbolOp | MarketAddedOp | MarketParameterOp | ExchangeStatusOp

_op_kind = msgspec.json.Decoder(OpKind)
_op_decoders: dict[str, msgspec.json.Decoder[ExchangeOp]] = {
    "marketStatusChanged": msgspec.json.Decoder(MarketStatusOp),
    "marketClosed": msgspec.json.Decoder(MarketClosedOp),
    "marketTombstoned": msgspec.json.Decoder(SymbolOp),
    "marketDeleted": msgspec.json.Decoder(SymbolOp),
    "marketAdded": msgspec.json.Decoder(MarketAddedOp),
    "marketParameterUpdated": msgspec.json.Decoder(MarketParameterOp),
    "exchangeStatusChanged": msgspec.json.Decoder(ExchangeStatusOp),
}
# exchangeKeysUpdated, and op kinds added later (the SDK has a catch-all), change nothing we track.


@dataclass(frozen=True, slots=True)
class ExchangeUpdate:
    events: list[Event]
    resubscribe: bool = False  # a gap: the caller must resubscribe for a fresh snapshot
    resynced: bool = False  # the snapshot that ends a gap: the caller reports the stream rebuilt


class ExchangeBook:
    def __init__(self, venue: str) -> None:
        self.venue = venue
        self._sequence: int | None = None  # None: waiting for a snapshot
        # A gap was reported and no snapshot has ended it yet. Kept across reconnects: the
        # stream is rebuilt by the next snapshot, whichever subscription brings it.
        self._gap_outstanding = False
        self._units: dict[str, int] = {}  # symbol -> baseLotsDecimals
        self._status: dict[str, str] = {}
        self._final_prices: dict[str, Decimal] = {}
        self._exchange_status: str | None = None

    def base_lots_decimals(self, symbol: str) -> int | None:
        return self._units.get(symbol)

    def resubscribed(self) -> None:
        """A new subscription starts with a snapshot; earlier sequence numbers mean nothing to it."""
        self._sequence = None

    def apply(self, message: ExchangeSnapshot | ExchangeDelta) -> ExchangeUpdate:
        """Raises BadField or msgspec.ValidationError, having changed nothing, on an unusable frame."""
        sequence = parse_u64(message.sequence_number, "sequenceNumber")
        if isinstance(message, ExchangeSnapshot):
            snapshot_events = self._snapshot(message, sequence)  # raises before the gap is ended
            resynced, self._gap_outstanding = self._gap_outstanding, False
            return ExchangeUpdate(snapshot_events, resynced=resynced)
        current = self._sequence
        if current is None or sequence <= current:
            return ExchangeUpdate([])  # waiting for a snapshot, or a duplicate
        if sequence > current + 1:
            self._sequence = None
            self._gap_outstanding = True
            return ExchangeUpdate([SequenceGap(self.venue, EXCHANGE_STREAM, current + 1, sequence)], resubscribe=True)
        ops = [_decode_op(raw) for raw in message.ops]  # every op checked before any applies
        self._sequence = sequence
        events: list[Event] = []
        for op in ops:
            events.extend(self._apply_op(op))
        return ExchangeUpdate(events)

    def _snapshot(self, message: ExchangeSnapshot, sequence: int) -> list[Event]:
        if message.encoding not in (None, "json"):
            raise BadField("snapshot is not JSON-encoded")
        state = message.exchange
        markets = message.markets if message.markets is not None else state.markets if state else None
        if markets is None:
            raise BadField("snapshot has no markets")
        for market in markets:
            _check_market(market)
        self._sequence = sequence
        events: list[Event] = []
        if state is not None and state.status is not None:
            events.extend(self._exchange_status_changed(state.status))
        listed = set()
        for market in markets:
            listed.add(market.symbol)
            self._units[market.symbol] = market.base_lots_decimals
            events.extend(self._status_changed(market.symbol, market.market_status))
        for symbol in sorted(self._status.keys() - listed):
            events.extend(self._status_changed(symbol, DELETED))  # deleted while we were not listening
        return events

    def _apply_op(self, op: ExchangeOp | None) -> list[Event]:
        if isinstance(op, MarketStatusOp):
            status = op.new_status
            return self._status_changed(op.symbol, status) if status is not None else []
        if isinstance(op, MarketClosedOp):
            return self._status_changed(op.symbol, "closed", op.final_price)
        if isinstance(op, SymbolOp):
            return self._status_changed(op.symbol, "tombstoned" if op.kind == "marketTombstoned" else DELETED)
        if isinstance(op, MarketAddedOp):
            self._units[op.market.symbol] = op.market.base_lots_decimals
            return self._status_changed(op.market.symbol, op.market.market_status)
        if isinstance(op, MarketParameterOp):
            if op.base_lots_decimals is not None:
                self._units[op.symbol] = op.base_lots_decimals
            return []
        if isinstance(op, ExchangeStatusOp) and op.status is not None:
            return self._exchange_status_changed(op.status)
        return []

    def _status_changed(self, symbol: str, status: str, final_price: Decimal | None = None) -> list[Event]:
        known = self._status.get(symbol)
        if known == status and (final_price is None or self._final_prices.get(symbol) == final_price):
            return []
        self._status[symbol] = status
        if final_price is not None:
            self._final_prices[symbol] = final_price
        if known is None and status in TRADABLE_STATUSES:
            return []  # a market first seen trading is the normal case, not a change
        return [MarketStatusChanged(self.venue, symbol, status, status in TRADABLE_STATUSES, final_price)]

    def _exchange_status_changed(self, status: str) -> list[Event]:
        known, self._exchange_status = self._exchange_status, status
        if known == status or (known is None and status in TRADABLE_STATUSES):
            return []
        return [MarketStatusChanged(self.venue, EXCHANGE_WIDE, status, status in TRADABLE_STATUSES)]


def _decode_op(raw: msgspec.Raw) -> ExchangeOp | None:
    decoder = _op_decoders.get(_op_kind.decode(raw).kind)
    if decoder is None:
        return None
    op = decoder.decode(raw)
    if isinstance(op, MarketAddedOp):
        _check_market(op.market)
    elif isinstance(op, MarketParameterOp):
        if op.base_lots_decimals is not None:
            parse_lots_decimals(op.base_lots_decimals, "baseLotsDecimals")
        _check_tick(op.tick_size_in_quote_lots_per_base_lot, op.tick_size)
    elif isinstance(op, MarketClosedOp) and op.final_price is not None:
        plausible(op.final_price, "finalized_mark_price")
    return op


def _check_market(market: MarketConfig) -> None:
    parse_lots_decimals(market.base_lots_decimals, "baseLotsDecimals")
    _check_tick(market.tick_size_in_quote_lots_per_base_lot, market.tick_size)


def _check_tick(*ticks: str | int | None) -> None:
    for tick in ticks:
        if tick is not None:
            parse_u64(tick, "tickSizeInQuoteLotsPerBaseLot")
