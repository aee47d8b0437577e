"""What every watchdog shares: the deadline heap, the alert tracker, exposure, the journal and
the list of remedies the runtime carries out."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field

from riskmon.alerts.lifecycle import AlertTracker, AlertTransition
from riskmon.engine.actions import Action, ReconnectCause, ReconnectVenue
from riskmon.engine.deadlines import DeadlineHeap
from riskmon.engine.exposure import ExposureBook
from riskmon.watchdogs.journal import DeadlineJournal

# Several watchdogs (and several orders of one) can ask to reconnect the same venue at once; one
# reconnect serves them all, and a reconnect storm would only delay the recovery.
RECONNECT_COALESCE_S = 5.0


@dataclass(slots=True)
class WatchdogContext:
    deadlines: DeadlineHeap
    alerts: AlertTracker
    book: ExposureBook
    event_resolve_after: float
    journal: DeadlineJournal = field(default_factory=DeadlineJournal)
    actions: list[Action] = field(default_factory=list)
    _reconnect_asked: dict[str, float] = field(default_factory=dict)

    def reconnect(self, venue: str, reason: str, cause: ReconnectCause, now: float) -> None:
        last = self._reconnect_asked.get(venue)
        if last is not None and now - last < RECONNECT_COALESCE_S:
            return
        self._reconnect_asked[venue] = now
        self.actions.append(ReconnectVenue(venue, reason, cause))

    def exposed_desks(self, venue: str) -> list[str]:
        """Desks holding a position or money at risk on the venue."""
        desks = {row.key.desk for row in self.book.rows() if row.key.venue == venue and row.position != 0}
        desks.update(
            row.key.desk
            for row in self.book.risk_rows()
            if row.key.venue == venue and (row.worst_case_loss_usd > 0 or row.pending_usd > 0)
        )
        return sorted(desks)

    def raise_alert(
        self,
        alertname: str,
        severity: str,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        now: float,
        value: float | None = None,
    ) -> list[AlertTransition]:
        """Fire a condition alert now (or refresh it); it stays firing until `clear_alert`."""
        transition = self.alerts.observe(
            alertname,
            severity,
            labels,
            breached=True,
            cleared=False,
            value=value,
            annotations=annotations,
            pending_for=0.0,
            now=now,
        )
        return [] if transition is None else [transition]

    def clear_alert(
        self, alertname: str, severity: str, labels: Mapping[str, str], resolution: str, now: float
    ) -> list[AlertTransition]:
        """Resolve a condition alert; it goes out with the annotations it last fired with, plus
        `resolution`: why it resolved."""
        transition = self.alerts.observe(
            alertname,
            severity,
            labels,
            breached=False,
            cleared=True,
            value=None,
            annotations={},
            pending_for=0.0,
            now=now,
            resolution=resolution,
        )
        return [] if transition is None else [transition]

    def event_alert(
        self,
        alertname: str,
        severity: str,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        now: float,
    ) -> list[AlertTransition]:
        transition = self.alerts.fire_event(
            alertname, severity, labels, annotations, resolve_after=self.event_resolve_after, now=now
        )
        return [] if transition is None else [transition]


def at(ts: float) -> str:
    """A unix time for an annotation, in UTC with milliseconds."""
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"
