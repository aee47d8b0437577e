"""Alerts from a live monitor to real loopback receivers: routing, grouping, a failing receiver
that recovers, the webhook v4 payload and its signature, Slack, and silences over the HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from riskmon.asgi_server import AsgiServer, Receive, Scope, Send, read_body, respond
from riskmon.clock import SystemClock, VirtualClock
from riskmon.config import parse_config
from riskmon.config.types import Secret
from riskmon.notify.notifier import Outgoing
from riskmon.notify.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify_signature
from riskmon.runtime.deadline_timer import DeadlineTimer
from riskmon.runtime.delivery import Delivery
from riskmon.runtime.monitor import Monitor
from riskmon.venues.mango_v3.simulator import MangoV3FillsSimulator
from tests.runtime.mango_desk import DESK, SOL, SOL_LIMIT, desk_config, running, trade

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

HMAC = "hook-signing-secret"
TOKEN = "api-token-for-tests"

ALERTING = """\
receivers:
  hook: {kind: webhook, url: "${HOOK}/alerts?key=s3cr3t", hmac_secret: "${HMAC}"}
  slack: {kind: slack, webhook_url: "${SLACK}/services/T0/B0/xyz", channel: "#risk"}
routes:
  receiver: hook
  group_by: [alertname, desk]
  group_wait: 0s
  group_interval: 100ms
  repeat_interval: 1h
  routes:
    - matchers: ['severity="critical"']
      receiver: slack
      continue: true
    - receiver: hook
delivery:
  external_url: http://riskmon.example:9860
  retry_initial: 10ms
  retry_max: 50ms
