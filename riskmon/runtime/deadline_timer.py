"""One asyncio timer serving the engine's whole deadline heap.

It is armed for the earliest deadline only and re-armed after every engine step, so a million
pending deadlines cost one loop timer, and re-arming for an unchanged earliest deadline is free.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from riskmon.clock import Clock


class DeadlineTimer:
    def __init__(self, clock: Clock, next_due: Callable[[], float | None], on_due: Callable[[], None]) -> None:
        self._clock = clock
        self._next_due = next_due
        self._on_due = on_due
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for: float | None = None

    def rearm(self) -> None:
        due = self._next_due()
        if due == self._armed_for:
            return
        self.cancel()
        self._armed_for = due
        if due is not None:
            delay = max(0.0, due - self._clock.now())
            self._handle = asyncio.get_running_loop().call_later(delay, self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._armed_for = None

    def _fire(self) -> None:
        self._handle = None
        self._armed_for = None
        # The loop's timer can wake a hair before the wall clock reaches `due`; the callback then
        # finds nothing due and re-arms for the remainder.
        self._on_due()
