"""A restart's slow parts overlap: the delivery process and the venues' connects run while the
state file loads, yet nothing a venue sends is applied before the restore (a replayed fill is still
a duplicate), and riskmon is not ready until alert delivery is up, saying why in /readyz."""

from __future__ import annotations

import asyncio
import fcntl
import gc
import io
from decimal import Decimal
from multiprocessing.context import ForkServerProcess
from pathlib import Path

import httpx
import pytest

from riskmon.config import parse_config
from riskmon.config.schema import MonitorConfig
from riskmon.events import FillSnapshot
from riskmon.runtime.delivery_process import DeliveryProcess, DeliveryState
from riskmon.runtime.monitor import Monitor
from riskmon.runtime.persistence import StatePersistence
from riskmon.venues.base import Inbound, InboundQueue
from riskmon.venues.mango_v3.simulator import MangoV3FillsSimulator
from riskmon.watchdogs.journal import PersistedDeadline
from tests.runtime.mango_desk import POSITION, SOL, desk_config, running, trade, until

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def config_for(sim: MangoV3FillsSimulator, state: Path) -> MonitorConfig:
    return parse_config(desk_config(state, sim.url), "monitor.yaml", {})


def gate_restore(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Hold every state-file restore until the returned event is set."""
    gate = asyncio.Event()
    real_open = StatePersistence.open

    async def held_open(self: StatePersistence) -> list[PersistedDeadline]:
        await gate.wait()
        return await real_open(self)

    monkeypatch.setattr(StatePersistence, "open", held_open)
    return gate


def watch_inbound(monkeypatch: pytest.MonkeyPatch) -> tuple[list[Inbound], asyncio.Event]:
    """Every item queued for the engine, and an event set at each batch."""
    queued: list[Inbound] = []
    changed = asyncio.Event()
    real_push = InboundQueue._push

    def push(self: InboundQueue, batch: list[Inbound]) -> None:
        queued.extend(batch)
        changed.set()
        real_push(self, batch)

    monkeypatch.setattr(InboundQueue, "_push", push)
    return queued, changed


def watch_forks(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Set once a delivery process has been forked (its start runs on a worker thread)."""
    forked = asyncio.Event()
    loop = asyncio.get_running_loop()
    real_start = ForkServerProcess.start

    def start(self: ForkServerProcess) -> None:
        real_start(self)
        loop.call_soon_threadsafe(forked.set)

    monkeypatch.setattr(ForkServerProcess, "start", start)
    return forked


async def test_venues_connect_and_delivery_starts_while_the_state_file_loads_and_nothing_is_applied_early(
    sim: MangoV3FillsSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_for(sim, tmp_path / "state.db")
    frozen: list[bool] = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))  # the test process's own heap stays as it is
    async with running(Monitor(config, http=False, console=io.StringIO())) as first:
        await asyncio.wait_for(first.started.wait(), timeout=5)
        await sim.wait_for_connections(1)
        for lots in (500, 300):
            await sim.push_fill(SOL.name, trade(lots))
        await until(first, lambda: first.engine.stats["mango"].fills == 2)
        await first.persistence.drain()
    assert frozen == [True]  # a new state file is a restore too (of nothing)
    await sim.push_fill(SOL.name, trade(100))  # while riskmon is down: the checkpoint's only new fill

    gate = gate_restore(monkeypatch)
    queued, changed = watch_inbound(monkeypatch)
    forked = watch_forks(monkeypatch)
    second = Monitor(config, http=False, console=io.StringIO())
    stats = second.engine.stats["mango"]
    async with running(second):
        # Both start while the restore is held: neither waits for the state file.
        await asyncio.wait_for(forked.wait(), timeout=10)
        delivery = second.alerting.delivery
        assert delivery.pid is not None
        # It takes the outbox only once the restore has read it (under the same lock). Read into a name:
        # asserting on `delivery.state` itself would pin its type to STARTING for the rest of the test.
        state_while_restoring = delivery.state
        assert state_while_restoring is DeliveryState.STARTING
        await sim.wait_for_connections(1)
        async with asyncio.timeout(5):
            while not any(isinstance(e, FillSnapshot) and len(e.fills) == 3 for item in queued for e in item.events):
                changed.clear()
                await changed.wait()
            # The checkpoint (three fills) waits in the inbound queue: nothing is applied, nothing restored yet.
        assert not second.started.is_set()
        assert not second.persistence.restored
        assert (second.items_applied, stats.fills, stats.duplicates) == (0, 0, 0)
        assert not second.readiness().ready

        gate.set()
        await asyncio.wait_for(second.started.wait(), timeout=5)
        await asyncio.wait_for(delivery.started(), timeout=5)
        assert delivery.state is DeliveryState.UP
        await until(second, lambda: stats.fills + stats.duplicates >= 3)
        # Applied after the restore: the two fills the state file held are duplicates, not new.
        assert (stats.duplicates, stats.fills) == (2, 1)
        assert second.engine.book.position(POSITION) == Decimal(9)  # 5 + 3 + 1 SOL, counted once each
        # The restored books are kept out of the cyclic collector's full collections.
        assert frozen == [True, True]
        await until(second, lambda: second.readiness().ready)