"""


@dataclass
class RecordingReceiver:
    """A loopback HTTP receiver that fails as scripted, then records what it accepts."""

    failures: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    accepted: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    attempts: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive) or b""
        self.attempts += 1
        if self.failures:
            status, headers = self.failures.pop(0)
            await respond(send, status, b"busy", "text/plain", [(k.encode(), v.encode()) for k, v in headers.items()])
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.accepted.append(({**headers, ":path": scope["path"], ":query": scope["query_string"].decode()}, body))
        self.changed.set()
        await respond(send, 200, b"ok", "text/plain")

    def bodies(self) -> list[dict[str, Any]]:
        """Accepted bodies with duplicates (same idempotency key) dropped, as a receiver would."""
        seen: set[str] = set()
        out = []
        for headers, body in self.accepted:
            key = headers[IDEMPOTENCY_HEADER.lower()]
            if key not in seen:
                seen.add(key)
                out.append(json.loads(body))
        return out

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


@dataclass
class Setup:
    sim: MangoV3FillsSimulator
    monitor: Monitor
    hook: RecordingReceiver
    slack: RecordingReceiver
    api: httpx.AsyncClient


@pytest_asyncio.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    hook, slack = RecordingReceiver(), RecordingReceiver()
    hook_server, slack_server = AsgiServer(hook), AsgiServer(slack)
    await hook_server.start()
    await slack_server.start()
    sim = MangoV3FillsSimulator([SOL])
    await sim.start()
    env = {
        "URL": sim.url,
        "STATE": str(tmp_path / "state.db"),
        "HOOK": f"http://127.0.0.1:{hook_server.port}",
        "SLACK": f"http://127.0.0.1:{slack_server.port}",
        "HMAC": HMAC,
        "TOKEN": TOKEN,
    }
    text = desk_config("${STATE}", "${URL}", server=["token: ${TOKEN}"], limits=[SOL_LIMIT], more=ALERTING)
    config = parse_config(text, "t.yaml", env)
    monitor = Monitor(config, http_port=0)
    try:
        async with running(monitor):
            # The venues connect while the state file loads: HTTP serves only once the monitor has started.
            await asyncio.wait_for(monitor.started.wait(), timeout=5)
            await sim.wait_for_connections(1)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{monitor.http_port}") as api:
                yield Setup(sim, monitor, hook, slack, api)
    finally:
        await sim.stop()
        await hook_server.stop()
        await slack_server.stop()


async def breach(setup: Setup) -> None:
    for _ in range(4):  # 5 SOL at $150 each time: warning at $2250, critical at $3000
        await setup.sim.push_fill(SOL.name, trade(500))


async def test_failing_receiver_recovers_and_gets_every_notification_once_in_order(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    setup.hook.failures = [(500, {}), (500, {}), (429, {"Retry-After": "0"})]
    await breach(setup)
    await setup.hook.wait_for(lambda: len(setup.hook.bodies()) == 2)
    await setup.slack.wait_for(lambda: len(setup.slack.accepted) == 1)
    assert setup.hook.attempts >= 5  # three refusals before the first success

    first, second = setup.hook.bodies()
    assert [a["labels"]["severity"] for a in first["alerts"]] == ["warning"]
    assert sorted(a["labels"]["severity"] for a in second["alerts"]) == ["critical", "warning"]

    # The Alertmanager v4 webhook shape, field by field.
    assert set(second) == {
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
    }
    assert second["version"] == "4"
    assert second["status"] == "firing"
    assert second["receiver"] == "hook"
    assert second["groupKey"] == '{}/{}:{alertname="ExposureLimitBreach", desk="sol-desk"}'
    assert second["groupLabels"] == {"alertname": "ExposureLimitBreach", "desk": "sol-desk"}
    assert second["commonLabels"] == {
        "alertname": "ExposureLimitBreach",
        "desk": "sol-desk",
        "limit": "net_notional",
        "market": "SOL-PERP",
    }
    assert second["externalURL"] == "http://riskmon.example:9860"
    assert second["truncatedAlerts"] == 0
    for alert in second["alerts"]:
        assert set(alert) == {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
        assert alert["status"] == "firing"
        assert alert["endsAt"] == "0001-01-01T00:00:00Z"
        assert alert["startsAt"].endswith("Z")
        assert alert["annotations"]["limit"] == "2500.00"
        assert len(alert["fingerprint"]) == 16

    # Signed, keyed and posted to the configured path and query.
    for headers, body in setup.hook.accepted:
        assert verify_signature(Secret(HMAC), headers[SIGNATURE_HEADER.lower()], body, time.time())
        assert headers[":path"] == "/alerts"
        assert headers[":query"] == "key=s3cr3t"
    keys = [h[IDEMPOTENCY_HEADER.lower()] for h, _ in setup.hook.accepted]
    assert len(set(keys)) == 2

    # Only the critical alert reaches Slack, as Block Kit in a red attachment.
    [(_, slack_body)] = setup.slack.accepted
    message = json.loads(slack_body)
    assert message["channel"] == "#risk"
    [attachment] = message["attachments"]
    assert attachment["color"] == "#E01E5A"
    assert attachment["blocks"][0]["type"] == "header"
    assert "critical" in attachment["blocks"][0]["text"]["text"]

    # Delivery is counted for Prometheus: every send attempt's outcome and what still waits.
    delivery = setup.monitor.alerting.delivery
    async with asyncio.timeout(10):
        while delivery.outcomes[("hook", "sent")] < 2 or delivery.outcomes[("slack", "sent")] < 1:
            delivery.progress.clear()
            await delivery.progress.wait()
    scraped = (await setup.api.get("/metrics")).text
    assert 'riskmon_notifications_total{outcome="sent",receiver="hook"} 2.0' in scraped
    assert 'riskmon_notifications_total{outcome="retried",receiver="hook"} 3.0' in scraped
    assert 'riskmon_notifications_total{outcome="sent",receiver="slack"} 1.0' in scraped
    assert "riskmon_alerts_muted 0.0" in scraped

    # Neither the hook's query secret, its signing key nor Slack's hook path reaches a log line.
    text = caplog.text
    assert "s3cr3t" not in text
    assert HMAC not in text
    assert "/services/T0" not in text


async def test_silence_over_http_mutes_and_its_expiry_releases_at_once(setup: Setup) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    refused = await setup.api.post("/api/v1/silences", json={"matchers": ['desk="sol-desk"']})
    assert refused.status_code == 401
    created = await setup.api.post(
        "/api/v1/silences",
        headers=auth,
        json={
            "matchers": ['desk="sol-desk"', 'severity="critical"'],
            "duration": "2h",
            "created_by": "risk-officer",
            "comment": "known breach, unwinding",
        },
    )
    assert created.status_code == 201, created.text
    silence_id = created.json()["id"]
    listed = await setup.api.get("/api/v1/silences", params={"state": "active"})
    assert [s["id"] for s in listed.json()] == [silence_id]

    await breach(setup)
    await setup.hook.wait_for(lambda: len(setup.hook.bodies()) == 1)
    [warning_only] = setup.hook.bodies()
    assert [a["labels"]["severity"] for a in warning_only["alerts"]] == ["warning"]
    assert setup.monitor.alerting.notifier.muted()[0].severity == "critical"
    assert setup.slack.accepted == []

    expired = await setup.api.delete(f"/api/v1/silences/{silence_id}", headers=auth)
    assert expired.status_code == 200
    assert expired.json()["state"] == "expired"
    await setup.slack.wait_for(lambda: len(setup.slack.accepted) == 1)
    await setup.hook.wait_for(lambda: len(setup.hook.bodies()) == 2)
    assert sorted(a["labels"]["severity"] for a in setup.hook.bodies()[1]["alerts"]) == ["critical", "warning"]
    assert setup.monitor.alerting.notifier.muted() == []


# The delivery shell alone: commit, claim and send ------------------------------------------------


@dataclass
class HoldingReceiver:
    """Records each request with what the outbox said about it on arrival; holds group A's first."""

    state: Path
    hold_first: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: list[tuple[str, str | None, int]] = field(default_factory=list)  # key, outbox status, client port
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await read_body(receive)
        key = dict(scope["headers"])[IDEMPOTENCY_HEADER.lower().encode()].decode()
        with contextlib.closing(sqlite3.connect(self.state)) as db:
            row = db.execute("SELECT status FROM notify_outbox WHERE idempotency_key = ?", (key,)).fetchone()
        self.arrived.append((key, None if row is None else row[0], scope["client"][1]))
        self.changed.set()
        if key == "A1":
            await self.hold_first.wait()
        await respond(send, 200, b"ok", "text/plain")

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.arrived) < count:
                self.changed.clear()
                await self.changed.wait()


