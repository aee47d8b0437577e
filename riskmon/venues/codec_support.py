"""Helpers the venue codecs share to keep the per-frame cost low.

Venue feeds repeat a small set of values (accounts, price levels, fee rates, sizes) over and
over; building a Decimal or a base58 string for each frame is most of a codec's cost, so the
codecs memoize them. Every memo is bounded: a feed of endless distinct values costs a clear
now and then, never unbounded memory.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

DEFAULT_MEMO_SIZE = 65_536


class BoundedMemo(Generic[K, V]):
    """`compute(key)` remembered for up to `limit` keys, forgotten all at once when full.

    Clear-on-full rather than LRU: the hit path is one dict lookup, and a working set that fits
    refills in one pass after a clear. `compute` must be pure, and must not return None.
    """

    __slots__ = ("_compute", "_limit", "_values")

    def __init__(self, compute: Callable[[K], V], limit: int = DEFAULT_MEMO_SIZE) -> None:
        if limit < 1:
            raise ValueError("a memo must hold at least one value")
        self._compute = compute
        self._limit = limit
        self._values: dict[K, V] = {}

    def __call__(self, key: K) -> V:
        value = self._values.get(key)
        if value is None:
            value = self._compute(key)
            if len(self._values) >= self._limit:
                self._values.clear()
            self._values[key] = value
        return value

    def __len__(self) -> int:
        return len(self._values)
