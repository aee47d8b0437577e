"""How the engine applies the venue's word on our orders, RFQ quotes and positions, and on
market books: the streams the drift watchdog holds against REST reconciliation, so each handler
knows which REST call (`source`) its events came from, if any.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.engine import event_alerts
from riskmon.engine.exposure import ExposureBook, PositionKey
from riskmon.engine.markets import VenueMarkets
from riskmon.engine.rule_hooks import RuleHooks
from riskmon.engine.stats import VenueStats
from riskmon.engine.trading import NOTHING_AT_RISK, OrderBook, Quote, QuoteBook
from riskmon.events import (
    BookSnapshot,
    OrderIntake,
    OrderLookupFailed,
    OrderStatus,
    OrderUpdate,
    QuoteUpdate,
    RfqPositionStatus,
    RfqPositionUpdate,
)
from riskmon.watchdogs.suite import Watchdogs

log = logging.getLogger("riskmon.engine.engine")  # one logger for everything the engine applies

Handler = Callable[[Any, float], Iterable[AlertTransition]]
# REST reads made to check the stream (not to recover after a reconnect, nor a watchdog lookup):
# a difference they reveal while the feed is up is drift.
RECONCILE_SOURCES = frozenset({"reconcile_order", "markets", "reconcile_quotes"})
LOOKUP_SOURCE = "get_order"


class OrderEvents:
    def __init__(
        self,
        venue_stats: Callable[[str], VenueStats],
        orders: OrderBook,
        quotes: QuoteBook,
        markets: VenueMarkets,
        book: ExposureBook,
        watchdogs: Watchdogs,
        rule_hooks: RuleHooks,
        event_alert: Callable[[event_alerts.EventAlert, float], list[AlertTransition]],
    ) -> None:
        self._stats = venue_stats
        self._orders = orders
        self._quotes = quotes
        self._markets = markets
        self._book = book
        self._watchdogs = watchdogs
        self._hooks = rule_hooks
        self._event_alert = event_alert
        # Set by the engine per ingest: the REST call the events came from (None: the stream), and
        # whether it is a reconciliation read of a connected venue (what drift is judged on).
        self.source: str | None = None
        self.reconciling = False

    def handlers(self) -> dict[type[Any], Handler]:
        return {
            BookSnapshot: self.on_book,
            OrderUpdate: self.on_order,
            QuoteUpdate: self.on_quote,
            RfqPositionUpdate: self.on_rfq_position,
            OrderIntake: self.on_intake,
            OrderLookupFailed: self.on_lookup_failed,
        }

    def on_order(self, update: OrderUpdate, now: float) -> list[AlertTransition]:
        stats = self._stats(update.venue)
        applied, held, filled_before = self._orders.apply(update)
        if self.source is None:
            self._watchdogs.drift.stream_order(update)
        elif self.reconciling:
            self._watchdogs.drift.rest_order(held, update, applied)
        from_lookup = self.source == LOOKUP_SOURCE
        if not applied:
            stats.stale_updates += 1
            if not from_lookup:
                return []
            # The lookup answered what we already hold: the watchdog judges the order as it stands.
            current = self._orders.get(update.venue, update.order_id)
            return self._watchdogs.activation.on_order(current or update, held, now, from_lookup=True)[0]
        stats.order_updates += 1
        self._hooks.order_applied(held, update)
        if update.filled_quantity is not None and update.filled_quantity > filled_before:
            stats.fills += 1
        loss = Decimal(0) if update.status in NOTHING_AT_RISK else update.worst_case_loss_usd
        if loss is not None:
            key = PositionKey(update.desk, update.venue, update.account, update.market)
            self._book.set_risk(key, update.order_id, loss)
        out, reported = self._watchdogs.activation.on_order(update, held, now, from_lookup=from_lookup)
        first_rejection = held is None or held.status is not OrderStatus.REJECTED
        if update.status is OrderStatus.REJECTED and first_rejection and not reported:
            out.extend(self._event_alert(event_alerts.activation_failed(update), now))
        if update.status is OrderStatus.REJECTED and first_rejection:
            out.extend(self._hooks.order_rejected(update, now))
        return out

    def on_intake(self, intake: OrderIntake, now: float) -> list[AlertTransition]:
        self._watchdogs.activation.on_intake(intake, self._orders.get(intake.venue, intake.order_id), now)
        return []

    def on_lookup_failed(self, failure: OrderLookupFailed, now: float) -> list[AlertTransition]:
        log.warning("%s: REST lookup of order %s failed: %s", failure.venue, failure.order_id, failure.reason)
        return self._watchdogs.activation.on_lookup_failed(failure, now)

    def on_quote(self, update: QuoteUpdate, now: float) -> list[AlertTransition]:
        self._stats(update.venue).quote_updates += 1
        if self.source is None:
            self._watchdogs.drift.stream_quote(update)
        elif self.reconciling:
            held = self._quotes.get(update.venue, update.quote_id)
            self._watchdogs.drift.rest_quote(held.status if held is not None else None, update)
        quote, moved = self._quotes.apply(update, now)
        self._reserve(quote)
        out = self._watchdogs.rfq.on_quote(quote, moved, now)
        out.extend(self._hooks.quote(quote, moved, now))
        return out

    def _reserve(self, quote: Quote) -> None:
        if quote.rfq_id is not None:
            key = PositionKey(quote.desk, quote.venue, quote.account, f"rfq:{quote.rfq_id}")
            self._book.set_risk(key, quote.quote_id, quote.at_risk_usd, pending=quote.pending)

    def on_rfq_position(self, update: RfqPositionUpdate, now: float) -> list[AlertTransition]:
        self._stats(update.venue).rfq_position_updates += 1
        if update.status in (RfqPositionStatus.SETTLED, RfqPositionStatus.CANCELLED):
            out: list[AlertTransition] = []
            for quote in self._quotes.close_rfq(update.venue, update.rfq_id):
                self._reserve(quote)
                out.extend(self._watchdogs.rfq.on_quote(quote, True, now, closed_by=update.status.value))
            return out
        if update.status is RfqPositionStatus.ERROR:
            out = self._event_alert(event_alerts.rfq_position_error(update), now)
            out.extend(self._hooks.position_error(update, now))
            return out
        return []

    def on_book(self, book: BookSnapshot, now: float) -> Iterable[AlertTransition]:
        if self.source is None:
            self._watchdogs.drift.stream_book(book)
        elif self.reconciling:
            self._watchdogs.drift.rest_book(self._markets.books.get((book.venue, book.market)), book)
        if self._markets.apply_book(book):
            self._stats(book.venue).book_updates += 1
        else:
            self._stats(book.venue).stale_updates += 1
        return ()
