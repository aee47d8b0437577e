"""The engine task's step histogram (riskmon_engine_event_processing_seconds): one sample per inbound
item under its own venue, complete whenever the task lets anything else run (a scrape), and
publishing an item's alerts is not part of any step. Also the capture the task writes: every
item of a read, in order."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

import riskmon.runtime.monitor as monitor_module
from riskmon.alerts.lifecycle import AlertTransition
from riskmon.capture import read_capture
from riskmon.clock import VirtualClock
from riskmon.config import parse_config
from riskmon.events import FeedUp, FillReceived, Liquidity, MarkKind, MarkPrice, Side
from riskmon.runtime.monitor import Monitor
from riskmon.venues.base import Inbound

pytestmark = pytest.mark.asyncio

T0 = 1_700_000_000.0
ACCOUNT = "DMjLV5AdbdnAxEE9CCJYdzGhEDVAaKPJDRTZQ7kgMZwm"
CONFIG = f"""
state: {{path: "STATE"}}
venues:
  mango: {{kind: mango_v3_fills, urls: ["ws://127.0.0.1:1"]}}
  px: {{kind: prophetx, rest_url: "http://127.0.0.1:1/partner", access_key: k, secret_key: s}}
desks:
  alpha:
    accounts: {{mango: [{ACCOUNT}]}}
    limits: {{max_net_notional_usd: [{{market: SOL-PERP, max_usd: 1000}}]}}
"""


class Listener:
    def __init__(self) -> None:
        self.seen: list[AlertTransition] = []

    def deliver(self, transition: AlertTransition) -> None:
        self.seen.append(transition)


def mark(price: str) -> MarkPrice:
    return MarkPrice("mango", "SOL-PERP", Decimal(price), T0, MarkKind.TRADE)


def buy(seq: int, quantity: str) -> FillReceived:
    return FillReceived(
        "mango", "alpha", ACCOUNT, "SOL-PERP", Side.BUY, Decimal(quantity), Decimal("150"), f"q:{seq}", "q", seq,
        Liquidity.TAKER, Decimal(0), T0,
    )  # fmt: skip


def a_read() -> list[Inbound]:
    """One read's worth of items: mango frames, a px report in between, a breach in the middle."""
    items = [Inbound("mango", T0 + i, f"frame-{i}", [mark(f"{100 + i}")]) for i in range(6)]
    items.insert(2, Inbound("px", T0 + 2, None, [FeedUp("px", "wss://px")]))
    items.insert(4, Inbound("mango", T0 + 3, "frame-fill", [buy(1, "10")]))  # 10 x ~103: a breach
    return items


async def run_read(monitor: Monitor, items: list[Inbound]) -> list[tuple[int, int]]:
    """Apply one read; returns (items applied, samples in the histograms) each time the task yielded."""
    yielded: list[tuple[int, int]] = []
    engine = asyncio.create_task(monitor._engine_loop())
    try:
        await monitor._inbound.put_batch(items)
        async with asyncio.timeout(5):
            while monitor.items_applied < len(items):
                monitor.applied.clear()
                await monitor.applied.wait()
                samples = sum(histogram.count for histogram in monitor.engine_seconds.values())
                yielded.append((monitor.items_applied, samples))
    finally:
        engine.cancel()
        await asyncio.gather(engine, return_exceptions=True)
    return yielded


def monitor_for(tmp_path: Path, listener: Listener, record: Path | None = None) -> Monitor:
    config = parse_config(CONFIG.replace("STATE", str(tmp_path / "state.db")), "t.yaml", {})
    monitor = Monitor(config, clock=VirtualClock(T0), http=False, listeners=[listener], record=record)
    monitor.engine.start(T0)
    return monitor


async def test_each_item_is_one_sample_of_its_own_venue(tmp_path: Path) -> None:
    listener = Listener()
    monitor = monitor_for(tmp_path, listener)
    await run_read(monitor, a_read())
    mango, px = monitor.engine_seconds["mango"], monitor.engine_seconds["px"]
    assert (mango.count, px.count) == (7, 1)
    assert (sum(mango.counts), sum(px.counts)) == (7, 1)
    assert 0 < mango.sum < 7 * 0.1
    registry = monitor.registry
    assert registry.get_sample_value("riskmon_engine_event_processing_seconds_count", {"venue": "mango"}) == 7
    assert registry.get_sample_value("riskmon_engine_event_processing_seconds_count", {"venue": "px"}) == 1
    # The breach was published as the engine made it.
    assert [(t.alertname, t.severity, t.status) for t in listener.seen] == [
        ("ExposureLimitBreach", "critical", "firing"),
        ("ExposureLimitBreach", "warning", "firing"),
    ]


async def test_every_step_is_counted_before_the_task_yields(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A zero-length slice: the task yields after every item, as a long batch does every 2 ms.
    monkeypatch.setattr(monitor_module, "_ENGINE_SLICE_S", 0.0)
    monitor = monitor_for(tmp_path, Listener())
    yielded = await run_read(monitor, a_read())
    assert [applied for applied, _ in yielded] == list(range(1, 9))
    assert all(applied == samples for applied, samples in yielded)


async def test_publishing_alerts_is_not_timed_as_a_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listener = Listener()
    monitor = monitor_for(tmp_path, listener)
    publish = monitor._publish

    def slow_publish(transitions: list[AlertTransition]) -> None:
        publish(transitions)
        if transitions:
            # Busy, not sleeping: the step clock is perf_counter, and no step may see this.
            until = monitor_module.perf_counter() + 0.05
            while monitor_module.perf_counter() < until:
                pass

    monkeypatch.setattr(monitor, "_publish", slow_publish)
    await run_read(monitor, a_read())
    assert len(listener.seen) == 2
    assert monitor.engine_seconds["mango"].sum < 0.04
    assert monitor.engine_seconds["mango"].count == 7


async def test_the_capture_holds_every_item_of_the_read_in_order(tmp_path: Path) -> None:
    capture = tmp_path / "capture.jsonl"
    monitor = monitor_for(tmp_path, Listener(), record=capture)
    await run_read(monitor, a_read())
    assert monitor._recorder is not None
    monitor._recorder.close()
    lines = [line for _, line in read_capture(capture)]
    assert [(line.venue, line.frame) for line in lines] == [
        ("mango", "frame-0"),
        ("mango", "frame-1"),
        ("px", None),
        ("mango", "frame-2"),
        ("mango", "frame-fill"),
        ("mango", "frame-3"),
        ("mango", "frame-4"),
        ("mango", "frame-5"),
    ]
    assert lines[2].report is not None
