"""What changed in the engine's durable state, as values the runtime hands to the state store.

The engine's books note each change in a StateJournal as they apply events: a list append or a
set insert, nothing more, so the hot path never waits on disk. After each engine step the runtime
takes the journal as StateChanges (the current value of every dirty key, read once) and writes it
off the event loop; StateChanges taken while a write is in flight merge into one batch. On start
the store hands back a StateSnapshot, which the engine restores before any venue connects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

import msgspec

from riskmon.alerts.grouping import GroupId, StoredGroup
from riskmon.alerts.lifecycle import StoredAlert
from riskmon.events import FillReceived, MarketStatusChanged, OrderUpdate
from riskmon.watchdogs.journal import PersistedDeadline

if TYPE_CHECKING:
    from riskmon.engine.exposure import PositionKey
    from riskmon.engine.fills import HistoryStep, StreamKey
    from riskmon.engine.trading import Quote

# (venue, stream, fill_key) of a fill the ledger let go (revoked, or voided by a checkpoint).
FillDrop = tuple[str, str, str]
FillStep = FillReceived | FillDrop  # a fill the ledger recorded, or one it dropped
VenueKey = tuple[str, str]  # (venue, order id | quote id | market)
# The USD at risk of one position, per order or quote: (amount, pending).
RiskSources = dict[str, tuple[Decimal, bool]]


class StoredOrder(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """An order as the OrderBook holds it: the latest update plus what it remembers beyond it."""

    update: OrderUpdate
    newest_sequence: int | None
    filled: Decimal | None


class StateJournal:
    """Dirty keys and ledger steps since the last take. Written on the engine's hot path."""

    __slots__ = ("fills", "marks", "orders", "positions", "quotes", "risk", "seen", "statuses")

    def __init__(self) -> None:
        self.fills: list[FillStep] = []
        self.positions: set[PositionKey] = set()
        # Marks move on nearly every frame and are few (one per market): a flag, and the take
        # hands on those that moved since the last take, is cheaper on the hot path than a set
        # insert per mark.
        self.marks = False
        self.risk: set[PositionKey] = set()
        # Ordered, moved to the end when touched again: the store keeps the books' recency order.
        self.orders: dict[VenueKey, None] = {}
        self.quotes: dict[VenueKey, None] = {}
        self.seen: list[tuple[str, str, bool]] = []  # (venue, key, True: kept | False: forgotten)
        self.statuses: set[VenueKey] = set()

    def order_moved(self, key: VenueKey) -> None:
        self.orders.pop(key, None)
        self.orders[key] = None

    def quote_moved(self, key: VenueKey) -> None:
        self.quotes.pop(key, None)
        self.quotes[key] = None

    def __bool__(self) -> bool:
        return bool(
            self.fills
            or self.positions
            or self.marks
            or self.risk
            or self.orders
            or self.quotes
            or self.seen
            or self.statuses
        )


@dataclass(slots=True)
class AlertStateChanges:
    """Alert states (by fingerprint) and notification groups that changed; None: gone."""

    alerts: dict[str, StoredAlert | None] = field(default_factory=dict)
    groups: dict[GroupId, StoredGroup | None] = field(default_factory=dict)

    def merge(self, later: AlertStateChanges) -> None:
        self.alerts.update(later.alerts)
        self.groups.update(later.groups)

    def __bool__(self) -> bool:
        return bool(self.alerts or self.groups)


@dataclass(slots=True)
class AlertStateSnapshot:
    alerts: list[StoredAlert] = field(default_factory=list)
    groups: list[StoredGroup] = field(default_factory=list)


@dataclass(slots=True)
class StateChanges:
    """The values of everything that changed; a None value means the key is gone."""

    fills: list[FillStep] = field(default_factory=list)  # in order: each step matters
    positions: dict[PositionKey, Decimal] = field(default_factory=dict)
    marks: dict[VenueKey, Decimal] = field(default_factory=dict)
    reference_marks: dict[str, Decimal] = field(default_factory=dict)
    risk: dict[PositionKey, RiskSources] = field(default_factory=dict)  # empty: nothing at risk
    orders: dict[VenueKey, StoredOrder | None] = field(default_factory=dict)
    quotes: dict[VenueKey, bytes | None] = field(default_factory=dict)  # encoded: a Quote is mutable
    seen: list[tuple[str, str, bool]] = field(default_factory=list)
    statuses: dict[VenueKey, MarketStatusChanged] = field(default_factory=dict)
    alerts: AlertStateChanges = field(default_factory=AlertStateChanges)

    def merge(self, later: StateChanges) -> None:
        """Fold changes taken after these into these (later values win, steps append)."""
        self.fills.extend(later.fills)
        self.positions.update(later.positions)
        self.marks.update(later.marks)
        self.reference_marks.update(later.reference_marks)
        self.risk.update(later.risk)
        for key, order in later.orders.items():
            # An order that moved goes to the end, as in the OrderBook (recency drives its pruning).
            self.orders.pop(key, None)
            self.orders[key] = order
        for key, quote in later.quotes.items():
            self.quotes.pop(key, None)
            self.quotes[key] = quote
        self.seen.extend(later.seen)
        self.statuses.update(later.statuses)
        self.alerts.merge(later.alerts)

    def __bool__(self) -> bool:
        return bool(
            self.fills
            or self.positions
            or self.marks
            or self.reference_marks
            or self.risk
            or self.orders
            or self.quotes
            or self.seen
            or self.statuses
            or self.alerts
        )


@dataclass(slots=True)
class StateSnapshot:
    """Everything the state file holds, oldest first wherever order matters."""

    fills: dict[StreamKey, list[HistoryStep]] = field(default_factory=dict)
    positions: dict[PositionKey, Decimal] = field(default_factory=dict)
    marks: dict[VenueKey, Decimal] = field(default_factory=dict)
    reference_marks: dict[str, Decimal] = field(default_factory=dict)
    risk: dict[PositionKey, RiskSources] = field(default_factory=dict)
    orders: list[StoredOrder] = field(default_factory=list)  # least recently moved first
    quotes: list[Quote] = field(default_factory=list)  # least recently moved first
    seen: dict[str, list[str]] = field(default_factory=dict)  # per venue, oldest first
    statuses: list[MarketStatusChanged] = field(default_factory=list)
    deadlines: list[PersistedDeadline] = field(default_factory=list)
    alerts: AlertStateSnapshot = field(default_factory=AlertStateSnapshot)
