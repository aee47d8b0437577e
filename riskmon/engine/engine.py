"""The engine: the one writer of all monitor state.

It applies normalized events, evaluates only the rules a change can affect, and returns alert
transitions. It is pure and synchronous: callers pass `now` and the engine never awaits, so the
runtime runs it in a single task with no locks, and replay runs it on virtual time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, NamedTuple

from riskmon.alerts.lifecycle import AlertTracker, AlertTransition
from riskmon.config.schema import MonitorConfig
from riskmon.engine import event_alerts
from riskmon.engine.actions import Action
from riskmon.engine.deadlines import DeadlineHeap
from riskmon.engine.exposure import ExposureBook
from riskmon.engine.feed_handlers import FeedHandlers
from riskmon.engine.fills import FillLedger, SeenKeys
from riskmon.engine.markets import VenueMarkets
from riskmon.engine.order_events import RECONCILE_SOURCES, OrderEvents
from riskmon.engine.restore import DurableState
from riskmon.engine.rule_hooks import RuleHooks
from riskmon.engine.state_journal import StateChanges, StateSnapshot
from riskmon.engine.stats import VenueStats
from riskmon.engine.trading import OrderBook, QuoteBook
from riskmon.engine.venue_alerts import market_closed_alerts
from riskmon.events import (
    Event,
    FillReceived,
    FillRevoked,
    FillSnapshot,
    Liquidation,
    MarketStatusChanged,
    MarkPrice,
    PositionAmended,
    PositionsReported,
    TradeExecuted,
)
from riskmon.rules.limits import LimitEvaluator
from riskmon.watchdogs.journal import JournalKey, PersistedDeadline
from riskmon.watchdogs.suite import Watchdogs

log = logging.getLogger(__name__)

# Event-type keys the engine remembers to drop repeats of, per venue (fills have their ledger).
_SEEN_KEYS_KEPT = 10_000
_NONE: tuple[AlertTransition, ...] = ()
Handler = Callable[[Any, float], Iterable[AlertTransition]]


class IngestItem(NamedTuple):
    """One frame's events (or a REST answer's, `source` naming the call, or a session report),
    received at `now`: what `Engine.ingest` takes, as one item of `Engine.ingest_batch`."""

    venue: str
    events: Iterable[Event]
    now: float
    is_frame: bool = True
    source: str | None = None


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
        self._rules_started = False
        self._any_due = self.deadlines.any_due
        feed_handlers = FeedHandlers(self.venue_stats, self.alerts, self.watchdogs, self.rule_hooks, self._event_alert)
        self._order_events = OrderEvents(
            self.venue_stats,
            self.orders,
            self.quotes,
            self.markets,
            self.book,
            self.watchdogs,
            self.rule_hooks,
            self._event_alert,
        )
        # Dispatch by the exact event type: one dict lookup per event, no isinstance chain.
        self._handlers: dict[type[Any], Handler] = {
            MarkPrice: self._on_mark,
            FillReceived: self._on_fill,
            TradeExecuted: self._on_trade,
            PositionsReported: self._on_positions,
            FillRevoked: self._on_revoke,
            FillSnapshot: self._on_snapshot,
            Liquidation: self._on_liquidation,
            PositionAmended: self._on_amended,
            MarketStatusChanged: self._on_market_status,
            **self._order_events.handlers(),
            **feed_handlers.handlers(),
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
        # Deadlines due by `now` fire first, at their own due times; most frames find none due.
        out = self.advance(now) if not self._rules_started or self._any_due(now) else []
        stats = self.stats.get(venue) or self.venue_stats(venue)
        order_events = self._order_events  # which REST call (if any) the events came from
        if source is None:
            if order_events.source is not None:  # a stream frame after a REST answer
                order_events.source = None
                order_events.reconciling = False
            if is_frame:
                stats.frames += 1
                stats.last_frame_at = now
        else:
            order_events.source = source
            order_events.reconciling = source in RECONCILE_SOURCES and stats.feed_up
        handlers = self._handlers
        hooks = self.rule_hooks
        applied = hooks.applied if hooks.per_event else None
        for event in events:
            stats.events += 1
            try:
                out += handlers[type(event)](event, now)
                if applied is not None:
                    applied(venue, event)
            except Exception:
                # One event the engine cannot apply must not take down every desk's monitoring.
                stats.engine_errors += 1
                log.exception("engine could not apply %s from %s", type(event).__name__, venue)
        if hooks.tracking:
            out += hooks.evaluate(now)
        return out

    def ingest_batch(self, items: Sequence[IngestItem]) -> list[AlertTransition]:
        """Apply items in order: exactly `ingest` item by item, transitions concatenated in order."""
        out: list[AlertTransition] = []
        ingest = self.ingest
        for venue, events, now, is_frame, source in items:
            out += ingest(venue, events, now, is_frame=is_frame, source=source)
        return out

    def advance(self, now: float) -> list[AlertTransition]:
        """Fire every deadline due at or before `now`, each stamped with its own due time.

        Stamping the due time (not `now`) keeps replay exact when frames are sparse.
        """
        out: list[AlertTransition] = []
        if not self._rules_started:
            self.rule_hooks.start(now)
            self._rules_started = True
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
        self.rule_hooks.restored()

    def take_state_changes(self) -> StateChanges:
        """Book changes to persist since the last call (none until restore())."""
        return self._durable.take()

    def has_changes_to_persist(self) -> bool:
        """Whether take_state_changes() or take_journal() would return anything."""
        return self._durable.changed() or bool(self.watchdogs.ctx.journal)

    def _on_fill(self, fill: FillReceived, now: float) -> Iterable[AlertTransition]:
        stats = self.stats.get(fill.venue) or self.venue_stats(fill.venue)
        if not self.ledger.record(fill):
            stats.duplicates += 1
            return _NONE
        stats.fills += 1
        book = self.book
        book.apply_fill(fill)
        desk, markets = fill.desk, (book.instrument(fill.venue, fill.market),)
        hooks = self.rule_hooks
        hooks.touch_markets(desk, markets)
        out = self.limits.evaluate(desk, markets, book, self.alerts, now)
        out += hooks.fill(fill, now)
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

    def _on_mark(self, mark: MarkPrice, now: float) -> Iterable[AlertTransition]:
        book = self.book
        instrument, moved = book.apply_mark(mark.venue, mark.market, mark.price, mark.kind)
        hooks = self.rule_hooks
        if not moved:  # most prices: no desk's net moved, so no limit can change
            return hooks.mark(mark, instrument, moved, now) if hooks.reads_marks else _NONE
        markets = (instrument,)
        evaluate, alerts = self.limits.evaluate, self.alerts
        if len(moved) == 1 and not hooks.reads_marks:
            return evaluate(moved[0], markets, book, alerts, now)  # the hot case: one desk holds it
        out: list[AlertTransition] = []
        for desk in moved:
            out += evaluate(desk, markets, book, alerts, now)
        if hooks.reads_marks:
            out += hooks.mark(mark, instrument, moved, now)
        return out

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

    def _on_positions(self, report: PositionsReported, now: float) -> list[AlertTransition]:
        self.venue_stats(report.venue).position_reports += 1
        positions = {row.market: row.quantity for row in report.positions}
        changed = self.book.report_positions(report.desk, report.venue, report.account, positions, report.complete)
        out = self._evaluate_limits(report.desk, changed, now) if changed else []
        # Every non-trading market of the venue: a snapshot that leaves one out has flattened it.
        for status in self.markets.not_tradable(report.venue):
            out.extend(self._check_market_closed(status, now))
        return out

    def _on_market_status(self, change: MarketStatusChanged, now: float) -> list[AlertTransition]:
        self.markets.set_status(change)
        return self._check_market_closed(change, now)

    def _check_market_closed(self, status: MarketStatusChanged, now: float) -> list[AlertTransition]:
        return market_closed_alerts(self.alerts, self.book, self.markets, status, now)

    def _on_trade(self, trade: TradeExecuted, now: float) -> Iterable[AlertTransition]:
        self.venue_stats(trade.venue).trades += 1
        self.markets.record_trade(trade)
        return self.rule_hooks.venue_signal("trade", trade.venue, now, trade.price, market=trade.market)
