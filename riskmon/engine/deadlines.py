"""One heap for every deadline, with lazy cancellation.

Re-scheduling or cancelling a key only updates a dict; stale heap entries are skipped when they
surface. The runtime arms a single loop timer at `next_due()`, so a million pending deadlines
cost one timer, not a million.

Deadlines that come by the hundred thousand (one per order awaiting activation) are instead
records their owner already keeps (`Deadline` subclasses): the record itself is the heap entry,
ordered by its own (fires_at, seq) fields, and cancelling it clears its `armed` flag. That costs
one list slot per deadline instead of a key tuple, a due-dict entry and two tuples.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable, Iterable

import msgspec


class Deadline(msgspec.Struct, order=True, gc=False):
    """A record that is its own heap entry. Subclasses put their fields after these: a record
    compares by (fires_at, seq), and seq is unique, so no later field is ever compared.

    A record is armed at most once: while it sits in the heap its ordering fields must not move,
    and a cancelled record stays there until it surfaces. Arm a fresh record to re-arm.
    """

    fires_at: float = 0.0
    seq: int = 0  # arming order, shared with keyed deadlines: equal times fire in that order
    armed: bool = False

    def deadline_key(self) -> Hashable:
        """The key `pop_next` hands back when the record falls due (built then, not kept)."""
        raise NotImplementedError


class DeadlineHeap:
    def __init__(self) -> None:
        self._keyed: list[tuple[float, int, Hashable]] = []
        self._due: dict[Hashable, tuple[float, int]] = {}
        self._heap: list[Deadline] = []
        self._armed = 0
        self._tiebreak = itertools.count(1)

    def __len__(self) -> int:
        return len(self._due) + self._armed

    def __contains__(self, key: Hashable) -> bool:
        """Whether a keyed deadline is pending (records know it themselves: `armed`)."""
        return key in self._due

    def schedule(self, key: Hashable, at: float) -> None:
        """Arm `key` to fall due at `at`, replacing any earlier arming of the same key."""
        token = next(self._tiebreak)
        self._due[key] = (at, token)
        heapq.heappush(self._keyed, (at, token, key))

    def cancel(self, key: Hashable) -> None:
        self._due.pop(key, None)

    def due_at(self, key: Hashable) -> float | None:
        entry = self._due.get(key)
        return entry[0] if entry else None

    def arm(self, record: Deadline, at: float) -> None:
        """Arm a record to fall due at `at`; it stays armed until it falls due or is disarmed."""
        if record.seq:
            raise ValueError("a Deadline record is armed once: arm a new record")
        record.fires_at = at
        record.seq = next(self._tiebreak)
        record.armed = True
        self._armed += 1
        heapq.heappush(self._heap, record)

    def arm_many(self, records: Iterable[Deadline]) -> None:
        """Arm records that each already hold their due time in `fires_at`, in the given order (equal
        times fire in it), as `arm` would one by one, but in one O(n) heapify instead of n pushes: a
        restart re-arms every open order's deadline at once."""
        heap, tiebreak = self._heap, self._tiebreak
        before = len(heap)
        for record in records:
            if record.seq:
                for taken in heap[before:]:  # none of this call's records stays armed
                    taken.armed = False
                del heap[before:]
                raise ValueError("a Deadline record is armed once: arm a new record")
            record.seq = next(tiebreak)
            record.armed = True
            heap.append(record)
        added = len(heap) - before
        self._armed += added
        if added * 16 >= before:
            heapq.heapify(heap)
        else:  # a few into a big heap: pushing each is cheaper than rebuilding the whole
            added_records = heap[before:]
            del heap[before:]
            for record in added_records:
                heapq.heappush(heap, record)

    def disarm(self, record: Deadline) -> None:
        if record.armed:
            record.armed = False
            self._armed -= 1

    def next_due(self) -> float | None:
        self._drop_stale()
        keyed, owned = self._keyed, self._heap
        if keyed and owned:
            return min(keyed[0][0], owned[0].fires_at)
        if keyed:
            return keyed[0][0]
        return owned[0].fires_at if owned else None

    def any_due(self, now: float) -> bool:
        """Whether anything may be due at or before `now`: a peek at both heads, stale or not.

        False means pop_next(now) would return None; True may still find only stale entries.
        It costs two comparisons, so the engine asks before every frame instead of popping.
        """
        keyed, owned = self._keyed, self._heap
        return bool((keyed and keyed[0][0] <= now) or (owned and owned[0].fires_at <= now))

    def pop_due(self, now: float) -> list[tuple[float, Hashable]]:
        """(due time, key) for every key due at or before `now`, earliest first; each is removed."""
        out: list[tuple[float, Hashable]] = []
        while (entry := self.pop_next(now)) is not None:
            out.append(entry)
        return out

    def pop_next(self, now: float) -> tuple[float, Hashable] | None:
        """The earliest (due time, key) due at or before `now`, removed; None when nothing is due.

        One at a time, so a deadline armed while handling another (a re-armed gap, a lookup
        deadline) is served in due order within the same pass.
        """
        self._drop_stale()
        keyed, owned = self._keyed, self._heap
        record = owned[0] if owned else None
        if record is not None and (
            not keyed or record.fires_at < keyed[0][0] or (record.fires_at == keyed[0][0] and record.seq < keyed[0][1])
        ):
            if record.fires_at > now:
                return None
            heapq.heappop(owned)
            record.armed = False
            self._armed -= 1
            return record.fires_at, record.deadline_key()
        if not keyed or keyed[0][0] > now:
            return None
        at, _token, key = heapq.heappop(keyed)
        del self._due[key]
        return at, key

    def _drop_stale(self) -> None:
        keyed, due = self._keyed, self._due
        while keyed:
            _at, token, key = keyed[0]
            current = due.get(key)
            if current is not None and current[1] == token:
                break
            heapq.heappop(keyed)
        owned = self._heap
        while owned and not owned[0].armed:
            heapq.heappop(owned)
