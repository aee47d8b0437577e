"""riskmon pushing to a real Alertmanager (Debian's 0.25), which notifies a loopback webhook sink.

A live Monitor against the Mango simulator breaches a desk's net-notional warning level from fills,
pushes the alert to two Alertmanager replicas (two processes, no clustering) and later its
resolution; each replica groups it and posts its own v4 webhook to the sink. Alertmanager's own API
shows what it stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from riskmon.asgi_server import AsgiServer, Receive, Scope, Send, read_body, respond
from riskmon.config import parse_config
from riskmon.runtime.monitor import Monitor
from riskmon.venues.mango_v3.simulator import MangoV3FillsSimulator
from tests.integration.conftest import Program, free_port, wait_for_http
from tests.runtime.mango_desk import SOL, SOL_LIMIT, desk_config, running, trade

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

EXTERNAL_URL = "http://riskmon.example:9860"
RESEND = 0.25  # riskmon re-pushes firing alerts this often, with endsAt 4 x this ahead
REPLICAS = ("am-a", "am-b")

RISKMON_ALERTING = f"""\
receivers:
  am: {{kind: alertmanager, urls: ["${{AM_A}}", "${{AM_B}}/"], resend_interval: {int(RESEND * 1000)}ms}}
delivery:
  external_url: {EXTERNAL_URL}
  retry_initial: 10ms
  retry_max: 50ms
"""

# Each replica names its receiver after itself, so the sink can tell whose webhook it got.
ALERTMANAGER_CONFIG = """
route:
  receiver: {name}
  group_by: [alertname, desk, venue]
  group_wait: 200ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: {name}
    webhook_configs:
      - url: http://127.0.0.1:{sink_port}/hook/{name}
        send_resolved: true
"""

WARNING_LABELS = {
    "alertname": "ExposureLimitBreach",
    "desk": "sol-desk",
    "limit": "net_notional",
    "market": "SOL-PERP",
    "severity": "warning",
}


@dataclass
class WebhookSink:
    """Records every webhook Alertmanager posts, in arrival order."""

    received: asyncio.Queue[tuple[str, dict[str, Any]]] = field(default_factory=asyncio.Queue)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive) or b""
        await self.received.put((scope["path"], json.loads(body)))
        await respond(send, 200, b"ok", "text/plain")

    async def next(self, status: str, timeout: float = 10.0) -> tuple[str, dict[str, Any]]:  # noqa: ASYNC109
        """The next webhook with this group status; earlier ones with another status are skipped."""
        async with asyncio.timeout(timeout):
            while True:
                path, payload = await self.received.get()
                if payload["status"] == status:
                    return path, payload


@dataclass
class Setup:
    sim: MangoV3FillsSimulator
    sink: WebhookSink
    monitor: Monitor
    alertmanagers: dict[str, str]  # replica name -> base URL


@pytest_asyncio.fixture
async def setup(
    tmp_path: Path, alertmanager_program: str, start_program: Callable[..., Program]
) -> AsyncIterator[Setup]:
    async with contextlib.AsyncExitStack() as stack:
        sink = WebhookSink()
        sink_server = AsgiServer(sink, "127.0.0.1", 0)
        await sink_server.start()
        stack.push_async_callback(sink_server.stop)
        alertmanagers: dict[str, str] = {}
        for name in REPLICAS:
            workdir = tmp_path / name
            workdir.mkdir()
            config = workdir / "alertmanager.yml"
            config.write_text(ALERTMANAGER_CONFIG.format(name=name, sink_port=sink_server.port))
            base = f"http://127.0.0.1:{free_port()}"
            program = start_program(
                alertmanager_program,
                f"--config.file={config}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address={base.removeprefix('http://')}",
                f"--web.external-url={base}",
                "--cluster.listen-address=",  # no gossip port on every interface
                "--log.level=debug",
            )
            await asyncio.to_thread(wait_for_http, f"{base}/-/ready", program, 10.0)
            alertmanagers[name] = base

        sim = MangoV3FillsSimulator([SOL])
        await sim.start()
        stack.push_async_callback(sim.stop)
        text = desk_config(tmp_path / "state.db", sim.url, limits=[SOL_LIMIT], more=RISKMON_ALERTING)
        env = {"AM_A": alertmanagers["am-a"], "AM_B": alertmanagers["am-b"]}
        monitor = await stack.enter_async_context(
            running(Monitor(parse_config(text, "monitor.yaml", env), http_port=0))
        )
        await sim.wait_for_connections(1)
        yield Setup(sim, sink, monitor, alertmanagers)


async def warn(setup: Setup) -> None:
    # 15 SOL at $150 = $2250: over the warning level ($2000), under the limit ($2500).
    await setup.sim.push_fill(SOL.name, trade(1500))


async def unwind(setup: Setup) -> None:
    await setup.sim.push_fill(SOL.name, trade(-1500))


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


async def stored_alerts(base: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
        answer = await client.get(f"{base}/api/v2/alerts")
    answer.raise_for_status()
    alerts: list[dict[str, Any]] = answer.json()
    return alerts


async def wait_until_stored(base: str, condition: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    """A bounded poll of Alertmanager's API: a separate process has no event to await."""
    async with asyncio.timeout(10):
        while True:
            alerts = await stored_alerts(base)
            if condition(alerts):
                return alerts
            await asyncio.sleep(0.05)


