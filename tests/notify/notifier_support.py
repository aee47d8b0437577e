"""What the notifier tests share: alert transitions as the engine makes them, and a driver that
wakes the notifier at every next_due() as the runtime's timer does."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from riskmon.alerts.fingerprints import fingerprint
from riskmon.alerts.lifecycle import AlertTransition
from riskmon.notify.notifier import Due, Notifier, Outgoing


def fire(alertname: str, severity: str, ts: float, summary: str | None = None, **labels: str) -> AlertTransition:
    full = {**labels, "alertname": alertname, "severity": severity}
    return AlertTransition(
        ts=ts,
        status="firing",
        alertname=alertname,
        severity=severity,
        labels=full,
        annotations={"summary": alertname if summary is None else summary},
        fingerprint=fingerprint(full),
        starts_at=ts,
    )


def resolve(alert: AlertTransition, ts: float) -> AlertTransition:
    return msgspec.structs.replace(alert, status="resolved", ts=ts)


def body(out: Outgoing) -> Any:
    return json.loads(out.payload)


def drive(notifier: Notifier, start: float, until: float) -> list[tuple[float, Due]]:
    """Wake at every next_due() up to `until`, as the runtime's timer does; the non-empty results with their time."""
    now = start
    sent: list[tuple[float, Due]] = []
    for _ in range(1000):
        wake = notifier.next_due()
        if wake is None or wake > until:
            return sent
        now = max(now, wake)
        due = notifier.due(now)
        if due.outgoing or due.console:
            sent.append((now, due))
    raise AssertionError("next_due() never moved past `until`")
