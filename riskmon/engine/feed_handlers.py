"""How the engine applies the events about a venue's connection rather than its trading: feed up
and down, heartbeats, subscriptions, malformed frames, sequence gaps, resyncs and the end of a
reconciliation. They move venue counters and the feed watchdogs, and raise venue alerts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from riskmon.alerts.lifecycle import AlertTracker, AlertTransition
from riskmon.engine import event_alerts
from riskmon.engine.rule_hooks import RuleHooks
from riskmon.engine.stats import VenueStats
from riskmon.engine.venue_alerts import session_refusals_disproved, subscription_alert
from riskmon.events import (
    FeedDown,
    FeedUp,
    FrameMalformed,
    Heartbeat,
    ReconciliationFinished,
    SequenceGap,
    StreamResynced,
    Subscribed,
    SubscriptionFailed,
)
from riskmon.watchdogs.suite import Watchdogs

log = logging.getLogger("riskmon.engine.engine")  # one logger for everything the engine applies

Handler = Callable[[Any, float], Iterable[AlertTransition]]


class FeedHandlers:
    def __init__(
        self,
        venue_stats: Callable[[str], VenueStats],
        alerts: AlertTracker,
        watchdogs: Watchdogs,
        rule_hooks: RuleHooks,
        event_alert: Callable[[event_alerts.EventAlert, float], list[AlertTransition]],
    ) -> None:
        self._stats = venue_stats
        self._alerts = alerts
        self._watchdogs = watchdogs
        self._hooks = rule_hooks
        self._event_alert = event_alert

    def handlers(self) -> dict[type[Any], Handler]:
        return {
            FrameMalformed: self.on_malformed,
            FeedUp: self.on_feed_up,
            FeedDown: self.on_feed_down,
            SequenceGap: self.on_sequence_gap,
            Subscribed: self.on_subscribed,
            SubscriptionFailed: self.on_subscription_failed,
            Heartbeat: self.on_heartbeat,
            StreamResynced: self.on_resynced,
            ReconciliationFinished: self.on_reconciliation_finished,
        }

    def on_malformed(self, event: FrameMalformed, now: float) -> Iterable[AlertTransition]:
        stats = self._stats(event.venue)
        stats.malformed += 1
        log.warning("%s: dropped a malformed frame (%s); %d so far", event.venue, event.reason, stats.malformed)
        return self._hooks.venue_signal("malformed", event.venue, now, reason=event.reason)

    def on_feed_up(self, event: FeedUp, now: float) -> list[AlertTransition]:
        self._stats(event.venue).feed_up = True
        log.info("%s: connected to %s", event.venue, event.endpoint)
        self._watchdogs.health_check.on_feed_up(event.venue, now)
        out = self._watchdogs.feeds.on_up(event.venue, now)
        out.extend(session_refusals_disproved(self._alerts, event.venue, now))
        out.extend(self._hooks.venue_signal("feed_up", event.venue, now))
        return out

    def on_feed_down(self, event: FeedDown, now: float) -> list[AlertTransition]:
        was_up = self._stats(event.venue).connection_ended(event.cause)
        log.warning("%s: feed down at %s: %s", event.venue, event.endpoint, event.reason)
        self._watchdogs.health_check.on_feed_down(event.venue)
        self._watchdogs.feeds.on_down(event.venue, event.reason, now)
        return self._hooks.feed_down(event, was_up, now)

    def on_sequence_gap(self, gap: SequenceGap, now: float) -> list[AlertTransition]:
        self._stats(gap.venue).sequence_gaps += 1
        self._watchdogs.feeds.on_gap(gap.venue, gap.stream, now)
        out = self._event_alert(event_alerts.sequence_gap(gap), now)
        missed = Decimal(gap.received - gap.expected)
        out.extend(self._hooks.venue_signal("sequence_gap", gap.venue, now, missed, stream=gap.stream))
        return out

    def on_subscribed(self, event: Subscribed, now: float) -> list[AlertTransition]:
        log.info("%s: subscribed to %s", event.venue, event.subscription)
        return subscription_alert(self._alerts, event.venue, event.subscription, None, now)

    def on_subscription_failed(self, event: SubscriptionFailed, now: float) -> list[AlertTransition]:
        self._stats(event.venue).subscription_errors += 1
        log.error("%s: subscription %s refused: %s", event.venue, event.subscription, event.reason)
        out = subscription_alert(self._alerts, event.venue, event.subscription, event, now)
        out.extend(
            self._hooks.venue_signal(
                "subscription_error", event.venue, now, subscription=event.subscription, reason=event.reason
            )
        )
        return out

    def on_heartbeat(self, event: Heartbeat, now: float) -> list[AlertTransition]:
        stats = self._stats(event.venue)
        stats.heartbeats += 1
        stats.last_heartbeat_at = now
        out = self._watchdogs.health_check.on_heartbeat(event.venue, now)
        out.extend(self._hooks.venue_signal("heartbeat", event.venue, now))
        return out

    def on_resynced(self, event: StreamResynced, now: float) -> Iterable[AlertTransition]:
        log.info("%s: %s rebuilt from a fresh snapshot", event.venue, event.stream)
        self._watchdogs.feeds.on_resynced(event.venue, event.stream, now)
        return ()

    def on_reconciliation_finished(self, event: ReconciliationFinished, now: float) -> list[AlertTransition]:
        if event.error is not None:
            log.warning("%s: reconciliation of %s failed: %s", event.venue, event.scope, event.error)
        return self._watchdogs.drift.on_finished(event, now)