async def test_readyz_waits_for_alert_delivery_and_says_why(
    sim: MangoV3FillsSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = asyncio.Event()
    real_spawn = DeliveryProcess._spawn

    async def held_spawn(self: DeliveryProcess) -> None:
        await gate.wait()
        await real_spawn(self)

    monkeypatch.setattr(DeliveryProcess, "_spawn", held_spawn)
    monitor = Monitor(config_for(sim, tmp_path / "state.db"), http_port=0, console=io.StringIO())
    feeds = monitor.engine.watchdogs.feeds
    async with running(monitor):
        await asyncio.wait_for(monitor.started.wait(), timeout=5)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{monitor.http_port}") as client:
            await until(monitor, lambda: feeds.state("mango").value == "up")
            response = await client.get("/readyz")
            assert response.status_code == 503
            body = response.json()
            assert body["venues"]["mango"] == {"ready": True, "kind": "mango_v3_fills", "state": "up"}
            assert body["delivery"] == {
                "ready": False,
                "state": "starting",
                "reason": "alert delivery is starting: the delivery process has not opened the outbox yet",
            }
            metrics = (await client.get("/metrics")).text
            assert "riskmon_ready 0.0" in metrics
            assert 'riskmon_venue_ready{venue="mango"} 1.0' in metrics

            gate.set()
            await asyncio.wait_for(monitor.alerting.delivery.started(), timeout=10)
            response = await client.get("/readyz")
            assert response.status_code == 200
            assert response.json()["delivery"] == {"ready": True, "state": "up"}
            assert "riskmon_ready 1.0" in (await client.get("/metrics")).text


async def test_a_monitor_stopped_during_the_restore_lets_its_waiting_delivery_process_go(
    sim: MangoV3FillsSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate_restore(monkeypatch)
    forked = watch_forks(monkeypatch)
    config = config_for(sim, tmp_path / "state.db")
    monitor = Monitor(config, http=False, console=io.StringIO())
    runner = asyncio.create_task(monitor.run(asyncio.Event()))
    await asyncio.wait_for(forked.wait(), timeout=10)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(runner, timeout=5)  # not the 10 s a child that never answers would cost
    assert monitor.alerting.delivery.state is DeliveryState.STARTING
    # It never took the outbox: the lock a delivery process holds for its life is free.
    assert await asyncio.to_thread(outbox_untouched, Path(config.state.outbox_path))


def outbox_untouched(outbox: Path) -> bool:
    with open(outbox.with_name(outbox.name + ".lock"), "ab") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError while a process holds it
    return not outbox.exists()
