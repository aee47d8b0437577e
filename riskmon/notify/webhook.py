"""Webhook delivery: the Alertmanager v4 payload, a signed POST, and the outbox driver.

The payload is exactly Alertmanager's webhook shape (version "4"), so receivers written for
Alertmanager work unchanged. Every POST carries `Idempotency-Key` (the outbox key: a retry
after a lost response repeats it, so the receiver can drop the duplicate) and, when a secret is
configured, `X-Riskmon-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
Error texts name the endpoint as scheme://host:port only; never its path, query or secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.config.types import Secret
from riskmon.notify.outbox import Outbox, OutboxItem
from riskmon.venues.base import redact_endpoint

_T = TypeVar("_T")

ZERO_TIME = "0001-01-01T00:00:00Z"
SIGNATURE_HEADER = "X-Riskmon-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def rfc3339(ts: float) -> str:
    """UTC with a Z, fractional seconds trimmed as Go's RFC3339Nano does."""
    stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return stamp + "Z"


def _common(maps: Sequence[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    common = dict(maps[0])
    for other in maps[1:]:
        common = {k: v for k, v in common.items() if other.get(k) == v}
    return dict(sorted(common.items()))


def alertmanager_v4_payload(
    receiver: str,
    group_key: str,
    status: str | None,
    group_labels: dict[str, str],
    alerts: Sequence[AlertTransition],
    external_url: str,
    truncated: int = 0,
) -> dict[str, Any]:
    """The Alertmanager v4 webhook body.

    The group status is firing when any alert fires, else resolved, as in Alertmanager; a
    `status` given by the caller must agree with that (None: take the computed one).
    """
    group_status = "firing" if any(a.status == "firing" for a in alerts) else "resolved"
    if status is not None and status != group_status:
        raise ValueError(f"group status {status!r} contradicts its alerts ({group_status})")
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": int(truncated),
        "status": group_status,
        "receiver": receiver,
        "groupLabels": dict(sorted(group_labels.items())),
        "commonLabels": _common([a.labels for a in alerts]),
        "commonAnnotations": _common([a.annotations for a in alerts]),
        "externalURL": external_url,
        "alerts": [
            {
                "status": a.status,
                "labels": dict(sorted(a.labels.items())),
                "annotations": dict(sorted(a.annotations.items())),
                "startsAt": rfc3339(a.starts_at),
                "endsAt": rfc3339(a.ts) if a.status == "resolved" else ZERO_TIME,
                "generatorURL": external_url,
                "fingerprint": a.fingerprint,
            }
            for a in alerts
        ],
    }


def sign(secret: Secret, body: bytes, ts: int) -> str:
    mac = hmac.new(secret.reveal().encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def verify_signature(secret: Secret, header: str, body: bytes, now: float, tolerance: float = 300.0) -> bool:
    """What a receiver checks: a well-formed header, a matching MAC, and a timestamp near `now`."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        ts = int(parts["t"])
        given = parts["v1"]
    except (ValueError, KeyError):
        return False
    expected = sign(secret, body, ts).split("v1=", 1)[1]
    return abs(now - ts) <= tolerance and hmac.compare_digest(expected, given)


@dataclass(frozen=True, slots=True)
class SendResult:
    ok: bool
    status: int | None  # HTTP status; None when no response came back
    retry_after: float | None = None  # seconds, from a Retry-After header
    error: str | None = None
    retryable: bool = True


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as delta-seconds or an HTTP date (relative to `now`); None when absent or garbled."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def response_date(date: str | None, fallback: float) -> float:
    """The response's Date as unix time, or `fallback` when absent or garbled."""
    if date:
        try:
            return parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError):
            pass
    return fallback


def status_result(status: int, retry_after: str | None, date: str | None, now: float, endpoint: str) -> SendResult:
    """What a receiver's answer means for the outbox: 2xx delivered, 429 and 5xx retried (an HTTP-date
    Retry-After counts from the response's Date, which sidesteps clock skew), anything else final."""
    if 200 <= status < 300:
        return SendResult(True, status)
    error = f"HTTP {status} from {endpoint}"
    if status == 429 or status >= 500:
        return SendResult(False, status, parse_retry_after(retry_after, response_date(date, now)), error)
    return SendResult(False, status, error=error, retryable=False)


def post_headers(payload: bytes, idempotency_key: str, secret: Secret | None, now: float) -> dict[str, str]:
    headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: idempotency_key}
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(secret, payload, int(now))
    return headers


