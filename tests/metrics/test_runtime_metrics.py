"""The runtime's own families (engine step time, inbound queue, delivery latency), the wiring of
every collector into the Monitor's registry, and the full exposition checked by promtool."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry, generate_latest

from riskmon.asgi_server import AsgiServer, Receive, Scope, Send, read_body, respond
from riskmon.clock import VirtualClock
from riskmon.config import parse_config
from riskmon.events import (
    FeedDown,
    FeedUp,
    FillReceived,
    Heartbeat,
    Liquidity,
    MarkPrice,
    OrderIntake,
    OrderStatus,
    OrderUpdate,
    QuoteStatus,
    QuoteUpdate,
    SequenceGap,
    Side,
    StreamResynced,
)
from riskmon.metrics import DeliveryCollector
from riskmon.notify.notifier import Outgoing
from riskmon.runtime.delivery import Delivery
from riskmon.runtime.monitor import Monitor
from riskmon.venues.mango_v3.simulator import MangoV3FillsSimulator
from tests.runtime.mango_desk import DESK, SOL, trade, until

pytestmark = pytest.mark.asyncio

T0 = 1_700_000_000.0
PROMTOOL = "/usr/bin/promtool"

CONFIG = f"""
state: {{path: "${{STATE}}"}}
venues:
  mango: {{kind: mango_v3_fills, urls: ["${{URL}}"], reconnect: {{initial: 10ms, max: 50ms}}}}
  px: {{kind: prophetx, rest_url: "http://127.0.0.1:1/partner", access_key: k, secret_key: s}}
  tot: {{kind: totalis_rfq, api_key: k, ws_url: "ws://127.0.0.1:1", rest_url: "http://127.0.0.1:1"}}
desks:
  sol-desk:
    accounts: {{mango: [{DESK}]}}
    limits: {{max_net_notional_usd: [{{market: SOL-PERP, max_usd: 2500}}], max_gross_notional_usd: 9000}}
  books:
    accounts: {{px: [u1], tot: [mm1]}}
    limits: {{max_pending_rfq_usd: 1000, max_worst_case_loss_usd: 400}}
receivers:
  hook: {{kind: webhook, url: "${{HOOK}}/alerts"}}
