"""SIGKILL a real `riskmon run` exactly between the outbox commit of a firing notification and the
state file write of the alert states it reflects, restart it, and the receiver hears of one episode:
the firing once (by idempotency key) and later its resolution, with the same startsAt.

The first run is riskmon's own CLI with one fault armed from here: the state store's write kills
the process when it is about to save the firing alert, which the runtime does only once the outbox
has committed the notification. The second run is a plain `riskmon run` on the same files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from riskmon.asgi_server import AsgiServer, Receive, Scope, Send, read_body, respond
from riskmon.notify.webhook import IDEMPOTENCY_HEADER
from riskmon.venues.mango_v3.simulator import MangoV3FillsSimulator
from tests.runtime.mango_desk import SOL, SOL_LIMIT, desk_config, trade
from tests.runtime.process_support import WAIT, free_port, hook_alerting, poll, ready, sol_at, start_riskmon, stop

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

BREACH = "ExposureLimitBreach"

# riskmon's CLI with one fault: die at the state write that would save the firing breach. The
# runtime writes alert states only after the outbox committed their notifications.
KILLED_AT_ALERT_STATE_WRITE = """
import os, signal, sys
from riskmon.cli import main
from riskmon.store.state import StateStore

write = StateStore.write

def write_or_die(self, changes, deadlines=None, **kwargs):
    if any(a is not None and a.alertname == "ExposureLimitBreach" and a.state == "firing"
           for a in changes.alerts.alerts.values()):
        os.kill(os.getpid(), signal.SIGKILL)
    return write(self, changes, deadlines, **kwargs)

StateStore.write = write_or_die
sys.exit(main(sys.argv[1:]))
"""


@dataclass(frozen=True)
class Received:
    key: str
    status: str
    group_key: str
    alertname: str
    starts_at: str


@dataclass
class Receiver:
    requests: list[Received] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = json.loads(await read_body(receive) or b"{}")
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        [alert] = body["alerts"]
        self.requests.append(
            Received(
                headers[IDEMPOTENCY_HEADER.lower()],
                alert["status"],
                body["groupKey"],
                alert["labels"]["alertname"],
                alert["startsAt"],
            )
        )
        self.changed.set()
        await respond(send, 200, b"ok", "text/plain")

    def of(self, status: str) -> list[Received]:
        return [r for r in self.requests if (r.alertname, r.status) == (BREACH, status)]

    async def wait_for(self, status: str) -> None:
        async with asyncio.timeout(WAIT):
            while not self.of(status):
                self.changed.clear()
                await self.changed.wait()


async def start(config: Path, log: Path, *, fault: bool) -> asyncio.subprocess.Process:
    launcher = ["-c", KILLED_AT_ALERT_STATE_WRITE] if fault else ["-m", "riskmon"]
    with log.open("ab") as stderr:
        return await start_riskmon(config, stderr=stderr, launcher=launcher)


def rows(db_path: Path, sql: str) -> list[Any]:
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        return db.execute(sql).fetchall()


async def test_sigkill_between_outbox_commit_and_state_write_keeps_one_episode(tmp_path: Path) -> None:
    mango = MangoV3FillsSimulator([SOL])
    receiver = Receiver()
    hook = AsgiServer(receiver, "127.0.0.1", 0)
    state, port = tmp_path / "state.db", free_port()
    outbox = tmp_path / "state.outbox.db"
    log = tmp_path / "riskmon.log"
    config = tmp_path / "monitor.yaml"
    async with contextlib.AsyncExitStack() as stack:
        for server in (mango, hook):
            await server.start()
            stack.push_async_callback(server.stop)
        breaching = [SOL_LIMIT, "warn_at: 1", "clear_at: 0.9"]
        config.write_text(
            desk_config(state, mango.url, server=[f"port: {port}"], limits=breaching, more=hook_alerting(hook))
        )
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2.0)
        stack.push_async_callback(client.aclose)

        first = await start(config, log, fault=True)
        await poll(first, lambda: ready(client))
        await mango.push_fill(SOL.name, trade(2_000))  # 20 SOL at $150: $3,000 of a $2,500 limit
        async with asyncio.timeout(WAIT):
            await first.wait()
        assert first.returncode == -signal.SIGKILL, log.read_text()

        # Killed at that very point: the outbox holds the firing and its alert state, the state
        # file the books but not the alert.
        queued = rows(outbox, "SELECT idempotency_key, payload FROM notify_outbox")
        assert [json.loads(payload)["alerts"][0]["status"] for _, payload in queued] == ["firing"]
        [(fired_key, _)] = queued
        assert rows(state, "SELECT COUNT(*) FROM alert_states") == [(0,)]
        [(quantity,)] = rows(state, "SELECT quantity FROM positions WHERE market = 'SOL-PERP'")
        assert Decimal(quantity) == 20
        assert len(rows(outbox, "SELECT fingerprint FROM outbox_alert_states WHERE body IS NOT NULL")) == 1

        second = await start(config, log, fault=False)
        stack.push_async_callback(stop, second)
        await poll(second, lambda: ready(client))
        await receiver.wait_for("firing")  # the committed notification, sent by either run
        await mango.push_fill(SOL.name, trade(-800))  # back to 12 SOL, $1,800: cleared
        await poll(second, lambda: sol_at(client, Decimal(12)))
        await receiver.wait_for("resolved")
        await stop(second)
        assert second.returncode == 0, log.read_text()

    firing, resolved = receiver.of("firing"), receiver.of("resolved")
    assert {r.key for r in firing} == {fired_key}, "a second firing of the breach went out under a new key"
    assert len({r.key for r in resolved}) == 1
    assert {(r.group_key, r.starts_at) for r in resolved} == {(r.group_key, r.starts_at) for r in firing}
    # The outbox agrees: nothing else was ever decided for the breach.
    decided = [
        json.loads(p)["alerts"][0] for _, p in rows(outbox, "SELECT idempotency_key, payload FROM notify_outbox")
    ]
    assert sorted((a["status"], a["startsAt"]) for a in decided if a["labels"]["alertname"] == BREACH) == [
        ("firing", firing[0].starts_at),
        ("resolved", firing[0].starts_at),
    ]
