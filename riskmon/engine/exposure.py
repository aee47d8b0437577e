"""ExposureBook: exact positions and their USD notional, with the roll-ups risk reads (the USD at
risk of bets and RFQs, which has no mark, is its base RiskBook's, riskmon.engine.risk_book).

Positions are Decimals in base units under a wide context, so applying a fill and reversing it
(a revoke) returns the position to exactly where it was. Each position carries its notional at
the latest mark, re-priced when a mark of its market moves, so a new mark never leaves a stale
notional behind.

Every roll-up (net per desk and instrument, gross per desk and firm-wide) is a running total
moved by (new - old) on each change, so a fill or mark costs O(positions it touches), not
O(everything the desk ever held). The totals use a context that never rounds, so a running total
equals the same sum taken afresh, exactly. The records a position and its totals are kept in are
riskmon.engine.holdings.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

from riskmon.engine.holdings import DeskHoldings, Holding, InstrumentNet, MarkRoute
from riskmon.engine.risk_book import ZERO, PositionKey, RiskBook, RiskRow, event_of
from riskmon.engine.risk_book import exact_add as _add
from riskmon.engine.risk_book import exact_mul as _mul
from riskmon.engine.risk_book import exact_sub as _sub
from riskmon.engine.risk_book import finite as _finite
from riskmon.events import FillReceived, MarkKind, Side

if TYPE_CHECKING:
    from riskmon.engine.state_journal import RiskSources, VenueKey

__all__ = [
    "EXACT",
    "ZERO",
    "ExposureBook",
    "PositionKey",
    "PositionRow",
    "Repriced",
    "RiskRow",
    "event_of",
    "plain_decimal",
]

# Mobula amounts carry 18 decimals; 60 digits keeps sums of them exact.
EXACT = decimal.Context(prec=60, traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow])


def plain_decimal(amount: Decimal) -> str:
    """Exact, without exponent or trailing zeros: Decimal('1.980000000') -> '1.98'."""
    if amount == 0:
        return "0"
    return format(amount.normalize(), "f")


class PositionRow(NamedTuple):
    key: PositionKey
    position: Decimal
    notional_usd: Decimal | None  # None while the market has no mark


class Repriced(NamedTuple):
    instrument: str  # the instrument the price values
    desks: list[str]  # the desks whose net USD notional in it moved


_NO_DESKS: Sequence[str] = ()


class ExposureBook(RiskBook):
    """Exact positions per (desk, venue, account, market), rolled up per instrument, and (from
    RiskBook) the USD at risk of bets and RFQs.

    An instrument is the configured underlying a market belongs to (SOL-PERP on Mango and SOL on
    Phoenix are both `SOL`) or the market itself. A market is priced by its underlying's latest
    venue mark (mark or mid) when one exists, because a last-trade price can sit stale for hours
    in a quiet market; otherwise by its own latest price.
    """

    def __init__(self, underlyings: Mapping[str, Mapping[str, str]] | None = None) -> None:
        super().__init__()
        self._holdings: dict[PositionKey, Holding] = {}
        self._marks: dict[tuple[str, str], Decimal] = {}
        self._reference_marks: dict[str, Decimal] = {}
        self._underlying_of: dict[tuple[str, str], str] = {}
        self._markets_of: dict[str, list[tuple[str, str]]] = {}
        for name, markets in (underlyings or {}).items():
            for venue, market in markets.items():
                self._underlying_of[(venue, market)] = name
                self._markets_of.setdefault(name, []).append((venue, market))
        self._desks: dict[str, DeskHoldings] = {}
        self._nets: dict[tuple[str, str], InstrumentNet] = {}  # (desk, instrument), in the order first held
        self._by_market: dict[tuple[str, str], list[Holding]] = {}
        self._routes: dict[tuple[str, str], MarkRoute] = {}
        self._by_account: dict[tuple[str, str, str], dict[str, Holding]] = {}  # by market
        self._desks_by_instrument: dict[str, set[str]] = {}
        self._firm_gross = ZERO

    def instrument(self, venue: str, market: str) -> str:
        return self._underlying_of.get((venue, market), market)

    def _desk(self, name: str) -> DeskHoldings:
        desk = self._desks.get(name)
        if desk is None:
            desk = self._desks[name] = DeskHoldings(name)
        return desk

    def _holding(self, key: PositionKey) -> Holding:
        holding = self._holdings.get(key)
        if holding is not None:
            return holding
        desk = self._desk(key.desk)
        instrument = self.instrument(key.venue, key.market)
        net = desk.nets.get(instrument)
        if net is None:
            net = desk.nets[instrument] = self._nets[(key.desk, instrument)] = InstrumentNet()
            self._desks_by_instrument.setdefault(instrument, set()).add(key.desk)
        holding = self._holdings[key] = Holding(key, desk, net)
        self._by_market.setdefault((key.venue, key.market), []).append(holding)
        self._by_account.setdefault((key.desk, key.venue, key.account), {})[key.market] = holding
        self._revalue(holding, ZERO, self.mark(key.venue, key.market))
        return holding

    def _revalue(self, holding: Holding, quantity: Decimal, price: Decimal | None) -> bool:
        """Give a position its new quantity and price, and move every roll-up it counts in.

        True when the net USD notional of its desk and instrument may have moved."""
        old_quantity, old_notional = holding.quantity, holding.notional
        notional = None if price is None else _mul(quantity, price)
        holding.quantity, holding.price, holding.notional = quantity, price, notional
        net = holding.net
        if quantity != old_quantity:
            net.position = _add(net.position, _sub(quantity, old_quantity))
            if not old_quantity or not quantity:
                holding.desk.open_positions += 1 if quantity else -1
        was_unpriced = old_notional is None and old_quantity != 0
        moved = was_unpriced != (notional is None and quantity != 0)
        if moved:
            net.unpriced += -1 if was_unpriced else 1
        if notional == old_notional:
            return moved
        before = net.notional
        net.notional = after = _add(_sub(before, old_notional or ZERO), notional or ZERO)
        step = _sub(after.copy_abs(), before.copy_abs())
        if step:
            desk = holding.desk
            desk.gross = _add(desk.gross, step)
            self._firm_gross = _add(self._firm_gross, step)
        return True

    def _reprice(self, holdings: list[Holding], price: Decimal, moved: Sequence[str]) -> Sequence[str]:
        """Re-price positions at `price`; returns `moved` with the desks whose net moved added
        (a new list only once one has: most prices move no net)."""
        for holding in holdings:
            if holding.price == price:
                continue
            old = holding.notional
            if old is None:
                if not self._revalue(holding, holding.quantity, price):
                    continue
            else:
                # _revalue's own steps for a priced position whose quantity stays: the hot case.
                notional = _mul(holding.quantity, price)
                holding.price = price
                holding.notional = notional
                if notional == old:
                    continue
                net = holding.net
                before = net.notional
                net.notional = after = _add(_sub(before, old), notional)
                step = _sub(after.copy_abs(), before.copy_abs())
                if step:
                    desk = holding.desk
                    desk.gross = _add(desk.gross, step)
                    self._firm_gross = _add(self._firm_gross, step)
            name = holding.desk.name
            if not moved:
                moved = [name]
            elif name not in moved:
                assert isinstance(moved, list)
                moved.append(name)
        return moved

    def apply_fill(self, fill: FillReceived, reverse: bool = False) -> PositionKey:
        cell = (fill.desk, fill.venue, fill.account, fill.market)
        # A PositionKey equals and hashes as this plain tuple: no key object built for a held position.
        holding: Holding | None = self._holdings.get(cell)  # type: ignore[call-overload]
        if holding is None:
            holding = self._holding(PositionKey(*cell))
        quantity = fill.quantity
        if not quantity.is_finite():
            _finite(quantity, "fill quantity")
        # copy_negate: unary minus would round to the default context's 28 digits.
        signed = quantity if (fill.side == Side.BUY) != reverse else quantity.copy_negate()
        self._revalue(holding, EXACT.add(holding.quantity, signed), holding.price)
        journal = self.journal
        if journal is not None:
            journal.positions.add(holding.key)
        return holding.key

    def set_position(self, key: PositionKey, quantity: Decimal) -> bool:
        """Set a position the venue reports in absolute terms; True when it changed."""
        holding = self._holdings.get(key)
        if holding is None and quantity == 0:
            return False
        _finite(quantity, "position")
        changed = holding is None or holding.quantity != quantity
        holding = holding or self._holding(key)
        self._revalue(holding, quantity, holding.price)
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
            for market in list(self._by_account.get((desk, venue, account), ())):
                if market not in positions and self.set_position(PositionKey(desk, venue, account, market), ZERO):
                    changed.add(self.instrument(venue, market))
        for market, quantity in positions.items():
            if self.set_position(PositionKey(desk, venue, account, market), quantity):
                changed.add(self.instrument(venue, market))
        return changed

    def set_mark(self, venue: str, market: str, price: Decimal, kind: MarkKind = MarkKind.TRADE) -> Repriced:
        """Record a price and re-price the positions it values."""
        instrument, moved = self.apply_mark(venue, market, price, kind)
        return Repriced(instrument, list(moved))

    def apply_mark(
        self, venue: str, market: str, price: Decimal, kind: MarkKind = MarkKind.TRADE
    ) -> tuple[str, Sequence[str]]:
        """`set_mark` for the engine's hot path: (instrument, desks whose net moved), the desks
        an empty tuple when none did."""
        route = self._routes.get((venue, market))
        if route is None:
            route = self._route(venue, market)
        if not price.is_finite():
            _finite(price, "price")
        self._marks[route.key] = price
        if self.journal is not None:
            self.journal.marks = True
        underlying = route.underlying
        if underlying is None:
            holdings = route.holdings  # most markets priced are held by no desk
            return route.instrument, self._reprice(holdings, price, _NO_DESKS) if holdings else _NO_DESKS
        if kind is not MarkKind.TRADE:
            self._reference_marks[underlying] = price
            moved = _NO_DESKS
            for holdings in route.siblings:
                moved = self._reprice(holdings, price, moved)
            return underlying, moved
        if underlying not in self._reference_marks:
            return underlying, self._reprice(route.holdings, price, _NO_DESKS)
        return underlying, _NO_DESKS

    def _route(self, venue: str, market: str) -> MarkRoute:
        key = (venue, market)
        underlying = self._underlying_of.get(key)
        by_market = self._by_market
        siblings = (
            () if underlying is None else tuple(by_market.setdefault(k, []) for k in self._markets_of[underlying])
        )
        route = self._routes[key] = MarkRoute(key, underlying, by_market.setdefault(key, []), siblings)
        return route

    def mark(self, venue: str, market: str) -> Decimal | None:
        underlying = self._underlying_of.get((venue, market))
        if underlying is not None:
            reference = self._reference_marks.get(underlying)
            if reference is not None:
                return reference
        return self._marks.get((venue, market))

    def position(self, key: PositionKey) -> Decimal:
        holding = self._holdings.get(key)
        return ZERO if holding is None else holding.quantity

    def desks_holding(self, instrument: str) -> set[str]:
        return self._desks_by_instrument.get(instrument, set())

    def notional(self, key: PositionKey) -> Decimal | None:
        holding = self._holdings.get(key)
        if holding is not None:
            return holding.notional
        mark = self.mark(key.venue, key.market)
        return None if mark is None else ZERO * mark

    def desk_market_net(self, desk: str, instrument: str) -> Decimal | None:
        """Net USD notional of a desk in one instrument across its venues and accounts.

        None while any of its positions there has no price: a partial sum would understate it.
        """
        net = self._nets.get((desk, instrument))
        if net is None:
            return ZERO
        return None if net.unpriced else net.notional

    def desk_markets(self, desk: str) -> set[str]:
        held = self._desks.get(desk)
        return set() if held is None else set(held.nets)

    def desk_gross(self, desk: str) -> Decimal:
        """Gross USD notional of a desk: sum of |net notional| over its instruments.

        Positions without a mark count as zero here; a missing mark is its own problem.
        """
        held = self._desks.get(desk)
        return ZERO if held is None else held.gross

    def firm_gross(self) -> Decimal:
        return self._firm_gross

    def rows(self) -> Iterator[PositionRow]:
        for key in sorted(self._holdings):
            holding = self._holdings[key]
            yield PositionRow(key, holding.quantity, holding.notional)

    def instrument_rows(self) -> Iterator[tuple[str, str, Decimal, Decimal | None]]:
        """(desk, instrument, net base units, net USD notional or None): the cross-venue view."""
        for (desk, instrument), net in sorted(self._nets.items()):
            yield desk, instrument, net.position, None if net.unpriced else net.notional

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
        self._marks.update(marks)
        self._reference_marks.update(reference_marks)
        for market, holdings in self._by_market.items():
            for holding in holdings:
                self._revalue(holding, holding.quantity, self.mark(*market))
        for key, quantity in positions.items():
            holding = self._holding(key)
            self._revalue(holding, _finite(quantity, "position"), holding.price)
        self._restore_risk(risk)

    # Reads for rules and limits.

    def desks(self) -> list[str]:
        """Every desk with a position or USD at risk, in the order first seen by each part."""
        return list(dict.fromkeys([*self._desks, *self._desk_risk]))

    def held_instruments(self) -> list[tuple[str, str]]:
        """Every (desk, instrument) the desk has held a position in."""
        return list(self._nets)

    def desk_market_position(self, desk: str, instrument: str) -> Decimal:
        """Net base units of a desk in one instrument across its venues and accounts."""
        net = self._nets.get((desk, instrument))
        return ZERO if net is None else net.position

    def desk_open_positions(self, desk: str) -> int:
        held = self._desks.get(desk)
        return 0 if held is None else held.open_positions
