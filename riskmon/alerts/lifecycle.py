"""The alert lifecycle, in the Prometheus/Alertmanager model operators already know.

An alert is an alert name plus a label set (its fingerprint). A condition alert goes
inactive -> pending (held for `for`) -> firing -> resolved, and clears only when the caller's
separate clear condition holds (hysteresis), so a value sitting on a threshold does not flap.
An event alert (a revoked fill) fires at once and resolves by itself after a set time.
Pure: the caller passes `now`; timers are keys in the shared DeadlineHeap.

A resolved alert carries the annotations it last fired with, as in Prometheus: the text the
receiver was shown while it fired, not one worded from the value that cleared it. Where the
resolver knows why it resolved, it adds one annotation, `resolution` (a quote "expired; its pending
exposure is released", a limit "back to $950.00 against the $1,000.00 limit"); a firing alert never
carries it.

An alert is keyed by its Alertmanager fingerprint (riskmon.alerts.fingerprints).

For the state file the tracker notes which alerts changed since the last `take_changes()` (a set
insert, and only when an alert starts, moves, ends or changes its value or annotations), and
`restore()` puts stored alerts back with their `for` and event-resolve deadlines re-armed, so a
still-firing alert keeps its fingerprint and startsAt across a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Literal

import msgspec

from riskmon.alerts.fingerprints import fingerprint
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


Wording = Callable[[], Mapping[str, str]]
"""Annotations worded on demand (see ActiveAlert)."""


class ActiveAlert:
    """An alert that is pending or firing. Its annotations may be worded lazily: a firing alert
    re-judged at every mark gets a new value each time, and wording it (currency formatting,
    templates) costs more than the judging, so the wording runs only when someone reads it."""

    __slots__ = (
        "_annotations",
        "_wording",
        "active_since",
        "alertname",
        "fingerprint",
        "fired_at",
        "is_event",
        "labels",
        "severity",
        "state",
        "value",
    )

    def __init__(
        self,
        fingerprint: str,
        alertname: str,
        severity: str,
        labels: dict[str, str],
        annotations: dict[str, str],
        state: Literal["pending", "firing"],
        active_since: float,
        fired_at: float | None,
        value: float | None,
        is_event: bool,
    ) -> None:
        self.fingerprint = fingerprint
        self.alertname = alertname
        self.severity = severity
        self.labels = labels
        self._annotations = annotations
        self._wording: Wording | None = None
        self.state = state
        self.active_since = active_since
        self.fired_at = fired_at
        self.value = value
        self.is_event = is_event

    @property
    def annotations(self) -> dict[str, str]:
        if self._wording is not None:
            self._annotations = _firing_annotations(self._wording())
            self._wording = None
        return self._annotations

    @annotations.setter
    def annotations(self, annotations: dict[str, str]) -> None:
        self._annotations = annotations
        self._wording = None

    def reword(self, wording: Wording) -> None:
        """Annotations to be worded when next read (the last wording given wins)."""
        self._wording = wording

    def __repr__(self) -> str:
        return (
            f"ActiveAlert({self.alertname!r}, {self.severity!r}, {self.labels!r}, {self.state!r},"
            f" fingerprint={self.fingerprint!r}, value={self.value!r})"
        )


class StoredAlert(msgspec.Struct, array_like=True, frozen=True):
    """An ActiveAlert as the state file keeps it, with the deadline that was armed for it."""

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
    due: float | None
    """When a pending alert fires (`for`), or when a firing event alert resolves by itself."""


RESOLUTION = "resolution"
"""The annotation saying why a resolved alert resolved; reserved: dropped from firing annotations."""


def _firing_annotations(annotations: Mapping[str, str]) -> dict[str, str]:
    out = dict(annotations)
    out.pop(RESOLUTION, None)
    return out


_PROMOTE = "alert-for"
_EXPIRE = "alert-expire"


class AlertTracker:
    def __init__(self, deadlines: DeadlineHeap) -> None:
        self._deadlines = deadlines
        self._alerts: dict[str, ActiveAlert] = {}
        # Fingerprints changed since the last take; None until restore() turns journaling on.
        self._changed: set[str] | None = None

    def active(self) -> list[ActiveAlert]:
        return list(self._alerts.values())

    def get(self, fp: str) -> ActiveAlert | None:
        return self._alerts.get(fp)

    def any_active(self, fingerprints: Iterable[str]) -> bool:
        """Whether any of these alerts is pending or firing: one call for a limit's levels,
        which a moved mark asks about for every line it judges below its thresholds."""
        alerts = self._alerts
        for fp in fingerprints:  # noqa: SIM110 - any() over a generator costs twice this loop
            if fp in alerts:
                return True
        return False

    def observe(
        self,
        alertname: str,
        severity: str,
        labels: Mapping[str, str],
        *,
        breached: bool,
        cleared: bool,
        value: float | None,
        annotations: Mapping[str, str] | Wording,
        pending_for: float,
        now: float,
        resolution: str | None = None,
        fp: str | None = None,
    ) -> AlertTransition | None:
        """Feed one evaluation of a condition; returns the firing/resolved transition it causes.

        `annotations` may be a Wording, called only if the alert starts or when its annotations are
        read. `resolution` says why the condition cleared; only a resolved transition carries it.
        `fp`: the fingerprint of the full label set, where the caller keeps it (a hot path)."""
        if fp is None:
            fp = fingerprint({**labels, "alertname": alertname, "severity": severity})
        alert = self._alerts.get(fp)
        if alert is None:
            if not breached:
                return None
            worded = annotations() if callable(annotations) else annotations
            full = {**labels, "alertname": alertname, "severity": severity}
            alert = ActiveAlert(
                fp, alertname, severity, full, _firing_annotations(worded), "pending", now, None, value, False
            )
            self._alerts[fp] = alert
            self._touch(fp)
            if pending_for > 0:
                self._deadlines.schedule((_PROMOTE, fp), now + pending_for)
                return None
            return self._fire(alert, now)
        if alert.state == "pending" and not breached:
            # Hysteresis protects a firing alert from flapping; a pending one that is no longer
            # breached simply never happened, as in Prometheus.
            del self._alerts[fp]
            self._deadlines.cancel((_PROMOTE, fp))
            self._touch(fp)
            return None
        if cleared:
            del self._alerts[fp]
            self._touch(fp)
            alert.value = value
            # The annotations stay those it last fired with: a summary re-worded from the clearing
            # value ("reached $0") would tell the receiver nothing about what had fired.
            if resolution:
                alert.annotations = {**alert.annotations, RESOLUTION: resolution}
            return self._transition(alert, "resolved", now)
        if callable(annotations):
            # Not worded now, so not compared either: callers observe only when their inputs moved.
            self._touch(fp)
            alert.value = value
            alert.reword(annotations)
            return None
        current = _firing_annotations(annotations)
        if self._changed is not None and (alert.value != value or alert.annotations != current):
            self._changed.add(fp)
        alert.value = value
        alert.annotations = current
        return None

    def end(self, fp: str, now: float, resolution: str) -> AlertTransition | None:
        """End an active alert whatever its condition says (its rule or limit is gone): a firing
        one resolves saying `resolution`, a pending one simply ends."""
        alert = self._alerts.get(fp)
        if alert is None:
            return None
        return self.observe(
            alert.alertname,
            alert.severity,
            alert.labels,
            breached=False,
            cleared=True,
            value=alert.value,
            annotations=alert.annotations,
            pending_for=0.0,
            now=now,
            resolution=resolution,
            fp=fp,
        )

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
        self._touch(fp)  # the resolve deadline moved, if nothing else
        alert = self._alerts.get(fp)
        if alert is not None:
            alert.annotations = _firing_annotations(annotations)
            alert.value = value
            return None
        alert = ActiveAlert(
            fp, alertname, severity, full, _firing_annotations(annotations), "pending", now, None, value, True
        )
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
            self._touch(fp)
            return self._transition(alert, "resolved", now)
        return None

    def owns(self, key: object) -> bool:
        return isinstance(key, tuple) and len(key) == 2 and key[0] in (_PROMOTE, _EXPIRE)

    # Persistence ----------------------------------------------------------------------------------

    def restore(self, stored: Iterable[StoredAlert]) -> None:
        """Before the engine starts: put stored alerts back and re-arm their deadlines (one already past
        falls due at the first advance, stamped with its own time); journal changes from here on.

        Each alert is keyed by the fingerprint of its stored labels, worked out afresh: a state file
        written under an older fingerprint scheme restores the same alerts, and the next take rewrites
        them under the new key and deletes the old one."""
        migrated: set[str] = set()
        for s in stored:
            fp = fingerprint(s.labels)
            if fp != s.fingerprint:
                migrated.update((fp, s.fingerprint))
            alert = ActiveAlert(
                fp,
                s.alertname,
                s.severity,
                dict(s.labels),
                dict(s.annotations),
                s.state,
                s.active_since,
                s.fired_at,
                s.value,
                s.is_event,
            )
            self._alerts[fp] = alert
            if s.due is not None and (s.is_event or s.state == "pending"):
                self._deadlines.schedule((_EXPIRE if s.is_event else _PROMOTE, fp), s.due)
        self._changed = migrated

    def firing(self) -> list[AlertTransition]:
        """A firing transition per firing alert, as when it fired (for the notifier after a restore)."""
        return [self._transition(a, "firing", a.fired_at) for a in self._alerts.values() if a.fired_at is not None]

    def changed(self) -> bool:
        return bool(self._changed)

    def take_changes(self) -> dict[str, StoredAlert | None]:
        """Every alert changed since the last take, as stored now (None: it ended)."""
        if not self._changed:
            return {}
        changes = {fp: self.stored(fp) for fp in self._changed}
        self._changed = set()
        return changes

    def stored(self, fp: str) -> StoredAlert | None:
        """The alert as the state file keeps it now (None: not active)."""
        alert = self._alerts.get(fp)
        if alert is None:
            return None
        due = self._deadlines.due_at((_EXPIRE if alert.is_event else _PROMOTE, fp))
        return StoredAlert(
            fp,
            alert.alertname,
            alert.severity,
            dict(alert.labels),
            dict(alert.annotations),
            alert.state,
            alert.active_since,
            alert.fired_at,
            alert.value,
            alert.is_event,
            due,
        )

    def _touch(self, fp: str) -> None:
        if self._changed is not None:
            self._changed.add(fp)

    def _fire(self, alert: ActiveAlert, now: float) -> AlertTransition:
        alert.state = "firing"
        alert.fired_at = now
        self._touch(alert.fingerprint)
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
