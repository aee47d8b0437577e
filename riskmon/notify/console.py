"""Console receiver: alert transitions as one readable line each."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TextIO

from riskmon.alerts.lifecycle import AlertTransition

_SKIP_LABELS = {"alertname", "severity"}


def format_transition(transition: AlertTransition) -> str:
    stamp = datetime.fromtimestamp(transition.ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    labels = " ".join(f"{k}={v}" for k, v in sorted(transition.labels.items()) if k not in _SKIP_LABELS)
    summary = transition.annotations.get("summary", "")
    if transition.status == "resolved" and (resolution := transition.annotations.get("resolution")):
        summary = f"{summary} — {resolution}"  # why it ended: confirmed late is not the same as released
    return f"{stamp} {transition.status.upper():8} {transition.alertname} [{transition.severity}] {labels} {summary}"


class ConsoleReceiver:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def deliver(self, transition: AlertTransition) -> None:
        stream = self._stream or sys.stdout
        stream.write(format_transition(transition) + "\n")
        stream.flush()
