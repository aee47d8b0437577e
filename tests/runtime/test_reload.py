"""Hot reload of a running monitor: POST /-/reload and SIGHUP apply a good config, keep the
running one when the new one is broken, and say what waits for a restart."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from riskmon.config import load_config
from riskmon.runtime.monitor import Monitor
from tests.runtime.process_support import free_port, start_riskmon, wait_for_line

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

TOKEN = "reload-token-for-tests"
BASE = """
state:
  path: {state}
server:
  token: {token}
venues:
  mango:
    kind: mango_v3_fills
    urls: ["ws://127.0.0.1:{dead_port}"]
    reconnect: {{initial: 50ms, max: 200ms}}
desks:
  sol-desk:
    accounts: {{mango: [DMjLV5AdbdnAxEE9CCJYdzGhEDVAaKPJDRTZQ7kgMZwm]}}
    limits:
      max_gross_notional_usd: {gross}
"""
RULE = """
rules:
  - kind: rate
    name: ReconnectStorm
    event: reconnect
    window: 5m
    above: 3
"""


@pytest_asyncio.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[Monitor, httpx.AsyncClient, Path]]:
    path = tmp_path / "monitor.yaml"
    fields = {"state": tmp_path / "state.db", "token": TOKEN, "dead_port": free_port()}
    path.write_text(BASE.format(gross=100000, **fields))
    monitor = Monitor(load_config(path), http_port=0, config_path=path)
    stop = asyncio.Event()
    runner = asyncio.create_task(monitor.run(stop))
    try:
        await monitor.started.wait()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{monitor.http_port}") as client:
            yield monitor, client, path
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


async def test_reload_over_http(running: tuple[Monitor, httpx.AsyncClient, Path], tmp_path: Path) -> None:
    monitor, client, path = running
    auth = {"Authorization": f"Bearer {TOKEN}"}
    fields = {"state": tmp_path / "state.db", "token": TOKEN, "dead_port": free_port()}

    assert (await client.post("/-/reload")).status_code == 401
    assert (await client.get("/-/reload", headers=auth)).status_code == 405

    # A broken file is rejected with its errors, file and line; the running config stays.
    path.write_text(BASE.format(gross=-5, **fields).replace("dead_port", "x") + "rules: [{kind: nope}]\n")
    rejected = await client.post("/-/reload", headers=auth)
    assert rejected.status_code == 400
    body = rejected.json()
    assert body["status"] == "rejected"
    assert any("rules" in e and str(path) in e for e in body["errors"]), body
    assert monitor.config.desks["sol-desk"].limits.max_gross_notional_usd == 100000

    # A good one applies: a new limit and a new rule; the changed venue URL waits for a restart.
    path.write_text(BASE.format(gross=50000, **fields) + RULE)
    reloaded = await client.post("/-/reload", headers=auth)
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json() == {"status": "reloaded", "errors": [], "restart_required": ["venues"]}
    assert monitor.config.desks["sol-desk"].limits.max_gross_notional_usd == 50000
    assert [r.name for r in monitor.config.rules] == ["ReconnectStorm"]
    assert monitor.engine.rule_hooks.rules.listens("reconnect")
    # The running venue is the one the session was built from, not the file's new URL.
    assert monitor.config.venues["mango"] != load_config(path).venues["mango"]


async def test_sighup_reloads_a_running_process_and_survives_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "monitor.yaml"
    fields = {"state": tmp_path / "state.db", "token": TOKEN, "dead_port": free_port()}
    path.write_text(BASE.format(gross=100000, **fields))
    process = await start_riskmon(path)
    try:
        await wait_for_line(process, "serving /metrics")
        path.write_text(BASE.format(gross=50000, **fields) + RULE)
        process.send_signal(signal.SIGHUP)
        await wait_for_line(process, "reloaded")
        path.write_text("venues: [\n")
        process.send_signal(signal.SIGHUP)
        await wait_for_line(process, "reload rejected")
        assert process.returncode is None
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()
    assert process.returncode == 0
