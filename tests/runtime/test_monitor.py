"""The live runtime against the real simulator: what it records replays to the same exposure."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.config import parse_config
from riskmon.replay import replay
from riskmon.runtime.monitor import Monitor
from riskmon.venues.mango_v3.simulator import MangoV3FillsSimulator
from tests.runtime.mango_desk import SOL, SOL_LIMIT, desk_config, running, trade, until

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


class Collect:
    def __init__(self) -> None:
        self.transitions: list[AlertTransition] = []

    def deliver(self, transition: AlertTransition) -> None:
        self.transitions.append(transition)


async def test_live_run_records_a_capture_that_replays_to_the_same_state(tmp_path: Path) -> None:
    sim = MangoV3FillsSimulator([SOL])
    await sim.start()
    await sim.push_fill(SOL.name, trade(500))  # in the first checkpoint
    config = parse_config(desk_config(tmp_path / "state.db", sim.url, limits=[SOL_LIMIT]), "t.yaml", {})
    capture = tmp_path / "live.jsonl"
    received = Collect()
    monitor = Monitor(config, record=capture, listeners=[received], http=False)
    stats = monitor.engine.stats["mango"]
    try:
        async with running(monitor):
            await sim.wait_for_connections(1)
            await until(monitor, lambda: stats.fills == 1)
            for _ in range(3):
                await sim.push_fill(SOL.name, trade(500))  # 5 SOL at $150 each
            await until(monitor, lambda: stats.fills == 4)  # 20 SOL = $3000 > $2500
            await sim.rollback(SOL.name, 1)
            await until(monitor, lambda: stats.revoked == 1)
            await sim.send_malformed("short_event")
            await until(monitor, lambda: stats.malformed == 1)
            await sim.disconnect_all()
            await sim.push_fill(SOL.name, trade(100))  # while the monitor is away
            await until(monitor, lambda: stats.reconnects == 1 and stats.fills == 5)
    finally:
        await sim.stop()

    live = [(r.key, r.position) for r in monitor.engine.book.rows()]
    assert [p for _, p in live] == [Decimal(16)]  # 20 - 5 + 1 SOL
    # 15 SOL after the revoke is $2250: under the critical clear level ($2375), above the warning's.
    assert [(t.alertname, t.severity, t.status) for t in received.transitions][:4] == [
        ("ExposureLimitBreach", "warning", "firing"),
        ("ExposureLimitBreach", "critical", "firing"),
        ("ExposureLimitBreach", "critical", "resolved"),
        ("FillRevoked", "warning", "firing"),
    ]

    replayed = replay(capture, config)
    assert [(r.key, r.position) for r in replayed.engine.book.rows()] == live
    assert [(t.alertname, t.severity, t.status) for t in replayed.transitions] == [
        (t.alertname, t.severity, t.status) for t in received.transitions
    ]
    assert replayed.stats()["malformed"] == 1
