"""Pushing alerts to Alertmanager's `POST /api/v2/alerts`, the way Prometheus does.

Alertmanager treats its clients as the source of truth about what still fires: a client posts
every firing alert again and again with `endsAt` in the future (Prometheus: now + 4 x its resend
interval), and an alert that stops being re-sent resolves by itself once `endsAt` passes. A
resolved alert is posted once, with `endsAt` set to when it resolved.

`AlertmanagerFeed` is that bookkeeping as pure state on injected time: new transitions go out at
once (Alertmanager does its own grouping and group_wait), and every `resend_interval` all firing
alerts go out again. The resend clock runs from the last push of *all* firing alerts, not from the
last push of anything, so a steady trickle of new alerts cannot starve the refresh of old ones.
The runtime renders each batch with `alertmanager_body`, enqueues it in the outbox and sends it
with WebhookSender to `alerts_url(base)`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.notify.webhook import rfc3339

ALERTS_PATH: Final = "/api/v2/alerts"
ENDS_AT_RESENDS: Final = 4
"""Prometheus' margin: a firing alert survives three lost resends before Alertmanager resolves it."""
DEFAULT_MAX_BATCH: Final = 1000


def postable_alert(
    transition: AlertTransition, *, now: float, resend_interval: float, generator_url: str
) -> dict[str, Any]:
    """One `postableAlert` of Alertmanager's v2 OpenAPI."""
    labels = {**transition.labels, "alertname": transition.alertname}
    # Alertmanager drops empty label values before fingerprinting; dropping them here keeps the
    # body equal to what it will store.
    labels = {k: v for k, v in sorted(labels.items()) if v}
    ends_at = transition.ts if transition.status == "resolved" else now + ENDS_AT_RESENDS * resend_interval
    # Alertmanager rejects an alert that ends before it starts.
    ends_at = max(ends_at, transition.starts_at)
    return {
        "labels": labels,
        "annotations": dict(sorted(transition.annotations.items())),
        "startsAt": rfc3339(transition.starts_at),
        "endsAt": rfc3339(ends_at),
        "generatorURL": generator_url,
    }


def postable_alerts(
    transitions: Sequence[AlertTransition], *, now: float, resend_interval: float, generator_url: str
) -> list[dict[str, Any]]:
    return [
        postable_alert(t, now=now, resend_interval=resend_interval, generator_url=generator_url) for t in transitions
    ]


def alertmanager_body(
    batch: Sequence[AlertTransition], now: float, resend_interval: float, generator_url: str
) -> bytes:
    """The request body: compact JSON, the same bytes for the same batch and `now`."""
    alerts = postable_alerts(batch, now=now, resend_interval=resend_interval, generator_url=generator_url)
    return json.dumps(alerts, ensure_ascii=False, separators=(",", ":")).encode()


def idempotency_key(body: bytes) -> str:
    """sha256 of the body. Alertmanager dedupes by labels itself; the key only spares the outbox a twin."""
    return hashlib.sha256(body).hexdigest()


def alerts_url(base: str) -> str:
    """`http://am:9093` or `http://host/am/` -> `.../api/v2/alerts`; a URL that already ends there is kept."""
    parts = urlsplit(base.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an http(s) Alertmanager base URL like http://127.0.0.1:9093")
    path = parts.path.rstrip("/")
    if not path.endswith(ALERTS_PATH):
        path += ALERTS_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


class AlertmanagerFeed:
    """Which alerts to post to one Alertmanager, and when."""

    def __init__(self, resend_interval: float, *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        if resend_interval <= 0:
            raise ValueError("resend_interval must be positive")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.resend_interval = resend_interval
        self.max_batch = max_batch
        self._firing: dict[str, AlertTransition] = {}
        self._new: dict[str, AlertTransition] = {}
        """Observed since the last push, latest per fingerprint; resolved ones live only here."""
        self._queue: list[AlertTransition] = []
        """The rest of a push that did not fit in one batch."""
        self._queue_since = 0.0
        self._resend_at: float | None = None

    def observe(self, transition: AlertTransition) -> None:
        fp = transition.fingerprint
        if transition.status == "firing":
            self._firing[fp] = transition
        else:
            self._firing.pop(fp, None)
        self._new.pop(fp, None)  # keep the order of the latest observation
        self._new[fp] = transition

    def withdraw(self, fp: str) -> None:
        """Stop posting an alert that became muted; Alertmanager lets it lapse at its endsAt."""
        self._firing.pop(fp, None)
        self._new.pop(fp, None)
        self._queue = [t for t in self._queue if t.fingerprint != fp]

    def firing(self) -> list[AlertTransition]:
        return list(self._firing.values())

    def next_due(self) -> float | None:
        if self._queue:
            return self._queue_since
        if self._new:
            return min(t.ts for t in self._new.values())
        return self._resend_at

    def due(self, now: float) -> list[AlertTransition] | None:
        """The next batch to post at `now`, or None; call again while it returns batches."""
        if not self._queue:
            self._queue = self._push(now)
            self._queue_since = now
        if not self._queue:
            return None
        batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
        return batch

    def _push(self, now: float) -> list[AlertTransition]:
        resend = self._resend_at is not None and now >= self._resend_at
        if not self._new and not resend:
            return []
        push = dict(self._new)
        if resend:
            # Everything firing, with the new transitions (resolved ones included) in their place.
            push = {**self._firing, **self._new}
        self._new = {}
        if not self._firing:
            self._resend_at = None
        elif resend or self._resend_at is None:
            self._resend_at = now + self.resend_interval
        return list(push.values())
