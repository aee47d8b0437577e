"""The Alertmanager v4 payload, the signed webhook POST, and outbox delivery to a real loopback receiver."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from riskmon.alerts.fingerprints import fingerprint
from riskmon.alerts.lifecycle import AlertTransition
from riskmon.asgi_server import AsgiServer, Receive, Scope, Send, read_body, respond
from riskmon.config.types import Secret
from riskmon.notify.outbox import Outbox, RetryPolicy
from riskmon.notify.webhook import (
    ZERO_TIME,
    SendResult,
    WebhookSender,
    alertmanager_v4_payload,
    deliver_once,
    parse_retry_after,
    rfc3339,
    sign,
    verify_signature,
)

ASYNC = pytest.mark.asyncio
T0 = 1_700_000_000.0
SECRET = Secret("s3cr3t-hmac-key")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")


def transition(status: str, labels: dict[str, str], annotations: dict[str, str], ts: float) -> AlertTransition:
    full = {**labels, "alertname": "ExposureBreach", "severity": "critical"}
    return AlertTransition(
        ts=ts,
        status=status,  # type: ignore[arg-type]
        alertname="ExposureBreach",
        severity="critical",
        labels=full,
        annotations=annotations,
        fingerprint=fingerprint(full),
        starts_at=T0,
        value=1.5,
    )


# --- payload -------------------------------------------------------------------------------------


def test_payload_matches_the_alertmanager_v4_shape_field_by_field() -> None:
    firing = transition("firing", {"desk": "d1", "venue": "phoenix"}, {"summary": "over", "runbook": "r"}, T0)
    resolved = transition("resolved", {"desk": "d1", "venue": "mango"}, {"summary": "over"}, T0 + 90.25)
    body = alertmanager_v4_payload(
        "ops-hook", '{}/{desk="d1"}:{}', "firing", {"desk": "d1"}, [firing, resolved], "http://riskmon:9108", 3
    )
    assert list(body) == [
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    ]
    assert body["version"] == "4"
    assert body["groupKey"] == '{}/{desk="d1"}:{}'
    assert body["truncatedAlerts"] == 3
    assert isinstance(body["truncatedAlerts"], int)
    assert body["status"] == "firing"
    assert body["receiver"] == "ops-hook"
    assert body["groupLabels"] == {"desk": "d1"}
    # Intersection of label pairs: venue differs, so it is not common.
    assert body["commonLabels"] == {"alertname": "ExposureBreach", "desk": "d1", "severity": "critical"}
    assert body["commonAnnotations"] == {"summary": "over"}
    assert body["externalURL"] == "http://riskmon:9108"
    first, second = body["alerts"]
    for alert in (first, second):
        assert set(alert) == {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in alert["labels"].items())
        assert RFC3339.match(alert["startsAt"])
        assert RFC3339.match(alert["endsAt"])
        assert isinstance(alert["generatorURL"], str)
    assert first["status"] == "firing"
    assert first["labels"] == firing.labels
    assert first["annotations"] == {"runbook": "r", "summary": "over"}
    assert first["startsAt"] == "2023-11-14T22:13:20Z"
    assert first["endsAt"] == ZERO_TIME == "0001-01-01T00:00:00Z"
    assert first["fingerprint"] == firing.fingerprint
    assert second["status"] == "resolved"
    assert second["endsAt"] == "2023-11-14T22:14:50.25Z"
    json.dumps(body)  # plain JSON types only


def test_group_status_is_resolved_only_when_every_alert_is() -> None:
    resolved = transition("resolved", {"desk": "d1"}, {}, T0 + 5)
    body = alertmanager_v4_payload("r", "g", None, {}, [resolved], "http://x")
    assert body["status"] == "resolved"
    assert body["truncatedAlerts"] == 0
    with pytest.raises(ValueError, match="contradicts"):
        alertmanager_v4_payload("r", "g", "firing", {}, [resolved], "http://x")
    empty = alertmanager_v4_payload("r", "g", None, {}, [], "http://x")
    assert (empty["commonLabels"], empty["commonAnnotations"], empty["alerts"]) == ({}, {}, [])


def test_rfc3339_is_utc_with_z_and_trimmed_fraction() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert rfc3339(1.5) == "1970-01-01T00:00:01.5Z"
    assert rfc3339(T0 + 0.000123) == "2023-11-14T22:13:20.000123Z"


def test_retry_after_parses_seconds_and_http_dates() -> None:
    assert parse_retry_after("120", T0) == 120.0
    assert parse_retry_after(" 1.5 ", T0) == 1.5
    assert parse_retry_after(formatdate(T0 + 30, usegmt=True), T0) == 30.0
    assert parse_retry_after(formatdate(T0 - 30, usegmt=True), T0) == 0.0
    assert parse_retry_after("soon", T0) is None
    assert parse_retry_after(None, T0) is None


def test_signature_round_trip_and_rejections() -> None:
    body = b'{"version":"4"}'
    header = sign(SECRET, body, int(T0))
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    assert verify_signature(SECRET, header, body, T0)
    assert not verify_signature(SECRET, header, body + b" ", T0)
    assert not verify_signature(Secret("other"), header, body, T0)
    assert not verify_signature(SECRET, header, body, T0 + 3600)  # replayed much later
    assert not verify_signature(SECRET, "garbage", body, T0)


# --- a loopback receiver ---------------------------------------------------------------------------


@dataclass
class Receiver:
    """An Alertmanager-style webhook receiver: scripted answers, dedupe by Idempotency-Key, HMAC check."""

    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    delivered: list[dict[str, Any]] = field(default_factory=list)
    seen_keys: set[str] = field(default_factory=set)
    bad_signatures: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    delay: float = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = await read_body(receive) or b""
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        self.requests.append({"path": scope["path"], "query": scope["query_string"], "headers": headers})
        signature = headers.get("x-riskmon-signature")
        if signature is not None and not verify_signature(SECRET, signature, body, float(signature[2:12])):
            self.bad_signatures += 1
            await respond(send, 401, b"bad signature", "text/plain")
            return
        key = headers["idempotency-key"]
        if key not in self.seen_keys:  # processed even when the answer below is an error: a lost response
            self.seen_keys.add(key)
            self.delivered.append(json.loads(body))
        status, extra = self.script.pop(0) if self.script else (200, {})
        await respond(send, status, b"ok", "text/plain", [(k.encode(), v.encode()) for k, v in extra.items()])


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    app = Receiver()
    server = AsgiServer(app)
    await server.start()
    try:
        yield app, f"http://127.0.0.1:{server.port}/hooks/riskmon?token=tok-in-query"
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as http:
        yield http


def enqueue_alert(box: Outbox, group: str, n: int, status: str, now: float) -> int:
    alert = transition(status, {"desk": group, "n": str(n)}, {"summary": f"{group}#{n}"}, now)
    payload = alertmanager_v4_payload("hook", group, None, {"desk": group}, [alert], "http://riskmon")
    return box.enqueue("hook", group, f"{group}-{n}", json.dumps(payload).encode(), now)


async def drain(box: Outbox, sender: WebhookSender, now: float, concurrency: int = 4, rounds: int = 20) -> float:
    """Run delivery rounds on virtual time, jumping to each next due time; returns the final time."""
    for _ in range(rounds):
        await deliver_once(box, "hook", sender, now, concurrency)
        due = box.next_due("hook")
        if due is None:
            return now
        now = max(now, due)
    raise AssertionError("outbox did not drain")


@ASYNC
async def test_500_then_429_then_200_loses_nothing_and_keeps_group_order(
    tmp_path: Path, receiver: tuple[Receiver, str], client: httpx.AsyncClient
) -> None:
    app, url = receiver
    app.script = [(500, {}), (429, {"Retry-After": "42"})]
    box = Outbox(tmp_path / "o.sqlite", RetryPolicy(initial=1, maximum=8), rng=random.Random(1))
    sender = WebhookSender(url, hmac_secret=SECRET, timeout=5, client=client, clock=lambda: T0)
    ids = [enqueue_alert(box, "A", 1, "firing", T0), enqueue_alert(box, "B", 1, "firing", T0)]
    ids.append(enqueue_alert(box, "A", 2, "resolved", T0 + 1))

    first = await deliver_once(box, "hook", sender, T0, concurrency=1)
    assert first.sent == []
    assert sorted(first.retrying) == ids[:2]
    assert box.depth("hook") == 3
    # The 429's Retry-After is honoured exactly; the 500 backs off by the jittered policy.
    with contextlib.closing(sqlite3.connect(tmp_path / "o.sqlite")) as db:
        due = dict(db.execute("SELECT idempotency_key, next_attempt_at FROM notify_outbox").fetchall())
    assert due["B-1"] == T0 + 42
    assert T0 + 0.5 <= due["A-1"] <= T0 + 1
    end = await drain(box, sender, T0 + 1)
    assert end >= T0 + 42

    assert box.counts() == {("hook", "sent"): 3}
    assert app.bad_signatures == 0
    assert all(r["headers"]["x-riskmon-signature"].startswith(f"t={int(T0)},v1=") for r in app.requests)
    summaries = [d["alerts"][0]["annotations"]["summary"] for d in app.delivered]
    assert sorted(summaries) == ["A#1", "A#2", "B#1"]  # each delivered once
    assert summaries.index("A#1") < summaries.index("A#2")  # firing before resolved within a group
    assert [d["status"] for d in app.delivered if d["groupKey"] == "A"] == ["firing", "resolved"]
    # Retries repeat the key, so the receiver dropped them: more requests than deliveries.
    assert len(app.requests) == 5
    assert len(app.delivered) == 3
    assert {r["headers"]["idempotency-key"] for r in app.requests} == {"A-1", "A-2", "B-1"}
    box.close()


@ASYNC
async def test_crash_after_enqueue_delivers_after_restart(
    tmp_path: Path, receiver: tuple[Receiver, str], client: httpx.AsyncClient
) -> None:
    app, url = receiver
    path = tmp_path / "o.sqlite"
    box = Outbox(path)
    enqueue_alert(box, "A", 1, "firing", T0)
    box.claim("hook", T0, 10)  # claimed by a round that never got to send
    box.close()

    reopened = Outbox(path)
    sender = WebhookSender(url, hmac_secret=None, timeout=5, client=client)
    report = await deliver_once(reopened, "hook", sender, T0 + 5, concurrency=2)
    assert len(report.sent) == 1
    assert [d["groupKey"] for d in app.delivered] == ["A"]
    assert "x-riskmon-signature" not in app.requests[0]["headers"]
    assert app.requests[0]["headers"]["content-type"] == "application/json"
    reopened.close()


@ASYNC
async def test_dead_letter_after_max_age_and_4xx_is_final(
    tmp_path: Path, receiver: tuple[Receiver, str], client: httpx.AsyncClient
) -> None:
    app, url = receiver
    box = Outbox(tmp_path / "o.sqlite", RetryPolicy(initial=10, maximum=10, dead_letter_after=25))
    sender = WebhookSender(url, hmac_secret=SECRET, timeout=5, client=client, clock=lambda: T0)
    aged = enqueue_alert(box, "A", 1, "firing", T0)
    app.script = [(503, {})] * 10
    now = T0
    for _ in range(10):
        report = await deliver_once(box, "hook", sender, now, concurrency=1)
        if report.dead:
            break
        due = box.next_due("hook")
        assert due is not None
        now = due
    assert report.dead == [aged]
    assert now - T0 >= 25
    assert box.last_error(aged) == f"HTTP 503 from http://127.0.0.1:{url.split(':')[2].split('/')[0]}"

    refused = enqueue_alert(box, "B", 1, "firing", now)
    app.script = [(400, {})]
    report = await deliver_once(box, "hook", sender, now, concurrency=1)
    assert report.dead == [refused]
    assert box.counts() == {("hook", "dead"): 2}
    box.close()


@ASYNC
async def test_concurrency_is_bounded(
    tmp_path: Path, receiver: tuple[Receiver, str], client: httpx.AsyncClient
) -> None:
    app, url = receiver
    app.delay = 0.05
    box = Outbox(tmp_path / "o.sqlite")
    for group in "ABCDEF":
        enqueue_alert(box, group, 1, "firing", T0)
    sender = WebhookSender(url, hmac_secret=None, timeout=5, client=client)
    report = await deliver_once(box, "hook", sender, T0, concurrency=2)
    assert len(report.sent) == 6
    assert app.max_in_flight == 2
    box.close()


@ASYNC
async def test_errors_never_show_the_query_credentials_or_secret(tmp_path: Path, client: httpx.AsyncClient) -> None:
    # A port nobody listens on: bind one, then close it.
    server = AsgiServer(Receiver())
    await server.start()
    port = server.port
    await server.stop()
    url = f"http://user:hunter2@127.0.0.1:{port}/hook/path-key?token=query-secret"
    sender = WebhookSender(url, hmac_secret=SECRET, timeout=2, client=client)
    result = await sender.send(b"{}", "k1")
    assert not result.ok
    assert result.retryable
    assert result.status is None
    assert result.error is not None
    assert result.error.startswith(f"ConnectError posting to http://127.0.0.1:{port}")
    for leak in ("hunter2", "user", "query-secret", "path-key", "token", SECRET.reveal()):
        assert leak not in result.error

    box = Outbox(tmp_path / "o.sqlite")
    item = box.enqueue("hook", "A", "k1", b"{}", T0)
    report = await deliver_once(box, "hook", sender, T0, concurrency=1)
    assert report.retrying == [item]
    assert "query-secret" not in (box.last_error(item) or "")
    box.close()


@ASYNC
async def test_a_raising_sender_keeps_the_item_and_cancellation_releases_claims(tmp_path: Path) -> None:
    class Broken:
        async def send(self, payload: bytes, idempotency_key: str) -> SendResult:
            raise RuntimeError("bug with secret " + SECRET.reveal())

    class Stuck:
        async def send(self, payload: bytes, idempotency_key: str) -> SendResult:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    box = Outbox(tmp_path / "o.sqlite")
    item = box.enqueue("hook", "A", "k1", b"{}", T0)
    report = await deliver_once(box, "hook", Broken(), T0, concurrency=1)
    assert report.retrying == [item]
    assert box.last_error(item) == "RuntimeError in sender"

    due = box.next_due("hook")
    assert due is not None
    task = asyncio.create_task(deliver_once(box, "hook", Stuck(), due, concurrency=1))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [i.id for i in box.claim("hook", due, 10)] == [item]  # released, due again
    box.close()
