"""Postable alerts for Alertmanager's /api/v2/alerts, the resend feed on virtual time, a loopback fake Alertmanager."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio

from riskmon.alerts.fingerprints import fingerprint
from riskmon.alerts.lifecycle import AlertTransition
from riskmon.asgi_server import AsgiServer, Receive, Scope, Send, read_body, respond
from riskmon.notify.alertmanager import (
    AlertmanagerFeed,
    alertmanager_body,
    alerts_url,
    idempotency_key,
    postable_alerts,
)
from riskmon.notify.webhook import WebhookSender

T0 = 1_700_000_000.0
R = 60.0  # resend interval
GEN = "http://riskmon.example:9108/alerts"
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def alert(status: str, market: str, *, ts: float = T0, starts_at: float = T0, **extra: str) -> AlertTransition:
    labels = {"desk": "sol-desk", "market": market, "alertname": "ExposureLimitBreach", "severity": "critical", **extra}
    return AlertTransition(
        ts=ts,
        status=status,  # type: ignore[arg-type]
        alertname="ExposureLimitBreach",
        severity="critical",
        labels=labels,
        annotations={"summary": f"{market} over limit", "value": "1250000.00", "limit": "1000000.00"},
        fingerprint=fingerprint(labels),
        starts_at=starts_at,
    )


def parse_time(text: str) -> float:
    assert RFC3339_Z.match(text), text
    return datetime.fromisoformat(text).timestamp()


def postable_errors(body: Any) -> list[str]:
    """What Alertmanager's v2 API would refuse: the postableAlerts schema plus Alert.Validate()."""
    if not isinstance(body, list):
        return ["body is not a list"]
    errors = []
    for i, item in enumerate(body):
        if not isinstance(item, dict) or not set(item) <= {
            "labels",
            "annotations",
            "startsAt",
            "endsAt",
            "generatorURL",
        }:
            errors.append(f"{i}: not a postableAlert object")
            continue
        labels = item.get("labels")
        if not isinstance(labels, dict) or not labels:
            errors.append(f"{i}: labels missing or empty")
            continue
        if not all(isinstance(k, str) and LABEL_NAME.match(k) and isinstance(v, str) for k, v in labels.items()):
            errors.append(f"{i}: bad label")
        annotations = item.get("annotations", {})
        if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
            errors.append(f"{i}: bad annotations")
        if not isinstance(item.get("generatorURL", ""), str):
            errors.append(f"{i}: bad generatorURL")
        try:
            starts, ends = parse_time(item["startsAt"]), parse_time(item["endsAt"])
        except (AssertionError, KeyError, ValueError):
            errors.append(f"{i}: bad times")
            continue
        if ends < starts:
            errors.append(f"{i}: start time must be before end time")
    return errors


# --- postable alerts ------------------------------------------------------------------------------


def test_postable_alert_shape_field_by_field() -> None:
    firing = alert("firing", "SOL-PERP", ts=T0 + 1, starts_at=T0 + 0.25, empty="")
    resolved = alert("resolved", "ETH-PERP", ts=T0 + 90.5)
    now = T0 + 10
    first, second = postable_alerts([firing, resolved], now=now, resend_interval=R, generator_url=GEN)
    assert list(first) == ["labels", "annotations", "startsAt", "endsAt", "generatorURL"]
    assert first["labels"] == {
        "alertname": "ExposureLimitBreach",
        "desk": "sol-desk",
        "market": "SOL-PERP",
        "severity": "critical",
    }  # the empty label is dropped, as Alertmanager would
    assert list(first["labels"]) == sorted(first["labels"])
    assert first["annotations"] == {"limit": "1000000.00", "summary": "SOL-PERP over limit", "value": "1250000.00"}
    assert first["startsAt"] == "2023-11-14T22:13:20.25Z"
    assert first["endsAt"] == "2023-11-14T22:17:30Z"
    assert parse_time(first["endsAt"]) == now + 4 * R
    assert first["generatorURL"] == GEN
    assert second["startsAt"] == "2023-11-14T22:13:20Z"
    assert second["endsAt"] == "2023-11-14T22:14:50.5Z"  # when it resolved, not now-based
    assert postable_errors([first, second]) == []
    # A firing alert that started later than now + 4 x resend still ends no earlier than it starts.
    future = alert("firing", "X", starts_at=T0 + 1000)
    [clamped] = postable_alerts([future], now=T0, resend_interval=R, generator_url=GEN)
    assert clamped["endsAt"] == clamped["startsAt"]


