"""The engine's durable state as one unit: what changed since the last take, and a restore.

DurableState ties together the books that must survive a restart (fill ledger, exposure, orders,
quotes, repeat keys, market statuses). It reads the current value of every key the journal marked
dirty, so a key touched a thousand times in a step is written once. Pure: no I/O, no clock.
"""

from __future__ import annotations

import msgspec

from riskmon.engine.exposure import ExposureBook
from riskmon.engine.fills import FillLedger, SeenKeys
from riskmon.engine.markets import VenueMarkets
from riskmon.engine.state_journal import StateChanges, StateJournal, StateSnapshot
from riskmon.engine.trading import OrderBook, Quote, QuoteBook

_encoder = msgspec.msgpack.Encoder()
_quote_decoder = msgspec.msgpack.Decoder(Quote)


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

    def restore(self, snapshot: StateSnapshot) -> None:
        """Load a snapshot into the (fresh) books, then journal every change from here on."""
        self.ledger.restore(snapshot.fills)
        self.book.restore(snapshot.positions, snapshot.marks, snapshot.reference_marks, snapshot.risk)
        self.orders.restore(snapshot.orders)
        self.quotes.restore(snapshot.quotes)
        self.seen.restore(snapshot.seen)
        self.markets.restore_statuses(snapshot.statuses)
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
            marks=book.own_marks() if journal.marks else {},
            reference_marks=book.reference_marks() if journal.marks else {},
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