class ReceiverErrors:
    """Error texts about one receiver URL: the endpoint as scheme://host:port, its secrets masked."""

    def __init__(self, url: str, hmac_secret: Secret | None) -> None:
        self.endpoint = redact_endpoint(url)
        parts = urlsplit(url)
        sensitive = [url, parts.path, parts.query, parts.password or "", parts.username or ""]
        if hmac_secret is not None:
            sensitive.append(hmac_secret.reveal())
        self._sensitive = sorted({s for s in sensitive if len(s) > 1}, key=len, reverse=True)

    def failure(self, kind: str, exc: BaseException | None = None) -> SendResult:
        """No response came back: retryable, `kind` named as httpx names its errors."""
        return SendResult(False, None, error=f"{kind} posting to {self.endpoint}{self._detail(exc)}")

    def _detail(self, exc: BaseException | None) -> str:
        text = "" if exc is None else str(exc)
        for secret in self._sensitive:
            text = text.replace(secret, "***")
        return f": {text}" if text else ""


class WebhookSender:
    """A POST through httpx: https receivers, and any a proxy applies to."""

    def __init__(
        self,
        url: str,
        *,
        hmac_secret: Secret | None,
        timeout: float,
        client: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = url
        self._secret = hmac_secret
        self._timeout = timeout
        self._client = client
        self._clock = clock
        self._errors = ReceiverErrors(url, hmac_secret)
        self.endpoint = self._errors.endpoint

    async def send(self, payload: bytes, idempotency_key: str) -> SendResult:
        headers = post_headers(payload, idempotency_key, self._secret, self._clock())
        try:
            response = await self._client.post(self._url, content=payload, headers=headers, timeout=self._timeout)
        except httpx.HTTPError as exc:
            return self._errors.failure(type(exc).__name__, exc)
        headers_in = response.headers
        return status_result(
            response.status_code, headers_in.get("retry-after"), headers_in.get("date"), self._clock(), self.endpoint
        )


class Sender(Protocol):
    def send(self, payload: bytes, idempotency_key: str) -> Awaitable[SendResult]: ...


@dataclass(slots=True)
class DeliveryReport:
    sent: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)


OutboxCall = Callable[..., Awaitable[Any]]


def outbox_caller(db: Executor | None) -> OutboxCall:
    """Runs an outbox method on `db` (one thread: SQLite never blocks the event loop, and calls stay
    in order), or inline without one."""
    if db is None:

        async def inline(fn: Callable[..., _T], *args: Any) -> _T:
            return fn(*args)

        return inline
    executor = db

    async def on_executor(fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    return on_executor


async def deliver_once(
    outbox: Outbox,
    receiver: str,
    sender: Sender,
    now: float,
    concurrency: int,
    limit: int = 100,
    *,
    db: Executor | None = None,
) -> DeliveryReport:
    """Claim what is due for `receiver` and send it, at most `concurrency` POSTs at a time.

    One round; the runtime calls it again at `outbox.next_due(receiver)` or when something is
    enqueued. A cancelled round gives its unsent claims back to the outbox. With `db`, every
    outbox call runs on that executor; without it they run inline.
    """
    run = outbox_caller(db)
    items = await run(outbox.claim, receiver, now, limit)
    return await send_claimed(outbox, items, sender, now, asyncio.Semaphore(max(1, concurrency)), db=db)


async def send_claimed(
    outbox: Outbox,
    items: Sequence[OutboxItem],
    sender: Sender,
    now: float,
    gate: asyncio.Semaphore,
    *,
    db: Executor | None = None,
) -> DeliveryReport:
    """Send items claimed from `outbox`, as many at once as `gate` lets through, and record each
    outcome. The gate is the receiver's: rounds that overlap share its bound. A cancelled round
    gives its unsent claims back."""
    run = outbox_caller(db)
    report = DeliveryReport()
    unsettled = {item.id for item in items}

    async def one(item_id: int, payload: bytes, key: str) -> None:
        async with gate:
            try:
                result = await sender.send(payload, key)
            except Exception as exc:  # a sender bug must not strand the claim or stop the round
                result = SendResult(False, None, error=f"{type(exc).__name__} in sender")
        unsettled.discard(item_id)
        if result.ok:
            await run(outbox.mark_sent, item_id, now)
            report.sent.append(item_id)
        elif not result.retryable:
            await run(outbox.mark_dead, item_id, now, result.error or "refused")
            report.dead.append(item_id)
        elif await run(outbox.mark_failed, item_id, now, result.retry_after, result.error or "failed") == "dead":
            report.dead.append(item_id)
        else:
            report.retrying.append(item_id)

    try:
        if len(items) == 1:  # no gather: one task fewer on the way to the socket
            await one(items[0].id, items[0].payload, items[0].idempotency_key)
        else:
            await asyncio.gather(*(one(i.id, i.payload, i.idempotency_key) for i in items))
    finally:
        # Not awaited: a cancelled round must still give its claims back, in order with other calls.
        if unsettled:
            if db is None:
                outbox.release(unsettled)
            else:
                db.submit(outbox.release, unsettled)
    return report
