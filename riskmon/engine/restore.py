"""The engine's durable state as one unit: what changed since the last take, and a restore.

DurableState ties together the books that must survive a restart (fill ledger, exposure, orders,
quotes, repeat keys, market statuses). It reads the current value of every key the journal marked
dirty, so a key touched a thousand times in a step is written once. Pure: no I/O, no clock.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TypeVar

import msgspec

from riskmon.engine.exposure import ExposureBook
from riskmon.engine.fills import FillLedger, SeenKeys
from riskmon.engine.markets import VenueMarkets
from riskmon.engine.state_journal import StateChanges, StateJournal, StateSnapshot, VenueKey
from riskmon.engine.trading import OrderBook, Quote, QuoteBook

_encoder = msgspec.msgpack.Encoder()
_quote_decoder = msgspec.msgpack.Decoder(Quote)
_K = TypeVar("_K")


def encode_quote(quote: Quote) -> bytes:
    return _encoder.encode(quote)


def decode_quote(body: bytes) -> Quote:
    return _quote_decoder.decode(body)


class DurableState:
    def __init__(
        self,
        ledger: FillLedger,
        book: ExposureBook,
        orders: OrderBook,
        quotes: QuoteBook,
        seen: SeenKeys,
        markets: VenueMarkets,
    ) -> None:
        self.ledger = ledger
        self.book = book
        self.orders = orders
        self.quotes = quotes
        self.seen = seen
        self.markets = markets
        self.journal: StateJournal | None = None
        # The marks as last taken (restored: as in the file): a take hands on only the prices
        # that moved since, not every market's on every write.
        self._marks_taken: dict[VenueKey, Decimal] = {}
        self._reference_marks_taken: dict[str, Decimal] = {}

    def restore(self, snapshot: StateSnapshot) -> None:
        """Load a snapshot into the (fresh) books, then journal every change from here on."""
        self.ledger.restore(snapshot.fills)
        self.book.restore(snapshot.positions, snapshot.marks, snapshot.reference_marks, snapshot.risk)
        self.orders.restore(snapshot.orders)
        self.quotes.restore(snapshot.quotes)
        self.seen.restore(snapshot.seen)
        self.markets.restore_statuses(snapshot.statuses)
        self._marks_taken = self.book.own_marks()
        self._reference_marks_taken = self.book.reference_marks()
        if self.journal is None:
            journal = self.journal = StateJournal()
            for part in (self.ledger, self.book, self.orders, self.quotes, self.seen, self.markets):
                part.journal = journal

    def changed(self) -> bool:
        return self.journal is not None and bool(self.journal)

    def take(self) -> StateChanges:
        """Everything that changed since the last take (nothing while not journaling)."""
        journal = self.journal
        if journal is None or not journal:
            return StateChanges()
        book, orders, quotes = self.book, self.orders, self.quotes
        changes = StateChanges(
            fills=journal.fills,
            positions={key: book.position(key) for key in journal.positions},
            marks=_moved(book.own_marks(), self._marks_taken) if journal.marks else {},
            reference_marks=_moved(book.reference_marks(), self._reference_marks_taken) if journal.marks else {},
            risk={key: book.risk_sources(key) for key in journal.risk},
            orders={key: orders.stored(*key) for key in journal.orders},
            quotes={
                key: None if (quote := quotes.get(*key)) is None else encode_quote(quote) for key in journal.quotes
            },
            seen=journal.seen,
            statuses={key: self.markets.statuses[key] for key in journal.statuses},
        )
        journal.fills = []
        journal.positions = set()
        journal.marks = False
        journal.risk = set()
        journal.orders = {}
        journal.quotes = {}
        journal.seen = []
        journal.statuses = set()
        return changes


def _moved(current: dict[_K, Decimal], taken: dict[_K, Decimal]) -> dict[_K, Decimal]:
    """The prices in `current` not as last taken, noted as taken now. A book never drops a
    price, so there is no removal to hand on."""
    moved = {key: price for key, price in current.items() if taken.get(key) is not price}
    taken.update(moved)
    return moved
