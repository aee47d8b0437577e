"""The engine: the one writer of all monitor state.

It applies normalized events, evaluates only the rules a change can affect, and returns alert
transitions. It is pure and synchronous: callers pass `now` and the engine never awaits, so the
runtime runs it in a single task with no locks, and replay runs it on virtual time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from decimal import Decimal
from typing import Any

from riskmon.alerts.lifecycle import AlertTracker, AlertTransition
from riskmon.config.schema import MonitorConfig
from riskmon.engine import event_alerts
from riskmon.engine.actions import Action
from riskmon.engine.deadlines import DeadlineHeap
from riskmon.engine.exposure import ExposureBook, PositionKey
from riskmon.engine.fills import FillLedger, SeenKeys
from riskmon.engine.markets import VenueMarkets
from riskmon.engine.restore import DurableState
from riskmon.engine.rule_hooks import RuleHooks
from riskmon.engine.state_journal import StateChanges, StateSnapshot
from riskmon.engine.stats import VenueStats
from riskmon.engine.trading import NOTHING_AT_RISK, OrderBook, Quote, QuoteBook
from riskmon.engine.venue_alerts import market_closed_alerts, session_refusals_disproved, subscription_alert
from riskmon.events import (
    BookSnapshot,
    Event,
    FeedDown,
    FeedUp,
    FillReceived,
    FillRevoked,
    FillSnapshot,
    FrameMalformed,
    Heartbeat,
    Liquidation,
    MarketStatusChanged,
    MarkPrice,
    OrderIntake,
    OrderLookupFailed,
    OrderStatus,
    OrderUpdate,
    PositionAmended,
    PositionsReported,
    QuoteUpdate,
    ReconciliationFinished,
    RfqPositionStatus,
    RfqPositionUpdate,
    SequenceGap,
    StreamResynced,
    Subscribed,
    SubscriptionFailed,
    TradeExecuted,
)
from riskmon.rules.limits import LimitEvaluator
from riskmon.watchdogs.journal import JournalKey, PersistedDeadline
from riskmon.watchdogs.suite import Watchdogs

log = logging.getLogger(__name__)

# Event-type keys the engine remembers to drop repeats of, per venue (fills have their ledger).
_SEEN_KEYS_KEPT = 10_000
# REST reads made to check the stream (not to recover after a reconnect, nor a watchdog lookup):
# a difference they reveal while the feed is up is drift.
RECONCILE_SOURCES = frozenset({"reconcile_order", "markets", "reconcile_quotes"})
LOOKUP_SOURCE = "get_order"


class Engine:
    def __init__(self, config: MonitorConfig) -> None:
        self.config = config
        self.deadlines = DeadlineHeap()
        self.alerts = AlertTracker(self.deadlines)
        self.book = ExposureBook(config.underlyings)
        self.ledger = FillLedger(config.state.fill_retention)
        self.limits = LimitEvaluator(config.desks)
        self.orders = OrderBook(config.state.fill_retention)
        self.quotes = QuoteBook(config.state.fill_retention)
        self.markets = VenueMarkets()
        self.stats: dict[str, VenueStats] = {name: VenueStats() for name in config.venues}
        self.seen = SeenKeys(_SEEN_KEYS_KEPT)
        self._durable = DurableState(self.ledger, self.book, self.orders, self.quotes, self.seen, self.markets)
        self.watchdogs = Watchdogs(config, self.deadlines, self.alerts, self.book)
        self.rule_hooks = RuleHooks(
            config, self.deadlines, self.alerts, self.book, self.orders, self.stats, self.watchdogs, self.limits
        )
        # The REST call the events being applied came from (None: the stream).
        self._source: str | None = None
        self._reconciling = False
        self._handlers: dict[type[Any], Callable[[Any, float], list[AlertTransition]]] = {
            FillReceived: self._on_fill,
            FillRevoked: self._on_revoke,
            FillSnapshot: self._on_snapshot,
            MarkPrice: self._on_mark,
            FrameMalformed: self._on_malformed,
            FeedUp: self._on_feed_up,
            FeedDown: self._on_feed_down,
            Liquidation: self._on_liquidation,
            PositionAmended: self._on_amended,
            OrderUpdate: self._on_order,
            QuoteUpdate: self._on_quote,
            RfqPositionUpdate: self._on_rfq_position,
            PositionsReported: self._on_positions,
            SequenceGap: self._on_sequence_gap,
            MarketStatusChanged: self._on_market_status,
            Subscribed: self._on_subscribed,
            SubscriptionFailed: self._on_subscription_failed,
            Heartbeat: self._on_heartbeat,
            BookSnapshot: self._on_book,
            TradeExecuted: self._on_trade,
            OrderIntake: self._on_intake,
            OrderLookupFailed: self._on_lookup_failed,
            StreamResynced: self._on_resynced,
            ReconciliationFinished: self._on_reconciliation_finished,
        }

    def venue_stats(self, venue: str) -> VenueStats:
        stats = self.stats.get(venue)
        if stats is None:
            stats = self.stats[venue] = VenueStats()
        return stats

    def ingest(
        self,
        venue: str,
        events: Iterable[Event],
        now: float,
        *,
        is_frame: bool = True,
        source: str | None = None,
    ) -> list[AlertTransition]:
        """Apply the events decoded from one frame, REST answer (`source` names the call) or
        session report, received at `now`."""
        out = self.advance(now)
        stats = self.venue_stats(venue)
        self._source = source
        self._reconciling = source in RECONCILE_SOURCES and stats.feed_up
        if is_frame and source is None:
            stats.frames += 1
            stats.last_frame_at = now
        hooks = self.rule_hooks
        for event in events:
            stats.events += 1
            try:
                was_live = hooks.before(event) if hooks.tracking else False
                out.extend(self._handlers[type(event)](event, now))
                if hooks.tracking:
                    hooks.after(venue, event, was_live, now)
            except Exception:
                # One event the engine cannot apply must not take down every desk's monitoring.
                stats.engine_errors += 1
                log.exception("engine could not apply %s from %s", type(event).__name__, venue)
        if hooks.tracking:
            out.extend(hooks.evaluate(now))
        return out

    def advance(self, now: float) -> list[AlertTransition]:
        """Fire every deadline due at or before `now`, each stamped with its own due time.

        Stamping the due time (not `now`) keeps replay exact when frames are sparse.
        """
        out: list[AlertTransition] = []
        if not self.rule_hooks.rules.started:
            self.rule_hooks.start(now)
        while (entry := self.deadlines.pop_next(now)) is not None:
            due, key = entry
            fired = self.watchdogs.on_deadline(key, due)
            if fired is None:
                fired = self.rule_hooks.on_deadline(key, due)
            if fired is not None:
                out.extend(fired)
                continue
            transition = self.alerts.on_deadline(key, due)
            if transition is not None:
                out.append(transition)
        return out

    def next_deadline(self) -> float | None:
        return self.deadlines.next_due()

    def start(self, now: float, restored: Iterable[PersistedDeadline] = ()) -> None:
        """A live run begins: re-arm persisted deadlines and start the startup feed grace."""
        self.watchdogs.restore(restored, now)
        self.watchdogs.start(now)
        self.rule_hooks.start(now)

    def reload(self, config: MonitorConfig, now: float) -> list[AlertTransition]:
        """Apply a new config's rules and desk limits; books, ledger and watchdogs are untouched.

        Unchanged rules keep their state; removed or changed ones resolve their alerts (returned).
        """
        out = self.advance(now)
        self.config = config
        self.limits = LimitEvaluator(config.desks)
        out.extend(self.rule_hooks.reload(config, self.limits, now))
        return out

    def take_actions(self) -> list[Action]:
        """Remedies the watchdogs decided on since the last call, for the runtime to carry out."""
        return self.watchdogs.take_actions()

    def take_journal(self) -> dict[JournalKey, PersistedDeadline | None]:
        """Deadline records to persist (None: delete) since the last call."""
        return self.watchdogs.take_journal()

    def restore(self, snapshot: StateSnapshot) -> None:
        """Before start: load the state file's books, then journal every change for take_state_changes."""
        self._durable.restore(snapshot)

    def take_state_changes(self) -> StateChanges:
        """Book changes to persist since the last call (none until restore())."""
        return self._durable.take()

    def has_changes_to_persist(self) -> bool:
        """Whether take_state_changes() or take_journal() would return anything."""
        return self._durable.changed() or bool(self.watchdogs.ctx.journal)

    def _on_fill(self, fill: FillReceived, now: float) -> list[AlertTransition]:
        stats = self.venue_stats(fill.venue)
        if not self.ledger.record(fill):
            stats.duplicates += 1
            return []
        stats.fills += 1
        self.book.apply_fill(fill)
        instrument = self.book.instrument(fill.venue, fill.market)
        out = self._evaluate_limits(fill.desk, (instrument,), now)
        out.extend(self.rule_hooks.fill(fill, now))
        return out

    def _evaluate_limits(self, desk: str, instruments: Collection[str], now: float) -> list[AlertTransition]:
        self.rule_hooks.touch_markets(desk, instruments)
        return self.limits.evaluate(desk, instruments, self.book, self.alerts, now)

    def _on_revoke(self, revoke: FillRevoked, now: float) -> list[AlertTransition]:
        stats = self.venue_stats(revoke.venue)
        fill = self.ledger.revoke(revoke.venue, revoke.stream, revoke.fill_key)
        if fill is None:
            stats.revoke_unknown += 1
            return []
        stats.revoked += 1
        return self._reverse(fill, "the venue revoked it (fork)", now)

    def _on_snapshot(self, snapshot: FillSnapshot, now: float) -> list[AlertTransition]:
        stats = self.venue_stats(snapshot.venue)
        merge = self.ledger.merge_snapshot(snapshot)
        stats.duplicates += merge.duplicates
        stats.fills += len(merge.new)
        out: list[AlertTransition] = []
        touched: dict[str, set[str]] = {}
        for fill in merge.new:
            self.book.apply_fill(fill)
            touched.setdefault(fill.desk, set()).add(self.book.instrument(fill.venue, fill.market))
            out.extend(self.rule_hooks.fill(fill, now))
        for desk, markets in touched.items():
            out.extend(self._evaluate_limits(desk, markets, now))
        for fill in merge.voided:
            stats.voided += 1
            out.extend(self._reverse(fill, "it is missing from the venue's checkpoint (fork while disconnected)", now))
        return out

    def _reverse(self, fill: FillReceived, why: str, now: float) -> list[AlertTransition]:
        self.book.apply_fill(fill, reverse=True)
        instrument = self.book.instrument(fill.venue, fill.market)
        out = self._evaluate_limits(fill.desk, (instrument,), now)
        out.extend(self._event_alert(event_alerts.fill_reversed(fill, why), now))
        out.extend(self.rule_hooks.fill_revoked(fill, now))
        return out

    def _event_alert(self, alert: event_alerts.EventAlert, now: float) -> list[AlertTransition]:
        transition = self.alerts.fire_event(
            alert.alertname,
            alert.severity,
            alert.labels,
            alert.annotations,
            resolve_after=self.config.alerts.event_resolve_after,
            now=now,
            value=alert.value,
        )
        return [] if transition is None else [transition]

    def _on_mark(self, mark: MarkPrice, now: float) -> list[AlertTransition]:
        instrument, moved = self.book.set_mark(mark.venue, mark.market, mark.price, mark.kind)
        out: list[AlertTransition] = []
        for desk in moved:  # a desk whose net did not move has no limit the price can change
            out.extend(self.limits.evaluate(desk, (instrument,), self.book, self.alerts, now))
        out.extend(self.rule_hooks.mark(mark, instrument, moved, now))
        return out

    def _on_malformed(self, event: FrameMalformed, now: float) -> list[AlertTransition]:
        stats = self.venue_stats(event.venue)
        stats.malformed += 1
        log.warning("%s: dropped a malformed frame (%s); %d so far", event.venue, event.reason, stats.malformed)
        return list(self.rule_hooks.venue_signal("malformed", event.venue, now, reason=event.reason))

    def _on_feed_up(self, event: FeedUp, now: float) -> list[AlertTransition]:
        self.venue_stats(event.venue).feed_up = True
        log.info("%s: connected to %s", event.venue, event.endpoint)
        self.watchdogs.health_check.on_feed_up(event.venue, now)
        out = self.watchdogs.feeds.on_up(event.venue, now)
        out.extend(session_refusals_disproved(self.alerts, event.venue, now))
        out.extend(self.rule_hooks.venue_signal("feed_up", event.venue, now))
        return out

    def _on_feed_down(self, event: FeedDown, now: float) -> list[AlertTransition]:
        was_up = self.venue_stats(event.venue).connection_ended(event.cause)
        log.warning("%s: feed down at %s: %s", event.venue, event.endpoint, event.reason)
        self.watchdogs.health_check.on_feed_down(event.venue)
        self.watchdogs.feeds.on_down(event.venue, event.reason, now)
        return self.rule_hooks.feed_down(event, was_up, now)

    def _on_liquidation(self, event: Liquidation, now: float) -> list[AlertTransition]:
        if not self.seen.first_sighting(event.venue, f"liquidation:{event.key}"):
            self.venue_stats(event.venue).duplicates += 1
            return []
        self.venue_stats(event.venue).liquidations += 1
        out = self._event_alert(event_alerts.liquidation(event), now)
        out.extend(self.rule_hooks.liquidation(event, now))
        return out

    def _on_amended(self, event: PositionAmended, now: float) -> list[AlertTransition]:
        stats = self.venue_stats(event.venue)
        if self.seen.first_sighting(event.venue, f"amend:{event.key}"):
            stats.amendments += 1
            log.info("%s: %s on %s for desk %s", event.venue, event.change, event.market, event.desk)
        else:
            stats.duplicates += 1
        return []

    def _on_order(self, update: OrderUpdate, now: float) -> list[AlertTransition]:
        stats = self.venue_stats(update.venue)
        applied, held, filled_before = self.orders.apply(update)
        if self._source is None:
            self.watchdogs.drift.stream_order(update)
        elif self._reconciling:
            self.watchdogs.drift.rest_order(held, update, applied)
        from_lookup = self._source == LOOKUP_SOURCE
        if not applied:
            stats.stale_updates += 1
            if not from_lookup:
                return []
            # The lookup answered what we already hold: the watchdog judges the order as it stands.
            current = self.orders.get(update.venue, update.order_id)
            return self.watchdogs.activation.on_order(current or update, held, now, from_lookup=True)[0]
        stats.order_updates += 1
        if update.filled_quantity is not None and update.filled_quantity > filled_before:
            stats.fills += 1
        loss = Decimal(0) if update.status in NOTHING_AT_RISK else update.worst_case_loss_usd
        if loss is not None:
            key = PositionKey(update.desk, update.venue, update.account, update.market)
            self.book.set_risk(key, update.order_id, loss)
        out, reported = self.watchdogs.activation.on_order(update, held, now, from_lookup=from_lookup)
        first_rejection = held is None or held.status is not OrderStatus.REJECTED
        if update.status is OrderStatus.REJECTED and first_rejection and not reported:
            out.extend(self._event_alert(event_alerts.activation_failed(update), now))
        if update.status is OrderStatus.REJECTED and first_rejection:
            out.extend(self.rule_hooks.order_rejected(update, now))
        return out

    def _on_intake(self, intake: OrderIntake, now: float) -> list[AlertTransition]:
        self.watchdogs.activation.on_intake(intake, self.orders.get(intake.venue, intake.order_id), now)
        return []

    def _on_lookup_failed(self, failure: OrderLookupFailed, now: float) -> list[AlertTransition]:
        log.warning("%s: REST lookup of order %s failed: %s", failure.venue, failure.order_id, failure.reason)
        return self.watchdogs.activation.on_lookup_failed(failure, now)

    def _on_quote(self, update: QuoteUpdate, now: float) -> list[AlertTransition]:
        self.venue_stats(update.venue).quote_updates += 1
        if self._source is None:
            self.watchdogs.drift.stream_quote(update)
        elif self._reconciling:
            held = self.quotes.get(update.venue, update.quote_id)
            self.watchdogs.drift.rest_quote(held.status if held is not None else None, update)
        quote, moved = self.quotes.apply(update, now)
        self._reserve(quote)
        out = self.watchdogs.rfq.on_quote(quote, moved, now)
        out.extend(self.rule_hooks.quote(quote, moved, now))
        return out

    def _reserve(self, quote: Quote) -> None:
        if quote.rfq_id is not None:
            key = PositionKey(quote.desk, quote.venue, quote.account, f"rfq:{quote.rfq_id}")
            self.book.set_risk(key, quote.quote_id, quote.at_risk_usd, pending=quote.pending)

    def _on_rfq_position(self, update: RfqPositionUpdate, now: float) -> list[AlertTransition]:
        self.venue_stats(update.venue).rfq_position_updates += 1
        if update.status in (RfqPositionStatus.SETTLED, RfqPositionStatus.CANCELLED):
            out: list[AlertTransition] = []
            for quote in self.quotes.close_rfq(update.venue, update.rfq_id):
                self._reserve(quote)
                out.extend(self.watchdogs.rfq.on_quote(quote, True, now, closed_by=update.status.value))
            return out
        if update.status is RfqPositionStatus.ERROR:
            out = self._event_alert(event_alerts.rfq_position_error(update), now)
            out.extend(self.rule_hooks.position_error(update, now))
            return out
        return []

    def _on_positions(self, report: PositionsReported, now: float) -> list[AlertTransition]:
        self.venue_stats(report.venue).position_reports += 1
        positions = {row.market: row.quantity for row in report.positions}
        changed = self.book.report_positions(report.desk, report.venue, report.account, positions, report.complete)
        out = self._evaluate_limits(report.desk, changed, now) if changed else []
        # Every non-trading market of the venue: a snapshot that leaves one out has flattened it.
        for (venue, _market), status in list(self.markets.statuses.items()):
            if venue == report.venue and not status.tradable:
                out.extend(self._check_market_closed(status, now))
        return out

    def _on_sequence_gap(self, gap: SequenceGap, now: float) -> list[AlertTransition]:
        self.venue_stats(gap.venue).sequence_gaps += 1
        self.watchdogs.feeds.on_gap(gap.venue, gap.stream, now)
        out = self._event_alert(event_alerts.sequence_gap(gap), now)
        missed = Decimal(gap.received - gap.expected)
        out.extend(self.rule_hooks.venue_signal("sequence_gap", gap.venue, now, missed, stream=gap.stream))
        return out

    def _on_market_status(self, change: MarketStatusChanged, now: float) -> list[AlertTransition]:
        self.markets.set_status(change)
        return self._check_market_closed(change, now)

    def _check_market_closed(self, status: MarketStatusChanged, now: float) -> list[AlertTransition]:
        return market_closed_alerts(self.alerts, self.book, self.markets, status, now)

    def _on_subscribed(self, event: Subscribed, now: float) -> list[AlertTransition]:
        log.info("%s: subscribed to %s", event.venue, event.subscription)
        return subscription_alert(self.alerts, event.venue, event.subscription, None, now)

    def _on_subscription_failed(self, event: SubscriptionFailed, now: float) -> list[AlertTransition]:
        self.venue_stats(event.venue).subscription_errors += 1
        log.error("%s: subscription %s refused: %s", event.venue, event.subscription, event.reason)
        out = subscription_alert(self.alerts, event.venue, event.subscription, event, now)
        out.extend(
            self.rule_hooks.venue_signal(
                "subscription_error", event.venue, now, subscription=event.subscription, reason=event.reason
            )
        )
        return out

    def _on_heartbeat(self, event: Heartbeat, now: float) -> list[AlertTransition]:
        stats = self.venue_stats(event.venue)
        stats.heartbeats += 1
        stats.last_heartbeat_at = now
        out = self.watchdogs.health_check.on_heartbeat(event.venue, now)
        out.extend(self.rule_hooks.venue_signal("heartbeat", event.venue, now))
        return out

    def _on_book(self, book: BookSnapshot, now: float) -> list[AlertTransition]:
        if self._source is None:
            self.watchdogs.drift.stream_book(book)
        elif self._reconciling:
            self.watchdogs.drift.rest_book(self.markets.books.get((book.venue, book.market)), book)
        if self.markets.apply_book(book):
            self.venue_stats(book.venue).book_updates += 1
        else:
            self.venue_stats(book.venue).stale_updates += 1
        return []

    def _on_trade(self, trade: TradeExecuted, now: float) -> list[AlertTransition]:
        self.venue_stats(trade.venue).trades += 1
        self.markets.record_trade(trade)
        return list(self.rule_hooks.venue_signal("trade", trade.venue, now, trade.price, market=trade.market))

    def _on_resynced(self, event: StreamResynced, now: float) -> list[AlertTransition]:
        log.info("%s: %s rebuilt from a fresh snapshot", event.venue, event.stream)
        self.watchdogs.feeds.on_resynced(event.venue, event.stream, now)
        return []

    def _on_reconciliation_finished(self, event: ReconciliationFinished, now: float) -> list[AlertTransition]:
        if event.error is not None:
            log.warning("%s: reconciliation of %s failed: %s", event.venue, event.scope, event.error)
        return self.watchdogs.drift.on_finished(event, now)
