"""Which Totalis RFQs a market maker must follow again on every new connection (protocols.md §4.2).

The venue never redelivers, so this outlives connections: an RFQ is followed while one of our quotes
on it is live (holding, or converted to exposure) or its position is open, and no longer once the
position closed. Late copies of a closed RFQ's events must not make it followed again, so the closed
ones are remembered, the newest `closed_kept` of them.

`quote_seen` and `position_seen` name an RFQ only when it starts being followed: the codec subscribes
to it then (when the socket is authenticated) and to every one of `live_rfqs()` on each new login,
so an RFQ already followed is already subscribed on the current connection.
"""

from __future__ import annotations

from collections import OrderedDict

from riskmon.events import QuoteStatus, RfqPositionStatus
from riskmon.venues.totalis.frames import CLOSED_POSITION, LIVE_QUOTE


class FollowedRfqs:
    def __init__(self, closed_kept: int = 4096) -> None:
        self._closed_kept = closed_kept
        self._rfq_of_live_quote: dict[str, str] = {}  # in the order the quotes went live
        # The same, by RFQ: a closed position forgets its quotes without a walk over every live quote.
        self._live_quotes_of: dict[str, set[str]] = {}
        self._open_positions: dict[str, None] = {}  # insertion-ordered
        self._closed: OrderedDict[str, None] = OrderedDict()

    def rfq_of(self, quote_id: str) -> str | None:
        """The RFQ of a live quote, for a quote event that does not name it."""
        return self._rfq_of_live_quote.get(quote_id)

    def quote_seen(self, quote_id: str, rfq_id: str | None, status: QuoteStatus) -> str | None:
        """The RFQ the quote makes followed now that it has `status`: one not followed before, if any."""
        rfq_of_quote = self._rfq_of_live_quote
        if status not in LIVE_QUOTE:
            known = rfq_of_quote.pop(quote_id, None)
            if known is not None:
                self._unindex(quote_id, known)
            return None
        if rfq_id is None or rfq_id in self._closed:
            return None
        known = rfq_of_quote.get(quote_id)
        if known == rfq_id:
            return None  # the usual update of a live quote
        if known is not None:
            self._unindex(quote_id, known)
        rfq_of_quote[quote_id] = rfq_id
        quotes = self._live_quotes_of.get(rfq_id)
        if quotes is not None:
            quotes.add(quote_id)
            return None
        self._live_quotes_of[rfq_id] = {quote_id}
        return None if rfq_id in self._open_positions else rfq_id

    def position_seen(self, rfq_id: str, status: RfqPositionStatus) -> bool:
        """Whether the position, now that it has `status`, makes `rfq_id` followed when it was not."""
        if status in CLOSED_POSITION:
            self._open_positions.pop(rfq_id, None)
            for quote_id in self._live_quotes_of.pop(rfq_id, ()):
                del self._rfq_of_live_quote[quote_id]
            closed = self._closed
            closed[rfq_id] = None
            closed.move_to_end(rfq_id)
            while len(closed) > self._closed_kept:
                closed.popitem(last=False)
            return False
        open_positions = self._open_positions
        if rfq_id in open_positions or rfq_id in self._closed:
            return False
        open_positions[rfq_id] = None
        return rfq_id not in self._live_quotes_of

    def live_rfqs(self) -> list[str]:
        """Every RFQ to follow, once each: those of live quotes first, then of open positions."""
        live = dict.fromkeys([*self._rfq_of_live_quote.values(), *self._open_positions])
        return [rfq_id for rfq_id in live if rfq_id not in self._closed]

    def _unindex(self, quote_id: str, rfq_id: str) -> None:
        quotes = self._live_quotes_of[rfq_id]
        quotes.discard(quote_id)
        if not quotes:
            del self._live_quotes_of[rfq_id]
