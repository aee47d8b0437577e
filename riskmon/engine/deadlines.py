"""One heap for every deadline, with lazy cancellation.

Re-scheduling or cancelling a key only updates a dict; stale heap entries are skipped when they
surface. The runtime arms a single loop timer at `next_due()`, so a million pending deadlines
cost one timer, not a million.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable


class DeadlineHeap:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Hashable]] = []
        self._due: dict[Hashable, tuple[float, int]] = {}
        self._tiebreak = itertools.count()

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._due

    def schedule(self, key: Hashable, at: float) -> None:
        """Arm `key` to fall due at `at`, replacing any earlier arming of the same key."""
        token = next(self._tiebreak)
        self._due[key] = (at, token)
        heapq.heappush(self._heap, (at, token, key))

    def cancel(self, key: Hashable) -> None:
        self._due.pop(key, None)

    def due_at(self, key: Hashable) -> float | None:
        entry = self._due.get(key)
        return entry[0] if entry else None

    def next_due(self) -> float | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[tuple[float, Hashable]]:
        """(due time, key) for every key due at or before `now`, earliest first; each is removed."""
        out: list[tuple[float, Hashable]] = []
        while self._heap and self._heap[0][0] <= now:
            at, token, key = heapq.heappop(self._heap)
            current = self._due.get(key)
            if current is not None and current[1] == token:
                del self._due[key]
                out.append((at, key))
        return out

    def pop_next(self, now: float) -> tuple[float, Hashable] | None:
        """The earliest (due time, key) due at or before `now`, removed; None when nothing is due.

        One at a time, so a deadline armed while handling another (a re-armed gap, a lookup
        deadline) is served in due order within the same pass.
        """
        self._drop_stale()
        if not self._heap or self._heap[0][0] > now:
            return None
        at, _token, key = heapq.heappop(self._heap)
        del self._due[key]
        return at, key

    def _drop_stale(self) -> None:
        while self._heap:
            _at, token, key = self._heap[0]
            current = self._due.get(key)
            if current is not None and current[1] == token:
                return
            heapq.heappop(self._heap)
