"""Order and RFQ-quote state: the latest word of the venue on each, applied idempotently.

Both books keep absolute state (not deltas), so a replayed or duplicated update changes nothing,
and both forget finished objects oldest first beyond a retention bound.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from riskmon.engine.state_journal import StateJournal, StoredOrder
from riskmon.events import OrderStatus, OrderUpdate, QuoteLeg, QuoteStatus, QuoteUpdate

ORDER_DONE = frozenset({OrderStatus.REJECTED, OrderStatus.CANCELED, OrderStatus.VOID, OrderStatus.SETTLED})
# Nothing stays at risk on an order in these states, whatever amount an update states.
NOTHING_AT_RISK = frozenset({OrderStatus.REJECTED, OrderStatus.VOID, OrderStatus.SETTLED})
ZERO = Decimal(0)


class OrderBook:
    """Our orders by venue and order id. An update with a sequence not newer than the held one is
    stale and dropped: the venue's sequence numbers are monotonic per order.

    Held compactly, since a desk may have a hundred thousand open orders: the kept copy of an
    update carries only what the engine reads of a held order (`kept_update`), its repeated
    strings interned, in one dict slot per order (per venue, keyed by the id, least recently
    moved first). The slot holds the kept update itself, or a StoredOrder when the order
    remembers a newer sequence or a larger fill than that update states."""

    def __init__(self, retention: int) -> None:
        self._retention = retention
        self._orders: dict[str, dict[str, OrderUpdate | StoredOrder]] = {}
        self._count = 0
        self.journal: StateJournal | None = None

    def __len__(self) -> int:
        return self._count

    def apply(self, update: OrderUpdate) -> tuple[bool, OrderUpdate | None, Decimal]:
        """(applied, the update held before, the filled quantity known before).

        Not applied means stale or a duplicate: its sequence is not newer than one already seen.
        """
        orders = self._orders.get(update.venue)
        if orders is None:
            orders = self._orders[update.venue] = {}
        held, newest, filled = _unpacked(orders.get(update.order_id))
        filled_before = ZERO if filled is None else filled
        if newest is not None and update.sequence is not None and update.sequence <= newest:
            return False, held, filled_before
        if update.sequence is not None:
            newest = update.sequence
        if update.filled_quantity is not None:
            filled = max(filled_before, update.filled_quantity)
        if held is None:
            kept = kept_update(update, update.order_id)
            self._count += 1
        else:
            # The id string the book keys the order by: one copy serves the book and the watchdog.
            kept = kept_update(update, held.order_id)
            del orders[held.order_id]  # re-inserted last: the most recently moved
        orders[kept.order_id] = _packed(kept, newest, filled)
        if self.journal is not None:
            self.journal.order_moved((update.venue, update.order_id))
        self._prune()
        return True, held, filled_before

    def get(self, venue: str, order_id: str) -> OrderUpdate | None:
        orders = self._orders.get(venue)
        entry = None if orders is None else orders.get(order_id)
        return entry.update if isinstance(entry, StoredOrder) else entry

    def orders(self) -> list[OrderUpdate]:
        """Every held order, per venue, least recently moved first."""
        return [
            entry.update if isinstance(entry, StoredOrder) else entry
            for orders in self._orders.values()
            for entry in orders.values()
        ]

    def stored(self, venue: str, order_id: str) -> StoredOrder | None:
        """The order as the state file keeps it; None once it is forgotten."""
        orders = self._orders.get(venue)
        entry = None if orders is None else orders.get(order_id)
        if entry is None or isinstance(entry, StoredOrder):
            return entry
        return StoredOrder(entry, entry.sequence, entry.filled_quantity)

    def restore(self, orders: Iterable[StoredOrder]) -> None:
        """Orders from the state file, least recently moved first."""
        by_venue = self._orders
        for stored in orders:
            update = stored.update
            held = by_venue.get(update.venue)
            if held is None:
                held = by_venue[update.venue] = {}
            if held.pop(update.order_id, None) is None:
                self._count += 1
            kept = kept_update(update, update.order_id)
            held[kept.order_id] = _packed(kept, stored.newest_sequence, stored.filled)

    def _prune(self) -> None:
        if self._count <= self._retention:
            return
        for venue, orders in self._orders.items():
            done = [
                order_id
                for order_id, entry in orders.items()
                if (entry.update if isinstance(entry, StoredOrder) else entry).status in ORDER_DONE
            ]
            for order_id in done:
                del orders[order_id]
                self._count -= 1
                if self.journal is not None:
                    self.journal.order_moved((venue, order_id))
                if self._count <= self._retention:
                    return


def kept_update(update: OrderUpdate, order_id: str) -> OrderUpdate:
    """The part of an update the order book keeps: what the engine, the watchdogs and the rules
    read of a held order (status, the venue's word and reason, sequence, fill, desk, market),
    and its worst-case loss.

    Price, stake, fill price and external id are not read once applied, so they are left out.
    Account, market and the venue's status word repeat across orders and are interned; a zero
    amount is one shared Decimal (the same value: a pending order's fill and loss are zero).
    """
    filled, loss = update.filled_quantity, update.worst_case_loss_usd
    return OrderUpdate(
        update.venue,
        update.desk,
        sys.intern(update.account),
        order_id,
        sys.intern(update.market),
        update.status,
        sys.intern(update.venue_status),
        update.sequence,
        update.venue_ts,
        update.reason,
        filled_quantity=ZERO if filled is not None and not filled else filled,
        worst_case_loss_usd=ZERO if loss is not None and not loss else loss,
    )


def _unpacked(entry: OrderUpdate | StoredOrder | None) -> tuple[OrderUpdate | None, int | None, Decimal | None]:
    """(held update, newest sequence seen, largest fill seen) of a book slot."""
    if entry is None:
        return None, None, None
    if isinstance(entry, StoredOrder):
        return entry.update, entry.newest_sequence, entry.filled
    return entry, entry.sequence, entry.filled_quantity


def _packed(kept: OrderUpdate, newest: int | None, filled: Decimal | None) -> OrderUpdate | StoredOrder:
    if newest == kept.sequence and filled == kept.filled_quantity:
        return kept  # the update states all the book remembers: no wrapper
    return StoredOrder(kept, newest, filled)


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
