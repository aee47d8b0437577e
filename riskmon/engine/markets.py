"""Per-venue market state that is not exposure: books, public trades, market status.

Kept for reconciliation (books against REST), the API and metrics; bounded by the number of
markets a venue lists, not by traffic.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from riskmon.events import BookSnapshot, MarketStatusChanged, TradeExecuted

if TYPE_CHECKING:
    from riskmon.engine.state_journal import StateJournal


class VenueMarkets:
    def __init__(self) -> None:
        self.books: dict[tuple[str, str], BookSnapshot] = {}
        self.last_trades: dict[tuple[str, str], TradeExecuted] = {}
        self.statuses: dict[tuple[str, str], MarketStatusChanged] = {}
        # The same statuses per venue (in the same order), so a venue's position report checks its
        # own markets, not every venue's.
        self._statuses_by_venue: dict[str, dict[str, MarketStatusChanged]] = {}
        # Only statuses are durable: books and trades are re-sent by the venue on reconnect.
        self.journal: StateJournal | None = None

    def apply_book(self, book: BookSnapshot) -> bool:
        """Replace the market's levels unless the venue's sequence says this one is older."""
        key = (book.venue, book.market)
        held = self.books.get(key)
        if (
            held is not None
            and held.sequence is not None
            and book.sequence is not None
            and book.sequence < held.sequence
        ):
            return False
        self.books[key] = book
        return True

    def record_trade(self, trade: TradeExecuted) -> None:
        self.last_trades[(trade.venue, trade.market)] = trade

    def set_status(self, change: MarketStatusChanged) -> MarketStatusChanged | None:
        """Record a status; returns the previous one."""
        key = (change.venue, change.market)
        previous = self.statuses.get(key)
        self.statuses[key] = change
        self._statuses_by_venue.setdefault(change.venue, {})[change.market] = change
        if self.journal is not None:
            self.journal.statuses.add(key)
        return previous

    def restore_statuses(self, statuses: Iterable[MarketStatusChanged]) -> None:
        for status in statuses:
            self.statuses[(status.venue, status.market)] = status
            self._statuses_by_venue.setdefault(status.venue, {})[status.market] = status

    def not_tradable(self, venue: str) -> list[MarketStatusChanged]:
        """The venue's markets whose latest status is not trading, in the order first given a status."""
        held = self._statuses_by_venue.get(venue)
        return [] if held is None else [status for status in held.values() if not status.tradable]

    def tradable(self, venue: str, market: str) -> bool:
        status = self.statuses.get((venue, market))
        return status is None or status.tradable
