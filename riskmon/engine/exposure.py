"""ExposureBook: exact positions and their USD notional, with the roll-ups risk reads.

Positions are Decimals in base units under a wide context, so applying a fill and reversing it
(a revoke) returns the position to exactly where it was. Notional is derived on read from the
latest mark, never stored, so a new mark can never leave a stale notional behind.
"""

from __future__ import annotations

import decimal
from collections import defaultdict
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

from riskmon.events import FillReceived, MarkKind

if TYPE_CHECKING:
    from riskmon.engine.state_journal import RiskSources, StateJournal, VenueKey

# Mobula amounts carry 18 decimals; 60 digits keeps sums of them exact.
EXACT = decimal.Context(prec=60, traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow])
ZERO = Decimal(0)


def plain_decimal(amount: Decimal) -> str:
    """Exact, without exponent or trailing zeros: Decimal('1.980000000') -> '1.98'."""
    if amount == 0:
        return "0"
    return format(amount.normalize(), "f")


class PositionKey(NamedTuple):
    desk: str
    venue: str
    account: str
    market: str


class PositionRow(NamedTuple):
    key: PositionKey
    position: Decimal
    notional_usd: Decimal | None  # None while the market has no mark


class RiskRow(NamedTuple):
    """Worst-case loss in USD of bet and RFQ positions, which have no mark to price them."""

    key: PositionKey
    worst_case_loss_usd: Decimal  # matched or confirmed
    pending_usd: Decimal  # accepted RFQ quotes not yet confirmed


