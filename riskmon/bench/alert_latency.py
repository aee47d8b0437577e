"""Section `alerts`: how long a breach takes from the venue's socket to a webhook receiver.

A frame server process (frame_server.py, `paced`) streams Mango marks at `rate` frames/s to a real
`Monitor` and, every `cross_every` seconds, a fill of the desk that takes its SOL-PERP net notional
over the limit ($1,500 against $1,000: warning and critical fire), alone in its write, then
`clear_after` seconds later the fill that takes it back (both resolve). The Monitor routes to one
webhook receiver with group_wait 0, so each breach is a new group notified at once; the resolved
notification goes out on the next group_interval tick and closes the group before the next breach.

The receiver runs in the frame server process: a breach's latency is the arrival of its firing
notification (its request's first bytes read) minus the moment its frame was written, both on this machine's
monotonic clock. Breach k buys CROSS_LOTS + k lots, so the notional in its alert's `value`
annotation names it, and a late notification is never paired with a later breach.

What is measured is a running riskmon. Breaches sent before it was ready (as /readyz judges it:
the venue reconciled and alert delivery up; the delivery process starts in a fork server, ~0.5 s)
are counted apart as start-up, with their own latencies; the first breach after it is a warm-up
(its notification opens the receiver's HTTP connection) and is left out too. Everything a real
alert crosses is in the rest: loopback TCP, the websockets client, the codec, the inbound queue,
the engine, routing and grouping, the hand-off to the delivery process, the durable outbox, the
POST. An AlertListener on the Monitor splits it at the engine step that fired.
"""

from __future__ import annotations

import asyncio
import io
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.bench.e2e import e2e_config
from riskmon.bench.mango_feed import MANGO
from riskmon.bench.measure import Percentiles, until_ready
from riskmon.bench.sender_process import FrameServerProcess
from riskmon.config import MonitorConfig
from riskmon.runtime.monitor import Monitor

LIMIT_USD = 1_000
CROSS_LOTS = 1_000  # breach k buys CROSS_LOTS + k lots: 10 SOL at $150 ($1,500) and more, from flat
LOT_USD = Decimal("1.5")  # one lot of the desk's fills: 0.01 SOL at $150.00


class TransitionClock:
    """An AlertListener: when (monotonic) the engine made each firing transition, with its value."""

    def __init__(self) -> None:
        self.firing: list[tuple[float, str]] = []

    def deliver(self, transition: AlertTransition) -> None:
        if transition.status == "firing":
            self.firing.append((time.monotonic(), transition.annotations.get("value", "")))


@dataclass(frozen=True, slots=True)
class AlertLatencyResult:
    rate_offered: float  # background frames per second
    rate_sent: float  # as the sender achieved it (it waits when riskmon's socket is full)
    frames_applied: int  # by riskmon's engine, during the run
    duration_s: float
    crossings: int  # breaches sent, the warm-up one apart
    firing_notifications: int
    resolved_notifications: int
    unmatched: int  # firing notifications that arrived before any breach was sent (must be 0)
    startup_excluded: int  # breaches sent before riskmon was ready
    startup_latency_ms: Percentiles  # theirs, apart
    ready_after_s: float | None  # from the first breach to ready (None: never ready in the run)
    warmup_excluded: int  # the first breach once ready: its notification opens the receiver's HTTP connection
    latency_ms: Percentiles  # breach frame written -> its firing notification received
    to_engine_ms: Percentiles  # breach frame written -> the engine step that fired it (socket, codec, queue)
    engine_to_receiver_ms: Percentiles  # that engine step -> notification received (routing, outbox, POST)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def alert_config(url: str, hook_port: int, state_path: Path) -> MonitorConfig:
    return e2e_config(
        url,
        state_path,
        LIMIT_USD,
        extra=f"""receivers:
  hook: {{kind: webhook, url: "http://127.0.0.1:{hook_port}/alerts"}}
routes:
  receiver: hook
  group_by: [alertname, desk]
  group_wait: 0s
  group_interval: 10ms
  repeat_interval: 1h
""",
    )


def run_alert_latency_bench(
    rate: float = 50_000.0, duration: float = 10.0, cross_every: float = 0.05, clear_after: float = 0.02
) -> AlertLatencyResult:
    if rate < 0 or duration <= 0 or not 0 < clear_after < cross_every:
        raise ValueError("need rate >= 0, duration > 0 and 0 < clear_after < cross_every")
    return asyncio.run(_run(rate, duration, cross_every, clear_after))


