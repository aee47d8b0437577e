"""The engine: the one writer of all monitor state.

It applies normalized events, evaluates only the rules a change can affect, and returns alert
transitions. It is pure and synchronous: callers pass `now` and the engine never awaits, so the
runtime runs it in a single task with no locks, and replay runs it on virtual time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from riskmon.alerts.lifecycle import AlertTracker, AlertTransition
from riskmon.config.schema import MonitorConfig
from riskmon.engine.deadlines import DeadlineHeap
from riskmon.engine.exposure import ExposureBook, plain_decimal
from riskmon.engine.fills import FillLedger
from riskmon.events import (
    Event,
    FeedDown,
    FeedUp,
    FillReceived,
    FillRevoked,
    FillSnapshot,
    FrameMalformed,
    MarkPrice,
)
from riskmon.rules.limits import LimitEvaluator

log = logging.getLogger(__name__)

FILL_REVOKED = "FillRevoked"


@dataclass(slots=True)
class VenueStats:
    """Plain counters: metrics read them at scrape time instead of paying per event."""

    frames: int = 0
    events: int = 0
    fills: int = 0
    duplicates: int = 0
    revoked: int = 0
    revoke_unknown: int = 0
    voided: int = 0
    malformed: int = 0
    reconnects: int = 0
    engine_errors: int = 0
    feed_up: bool = False
    last_frame_at: float | None = None


class Engine:
    def __init__(self, config: MonitorConfig) -> None:
        self.config = config
        self.deadlines = DeadlineHeap()
        self.alerts = AlertTracker(self.deadlines)
        self.book = ExposureBook()
        self.ledger = FillLedger(config.state.fill_retention)
        self.limits = LimitEvaluator(config.desks)
        self.stats: dict[str, VenueStats] = {name: VenueStats() for name in config.venues}
        self._handlers: dict[type[Any], Callable[[Any, float], list[AlertTransition]]] = {
            FillReceived: self._on_fill,
            FillRevoked: self._on_revoke,
            FillSnapshot: self._on_snapshot,
            MarkPrice: self._on_mark,
            FrameMalformed: self._on_malformed,
            FeedUp: self._on_feed_up,
            FeedDown: self._on_feed_down,
        }

    def venue_stats(self, venue: str) -> VenueStats:
        stats = self.stats.get(venue)
        if stats is None:
            stats = self.stats[venue] = VenueStats()
        return stats

    def ingest(
        self, venue: str, events: Iterable[Event], now: float, *, is_frame: bool = True
    ) -> list[AlertTransition]:
        """Apply the events decoded from one frame (or session report) received at `now`."""
        out = self.advance(now)
        stats = self.venue_stats(venue)
        if is_frame:
            stats.frames += 1
            stats.last_frame_at = now
        for event in events:
            stats.events += 1
            try:
                out.extend(self._handlers[type(event)](event, now))
            except Exception:
                # One event the engine cannot apply must not take down every desk's monitoring.
                stats.engine_errors += 1
                log.exception("engine could not apply %s from %s", type(event).__name__, venue)
        return out

    def advance(self, now: float) -> list[AlertTransition]:
        """Fire every deadline due at or before `now`, each stamped with its own due time.

        Stamping the due time (not `now`) keeps replay exact when frames are sparse.
        """
        out: list[AlertTransition] = []
        for due, key in self.deadlines.pop_due(now):
            transition = self.alerts.on_deadline(key, due)
            if transition is not None:
                out.append(transition)
        return out

    def next_deadline(self) -> float | None:
        return self.deadlines.next_due()

    def _on_fill(self, fill: FillReceived, now: float) -> list[AlertTransition]:
        stats = self.venue_stats(fill.venue)
        if not self.ledger.record(fill):
            stats.duplicates += 1
            return []
        stats.fills += 1
        self.book.apply_fill(fill)
        return self.limits.evaluate(fill.desk, (fill.market,), self.book, self.alerts, now)

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
            touched.setdefault(fill.desk, set()).add(fill.market)
        for desk, markets in touched.items():
            out.extend(self.limits.evaluate(desk, markets, self.book, self.alerts, now))
        for fill in merge.voided:
            stats.voided += 1
            out.extend(self._reverse(fill, "it is missing from the venue's checkpoint (fork while disconnected)", now))
        return out

    def _reverse(self, fill: FillReceived, why: str, now: float) -> list[AlertTransition]:
        self.book.apply_fill(fill, reverse=True)
        out = self.limits.evaluate(fill.desk, (fill.market,), self.book, self.alerts, now)
        labels = {"desk": fill.desk, "venue": fill.venue, "market": fill.market, "account": fill.account}
        trade = f"a {fill.side.value} of {plain_decimal(fill.quantity)} @ {plain_decimal(fill.price)}"
        annotations = {
            "summary": f"{fill.venue} {fill.market}: {trade} was reversed",
            "description": f"Fill seq {fill.sequence} on desk {fill.desk} was reversed because {why}.",
        }
        transition = self.alerts.fire_event(
            FILL_REVOKED,
            "warning",
            labels,
            annotations,
            resolve_after=self.config.alerts.event_resolve_after,
            now=now,
            value=float(fill.quantity),
        )
        if transition is not None:
            out.append(transition)
        return out

    def _on_mark(self, mark: MarkPrice, now: float) -> list[AlertTransition]:
        self.book.set_mark(mark.venue, mark.market, mark.price)
        out: list[AlertTransition] = []
        for desk in self.book.desks_holding(mark.venue, mark.market):
            out.extend(self.limits.evaluate(desk, (mark.market,), self.book, self.alerts, now))
        return out

    def _on_malformed(self, event: FrameMalformed, now: float) -> list[AlertTransition]:
        stats = self.venue_stats(event.venue)
        stats.malformed += 1
        log.warning("%s: dropped a malformed frame (%s); %d so far", event.venue, event.reason, stats.malformed)
        return []

    def _on_feed_up(self, event: FeedUp, now: float) -> list[AlertTransition]:
        self.venue_stats(event.venue).feed_up = True
        log.info("%s: connected to %s", event.venue, event.endpoint)
        return []

    def _on_feed_down(self, event: FeedDown, now: float) -> list[AlertTransition]:
        stats = self.venue_stats(event.venue)
        if stats.feed_up:
            stats.reconnects += 1
        stats.feed_up = False
        log.warning("%s: feed down at %s: %s", event.venue, event.endpoint, event.reason)
        return []
