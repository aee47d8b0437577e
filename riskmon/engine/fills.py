"""FillLedger: which fills are live, so none is counted twice and a revoke undoes exactly one.

Held fills are kept per (venue, stream) in arrival order with a retention bound; the oldest are
forgotten first. The bound must stay far above any venue's replay window (Mango: 256 events).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from riskmon.events import FillReceived, FillSnapshot


@dataclass(slots=True)
class SnapshotMerge:
    new: list[FillReceived] = field(default_factory=list)
    duplicates: int = 0
    voided: list[FillReceived] = field(default_factory=list)


class FillLedger:
    def __init__(self, retention: int = 200_000) -> None:
        if retention < 1:
            raise ValueError("retention must be positive")
        self._retention = retention
        self._streams: dict[tuple[str, str], dict[str, FillReceived]] = {}

    def held(self, venue: str, stream: str) -> dict[str, FillReceived]:
        return self._streams.get((venue, stream), {})

    def __len__(self) -> int:
        return sum(len(held) for held in self._streams.values())

    def record(self, fill: FillReceived) -> bool:
        """True when the fill is new; False for a duplicate that must not be applied."""
        held = self._streams.setdefault((fill.venue, fill.stream), {})
        if fill.fill_key in held:
            return False
        held[fill.fill_key] = fill
        if len(held) > self._retention:
            del held[next(iter(held))]
        return True

    def revoke(self, venue: str, stream: str, fill_key: str) -> FillReceived | None:
        """Remove and return the held fill; None when it is not held (unknown, or already revoked)."""
        return self._streams.get((venue, stream), {}).pop(fill_key, None)

    def merge_snapshot(self, snapshot: FillSnapshot) -> SnapshotMerge:
        """Merge a venue's replay of recent fills; nothing already held is counted again.

        A held fill inside the snapshot's window that the snapshot lacks was voided while we
        were not listening (a fork missed during a disconnect), so it is removed and returned.
        Above the window's newest fill the snapshot speaks only if it is at least as recent as
        the fill (by `as_of`): a lagging failover server has simply not seen newer fills yet.
        """
        result = SnapshotMerge()
        held = self._streams.setdefault((snapshot.venue, snapshot.stream), {})
        present = set()
        for fill in snapshot.fills:
            present.add(fill.fill_key)
            if self.record(fill):
                result.new.append(fill)
            else:
                result.duplicates += 1
        if snapshot.window_start is not None:
            missing = [
                key
                for key, fill in held.items()
                if key not in present and fill.sequence >= snapshot.window_start and _covers(snapshot, fill)
            ]
            for key in missing:
                result.voided.append(held.pop(key))
        return result


def _covers(snapshot: FillSnapshot, fill: FillReceived) -> bool:
    if snapshot.window_end is None or fill.sequence <= snapshot.window_end:
        return True
    return snapshot.as_of is not None and fill.as_of is not None and snapshot.as_of >= fill.as_of
