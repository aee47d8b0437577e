"""Capped, jittered reconnect backoff (pure: the caller sleeps)."""

from __future__ import annotations

import random


class ReconnectBackoff:
    """Exponential delays with equal jitter: half fixed, half random, never above `maximum`.

    The fixed half keeps a fleet from hammering a venue that just came back; the random half
    keeps many monitors from reconnecting in lockstep.
    """

    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        if not 0 < initial <= maximum:
            raise ValueError("expected 0 < initial <= maximum")
        self._initial = initial
        self._maximum = maximum
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self._maximum, self._initial * float(2 ** min(self._attempt, 32)))
        self._attempt += 1
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self._attempt = 0
