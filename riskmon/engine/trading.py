"""Order and RFQ-quote state: the latest word of the venue on each, applied idempotently.

Both books keep absolute state (not deltas), so a replayed or duplicated update changes nothing,
and both forget finished objects oldest first beyond a retention bound.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from riskmon.engine.state_journal import StateJournal, StoredOrder
from riskmon.events import OrderStatus, OrderUpdate, QuoteLeg, QuoteStatus, QuoteUpdate

ORDER_DONE = frozenset({OrderStatus.REJECTED, OrderStatus.CANCELED, OrderStatus.VOID, OrderStatus.SETTLED})
# Nothing stays at risk on an order in these states, whatever amount an update states.
NOTHING_AT_RISK = frozenset({OrderStatus.REJECTED, OrderStatus.VOID, OrderStatus.SETTLED})


class OrderBook:
    """Our orders by (venue, order id). An update with a sequence not newer than the held one is
    stale and dropped: the venue's sequence numbers are monotonic per order."""

    def __init__(self, retention: int) -> None:
        self._retention = retention
        self._orders: OrderedDict[tuple[str, str], OrderUpdate] = OrderedDict()
        # Per order, kept apart from the held update: an unsequenced update (a REST read, a
        # cancel) must not make the order forget the newest sequence or fill it has seen.
        self._newest_sequence: dict[tuple[str, str], int] = {}
        self._filled: dict[tuple[str, str], Decimal] = {}
        self.journal: StateJournal | None = None

    def apply(self, update: OrderUpdate) -> tuple[bool, OrderUpdate | None, Decimal]:
        """(applied, the update held before, the filled quantity known before).

        Not applied means stale or a duplicate: its sequence is not newer than one already seen.
        """
        key = (update.venue, update.order_id)
        held = self._orders.get(key)
        filled_before = self._filled.get(key, Decimal(0))
        newest = self._newest_sequence.get(key)
        if newest is not None and update.sequence is not None and update.sequence <= newest:
            return False, held, filled_before
        if update.sequence is not None:
            self._newest_sequence[key] = update.sequence
        if update.filled_quantity is not None:
            self._filled[key] = max(filled_before, update.filled_quantity)
        self._orders[key] = update
        self._orders.move_to_end(key)
        if self.journal is not None:
            self.journal.order_moved(key)
        self._prune()
        return True, held, filled_before

    def get(self, venue: str, order_id: str) -> OrderUpdate | None:
        return self._orders.get((venue, order_id))

    def orders(self) -> list[OrderUpdate]:
        return list(self._orders.values())

    def stored(self, venue: str, order_id: str) -> StoredOrder | None:
        """The order as the state file keeps it; None once it is forgotten."""
        key = (venue, order_id)
        update = self._orders.get(key)
        if update is None:
            return None
        return StoredOrder(update, self._newest_sequence.get(key), self._filled.get(key))

    def restore(self, orders: Iterable[StoredOrder]) -> None:
        """Orders from the state file, least recently moved first."""
        held = self._orders
        for stored in orders:
            key = (stored.update.venue, stored.update.order_id)
            held.pop(key, None)
            held[key] = stored.update
            if stored.newest_sequence is not None:
                self._newest_sequence[key] = stored.newest_sequence
            if stored.filled is not None:
                self._filled[key] = stored.filled

    def _prune(self) -> None:
        if len(self._orders) <= self._retention:
            return
        for key in [k for k, order in self._orders.items() if order.status in ORDER_DONE]:
            del self._orders[key]
            self._newest_sequence.pop(key, None)
            self._filled.pop(key, None)
            if self.journal is not None:
                self.journal.order_moved(key)
            if len(self._orders) <= self._retention:
                return


# A quote only moves forward: an accepted quote can be confirmed, then executed, or released;
# a late or reordered frame saying an earlier stage never undoes a later one.
_STAGE = {
    QuoteStatus.ACCEPTED: 0,
    QuoteStatus.CONFIRMED: 1,
    QuoteStatus.EXECUTED: 2,
    QuoteStatus.EXPIRED: 3,
    QuoteStatus.REJECTED: 3,
    QuoteStatus.WITHDRAWN: 3,
}
QUOTE_RELEASED = frozenset({QuoteStatus.EXPIRED, QuoteStatus.REJECTED, QuoteStatus.WITHDRAWN})