"""


def config(tmp_path: Path, url: str = "ws://127.0.0.1:1", hook: str = "http://127.0.0.1:1") -> str:
    return CONFIG.replace("${STATE}", str(tmp_path / "state.db")).replace("${URL}", url).replace("${HOOK}", hook)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


@pytest.mark.integration
async def test_a_running_monitor_times_engine_steps_and_counts_the_close_by_cause(tmp_path: Path) -> None:
    sim = MangoV3FillsSimulator([SOL])
    await sim.start()
    monitor = Monitor(parse_config(config(tmp_path, sim.url), "t.yaml", {}), http=False)
    stop = asyncio.Event()
    runner = asyncio.create_task(monitor.run(stop))
    stats = monitor.engine.stats["mango"]
    registry = monitor.registry
    try:
        await sim.wait_for_connections(1)
        await sim.push_fill(SOL.name, trade(500))
        await until(monitor, lambda: stats.fills == 1)
        steps = value(registry, "riskmon_engine_event_processing_seconds_count", venue="mango")
        assert steps is not None
        assert steps >= 2  # FeedUp report, checkpoint, the fill frame
        elapsed = value(registry, "riskmon_engine_event_processing_seconds_sum", venue="mango")
        assert elapsed is not None
        assert 0 < elapsed < steps * 0.1
        age = value(registry, "riskmon_last_message_age_seconds", venue="mango")
        assert age is not None
        assert 0 <= age < 5  # the Monitor's clock is the one the collector reads
        await sim.disconnect_all()  # close 1001: the venue closed it
        await until(monitor, lambda: stats.reconnects == 1 and stats.feed_up)
        assert value(registry, "riskmon_feed_reconnects_total", venue="mango", reason="closed_by_venue") == 1
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await sim.stop()


async def test_inbound_queue_depth_is_read_at_scrape(tmp_path: Path) -> None:
    monitor = Monitor(parse_config(config(tmp_path), "t.yaml", {}), http=False)
    assert value(monitor.registry, "riskmon_inbound_queue_depth") == 0
    # Not running: each intake waits in the queue (and its caller for the engine to apply it).
    declared = [asyncio.create_task(monitor.declare_order(OrderIntake("px", f"o-{i}"))) for i in (1, 2)]
    await asyncio.sleep(0)  # one turn: both are queued
    assert value(monitor.registry, "riskmon_inbound_queue_depth") == 2
    assert not any(task.done() for task in declared)
    for task in declared:
        task.cancel()
    await asyncio.gather(*declared, return_exceptions=True)


@pytest_asyncio.fixture
async def slow_receiver() -> AsyncIterator[tuple[str, VirtualClock]]:
    """A loopback receiver that accepts each POST after the virtual time its body names."""
    clock = VirtualClock(T0)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive) or b"{}"
        clock.advance(float(body.decode().split(":")[1].rstrip("}")))
        await respond(send, 200, b"ok", "text/plain")

    server = AsgiServer(app, "127.0.0.1", 0)
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.port}", clock
    finally:
        await server.stop()


@pytest.mark.integration
async def test_delivery_latency_is_enqueue_to_the_receivers_2xx(
    tmp_path: Path, slow_receiver: tuple[str, VirtualClock]
) -> None:
    url, clock = slow_receiver
    monitor_config = parse_config(config(tmp_path, hook=url), "t.yaml", {})
    delivery = Delivery(tmp_path / "outbox.db", monitor_config.receivers, monitor_config.delivery, clock)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeliveryCollector(delivery.outcomes, delivery.depths, lambda: 0, delivery.latency))
    await delivery.start()
    try:
        for key, seconds in (("k1", "0.25"), ("k2", "1.5")):
            delivery.submit([Outgoing("hook", "hook", "g", key, f'{{"after":{seconds}}}'.encode())])
            async with asyncio.timeout(5):
                while delivery.outcomes[("hook", "sent")] < int(key[1]):
                    delivery.progress.clear()
                    await delivery.progress.wait()
    finally:
        await delivery.stop()
    name = "riskmon_notification_delivery_latency_seconds"
    assert value(registry, f"{name}_count", receiver="hook") == 2
    assert value(registry, f"{name}_sum", receiver="hook") == 1.75
    assert value(registry, f"{name}_bucket", receiver="hook", le="0.25") == 1
    assert value(registry, f"{name}_bucket", receiver="hook", le="1.0") == 1
    assert value(registry, f"{name}_bucket", receiver="hook", le="2.5") == 2


def populate(monitor: Monitor) -> None:
    """Drive real events through the engine so every family has series."""
    engine = monitor.engine
    fill = FillReceived(
        "mango",
        "sol-desk",
        DESK,
        "SOL-PERP",
        Side.BUY,
        Decimal(20),
        Decimal(150),
        "f1",
        "q",
        1,
        Liquidity.TAKER,
        Decimal(0),
        0,
    )
    engine.ingest("mango", [FeedUp("mango", "ws://m"), fill], T0)
    engine.ingest("mango", [MarkPrice("mango", "SOL-PERP", Decimal(150), T0)], T0 + 1)
    engine.ingest("px", [FeedUp("px", "wss://p"), Heartbeat("px", "s1")], T0 + 1)
    engine.ingest("px", [OrderIntake("px", "o1", placed_at=T0)], T0 + 1)
    rejected = OrderUpdate("px", "books", "u1", "o2", "1/2/3", OrderStatus.REJECTED, "invalid", 1, T0, reason="odds")
    engine.ingest(
        "px", [rejected, OrderUpdate("px", "books", "u1", "o1", "1/2/3", OrderStatus.OPEN, "open", 1, T0)], T0 + 2
    )
    engine.ingest("px", [SequenceGap("px", "orders", 5, 7)], T0 + 3)
    engine.ingest("px", [StreamResynced("px", "orders")], T0 + 3.5)
    accepted = QuoteUpdate(
        "tot",
        "books",
        "mm1",
        "q1",
        "r1",
        QuoteStatus.ACCEPTED,
        worst_case_loss_usd=Decimal(80),
        confirmation_deadline=T0 + 9,
    )
    engine.ingest("tot", [accepted], T0 + 4)
    engine.ingest("tot", [QuoteUpdate("tot", "books", "mm1", "q1", "r1", QuoteStatus.CONFIRMED)], T0 + 5)
    engine.ingest("tot", [FeedDown("tot", "ws://t", "closed")], T0 + 6)
    monitor.engine_seconds["mango"].observe(0.00004)
    monitor.alerting.delivery.latency["hook"].observe(0.3)


async def test_full_exposition_passes_promtool(tmp_path: Path) -> None:
    if not shutil.which(PROMTOOL):
        pytest.skip(f"{PROMTOOL} is not installed (Debian package prometheus)")
    monitor = Monitor(parse_config(config(tmp_path), "t.yaml", {}), http=False)
    populate(monitor)
    exposition = generate_latest(monitor.registry)
    text = exposition.decode()
    for family in (
        "riskmon_feed_reconnects_total",
        "riskmon_exposure_gross_notional_usd",
        "riskmon_desk_exposure_net_notional_usd",
        "riskmon_desk_exposure_gross_notional_usd",
        "riskmon_desk_limit_usd",
        "riskmon_rfq_pending_exposure_usd",
        "riskmon_worst_case_loss_usd",
        "riskmon_order_activation_failures_total",
        "riskmon_last_message_timestamp_seconds",
        "riskmon_last_message_age_seconds",
        "riskmon_heartbeat_gap_seconds",
        "riskmon_notification_delivery_latency_seconds_bucket",
        "riskmon_engine_event_processing_seconds_bucket",
        "riskmon_inbound_queue_depth",
        "riskmon_metric_series_capped",
        "riskmon_limit_utilisation_ratio",
        "riskmon_alerts_firing",
    ):
        assert f"\n{family}{{" in text or f"\n{family} " in text, family
    promtool = await asyncio.create_subprocess_exec(PROMTOOL, "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=PIPE)
    out, err = await asyncio.wait_for(promtool.communicate(exposition), timeout=30)
    assert promtool.returncode == 0, (out + err).decode()
    assert (out + err).decode().strip() == ""  # no lint warning either