def test_body_is_compact_deterministic_json_and_the_key_its_sha256() -> None:
    batch = [alert("firing", "SOL-PERP"), alert("resolved", "BTC", ts=T0 + 3)]
    body = alertmanager_body(batch, T0, R, GEN)
    assert body == alertmanager_body(list(batch), T0, R, GEN)
    assert b'": ' not in body
    assert b', "' not in body
    assert json.loads(body) == postable_alerts(batch, now=T0, resend_interval=R, generator_url=GEN)
    assert idempotency_key(body) == hashlib.sha256(body).hexdigest()
    assert idempotency_key(alertmanager_body(batch, T0 + R, R, GEN)) != idempotency_key(body)  # a resend differs


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("http://127.0.0.1:9093", "http://127.0.0.1:9093/api/v2/alerts"),
        ("http://127.0.0.1:9093/", "http://127.0.0.1:9093/api/v2/alerts"),
        ("https://ops.example/am", "https://ops.example/am/api/v2/alerts"),
        ("https://ops.example/am/", "https://ops.example/am/api/v2/alerts"),
        ("https://ops.example/am//", "https://ops.example/am/api/v2/alerts"),
        ("http://am:9093/api/v2/alerts", "http://am:9093/api/v2/alerts"),
        (" http://am:9093/am?tenant=t1 ", "http://am:9093/am/api/v2/alerts?tenant=t1"),
    ],
)
def test_alerts_url_joins_the_api_path(base: str, url: str) -> None:
    assert alerts_url(base) == url


@pytest.mark.parametrize("base", ["127.0.0.1:9093", "ftp://am/", "http:///api", ""])
def test_alerts_url_refuses_what_is_not_an_http_base(base: str) -> None:
    with pytest.raises(ValueError, match="http"):
        alerts_url(base)


# --- the feed on virtual time ---------------------------------------------------------------------


def markets(batch: list[AlertTransition] | None) -> list[tuple[str, str]]:
    assert batch is not None
    return [(a.labels["market"], a.status) for a in batch]


def test_new_alerts_go_at_once_and_everything_firing_again_every_resend_interval() -> None:
    feed = AlertmanagerFeed(R)
    assert (feed.next_due(), feed.due(T0)) == (None, None)
    feed.observe(alert("firing", "A", ts=T0))
    feed.observe(alert("firing", "B", ts=T0))
    assert feed.next_due() == T0
    assert markets(feed.due(T0)) == [("A", "firing"), ("B", "firing")]
    assert feed.due(T0) is None
    assert feed.next_due() == T0 + R
    assert feed.due(T0 + R - 0.001) is None
    assert markets(feed.due(T0 + R)) == [("A", "firing"), ("B", "firing")]
    assert feed.next_due() == T0 + 2 * R

    # A resolution goes out at once, then is forgotten: not in the next resend.
    feed.observe(alert("resolved", "A", ts=T0 + R + 5))
    assert feed.next_due() == T0 + R + 5
    assert markets(feed.due(T0 + R + 5)) == [("A", "resolved")]
    assert [a.labels["market"] for a in feed.firing()] == ["B"]
    assert feed.next_due() == T0 + 2 * R  # the resolution does not move the resend clock
    assert markets(feed.due(T0 + 2 * R)) == [("B", "firing")]

    feed.observe(alert("resolved", "B", ts=T0 + 2 * R + 1))
    assert markets(feed.due(T0 + 2 * R + 1)) == [("B", "resolved")]
    assert (feed.firing(), feed.next_due(), feed.due(T0 + 10 * R)) == ([], None, None)