@dataclass(slots=True)
class Quote:
    venue: str
    desk: str
    account: str
    quote_id: str
    rfq_id: str | None
    status: QuoteStatus
    worst_case_loss_usd: Decimal | None = None
    confirmation_deadline: float | None = None
    accepted_at: float | None = None
    reason: str | None = None
    execution_id: str | None = None
    legs: tuple[QuoteLeg, ...] = ()
    closed: bool = False  # the RFQ position settled or was cancelled: nothing at risk
    sightings: int = 0
    history: list[QuoteStatus] = field(default_factory=list)

    @property
    def pending(self) -> bool:
        return self.status is QuoteStatus.ACCEPTED

    @property
    def at_risk_usd(self) -> Decimal:
        if self.closed or self.status in QUOTE_RELEASED or self.worst_case_loss_usd is None:
            return Decimal(0)
        return self.worst_case_loss_usd


class QuoteBook:
    def __init__(self, retention: int) -> None:
        self._retention = retention
        self._quotes: OrderedDict[tuple[str, str], Quote] = OrderedDict()
        self._by_rfq: dict[tuple[str, str], set[str]] = {}
        self.journal: StateJournal | None = None

    def apply(self, update: QuoteUpdate, now: float) -> tuple[Quote, bool]:
        """Merge an update; returns the quote and whether its status moved.

        Two accepted frames for one quote (`quote:accepted` and `mm_quote:accepted`, in either
        order) merge into one reservation: each fills in what the other lacked.
        """
        key = (update.venue, update.quote_id)
        quote = self._quotes.get(key)
        moved = False
        if quote is None:
            quote = Quote(update.venue, update.desk, update.account, update.quote_id, update.rfq_id, update.status)
            quote.accepted_at = now if update.status is QuoteStatus.ACCEPTED else None
            quote.history.append(update.status)
            self._quotes[key] = quote
            moved = True
        elif _STAGE[update.status] > _STAGE[quote.status]:
            quote.status = update.status
            quote.history.append(update.status)
            moved = True
        quote.sightings += 1
        if quote.rfq_id is None and update.rfq_id is not None:
            quote.rfq_id = update.rfq_id
        if update.worst_case_loss_usd is not None:
            quote.worst_case_loss_usd = update.worst_case_loss_usd
        if update.confirmation_deadline is not None and quote.confirmation_deadline is None:
            quote.confirmation_deadline = update.confirmation_deadline
        if update.legs and not quote.legs:
            quote.legs = update.legs
        if update.reason is not None and moved:
            quote.reason = update.reason
        if update.execution_id is not None:
            quote.execution_id = update.execution_id
        if quote.rfq_id is not None:
            self._by_rfq.setdefault((quote.venue, quote.rfq_id), set()).add(quote.quote_id)
        self._quotes.move_to_end(key)
        if self.journal is not None:
            self.journal.quote_moved(key)
        self._prune()
        return quote, moved

    def close_rfq(self, venue: str, rfq_id: str) -> list[Quote]:
        """The RFQ's position settled or was cancelled: its quotes carry no risk any more."""
        closed = []
        for quote_id in self._by_rfq.get((venue, rfq_id), ()):
            quote = self._quotes.get((venue, quote_id))
            if quote is not None and not quote.closed:
                quote.closed = True
                closed.append(quote)
                if self.journal is not None:
                    self.journal.quote_moved((venue, quote_id))
        return closed

    def get(self, venue: str, quote_id: str) -> Quote | None:
        return self._quotes.get((venue, quote_id))

    def quotes(self) -> list[Quote]:
        return list(self._quotes.values())

    def restore(self, quotes: Iterable[Quote]) -> None:
        """Quotes from the state file, least recently moved first."""
        for quote in quotes:
            key = (quote.venue, quote.quote_id)
            self._quotes[key] = quote
            self._quotes.move_to_end(key)
            if quote.rfq_id is not None:
                self._by_rfq.setdefault((quote.venue, quote.rfq_id), set()).add(quote.quote_id)

    def _prune(self) -> None:
        if len(self._quotes) <= self._retention:
            return
        for key in [k for k, q in self._quotes.items() if q.closed or q.status in QUOTE_RELEASED]:
            quote = self._quotes.pop(key)
            if quote.rfq_id is not None:
                self._by_rfq.get((quote.venue, quote.rfq_id), set()).discard(quote.quote_id)
            if self.journal is not None:
                self.journal.quote_moved(key)
            if len(self._quotes) <= self._retention:
                return
