"""`Delivery` as the delivery process runs it (the outbox inline on its loop): a batch is committed
in the `submit` call itself and sent from there, still only after its commit, once, in group order;
retries wait for their due time; an owned HTTP client shares the process's TLS context."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from riskmon.asgi_server import AsgiServer
from riskmon.clock import SystemClock
from riskmon.config import MonitorConfig, parse_config
from riskmon.runtime.delivery import Delivery
from riskmon.tls import default_ssl_context
from tests.runtime.test_alert_delivery import HoldingReceiver, RecordingReceiver, outgoing

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def config_for(port: int) -> MonitorConfig:
    return parse_config(
        f"""
venues: {{mango: {{kind: mango_v3_fills, urls: ["ws://127.0.0.1:9"]}}}}
desks: {{sol-desk: {{accounts: {{mango: [DMjLV5AdbdnAxEE9CCJYdzGhEDVAaKPJDRTZQ7kgMZwm]}}}}}}
receivers: {{hook: {{kind: webhook, url: "http://127.0.0.1:{port}/alerts"}}}}
delivery: {{retry_initial: 50ms, retry_max: 100ms}}
""",
        "t.yaml",
        {},
    )


@contextlib.asynccontextmanager
async def inline_delivery(app: Any, outbox: Path) -> AsyncIterator[Delivery]:
    server = AsgiServer(app)
    await server.start()
    assert server.port is not None
    config = config_for(server.port)
    delivery = Delivery(outbox, config.receivers, config.delivery, SystemClock(), outbox_on_thread=False)
    await delivery.start()
    try:
        yield delivery
    finally:
        await delivery.stop()
        await server.stop()


async def sent(delivery: Delivery, count: int) -> None:
    async with asyncio.timeout(5):
        while delivery.outcomes[("hook", "sent")] < count:
            delivery.progress.clear()
            await delivery.progress.wait()


def statuses(outbox: Path) -> dict[str, str]:
    with contextlib.closing(sqlite3.connect(outbox)) as db:
        return dict(db.execute("SELECT idempotency_key, status FROM notify_outbox").fetchall())


async def test_a_batch_is_committed_within_submit_and_sent_once_after_it_in_group_order(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.db"
    receiver = HoldingReceiver(outbox)
    commits: list[dict[str, str]] = []
    async with inline_delivery(receiver, outbox) as delivery:
        delivery.on_committed = lambda: commits.append(statuses(outbox))
        delivery.submit([outgoing("A", "A1")])
        # Committed, and the commit reported, before submit returned: no loop turn in between.
        assert commits == [{"A1": "pending"}]
        await receiver.wait_for(1)
        delivery.submit([outgoing("A", "A2"), outgoing("B", "B1")])
        assert len(commits) == 2
        await receiver.wait_for(2)  # B1 goes while A's head is held; A2 waits behind it
        assert [key for key, _, _ in receiver.arrived] == ["A1", "B1"]
        receiver.hold_first.set()
        await sent(delivery, 3)
        assert delivery.outcomes[("hook", "enqueued")] == 3
        assert delivery.latency["hook"].count == 3
    assert [key for key, _, _ in receiver.arrived] == ["A1", "B1", "A2"]
    assert [status for _, status, _ in receiver.arrived] == ["pending"] * 3  # each committed before its POST
    assert statuses(outbox) == {"A1": "sent", "A2": "sent", "B1": "sent"}


async def test_a_repeated_key_is_not_sent_again_and_a_refused_send_is_retried_when_due(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.db"
    receiver = RecordingReceiver(failures=[(503, {})])
    async with inline_delivery(receiver, outbox) as delivery:
        loop = asyncio.get_running_loop()
        submitted = loop.time()
        delivery.submit([outgoing("A", "A1")])
        await sent(delivery, 1)
        retried_after = loop.time() - submitted
        delivery.submit([outgoing("A", "A1"), outgoing("B", "B1")])  # A1 again: already sent
        await sent(delivery, 2)
        assert delivery.outcomes[("hook", "retried")] == 1
    assert receiver.attempts == 3  # A1 refused, A1 accepted at its retry, B1
    assert [body["key"] for body in receiver.bodies()] == ["A1", "B1"]
    assert len(receiver.accepted) == 2
    assert retried_after >= 0.025  # the retry waited for its due time (50 ms, equal jitter)


async def test_an_owned_http_client_shares_the_process_tls_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default_ssl_context()  # built once per process
    loads: list[object] = []
    original = ssl.SSLContext.load_verify_locations

    def counted(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        loads.append(args)
        original(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)
    config = config_for(9)
    delivery = Delivery(tmp_path / "outbox.db", config.receivers, config.delivery, SystemClock())
    await delivery.stop()
    assert loads == []
    own = httpx.AsyncClient()  # what a client of its own costs: another CA bundle load
    await own.aclose()
    assert loads