class ExposureBook:
    """Exact positions per (desk, venue, account, market), rolled up per instrument.

    An instrument is the configured underlying a market belongs to (SOL-PERP on Mango and SOL on
    Phoenix are both `SOL`) or the market itself. A market is priced by its underlying's latest
    venue mark (mark or mid) when one exists, because a last-trade price can sit stale for hours
    in a quiet market; otherwise by its own latest price.
    """

    def __init__(self, underlyings: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self._positions: dict[PositionKey, Decimal] = {}
        self._marks: dict[tuple[str, str], Decimal] = {}
        self._reference_marks: dict[str, Decimal] = {}
        self._underlying_of: dict[tuple[str, str], str] = {
            (venue, market): name for name, markets in (underlyings or {}).items() for venue, market in markets.items()
        }
        self._by_desk: dict[str, set[PositionKey]] = defaultdict(set)
        self._by_instrument: dict[tuple[str, str], set[PositionKey]] = defaultdict(set)
        self._desks_by_instrument: dict[str, set[str]] = defaultdict(set)
        # key -> source id (order, quote) -> USD at risk; pending kept apart from confirmed.
        self._risk: dict[PositionKey, dict[str, Decimal]] = defaultdict(dict)
        self._pending: dict[PositionKey, dict[str, Decimal]] = defaultdict(dict)
        self.journal: StateJournal | None = None

    def instrument(self, venue: str, market: str) -> str:
        return self._underlying_of.get((venue, market), market)

    def _track(self, key: PositionKey) -> None:
        self._by_desk[key.desk].add(key)
        instrument = self.instrument(key.venue, key.market)
        self._by_instrument[(key.desk, instrument)].add(key)
        self._desks_by_instrument[instrument].add(key.desk)

    def apply_fill(self, fill: FillReceived, reverse: bool = False) -> PositionKey:
        key = PositionKey(fill.desk, fill.venue, fill.account, fill.market)
        signed = fill.quantity if fill.side.sign > 0 else -fill.quantity
        if reverse:
            signed = -signed
        self._positions[key] = EXACT.add(self._positions.get(key, ZERO), signed)
        self._track(key)
        journal = self.journal
        if journal is not None:
            journal.positions.add(key)
        return key

    def set_position(self, key: PositionKey, quantity: Decimal) -> bool:
        """Set a position the venue reports in absolute terms; True when it changed."""
        if key not in self._positions and quantity == 0:
            return False
        changed = self._positions.get(key) != quantity
        self._positions[key] = quantity
        self._track(key)
        if changed and self.journal is not None:
            self.journal.positions.add(key)
        return changed

    def report_positions(
        self, desk: str, venue: str, account: str, positions: Mapping[str, Decimal], complete: bool
    ) -> set[str]:
        """Apply a venue's statement of positions; returns the instruments that changed.

        `complete`: a market the statement does not list is flat (a snapshot replaces everything).
        """
        changed: set[str] = set()
        if complete:
            for key in list(self._by_desk.get(desk, ())):
                flat = key.venue == venue and key.account == account and key.market not in positions
                if flat and self.set_position(key, ZERO):
                    changed.add(self.instrument(venue, key.market))
        for market, quantity in positions.items():
            if self.set_position(PositionKey(desk, venue, account, market), quantity):
                changed.add(self.instrument(venue, market))
        return changed

    def set_mark(self, venue: str, market: str, price: Decimal, kind: MarkKind = MarkKind.TRADE) -> str:
        """Record a price; returns the instrument whose valuation it may change."""
        key = (venue, market)
        self._marks[key] = price
        if self.journal is not None:
            self.journal.marks = True
        underlying = self._underlying_of.get(key)
        if underlying is not None and kind is not MarkKind.TRADE:
            self._reference_marks[underlying] = price
        return self.instrument(venue, market)

    def mark(self, venue: str, market: str) -> Decimal | None:
        underlying = self._underlying_of.get((venue, market))
        if underlying is not None:
            reference = self._reference_marks.get(underlying)
            if reference is not None:
                return reference
        return self._marks.get((venue, market))

    def position(self, key: PositionKey) -> Decimal:
        return self._positions.get(key, ZERO)

    def desks_holding(self, instrument: str) -> set[str]:
        return self._desks_by_instrument.get(instrument, set())

    def notional(self, key: PositionKey) -> Decimal | None:
        mark = self.mark(key.venue, key.market)
        if mark is None:
            return None
        return self._positions.get(key, ZERO) * mark

    def desk_market_net(self, desk: str, instrument: str) -> Decimal | None:
        """Net USD notional of a desk in one instrument across its venues and accounts.

        None while any of its positions there has no price: a partial sum would understate it.
        """
        total = ZERO
        for key in self._by_instrument.get((desk, instrument), ()):
            if self._positions.get(key, ZERO) == 0:
                continue
            notional = self.notional(key)
            if notional is None:
                return None
            total += notional
        return total

    def desk_markets(self, desk: str) -> set[str]:
        return {instrument for (owner, instrument) in self._by_instrument if owner == desk}

    def desk_gross(self, desk: str) -> Decimal:
        """Gross USD notional of a desk: sum of |net notional| over its instruments.

        Positions without a mark count as zero here; a missing mark is its own problem.
        """
        nets: dict[str, Decimal] = defaultdict(Decimal)
        for key in self._by_desk.get(desk, ()):
            notional = self.notional(key)
            if notional is not None:
                nets[self.instrument(key.venue, key.market)] += notional
        return sum((abs(v) for v in nets.values()), ZERO)

    def firm_gross(self) -> Decimal:
        return sum((self.desk_gross(desk) for desk in self._by_desk), ZERO)

    def rows(self) -> Iterator[PositionRow]:
        for key in sorted(self._positions):
            yield PositionRow(key, self._positions[key], self.notional(key))

    def instrument_rows(self) -> Iterator[tuple[str, str, Decimal, Decimal | None]]:
        """(desk, instrument, net base units, net USD notional or None): the cross-venue view."""
        for desk, instrument in sorted(self._by_instrument):
            keys = self._by_instrument[(desk, instrument)]
            quantity = sum((self._positions.get(key, ZERO) for key in keys), ZERO)
            yield desk, instrument, quantity, self.desk_market_net(desk, instrument)

    # Bets and RFQs: USD at risk per source (order or quote), no mark involved.

    def set_risk(self, key: PositionKey, source: str, amount: Decimal, *, pending: bool = False) -> None:
        """Set the USD at risk of one order or quote; 0 removes it. A source is either pending or not."""
        target, other = (self._pending, self._risk) if pending else (self._risk, self._pending)
        other.get(key, {}).pop(source, None)
        if amount:
            target[key][source] = amount
        else:
            target.get(key, {}).pop(source, None)
        self._by_desk[key.desk].add(key)
        if self.journal is not None:
            self.journal.risk.add(key)

    def risk_of(self, key: PositionKey, source: str) -> tuple[Decimal, bool] | None:
        if source in self._pending.get(key, {}):
            return self._pending[key][source], True
        if source in self._risk.get(key, {}):
            return self._risk[key][source], False
        return None

    def desk_worst_case_loss(self, desk: str) -> Decimal:
        return sum(
            (sum(self._risk[key].values(), ZERO) for key in self._by_desk.get(desk, ()) if key in self._risk), ZERO
        )

    def desk_pending(self, desk: str) -> Decimal:
        return sum(
            (sum(self._pending[key].values(), ZERO) for key in self._by_desk.get(desk, ()) if key in self._pending),
            ZERO,
        )

    def risk_rows(self) -> Iterator[RiskRow]:
        for key in sorted(set(self._risk) | set(self._pending)):
            confirmed = sum(self._risk.get(key, {}).values(), ZERO)
            pending = sum(self._pending.get(key, {}).values(), ZERO)
            if confirmed or pending:
                yield RiskRow(key, confirmed, pending)

    # The stored form (riskmon.engine.restore).

    def own_marks(self) -> dict[VenueKey, Decimal]:
        """Each market's own latest price, whatever its underlying's reference says."""
        return dict(self._marks)

    def reference_marks(self) -> dict[str, Decimal]:
        return dict(self._reference_marks)

    def restore(
        self,
        positions: Mapping[PositionKey, Decimal],
        marks: Mapping[VenueKey, Decimal],
        reference_marks: Mapping[str, Decimal],
        risk: Mapping[PositionKey, RiskSources],
    ) -> None:
        for key, quantity in positions.items():
            self._positions[key] = quantity
            self._track(key)
        self._marks.update(marks)
        self._reference_marks.update(reference_marks)
        for key, sources in risk.items():
            for source, (amount, pending) in sources.items():
                (self._pending if pending else self._risk)[key][source] = amount
            self._by_desk[key.desk].add(key)

    def risk_sources(self, key: PositionKey) -> RiskSources:
        """Every order or quote with USD at risk on the position: (amount, pending)."""
        sources: RiskSources = {source: (amount, False) for source, amount in self._risk.get(key, {}).items()}
        sources.update((source, (amount, True)) for source, amount in self._pending.get(key, {}).items())
        return sources

    # Reads for rules and limits.

    def desks(self) -> list[str]:
        return list(self._by_desk)

    def held_instruments(self) -> list[tuple[str, str]]:
        """Every (desk, instrument) the desk has held a position in."""
        return list(self._by_instrument)

    def desk_market_position(self, desk: str, instrument: str) -> Decimal:
        """Net base units of a desk in one instrument across its venues and accounts."""
        return sum((self._positions.get(key, ZERO) for key in self._by_instrument.get((desk, instrument), ())), ZERO)

    def desk_open_positions(self, desk: str) -> int:
        return sum(1 for key in self._by_desk.get(desk, ()) if self._positions.get(key, ZERO) != 0)

    def firm_pending(self) -> Decimal:
        return sum((self.desk_pending(desk) for desk in self._by_desk), ZERO)

    def firm_worst_case_loss(self) -> Decimal:
        return sum((self.desk_worst_case_loss(desk) for desk in self._by_desk), ZERO)

    def desk_worst_case_loss_by_event(self, desk: str) -> dict[str, Decimal]:
        """Confirmed worst-case loss of a desk per event.

        The event of a ProphetX market (`sport_event_id/market_id/outcome_id`) is its sport event;
        an RFQ position (`rfq:<id>`) or any other market is its own event. Summing the outcomes of
        one event overstates a loss only one of them can cause, which is the safe side for a limit.
        """
        out: dict[str, Decimal] = {}
        for key in self._by_desk.get(desk, ()):
            sources = self._risk.get(key)
            if sources:
                event = event_of(key.market)
                out[event] = out.get(event, ZERO) + sum(sources.values(), ZERO)
        return out


def event_of(market: str) -> str:
    return market.split("/", 1)[0]