def outgoing(group: str, key: str) -> Outgoing:
    return Outgoing("hook", "hook", group, key, json.dumps({"group": group, "key": key}).encode())


async def test_a_message_is_committed_before_it_is_sent_and_its_group_waits_for_it(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    receiver = HoldingReceiver(state)
    server = AsgiServer(receiver)
    await server.start()
    config = parse_config(
        f"""
venues: {{mango: {{kind: mango_v3_fills, urls: ["ws://127.0.0.1:9"]}}}}
desks: {{sol-desk: {{accounts: {{mango: [{DESK}]}}}}}}
receivers: {{hook: {{kind: webhook, url: "http://127.0.0.1:{server.port}/alerts"}}}}
""",
        "t.yaml",
        {},
    )
    delivery = Delivery(state, config.receivers, config.delivery, SystemClock())
    await delivery.start()
    try:
        delivery.submit([outgoing("A", "A1")])
        await receiver.wait_for(1)
        delivery.submit([outgoing("A", "A2"), outgoing("B", "B1")])
        await receiver.wait_for(2)  # B is another group: it goes while A's head is held
        await delivery.drain()
        assert [key for key, _, _ in receiver.arrived] == ["A1", "B1"]
        receiver.hold_first.set()
        await receiver.wait_for(3)
        async with asyncio.timeout(5):
            while delivery.outcomes[("hook", "sent")] < 3:
                delivery.progress.clear()
                await delivery.progress.wait()
    finally:
        receiver.hold_first.set()
        await delivery.stop()
        await server.stop()
    assert [key for key, _, _ in receiver.arrived] == ["A1", "B1", "A2"]
    # Every message was already in the outbox (committed, pending) when the receiver got it.
    assert [status for _, status, _ in receiver.arrived] == ["pending"] * 3
    # Keep-alive: A1 and B1 overlapped on two connections, and A2 reused one of them.
    assert len({port for _, _, port in receiver.arrived}) == 2
    assert delivery.outcomes[("hook", "enqueued")] == 3
    assert delivery.latency["hook"].count == 3  # enqueue -> accepted, observed for each


# The deadline timer that serves group waits (and the engine's deadlines) ---------------------------


async def test_deadline_timer_settles_on_the_due_time_and_never_fires_early() -> None:
    clock = SystemClock()
    due: list[float | None] = [None]
    fired_at: list[float] = []
    fired = asyncio.Event()

    def on_due() -> None:
        now = clock.now()
        if due[0] is not None and now >= due[0]:
            fired_at.append(now - due[0])
            due[0] = None
            fired.set()
        timer.rearm()

    timer = DeadlineTimer(clock, lambda: due[0], on_due, settle=0.002)
    for delay in (0.0, 0.0004, 0.003, 0.005):
        fired.clear()
        due[0] = clock.now() + delay
        timer.rearm()
        await asyncio.wait_for(fired.wait(), timeout=5)
    timer.cancel()
    assert len(fired_at) == 4
    assert all(late >= 0 for late in fired_at)


async def test_deadline_timer_waits_in_loop_time_when_the_clock_is_virtual() -> None:
    clock = VirtualClock(1_000.0)
    calls: list[float] = []
    fired = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_due() -> None:
        calls.append(loop.time())
        fired.set()

    timer = DeadlineTimer(clock, lambda: 1_000.003, on_due)
    armed = loop.time()
    timer.rearm()
    timer.rearm()  # the same deadline: nothing changes
    await asyncio.wait_for(fired.wait(), timeout=5)
    # Fired once, 3 ms of loop time later, though the virtual clock never moved (no endless settling).
    assert len(calls) == 1
    assert calls[0] - armed >= 0.003
    timer.cancel()
    assert timer._handle is None
