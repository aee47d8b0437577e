"""USD at risk without a mark: bets and RFQ positions, per order or quote.

Each source (an order or a quote) states its worst-case loss in USD, confirmed or pending (an
accepted RFQ quote not yet confirmed). The roll-ups limits and rules read (per desk, per desk and
event, firm-wide) are running totals moved by (new - old), in a context that never rounds, so
they equal the same sums taken afresh, exactly. The ExposureBook builds on this book.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from riskmon.engine.state_journal import RiskSources, StateJournal

# Running totals only add, subtract and multiply (never divide), which this context does without
# rounding at any size: that is what lets a total move by (new - old) and stay exact.
_TOTALS = decimal.Context(
    prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, traps=[decimal.InvalidOperation]
)
exact_add = _TOTALS.add
exact_sub = _TOTALS.subtract
exact_mul = _TOTALS.multiply
ZERO = Decimal(0)


def finite(amount: Decimal, what: str) -> Decimal:
    # A NaN or infinity would poison every running total it entered, for good.
    if not amount.is_finite():
        raise ValueError(f"{what} is not a finite number: {amount}")
    return amount


def event_of(market: str) -> str:
    return market.split("/", 1)[0]


class PositionKey(NamedTuple):
    desk: str
    venue: str
    account: str
    market: str


class RiskRow(NamedTuple):
    """Worst-case loss in USD of bet and RFQ positions, which have no mark to price them."""

    key: PositionKey
    worst_case_loss_usd: Decimal  # matched or confirmed
    pending_usd: Decimal  # accepted RFQ quotes not yet confirmed


class _EventLoss:
    __slots__ = ("amount", "sources")

    def __init__(self) -> None:
        self.amount = ZERO
        self.sources = 0  # orders or quotes with USD at risk on the event


class _DeskRisk:
    __slots__ = ("loss", "loss_by_event", "pending")

    def __init__(self) -> None:
        self.pending = ZERO
        self.loss = ZERO
        self.loss_by_event: dict[str, _EventLoss] = {}  # confirmed; an event with no source left is dropped


class RiskBook:
    """USD at risk per (position, source), pending kept apart from confirmed."""

    def __init__(self) -> None:
        self._risk: dict[PositionKey, dict[str, Decimal]] = {}
        self._pending: dict[PositionKey, dict[str, Decimal]] = {}
        self._desk_risk: dict[str, _DeskRisk] = {}
        self._firm_pending = ZERO
        self._firm_loss = ZERO
        self.journal: StateJournal | None = None
        # desk -> events whose confirmed loss moved ("" alone: only pending moved), kept only while
        # a limit evaluator takes them (`watch_risk`), so risk limits judge just what moved.
        self.risk_moved: dict[str, set[str]] | None = None

    def watch_risk(self, on: bool) -> None:
        if not on:
            self.risk_moved = None
        elif self.risk_moved is None:
            self.risk_moved = {}

    def _risk_desk(self, name: str) -> _DeskRisk:
        desk = self._desk_risk.get(name)
        if desk is None:
            desk = self._desk_risk[name] = _DeskRisk()
        return desk

    def set_risk(self, key: PositionKey, source: str, amount: Decimal, *, pending: bool = False) -> None:
        """Set the USD at risk of one order or quote; 0 removes it. A source is either pending or not."""
        finite(amount, "USD at risk")
        desk = self._risk_desk(key.desk)
        self._put_risk(desk, key, source, None, pending=not pending)
        self._put_risk(desk, key, source, amount or None, pending=pending)
        if self.journal is not None:
            self.journal.risk.add(key)

    def _put_risk(
        self, desk: _DeskRisk, key: PositionKey, source: str, amount: Decimal | None, *, pending: bool
    ) -> None:
        held = self._pending if pending else self._risk
        sources = held.get(key)
        old = None if sources is None else sources.get(source)
        if amount is None:
            if old is None:
                return
            assert sources is not None
            del sources[source]
            if not sources:
                del held[key]
        elif amount == old:
            return  # the same amount again (a repeated update): no total moves
        elif sources is None:
            held[key] = {source: amount}
        else:
            sources[source] = amount
        step = exact_sub(amount or ZERO, old or ZERO)
        moved = self.risk_moved
        if pending:
            desk.pending = exact_add(desk.pending, step)
            self._firm_pending = exact_add(self._firm_pending, step)
            if moved is not None and key.desk not in moved:
                moved[key.desk] = set()
            return
        desk.loss = exact_add(desk.loss, step)
        self._firm_loss = exact_add(self._firm_loss, step)
        event = event_of(key.market)
        entry = desk.loss_by_event.get(event)
        if entry is None:
            entry = desk.loss_by_event[event] = _EventLoss()
        entry.amount = exact_add(entry.amount, step)
        entry.sources += (amount is not None) - (old is not None)
        if not entry.sources:
            del desk.loss_by_event[event]
        if moved is not None:
            events = moved.get(key.desk)
            if events is None:
                moved[key.desk] = {event}
            else:
                events.add(event)

    def _restore_risk(self, risk: Mapping[PositionKey, RiskSources]) -> None:
        for key, sources in risk.items():
            desk = self._risk_desk(key.desk)
            for source, (amount, pending) in sources.items():
                self._put_risk(desk, key, source, finite(amount, "USD at risk"), pending=pending)

    def risk_of(self, key: PositionKey, source: str) -> tuple[Decimal, bool] | None:
        if source in self._pending.get(key, {}):
            return self._pending[key][source], True
        if source in self._risk.get(key, {}):
            return self._risk[key][source], False
        return None

    def risk_sources(self, key: PositionKey) -> RiskSources:
        """Every order or quote with USD at risk on the position: (amount, pending)."""
        sources: RiskSources = {source: (amount, False) for source, amount in self._risk.get(key, {}).items()}
        sources.update((source, (amount, True)) for source, amount in self._pending.get(key, {}).items())
        return sources

    def risk_rows(self) -> Iterator[RiskRow]:
        for key in sorted(set(self._risk) | set(self._pending)):
            confirmed = sum(self._risk.get(key, {}).values(), ZERO)
            pending = sum(self._pending.get(key, {}).values(), ZERO)
            if confirmed or pending:
                yield RiskRow(key, confirmed, pending)

    def desk_worst_case_loss(self, desk: str) -> Decimal:
        held = self._desk_risk.get(desk)
        return ZERO if held is None else held.loss

    def desk_pending(self, desk: str) -> Decimal:
        held = self._desk_risk.get(desk)
        return ZERO if held is None else held.pending

    def firm_pending(self) -> Decimal:
        return self._firm_pending

    def firm_worst_case_loss(self) -> Decimal:
        return self._firm_loss

    def desk_worst_case_loss_by_event(self, desk: str, events: Iterable[str] | None = None) -> dict[str, Decimal]:
        """Confirmed worst-case loss of a desk per event (only `events`, when given; 0 for one without).

        The event of a ProphetX market (`sport_event_id/market_id/outcome_id`) is its sport event;
        an RFQ position (`rfq:<id>`) or any other market is its own event. Summing the outcomes of
        one event overstates a loss only one of them can cause, which is the safe side for a limit.
        """
        held = self._desk_risk.get(desk)
        by_event = {} if held is None else held.loss_by_event
        if events is None:
            return {event: entry.amount for event, entry in by_event.items()}
        out: dict[str, Decimal] = {}
        for event in events:
            entry = by_event.get(event)
            out[event] = ZERO if entry is None else entry.amount
        return out
