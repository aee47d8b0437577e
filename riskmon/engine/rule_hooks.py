"""Where the engine meets the configured rules: signals out of applied events, what each ingest
touched, the risk limits that orders and quotes move, and a reload of rules and limits.

The engine calls one method per applied event; each returns at once, without building a
Signal, when no rule listens to that kind.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Mapping
from decimal import Decimal

from riskmon.alerts.lifecycle import AlertTracker, AlertTransition
from riskmon.config.alerting import SignalKind
from riskmon.config.schema import MonitorConfig
from riskmon.engine.deadlines import DeadlineHeap
from riskmon.engine.exposure import ExposureBook
from riskmon.engine.stats import VenueStats
from riskmon.engine.trading import OrderBook, Quote
from riskmon.events import (
    Event,
    FeedDown,
    FillReceived,
    Liquidation,
    MarkPrice,
    OrderUpdate,
    QuoteStatus,
    RfqPositionUpdate,
    Side,
)
from riskmon.rules.limits import LimitEvaluator
from riskmon.rules.ruleset import RuleSet
from riskmon.rules.signals import Signal
from riskmon.rules.state_values import LIVE_ORDER, MonitorState
from riskmon.rules.threshold import Touched
from riskmon.watchdogs.suite import Watchdogs

_NONE: tuple[AlertTransition, ...] = ()
# A fill signal's `side` label: an enum's `.value` is a Python-level property, this a dict lookup.
_SIDE_LABEL = {side: side.value for side in Side}


def _has_risk_limits(config: MonitorConfig) -> bool:
    return any(
        desk.limits.max_pending_rfq_usd is not None or desk.limits.max_worst_case_loss_usd is not None
        for desk in config.desks.values()
    )


class RuleHooks:
    def __init__(
        self,
        config: MonitorConfig,
        deadlines: DeadlineHeap,
        alerts: AlertTracker,
        book: ExposureBook,
        orders: OrderBook,
        stats: Mapping[str, VenueStats],
        watchdogs: Watchdogs,
        limits: LimitEvaluator,
    ) -> None:
        self.state = MonitorState(book, orders, stats, watchdogs.activation.pending, watchdogs.rfq.pending)
        self.rules = RuleSet(config, deadlines, alerts, state=self.state)
        self.limits = limits
        self._alerts = alerts
        self.touched = Touched()
        self._configure(config)

    def _configure(self, config: MonitorConfig) -> None:
        was_counting = getattr(self, "_count_open_orders", False)
        self.listened: frozenset[SignalKind] = self.rules.listened
        self._risk_limits = _has_risk_limits(config)
        # The book then notes which desks' and events' USD at risk moved, for the risk limits.
        self.state.book.watch_risk(self._risk_limits)
        # `evaluate` after each ingest: only when a rule reads state or a desk has a risk limit.
        self.tracking = self.rules.reads_state or self._risk_limits
        # What an ingest notes as touched, only for the scopes of keys some threshold rule has:
        # a venue key per event's venue, a desk key per event's desk, (desk, instrument) per
        # fill or price that moved a net. Firm and desk keys also follow the markets touched.
        scopes = self.rules.threshold_scopes
        self._touch_venues = "venue" in scopes
        self._touch_desks = not scopes.isdisjoint(("desk", "firm"))
        self._touch_markets = bool(scopes - {"venue"})
        # The engine calls `applied` after each event only when it notes something.
        self.per_event = self._touch_venues or self._touch_desks
        names = self.rules.state_names
        self._mark_ages_kept = "market.mark_age_seconds" in names
        # A price resets its instrument's mark age even where it moves no desk's net.
        self._mark_age_read = "market.mark_age_seconds" in self.rules.threshold_names
        self._count_open_orders = not names.isdisjoint(("desk.open_orders", "venue.open_orders"))
        # Whether `mark` does anything: most configs neither keep mark ages nor touch markets nor
        # listen to prices, and the engine then skips the call on every price.
        self.reads_marks = self._mark_ages_kept or self._touch_markets or "mark" in self.listened
        if self._count_open_orders and not was_counting:
            self.state.recount_open_orders()

    # --- the ingest loop ---------------------------------------------------------------------

    def applied(self, venue: str, event: Event) -> None:
        """One event applied (called only while `per_event`): note its venue and desk."""
        if self._touch_venues:
            self.touched.venues.add(venue)
        if self._touch_desks:
            desk = getattr(event, "desk", None)
            if isinstance(desk, str):
                self.touched.desks.add(desk)

    def order_applied(self, held: OrderUpdate | None, update: OrderUpdate) -> None:
        """The order book applied `update` over `held` (the update it held before, if any)."""
        if self._count_open_orders:
            self.state.order_moved(held is not None and held.status in LIVE_ORDER, update)

    def restored(self) -> None:
        """The books were loaded from the state file: counts kept from them start afresh."""
        if self._count_open_orders:
            self.state.recount_open_orders()

    def touch_markets(self, desk: str, instruments: Collection[str]) -> None:
        if self._touch_markets:
            touched = self.touched
            if self._touch_desks:
                touched.desks.add(desk)
            cells = touched.markets
            for instrument in instruments:
                cells.add((desk, instrument))

    def mark(self, mark: MarkPrice, instrument: str, moved: Collection[str], now: float) -> Iterable[AlertTransition]:
        """A price applied: touch the markets it re-priced (every holder's, when rules read mark ages).
        Called only while `reads_marks`."""
        if self._mark_ages_kept:
            self.state.mark_seen_at[instrument] = now
        if self._touch_markets:
            desks = self.state.book.desks_holding(instrument) if self._mark_age_read else moved
            if desks:
                touched = self.touched
                if self._touch_desks:
                    touched.desks.update(desks)
                cells = touched.markets
                for desk in desks:
                    cells.add((desk, instrument))
        if "mark" not in self.listened:
            return _NONE
        return self._emit("mark", mark.venue, {"venue": mark.venue, "market": mark.market}, mark.price, now)

    def evaluate(self, now: float) -> Iterable[AlertTransition]:
        """After an ingest: the risk limits on what it moved, then the threshold rules."""
        moved = self.state.book.risk_moved
        touched = self.touched
        if not moved and not (touched.markets or touched.desks or touched.venues):
            return _NONE  # most frames: nothing a limit or a rule reads moved
        out: list[AlertTransition] = []
        if moved:
            for desk in sorted(moved):
                out.extend(self.limits.evaluate_risk(desk, self.state.book, self._alerts, now, moved[desk]))
            moved.clear()
        if touched.markets or touched.desks or touched.venues:
            if self.rules.reads_state:
                out += self.rules.evaluate(self.state, touched, now)
            touched.clear()
        return out

    def on_deadline(self, key: Hashable, due: float) -> list[AlertTransition] | None:
        return self.rules.on_deadline(key, due)

    def start(self, now: float) -> None:
        self.rules.start(now)

    def reload(self, config: MonitorConfig, limits: LimitEvaluator, now: float) -> list[AlertTransition]:
        self.limits = limits
        out = self.rules.reload(config, now)
        self._configure(config)
        out.extend(limits.evaluate_all(self.state.book, self._alerts, now))
        return out

    # --- signals, one per applied event ------------------------------------------------------

    def _emit(
        self, kind: SignalKind, venue: str, labels: dict[str, str], value: Decimal | None, now: float
    ) -> list[AlertTransition]:
        return self.rules.on_signal(Signal(kind, venue, labels, value), now)

    def fill(self, fill: FillReceived, now: float) -> Iterable[AlertTransition]:
        if "fill" not in self.listened:
            return _NONE
        labels = {"desk": fill.desk, "venue": fill.venue, "market": fill.market, "side": _SIDE_LABEL[fill.side]}
        return self._emit("fill", fill.venue, labels, fill.quantity, now)

    def fill_revoked(self, fill: FillReceived, now: float) -> Iterable[AlertTransition]:
        if "fill_revoked" not in self.listened:
            return _NONE
        labels = {"desk": fill.desk, "venue": fill.venue, "market": fill.market}
        return self._emit("fill_revoked", fill.venue, labels, fill.quantity, now)

    def liquidation(self, event: Liquidation, now: float) -> Iterable[AlertTransition]:
        if "liquidation" not in self.listened:
            return _NONE
        labels = {"desk": event.desk, "venue": event.venue, "market": event.market}
        return self._emit("liquidation", event.venue, labels, event.quantity, now)

    def order_rejected(self, update: OrderUpdate, now: float) -> Iterable[AlertTransition]:
        if "order_rejected" not in self.listened:
            return _NONE
        reason = update.reason or update.venue_status
        labels = {"desk": update.desk, "venue": update.venue, "market": update.market, "reason": reason}
        return self._emit("order_rejected", update.venue, labels, None, now)

    def position_error(self, update: RfqPositionUpdate, now: float) -> Iterable[AlertTransition]:
        if "position_error" not in self.listened:
            return _NONE
        labels = {"desk": update.desk, "venue": update.venue, "rfq": update.rfq_id}
        return self._emit("position_error", update.venue, labels, None, now)

    def venue_signal(
        self, kind: SignalKind, venue: str, now: float, value: Decimal | None = None, **labels: str
    ) -> Iterable[AlertTransition]:
        """A signal whose labels are the venue plus a few plain strings (feeds, gaps, heartbeats...)."""
        if kind not in self.listened:
            return _NONE
        return self._emit(kind, venue, {"venue": venue, **labels}, value, now)

    def feed_down(self, event: FeedDown, was_up: bool, now: float) -> list[AlertTransition]:
        out = list(self.venue_signal("feed_down", event.venue, now))
        if was_up:
            out.extend(self.venue_signal("reconnect", event.venue, now, reason=event.reason))
        return out

    def quote(self, quote: Quote, moved: bool, now: float) -> Iterable[AlertTransition]:
        if "quote_accepted" not in self.listened or not moved or quote.status is not QuoteStatus.ACCEPTED:
            return _NONE
        labels = {"desk": quote.desk, "venue": quote.venue, "rfq": quote.rfq_id or ""}
        return self._emit("quote_accepted", quote.venue, labels, quote.worst_case_loss_usd, now)
