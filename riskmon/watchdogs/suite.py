"""Every watchdog, built from the config, behind the few calls the engine makes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from riskmon.alerts.lifecycle import AlertTracker, AlertTransition
from riskmon.config.desks import sole_desk
from riskmon.config.schema import MonitorConfig, ProphetXVenue, TotalisRfqVenue
from riskmon.engine.actions import Action
from riskmon.engine.deadlines import DeadlineHeap
from riskmon.engine.exposure import ExposureBook
from riskmon.watchdogs import activation, drift, feeds, health_check, rfq
from riskmon.watchdogs.activation import ActivationSettings, ActivationWatchdog
from riskmon.watchdogs.context import WatchdogContext
from riskmon.watchdogs.drift import DriftCheck
from riskmon.watchdogs.feeds import FeedWatchdog
from riskmon.watchdogs.health_check import HealthCheckWatchdog
from riskmon.watchdogs.journal import JournalKey, PersistedDeadline
from riskmon.watchdogs.rfq import RfqConfirmationWatchdog


class Watchdogs:
    def __init__(
        self, config: MonitorConfig, deadlines: DeadlineHeap, alerts: AlertTracker, book: ExposureBook
    ) -> None:
        self.ctx = WatchdogContext(deadlines, alerts, book, config.alerts.event_resolve_after)
        venues = config.venues
        prophetx = {name: v for name, v in venues.items() if isinstance(v, ProphetXVenue)}
        totalis = {name: v for name, v in venues.items() if isinstance(v, TotalisRfqVenue)}

        def default_desk(venue: str) -> str:
            return sole_desk(config, venue) or "unassigned"

        self.activation = ActivationWatchdog(
            self.ctx,
            {
                # The lookup may be retried once on a refused token before it answers.
                name: ActivationSettings(v.activation_timeout, 2 * v.rest_timeout + 1.0)
                for name, v in prophetx.items()
            },
            default_desk,
        )
        self.health_check = HealthCheckWatchdog(self.ctx, {name: v.health_check_gap for name, v in prophetx.items()})
        self.feeds = FeedWatchdog(self.ctx, {name: v.feed_down_grace for name, v in venues.items()})
        self.rfq = RfqConfirmationWatchdog(self.ctx, {name: v.confirmation_lead for name, v in totalis.items()})
        self.drift = DriftCheck(self.ctx, config.watchdogs.drift_grace)
        self._owners: dict[str, Callable[[Any, float], list[AlertTransition]]] = {
            activation.KIND: self.activation.on_deadline,
            activation.LOOKUP: self.activation.on_deadline,
            health_check.KIND: self.health_check.on_deadline,
            feeds.KIND: self.feeds.on_deadline,
            rfq.KIND: self.rfq.on_deadline,
            rfq.LEAD: self.rfq.on_deadline,
            drift.KIND: self.drift.on_deadline,
        }

    def on_deadline(self, key: object, due: float) -> list[AlertTransition] | None:
        """Fire a deadline this suite owns; None when the key is not a watchdog's."""
        if not isinstance(key, tuple) or not key:
            return None
        owner = self._owners.get(key[0])
        return None if owner is None else owner(key, due)

    def start(self, now: float) -> None:
        self.feeds.start(now)

    def restore(self, records: Iterable[PersistedDeadline], now: float) -> None:
        records = list(records)
        # One deadline per open order: re-armed in one heap build, not a push each.
        self.activation.restore_all(records, now)
        for record in records:
            if record.kind == rfq.KIND:
                self.rfq.restore(record, now)
        # The alert tracker is restored before the engine starts: its firing alerts say what the
        # watchdogs had raised and now wait to resolve (state the journal does not keep).
        alerts = self.ctx.alerts.active()
        self.rfq.adopt(alerts)
        self.feeds.adopt(alerts)
        self.activation.adopt(alerts)

    def take_actions(self) -> list[Action]:
        actions, self.ctx.actions = self.ctx.actions, []
        return actions

    def take_journal(self) -> dict[JournalKey, PersistedDeadline | None]:
        return self.ctx.journal.take()