def test_a_trickle_of_new_alerts_cannot_starve_the_resend() -> None:
    feed = AlertmanagerFeed(R)
    feed.observe(alert("firing", "OLD", ts=T0))
    assert markets(feed.due(T0)) == [("OLD", "firing")]
    for i, t in enumerate((T0 + 20, T0 + 40)):
        feed.observe(alert("firing", f"NEW{i}", ts=t))
        assert markets(feed.due(t)) == [(f"NEW{i}", "firing")]
        assert feed.next_due() == T0 + R
    # At the resend, everything firing goes again, with a transition observed meanwhile in its place.
    feed.observe(alert("resolved", "NEW0", ts=T0 + R))
    feed.observe(alert("firing", "NEW2", ts=T0 + R))
    assert markets(feed.due(T0 + R)) == [
        ("OLD", "firing"),
        ("NEW1", "firing"),
        ("NEW2", "firing"),
        ("NEW0", "resolved"),
    ]


def test_latest_transition_per_alert_wins_within_one_push() -> None:
    feed = AlertmanagerFeed(R)
    feed.observe(alert("firing", "A", ts=T0))
    feed.observe(alert("resolved", "A", ts=T0 + 1))  # a flap before the push: only its end matters
    assert markets(feed.due(T0 + 1)) == [("A", "resolved")]
    assert (feed.firing(), feed.next_due()) == ([], None)
    feed.observe(alert("resolved", "GHOST", ts=T0 + 2))  # e.g. fired before a restart: still told
    assert markets(feed.due(T0 + 2)) == [("GHOST", "resolved")]


def test_max_batch_splits_a_push_into_batches_due_at_once() -> None:
    feed = AlertmanagerFeed(R, max_batch=1000)
    for i in range(2500):
        feed.observe(alert("firing", f"M{i:04d}", ts=T0))
    sizes = []
    seen: list[str] = []
    while (batch := feed.due(T0)) is not None:
        sizes.append(len(batch))
        seen += [a.labels["market"] for a in batch]
        if len(sizes) < 3:
            assert feed.next_due() == T0  # the rest is due at once
    assert sizes == [1000, 1000, 500]
    assert seen == [f"M{i:04d}" for i in range(2500)]
    assert feed.next_due() == T0 + R
    assert [len(b) for b in iter(lambda: feed.due(T0 + R), None)] == [1000, 1000, 500]
    with pytest.raises(ValueError, match="max_batch"):
        AlertmanagerFeed(R, max_batch=0)
    with pytest.raises(ValueError, match="resend_interval"):
        AlertmanagerFeed(0)


# --- a loopback fake Alertmanager -----------------------------------------------------------------


@dataclass
class FakeAlertmanager:
    """POST /api/v2/alerts only; refuses what Alertmanager refuses; keeps alerts by label set like its store."""

    fail_first: int = 0
    requests: list[tuple[str, str, bytes, dict[str, str]]] = field(default_factory=list)
    store: dict[tuple[tuple[str, str], ...], dict[str, Any]] = field(default_factory=dict)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = await read_body(receive) or b""
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.requests.append((scope["method"], scope["path"], body, headers))
        if scope["path"] != "/api/v2/alerts":
            await respond(send, 404, b"not found", "text/plain")
            return
        if scope["method"] != "POST":
            await respond(send, 405, b"method not allowed", "text/plain")
            return
        if self.fail_first > 0:
            self.fail_first -= 1
            await respond(send, 500, b'{"code":500,"message":"replica not ready"}', "application/json")
            return
        try:
            alerts = json.loads(body)
        except ValueError:
            alerts = None
        errors = postable_errors(alerts)
        if errors or headers.get("content-type") != "application/json":
            message = json.dumps({"code": 400, "message": "; ".join(errors) or "content-type"}).encode()
            await respond(send, 400, message, "application/json")
            return
        for item in alerts:
            self.store[tuple(sorted(item["labels"].items()))] = item
        await respond(send, 200, b"", "application/json")

    def ends_at(self, market: str) -> float:
        [item] = [v for k, v in self.store.items() if ("market", market) in k]
        return parse_time(item["endsAt"])


@pytest_asyncio.fixture
async def alertmanager() -> AsyncIterator[tuple[FakeAlertmanager, str]]:
    app = FakeAlertmanager()
    server = AsgiServer(app, "127.0.0.1", 0)
    await server.start()
    try:
        yield app, f"http://127.0.0.1:{server.port}/"
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as http:
        yield http


