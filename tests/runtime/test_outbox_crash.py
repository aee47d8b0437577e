"""A notification written to the outbox survives a SIGKILL of the process before it was sent."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import signal
import sqlite3
from pathlib import Path

import pytest

from riskmon.asgi_server import AsgiServer
from riskmon.notify.outbox_states import outbox_lock_path
from tests.runtime.process_support import free_port, start_riskmon, wait_for_line
from tests.runtime.test_alert_delivery import RecordingReceiver

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

CONFIG = """
state:
  path: {state}
server:
  port: 0
venues:
  mango:
    kind: mango_v3_fills
    urls: ["ws://127.0.0.1:{dead_port}"]
    reconnect: {{initial: 50ms, max: 200ms}}
    feed_down_grace: 100ms
desks:
  sol-desk:
    accounts: {{mango: [DMjLV5AdbdnAxEE9CCJYdzGhEDVAaKPJDRTZQ7kgMZwm]}}
receivers:
  hook: {{kind: webhook, url: "http://127.0.0.1:{hook_port}/alerts"}}
delivery:
  retry_initial: 50ms
  retry_max: 100ms
"""


def hold_outbox_lock(outbox: Path) -> None:
    """Blocks until no delivery process holds the outbox's lock, then releases it again."""
    with open(outbox_lock_path(outbox), "ab") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)


async def test_sigkill_after_the_write_delivers_after_restart(tmp_path: Path) -> None:
    hook_port, state = free_port(), tmp_path / "state.db"
    outbox = tmp_path / "state.outbox.db"
    config = tmp_path / "monitor.yaml"
    config.write_text(CONFIG.format(state=state, dead_port=free_port(), hook_port=hook_port))

    # Nothing listens on the hook's port yet: the FeedDown notification is written and cannot be sent.
    first = await start_riskmon(config)
    try:
        await wait_for_line(first, "queued for hook")
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    assert first.returncode == -signal.SIGKILL
    # Its delivery process sees the socket close and lets go of the outbox: no orphan sends on.
    await asyncio.wait_for(asyncio.to_thread(hold_outbox_lock, outbox), timeout=10)
    with contextlib.closing(sqlite3.connect(outbox)) as db:
        pending = db.execute("SELECT idempotency_key, payload FROM notify_outbox WHERE status = 'pending'").fetchall()
    assert pending, "the notification was not committed before the kill"
    killed_keys = {key for key, _ in pending}

    receiver = RecordingReceiver()
    server = AsgiServer(receiver, "127.0.0.1", hook_port)
    await server.start()
    second = await start_riskmon(config)
    try:
        await receiver.wait_for(
            lambda: killed_keys <= {h["idempotency-key"] for h, _ in receiver.accepted},
        )
    finally:
        second.send_signal(signal.SIGTERM)
        await second.wait()
        await server.stop()
    # The very bytes committed before the kill are what the receiver got, once per key after dedupe.
    by_key = {h["idempotency-key"]: body for h, body in receiver.accepted}
    assert {key: by_key[key] for key in killed_keys} == {key: bytes(payload) for key, payload in pending}
    delivered = [json.loads(by_key[key]) for key in killed_keys]
    assert [(d["status"], d["alerts"][0]["labels"]["alertname"]) for d in delivered] == [("firing", "FeedDown")]
    assert second.returncode == 0
