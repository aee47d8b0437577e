"""Deadlines that must survive a restart, as records the runtime writes to SQLite off the hot path.

Watchdogs note what they armed and disarmed here; the runtime takes the accumulated changes after
each engine step and writes them in one transaction. On start, the stored records are handed back
to the watchdogs, which re-arm them (or fire at once what fell due while riskmon was down).
"""

from __future__ import annotations

import msgspec

JournalKey = tuple[str, str, str]


class PersistedDeadline(msgspec.Struct, frozen=True):
    kind: str  # which watchdog owns it, e.g. "activation", "rfq_confirmation"
    venue: str
    subject: str  # the order id or quote id
    due: float  # unix seconds
    data: dict[str, str] = {}

    @property
    def key(self) -> JournalKey:
        return (self.kind, self.venue, self.subject)


class DeadlineJournal:
    def __init__(self) -> None:
        self._changes: dict[JournalKey, PersistedDeadline | None] = {}

    def put(self, record: PersistedDeadline) -> None:
        self._changes[record.key] = record

    def drop(self, kind: str, venue: str, subject: str) -> None:
        self._changes[(kind, venue, subject)] = None

    def take(self) -> dict[JournalKey, PersistedDeadline | None]:
        """The changes since the last take: a record to upsert, or None to delete."""
        changes, self._changes = self._changes, {}
        return changes

    def __bool__(self) -> bool:
        return bool(self._changes)
