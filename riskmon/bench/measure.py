"""Measuring helpers shared by the benchmarks: percentiles, garbage-collector pauses, resident
memory and the event loop's own timer lateness."""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from riskmon.runtime.monitor import Monitor


@dataclass(frozen=True, slots=True)
class Percentiles:
    p50: float | None
    p99: float | None
    max: float | None

    @classmethod
    def of(cls, values: Sequence[float], scale: float = 1.0) -> Percentiles:
        """Nearest-rank percentiles of `values` times `scale` (None when there are none)."""
        if not values:
            return cls(None, None, None)
        ordered = sorted(values)

        def rank(q: int) -> float:
            return round(ordered[max(0, math.ceil(len(ordered) * q / 100) - 1)] * scale, 4)

        return cls(rank(50), rank(99), round(ordered[-1] * scale, 4))

    def __str__(self) -> str:
        if self.p50 is None or self.p99 is None or self.max is None:
            return "-"
        return f"{self.p50:.3f} / {self.p99:.3f} / {self.max:.3f} ms"


async def until_ready(monitor: Monitor) -> None:
    """Return once `monitor` is ready as /readyz judges it (every venue, and alert delivery).

    Readiness can only change after an engine step or once the delivery process is up: this waits
    on those, so it costs the monitor nothing between them (a poll would take loop turns from it)."""
    await monitor.started.wait()
    while not monitor.readiness().ready:
        monitor.applied.clear()
        await _first(monitor.applied.wait(), monitor.alerting.delivery.started())


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


class GcWatch:
    """Full (generation 2) collections and their pauses while installed."""

    def __init__(self) -> None:
        self.collections = 0
        self.max_pause = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.collections += 1
            self.max_pause = max(self.max_pause, time.perf_counter() - self._started)


def resident_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


async def timer_floor(probes: int = 200, interval: float = 0.002) -> Percentiles:
    """How late a bare loop timer armed on the wall clock wakes up here and now (no engine)."""
    loop = asyncio.get_running_loop()
    late: list[float] = []
    for _ in range(probes):
        due = time.time() + interval
        woke: asyncio.Future[None] = loop.create_future()
        loop.call_later(due - time.time(), woke.set_result, None)
        await woke
        late.append(time.time() - due)
    return Percentiles.of(late, 1e3)
