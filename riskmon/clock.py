"""Injected time.

Business timing (deadlines, `for:` durations, alert timestamps) reads a `Clock`, never
`time.time()`, so replay and tests run on virtual time and stay deterministic.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Unix seconds."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class VirtualClock:
    """Time that moves only when told to: replay sets it from capture timestamps."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def set(self, now: float) -> None:
        # Captures from several venues can interleave slightly out of order; time never runs back.
        if now > self._now:
            self._now = now

    def advance(self, seconds: float) -> None:
        self._now += seconds
