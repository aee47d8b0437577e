"""The Monitor's live loop under a watchdog benchmark: the engine task draining a bounded inbound
queue, the runtime's DeadlineTimer re-armed after every engine step, and a producer standing in for
the venue sessions, recording when each activation deadline takes effect (DESIGN.md §2, §5).

The producer hands the engine Mango fill frames at a set rate, at most `burst` per wake-up (about
one socket read) when it is behind; each frame is one engine step: a MarkPrice, plus, one frame in
ten, a FillReceived of the desk. With a frame-mode MangoFeed it builds text frames and decodes each
through the real codec, the session's work on the same event loop. ProphetX heartbeats arrive
every 5 s. A deadline takes effect when the engine step that fired it (the timer's `advance`, or an
`ingest`, which advances first) hands back the watchdog's LookupOrder action: when the runtime
would start the REST lookup. Actions and the journal are taken after every step, as the runtime
does; the journal is only dropped here, not flushed to SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import time
from array import array

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.bench.mango_feed import MANGO, MangoFeed
from riskmon.clock import Clock
from riskmon.engine.actions import LookupOrder
from riskmon.engine.engine import Engine
from riskmon.events import Event, Heartbeat
from riskmon.runtime.deadline_timer import DeadlineTimer
from riskmon.venues.base import Inbound

PROPHETX = "prophetx"
HEARTBEAT_EVERY = 5.0  # ProphetX health_check
INBOUND_CAPACITY = 10_000  # the Monitor's bounded inbound queue


class Measurement:
    """The Monitor's engine task and deadline timer, recording when each deadline takes effect."""

    def __init__(self, engine: Engine, clock: Clock, due: dict[str, float]) -> None:
        self.engine = engine
        self.clock = clock
        self.inbound: asyncio.Queue[Inbound] = asyncio.Queue(maxsize=INBOUND_CAPACITY)
        self.timer = DeadlineTimer(clock, engine.next_deadline, self.on_timer)
        self._due = due
        self.all_fired = asyncio.Event()
        self.lateness: list[float] = []
        self.fired_by_timer = 0
        self.unexpected = 0
        self.applied = 0
        self.transitions = 0
        self.delays = array("d")

    async def engine_loop(self) -> None:
        while True:
            item = await self.inbound.get()
            self.delays.append(self.clock.now() - item.received_at)
            is_frame = item.frame is not None and item.rest is None
            self.after_step(
                self.engine.ingest(item.venue, item.events, item.received_at, is_frame=is_frame, source=item.rest),
                by_timer=False,
            )
            self.applied += item.venue == MANGO  # the heartbeats are not counted

    def on_timer(self) -> None:
        self.after_step(self.engine.advance(self.clock.now()), by_timer=True)

    def after_step(self, transitions: list[AlertTransition], *, by_timer: bool) -> None:
        self.transitions += len(transitions)
        self.timer.rearm()
        actions = self.engine.take_actions()
        if actions:
            now = self.clock.now()
            for action in actions:
                if not isinstance(action, LookupOrder):
                    continue
                due = self._due.pop(action.order_id, None)
                if due is None:
                    self.unexpected += 1
                    continue
                self.lateness.append(now - due)
                self.fired_by_timer += by_timer
        if not self._due:
            self.all_fired.set()
        self.engine.take_journal()  # persisted and dropped by the runtime; here only dropped

    async def produce(self, feed: MangoFeed, rate: float, burst: int, end: float) -> int:
        """Feed frames at `rate` until the monotonic time `end`; returns how many were handed over."""
        start = time.monotonic()
        sent = 0
        next_heartbeat = start
        while (now := time.monotonic()) < end:
            if now >= next_heartbeat:
                heartbeat: list[Event] = [Heartbeat(PROPHETX, "bench")]
                await self.inbound.put(Inbound(PROPHETX, self.clock.now(), "health_check", heartbeat))
                next_heartbeat += HEARTBEAT_EVERY
            owed = int((now - start) * rate) - sent if rate > 0 else 0
            if owed <= 0:
                wake = min(end, next_heartbeat, start + (sent + 1) / rate if rate > 0 else end)
                await asyncio.sleep(max(0.0, wake - now))
                continue
            batch = min(owed, burst)
            for _ in range(batch):
                await self.inbound.put(feed.next_item(self.clock.now()))
            sent += batch
            await asyncio.sleep(0)  # the session's next read: the engine task runs meanwhile
        return sent


async def measure_window(
    measurement: Measurement,
    feed: MangoFeed,
    rate: float,
    burst: int,
    window_end: float,
    profiler: cProfile.Profile | None,
) -> tuple[int, float]:
    """Run the engine task, the timer and the producer through the window; (frames applied, seconds)."""
    clock = measurement.clock
    engine_task = asyncio.create_task(measurement.engine_loop(), name="engine")
    started = time.monotonic()
    end = started + (window_end - clock.now())
    if profiler is not None:
        profiler.enable()
    try:
        measurement.on_timer()  # as Monitor.run does before its tasks start: fire what is due, arm
        before = measurement.applied
        await measurement.produce(feed, rate, burst, end)
        elapsed = time.monotonic() - started
        applied = measurement.applied - before
        # The last deadlines fall due half a spacing before the window ends; allow for lag.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(measurement.all_fired.wait(), timeout=5.0)
    finally:
        if profiler is not None:
            profiler.disable()
        measurement.timer.cancel()
        engine_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await engine_task
    return applied, elapsed