async def push(feed: AlertmanagerFeed, sender: WebhookSender, now: float) -> list[int]:
    """Everything due at `now`, as the runtime would send it; returns the HTTP statuses."""
    statuses = []
    while (batch := feed.due(now)) is not None:
        body = alertmanager_body(batch, now, feed.resend_interval, GEN)
        result = await sender.send(body, idempotency_key(body))
        assert result.ok, result.error
        statuses.append(result.status or 0)
    return statuses


@pytest.mark.integration
@pytest.mark.asyncio
async def test_feed_keeps_a_loopback_alertmanager_current(
    alertmanager: tuple[FakeAlertmanager, str], client: httpx.AsyncClient
) -> None:
    app, base = alertmanager
    sender = WebhookSender(alerts_url(base), hmac_secret=None, timeout=5, client=client, clock=lambda: T0)
    feed = AlertmanagerFeed(R, max_batch=2)
    for market in ("A", "B", "C"):
        feed.observe(alert("firing", market, ts=T0))
    assert await push(feed, sender, T0) == [200, 200]  # 3 alerts in batches of 2
    assert len(app.store) == 3
    assert {m: app.ends_at(m) for m in "ABC"} == dict.fromkeys("ABC", T0 + 4 * R)

    assert await push(feed, sender, T0 + R - 1) == []
    assert await push(feed, sender, T0 + R) == [200, 200]
    assert {m: app.ends_at(m) for m in "ABC"} == dict.fromkeys("ABC", T0 + 5 * R)

    feed.observe(alert("resolved", "B", ts=T0 + R + 7))
    assert await push(feed, sender, T0 + R + 7) == [200]
    assert app.ends_at("B") == T0 + R + 7
    assert await push(feed, sender, T0 + 2 * R) == [200]
    assert (app.ends_at("A"), app.ends_at("B"), app.ends_at("C")) == (T0 + 6 * R, T0 + R + 7, T0 + 6 * R)

    posted = [json.loads(body) for method, path, body, _ in app.requests]
    assert all(method == "POST" and path == "/api/v2/alerts" for method, path, _, _ in app.requests)
    assert [len(b) for b in posted] == [2, 1, 2, 1, 1, 2]
    assert all(postable_errors(b) == [] for b in posted)
    assert all(h["idempotency-key"] == idempotency_key(body) for _, _, body, h in app.requests)


@pytest.mark.integration
@pytest.mark.asyncio
async def test_a_failing_replica_gets_the_same_bytes_again_and_a_bad_body_is_final(
    alertmanager: tuple[FakeAlertmanager, str], client: httpx.AsyncClient
) -> None:
    app, base = alertmanager
    app.fail_first = 1
    sender = WebhookSender(alerts_url(base), hmac_secret=None, timeout=5, client=client, clock=lambda: T0)
    body = alertmanager_body([alert("firing", "A")], T0, R, GEN)
    first = await sender.send(body, idempotency_key(body))
    assert (first.ok, first.status, first.retryable) == (False, 500, True)
    assert app.store == {}
    second = await sender.send(body, idempotency_key(body))
    assert (second.ok, second.status) == (True, 200)
    assert app.ends_at("A") == T0 + 4 * R
    assert app.requests[0][2] == app.requests[1][2] == body
    assert app.requests[0][3]["idempotency-key"] == app.requests[1][3]["idempotency-key"]

    # The fake really validates: an alert ending before it starts is refused for good, as by Alertmanager.
    bad = json.dumps(
        [{"labels": {"alertname": "X"}, "startsAt": "2023-11-14T22:13:20Z", "endsAt": "2020-01-01T00:00:00Z"}]
    )
    refused = await sender.send(bad.encode(), "k-bad")
    assert (refused.ok, refused.status, refused.retryable) == (False, 400, False)
    wrong_path = WebhookSender(base + "api/v1/alerts", hmac_secret=None, timeout=5, client=client)
    assert (await wrong_path.send(body, "k")).status == 404
