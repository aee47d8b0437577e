"""The alert lifecycle, in the Prometheus/Alertmanager model operators already know.

An alert is an alert name plus a label set (its fingerprint). A condition alert goes
inactive -> pending (held for `for`) -> firing -> resolved, and clears only when the caller's
separate clear condition holds (hysteresis), so a value sitting on a threshold does not flap.
An event alert (a revoked fill) fires at once and resolves by itself after a set time.
Pure: the caller passes `now`; timers are keys in the shared DeadlineHeap.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import msgspec

from riskmon.engine.deadlines import DeadlineHeap


class AlertTransition(msgspec.Struct, frozen=True):
    ts: float
    status: Literal["firing", "resolved"]
    alertname: str
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    fingerprint: str
    starts_at: float
    value: float | None = None


@dataclass(slots=True)
class ActiveAlert:
    fingerprint: str
    alertname: str
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    state: Literal["pending", "firing"]
    active_since: float
    fired_at: float | None
    value: float | None
    is_event: bool


def fingerprint(labels: Mapping[str, str]) -> str:
    canonical = "\x00".join(f"{k}\x01{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


_PROMOTE = "alert-for"
_EXPIRE = "alert-expire"


class AlertTracker:
    def __init__(self, deadlines: DeadlineHeap) -> None:
        self._deadlines = deadlines
        self._alerts: dict[str, ActiveAlert] = {}

    def active(self) -> list[ActiveAlert]:
        return list(self._alerts.values())

    def get(self, fp: str) -> ActiveAlert | None:
        return self._alerts.get(fp)

    def observe(
        self,
        alertname: str,
        severity: str,
        labels: Mapping[str, str],
        *,
        breached: bool,
        cleared: bool,
        value: float | None,
        annotations: Mapping[str, str],
        pending_for: float,
        now: float,
    ) -> AlertTransition | None:
        """Feed one evaluation of a condition; returns the firing/resolved transition it causes."""
        full = {**labels, "alertname": alertname, "severity": severity}
        fp = fingerprint(full)
        alert = self._alerts.get(fp)
        if alert is None:
            if not breached:
                return None
            alert = ActiveAlert(fp, alertname, severity, full, dict(annotations), "pending", now, None, value, False)
            self._alerts[fp] = alert
            if pending_for > 0:
                self._deadlines.schedule((_PROMOTE, fp), now + pending_for)
                return None
            return self._fire(alert, now)
        if alert.state == "pending" and not breached:
            # Hysteresis protects a firing alert from flapping; a pending one that is no longer
            # breached simply never happened, as in Prometheus.
            del self._alerts[fp]
            self._deadlines.cancel((_PROMOTE, fp))
            return None
        if cleared:
            del self._alerts[fp]
            alert.value = value
            alert.annotations = dict(annotations)
            return self._transition(alert, "resolved", now)
        alert.value = value
        alert.annotations = dict(annotations)
        return None

    def fire_event(
        self,
        alertname: str,
        severity: str,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        *,
        resolve_after: float,
        now: float,
        value: float | None = None,
    ) -> AlertTransition | None:
        """A one-off alert; a repeat while it is firing refreshes it instead of firing again."""
        full = {**labels, "alertname": alertname, "severity": severity}
        fp = fingerprint(full)
        self._deadlines.schedule((_EXPIRE, fp), now + resolve_after)
        alert = self._alerts.get(fp)
        if alert is not None:
            alert.annotations = dict(annotations)
            alert.value = value
            return None
        alert = ActiveAlert(fp, alertname, severity, full, dict(annotations), "pending", now, None, value, True)
        self._alerts[fp] = alert
        return self._fire(alert, now)

    def on_deadline(self, key: object, now: float) -> AlertTransition | None:
        """Handle a DeadlineHeap key that belongs to this tracker; None for keys it does not own."""
        if not self.owns(key):
            return None
        assert isinstance(key, tuple)
        kind, fp = key
        alert = self._alerts.get(fp)
        if alert is None:
            return None
        if kind == _PROMOTE and alert.state == "pending":
            return self._fire(alert, now)
        if kind == _EXPIRE and alert.is_event:
            del self._alerts[fp]
            return self._transition(alert, "resolved", now)
        return None

    def owns(self, key: object) -> bool:
        return isinstance(key, tuple) and len(key) == 2 and key[0] in (_PROMOTE, _EXPIRE)

    def _fire(self, alert: ActiveAlert, now: float) -> AlertTransition:
        alert.state = "firing"
        alert.fired_at = now
        return self._transition(alert, "firing", now)

    @staticmethod
    def _transition(alert: ActiveAlert, status: Literal["firing", "resolved"], now: float) -> AlertTransition:
        return AlertTransition(
            ts=now,
            status=status,
            alertname=alert.alertname,
            severity=alert.severity,
            labels=dict(alert.labels),
            annotations=dict(alert.annotations),
            fingerprint=alert.fingerprint,
            starts_at=alert.fired_at if alert.fired_at is not None else now,
            value=alert.value,
        )
