"""A restart resumes from the state file: against the real Mango simulator, fills streamed before
a stop (or a SIGKILL of a real `riskmon run` once it wrote them) are restored, the checkpoint the
venue replays on reconnect counts none of them twice, and exposure equals an uninterrupted run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from riskmon.config import parse_config
from riskmon.config.schema import MonitorConfig
from riskmon.runtime.monitor import Monitor
from riskmon.venues.mango_v3.simulator import MangoV3FillsSimulator
from tests.runtime.mango_desk import POSITION, SOL, desk_config, running, trade, until
from tests.runtime.process_support import start_riskmon

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def config_for(sim: MangoV3FillsSimulator, state: Path, *limits: str) -> tuple[str, MonitorConfig]:
    # An ephemeral HTTP port: the SIGKILL test runs the text as a real `riskmon run`.
    text = desk_config(state, sim.url, server=("port: 0",), limits=limits)
    return text, parse_config(text, "monitor.yaml", {})


@contextlib.asynccontextmanager
async def started(config: MonitorConfig) -> AsyncIterator[Monitor]:
    async with running(Monitor(config, http=False)) as monitor:
        await asyncio.wait_for(monitor.started.wait(), timeout=5)
        yield monitor


async def test_stop_and_restart_counts_nothing_twice(sim: MangoV3FillsSimulator, tmp_path: Path) -> None:
    _, config = config_for(sim, tmp_path / "state.db")
    async with started(config) as first:
        stats = first.engine.stats["mango"]
        await sim.wait_for_connections(1)
        for lots in (500, 300, -200):  # 5 + 3 - 2 SOL
            await sim.push_fill(SOL.name, trade(lots))
        await until(first, lambda: stats.fills == 3)
        await first.persistence.drain()
        assert first.persistence.fill_steps_written == 3
        before = list(first.engine.book.rows())
    assert [(r.key, r.position) for r in before] == [(POSITION, Decimal(6))]

    await sim.rollback(SOL.name, 1)  # a fork while riskmon is down drops the sell of 2 SOL
    await sim.push_fill(SOL.name, trade(100))  # and a fill arrives meanwhile: +1 SOL
    async with started(config) as second:
        stats = second.engine.stats["mango"]
        assert second.persistence.restored
        # The venue connects while the state file loads, but its checkpoint is applied only after
        # the restore (tests/runtime/test_restart_overlap.py holds the restore to show it).
        await until(second, lambda: stats.fills + stats.duplicates + stats.voided >= 4)
        await second.persistence.drain()
        # The checkpoint: two fills already held, one voided by the fork, one new.
        assert (stats.duplicates, stats.voided, stats.fills) == (2, 1, 1)
        assert second.engine.book.position(POSITION) == Decimal(9)  # 5 + 3 + 1, as an uninterrupted run ends

    async with started(config) as third:  # and what the second run learned was written too
        assert third.engine.book.position(POSITION) == Decimal(9)
        assert len(third.engine.ledger) == 3  # the voided fill is gone for good


async def test_a_failed_write_is_retried_with_the_next_batch(
    sim: MangoV3FillsSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from riskmon.store.state import StateStore, StoreError

    _, config = config_for(sim, tmp_path / "state.db")
    real_write = StateStore.write
    failures = iter([StoreError("state file x: disk I/O error")])

    def flaky_write(self: StateStore, *args: object) -> None:
        error = next(failures, None)
        if error is not None:
            raise error
        real_write(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(StateStore, "write", flaky_write)
    async with started(config) as monitor:
        stats = monitor.engine.stats["mango"]
        await sim.wait_for_connections(1)
        with caplog.at_level(logging.ERROR, logger="riskmon.runtime.persistence"):
            await sim.push_fill(SOL.name, trade(500))
            await until(monitor, lambda: stats.fills == 1)
            await monitor.persistence.drain()
        assert monitor.persistence.write_failures == 1
        retrying = f"state file {config.state.path}: a write failed, retrying with the next batch"
        assert [r.getMessage() for r in caplog.records] == [f"{retrying}: state file x: disk I/O error"]
        await sim.push_fill(SOL.name, trade(100))
        await until(monitor, lambda: stats.fills == 2)
        await monitor.persistence.drain()
        assert monitor.persistence.fill_steps_written == 2
    async with started(config) as again:
        assert again.engine.book.position(POSITION) == Decimal(6)


async def test_sigkill_after_the_write_restores_every_written_fill(sim: MangoV3FillsSimulator, tmp_path: Path) -> None:
    text, config = config_for(sim, tmp_path / "state.db")
    path = tmp_path / "monitor.yaml"
    path.write_text(text)
    process = await start_riskmon(path, log_level="DEBUG")
    assert process.stderr is not None
    written = 0
    try:
        await sim.wait_for_connections(1, timeout=20)
        for _ in range(4):
            await sim.push_fill(SOL.name, trade(250))  # 2.5 SOL each
        async with asyncio.timeout(20):
            while written < 4:
                line = (await process.stderr.readline()).decode()
                assert line, "riskmon exited before writing the fills"
                if match := re.search(r"state: wrote (\d+) fill step", line):
                    written += int(match.group(1))
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    assert process.returncode == -signal.SIGKILL

    async with started(config) as monitor:
        stats = monitor.engine.stats["mango"]
        assert monitor.engine.book.position(POSITION) == Decimal(10)  # restored before the venue connects
        await until(monitor, lambda: stats.duplicates == 4)  # the checkpoint replays all four
        assert stats.fills == 0
        assert monitor.engine.book.position(POSITION) == Decimal(10)


async def test_a_restart_judges_the_restored_books_against_the_limits_at_once(
    sim: MangoV3FillsSimulator, tmp_path: Path
) -> None:
    _, config = config_for(sim, tmp_path / "state.db")
    async with started(config) as first:
        stats = first.engine.stats["mango"]
        await sim.wait_for_connections(1)
        await sim.push_fill(SOL.name, trade(600))  # 6 SOL at $150
        await until(first, lambda: stats.fills == 1)
        await first.persistence.drain()

    # Restarted with a gross limit the restored $900 already breaches: no fill or price has to
    # move first for the breach to be seen.
    _, limited = config_for(sim, tmp_path / "state.db", "max_gross_notional_usd: 500")
    await sim.stop()
    async with started(limited) as second:
        firing = {(a.alertname, a.severity, a.labels.get("limit")) for a in second.engine.alerts.active()}
        assert firing == {
            ("ExposureLimitBreach", "warning", "gross_notional"),
            ("ExposureLimitBreach", "critical", "gross_notional"),
        }