def is_active(alerts: list[dict[str, Any]]) -> bool:
    return len(alerts) == 1 and alerts[0]["status"]["state"] == "active"


async def test_firing_alert_reaches_every_replica_and_its_webhook_with_riskmon_labels(setup: Setup) -> None:
    pushed_after = time.time()
    await warn(setup)
    by_replica: dict[str, dict[str, Any]] = {}
    while len(by_replica) < len(REPLICAS):
        path, payload = await setup.sink.next("firing")
        by_replica[path.rsplit("/", 1)[1]] = payload

    [transition] = setup.monitor.alerting.notifier.firing()
    for name, payload in by_replica.items():
        assert payload["version"] == "4"
        assert payload["receiver"] == name
        assert payload["externalURL"] == setup.alertmanagers[name]
        # No venue label on a desk's exposure alert: Alertmanager groups by what is there.
        assert payload["groupKey"] == '{}:{alertname="ExposureLimitBreach", desk="sol-desk"}'
        assert payload["groupLabels"] == {"alertname": "ExposureLimitBreach", "desk": "sol-desk"}
        assert payload["commonLabels"] == WARNING_LABELS
        [alert] = payload["alerts"]
        assert alert["status"] == "firing"
        assert alert["labels"] == WARNING_LABELS
        assert alert["annotations"] == transition.annotations
        assert set(alert["annotations"]) == {"summary", "description", "value", "limit"}
        assert alert["annotations"]["value"] == "2250.00"
        assert alert["generatorURL"] == EXTERNAL_URL
        # riskmon's startsAt, to the microsecond.
        assert parse_time(alert["startsAt"]) == pytest.approx(transition.starts_at, abs=1e-6)
        assert pushed_after <= transition.starts_at <= time.time()
        # Alertmanager keeps riskmon's endsAt to itself (see the API test) and sends a firing alert's as zero.
        assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert by_replica["am-a"]["alerts"][0]["fingerprint"] == by_replica["am-b"]["alerts"][0]["fingerprint"]


async def test_resolution_reaches_the_webhook_as_resolved(setup: Setup) -> None:
    await warn(setup)
    _, firing = await setup.sink.next("firing")
    [fired] = firing["alerts"]

    resolved_after = time.time()
    await unwind(setup)
    path, resolved = await setup.sink.next("resolved", timeout=5.0)
    took = time.time() - resolved_after
    [alert] = resolved["alerts"]
    assert alert["status"] == "resolved"
    assert alert["labels"] == WARNING_LABELS
    assert alert["startsAt"] == fired["startsAt"]
    # The endsAt riskmon pushed when the desk unwound; a lapsed endsAt would be ~4 x RESEND after a push.
    assert resolved_after <= parse_time(alert["endsAt"]) < resolved_after + 0.5
    assert took < 2.0, f"resolved after {took:.2f}s"  # Alertmanager's group_interval (1s) and some slack
    # Once resolved, Alertmanager no longer lists the alert.
    base = setup.alertmanagers[path.rsplit("/", 1)[1]]
    assert await wait_until_stored(base, lambda alerts: alerts == []) == []


async def test_api_shows_the_alert_active_and_resends_keep_it_past_its_first_ends_at(setup: Setup) -> None:
    await warn(setup)
    for name, base in setup.alertmanagers.items():
        [alert] = await wait_until_stored(base, is_active)
        assert alert["labels"] == WARNING_LABELS
        assert alert["generatorURL"] == EXTERNAL_URL
        assert alert["receivers"] == [{"name": name}]
        # Stored as pushed: endsAt is riskmon's push time + 4 x resend_interval (updatedAt: when it arrived).
        ends_in = parse_time(alert["endsAt"]) - parse_time(alert["updatedAt"])
        assert ends_in == pytest.approx(4 * RESEND, abs=0.2)

    base = setup.alertmanagers["am-a"]
    [first] = await stored_alerts(base)
    first_ends_at = parse_time(first["endsAt"])
    # Poll past the first endsAt: without riskmon's re-sends Alertmanager would resolve it then.
    async with asyncio.timeout(4 * RESEND + 5):
        while time.time() < first_ends_at + RESEND:
            alerts = await stored_alerts(base)
            assert is_active(alerts), alerts
            await asyncio.sleep(0.05)
    [later] = await stored_alerts(base)
    assert later["status"]["state"] == "active"
    assert later["startsAt"] == first["startsAt"]
    assert parse_time(later["endsAt"]) > first_ends_at
    # Re-sends refresh the alert without notifying again: one firing webhook per replica.
    assert setup.sink.received.qsize() == len(REPLICAS)