async def _run(rate: float, duration: float, cross_every: float, clear_after: float) -> AlertLatencyResult:
    args = ["paced", "--rate", repr(rate), "--duration", repr(duration)]
    args += ["--cross-every", repr(cross_every), "--clear-after", repr(clear_after), "--cross-lots", str(CROSS_LOTS)]
    sender = await FrameServerProcess.start(*args)
    try:
        with tempfile.TemporaryDirectory(prefix="riskmon-bench-") as tmp:
            config = alert_config(sender.url, int(sender.ready["hook_port"]), Path(tmp) / "state.db")
            engine_clock = TransitionClock()
            monitor = Monitor(config, http=False, console=io.StringIO(), listeners=[engine_clock])
            stop = asyncio.Event()
            runner = asyncio.create_task(monitor.run(stop), name="bench-monitor")
            ready_at: list[float] = []
            watcher = asyncio.create_task(_note_ready(monitor, ready_at), name="bench-ready")
            try:
                paced = await sender.next_record("paced", duration + 60)
            finally:
                watcher.cancel()
                stop.set()
                await runner
            applied = monitor.engine.venue_stats(MANGO).frames
    finally:
        await sender.stop()
    crossings: list[float] = paced["crossings"]
    notifications = [(float(at), str(status), list(values)) for at, status, values in paced["notifications"]]
    breaches = match_breaches(crossings, notifications, engine_clock.firing, ready_at[0] if ready_at else None)
    seconds = float(paced["seconds"])
    return AlertLatencyResult(
        rate_offered=rate,
        rate_sent=round(int(paced["frames"]) / seconds, 1) if seconds > 0 else 0.0,
        frames_applied=applied,
        duration_s=round(seconds, 3),
        crossings=max(0, len(crossings) - breaches.startup - 1),
        firing_notifications=len(breaches.latency),
        startup_excluded=breaches.startup,
        startup_latency_ms=Percentiles.of(breaches.startup_latency, 1e3),
        ready_after_s=round(ready_at[0] - crossings[0], 3) if ready_at and crossings else None,
        warmup_excluded=breaches.warmup,
        resolved_notifications=sum(status == "resolved" for _, status, _ in notifications),
        unmatched=breaches.unmatched,
        latency_ms=Percentiles.of(breaches.latency, 1e3),
        to_engine_ms=Percentiles.of(breaches.to_engine, 1e3),
        engine_to_receiver_ms=Percentiles.of(breaches.engine_to_receiver, 1e3),
    )


async def _note_ready(monitor: Monitor, ready_at: list[float]) -> None:
    await until_ready(monitor)
    ready_at.append(time.monotonic())


@dataclass
class BreachTimes:
    latency: list[float] = field(default_factory=list)  # seconds, one per breach notified (start-up, warm-up apart)
    to_engine: list[float] = field(default_factory=list)
    engine_to_receiver: list[float] = field(default_factory=list)
    startup: int = 0  # breaches sent before riskmon was ready
    startup_latency: list[float] = field(default_factory=list)
    warmup: int = 0
    unmatched: int = 0  # firing notifications that name no breach sent


def breach_index(value: str, breaches: int) -> int | None:
    """Which breach an alert's `value` annotation (the desk's notional, "1504.50") belongs to."""
    try:
        lots = Decimal(value) / LOT_USD
    except ArithmeticError:
        return None
    k = lots - CROSS_LOTS
    if k != k.to_integral_value() or not 0 <= k < breaches:
        return None
    return int(k)


def match_breaches(
    crossings: Sequence[float],
    notifications: Sequence[tuple[float, str, Sequence[str]]],
    engine_firing: Sequence[tuple[float, str]],
    ready_at: float | None = -math.inf,
) -> BreachTimes:
    """Each breach's first firing notification and first firing engine transition, named by value,
    so the match holds however late riskmon runs behind the breaches. Breaches sent before
    `ready_at` (None: riskmon never became ready) are start-up; the first one after is the warm-up."""
    out = BreachTimes()
    ready = math.inf if ready_at is None else ready_at
    startup = sum(at < ready for at in crossings)
    out.startup = startup
    at_engine: dict[int, float] = {}
    for at, value in engine_firing:
        k = breach_index(value, len(crossings))
        if k is not None:
            at_engine.setdefault(k, at)
    notified: set[int] = set()
    for received_at, status, values in notifications:
        if status != "firing":
            continue
        named = {k for k in (breach_index(v, len(crossings)) for v in values) if k is not None}
        if not named:
            out.unmatched += 1
        for k in sorted(named - notified):
            notified.add(k)
            if crossings[k] < ready:
                out.startup_latency.append(received_at - crossings[k])
                continue
            if k == startup:
                out.warmup += 1
                continue
            out.latency.append(received_at - crossings[k])
            if k in at_engine:
                out.to_engine.append(at_engine[k] - crossings[k])
                out.engine_to_receiver.append(received_at - at_engine[k])
    return out
