"""Deadlines that must survive a restart, as records the runtime writes to SQLite off the hot path.

Watchdogs note what they armed and disarmed here; the runtime takes the accumulated changes after
each engine step and writes them in one transaction. On start, the stored records are handed back
to the watchdogs, which re-arm them (or fire at once what fell due while riskmon was down).
"""

from __future__ import annotations

from typing import Protocol

import msgspec

JournalKey = tuple[str, str, str]


class PersistedDeadline(msgspec.Struct, frozen=True, gc=False):
    """Untracked by the garbage collector (strings and a string map cannot form a cycle): a
    restart reads one per open order, and tracking them made full collections during the start."""

    kind: str  # which watchdog owns it, e.g. "activation", "rfq_confirmation"
    venue: str
    subject: str  # the order id or quote id
    due: float  # unix seconds
    data: dict[str, str] = {}

    @property
    def key(self) -> JournalKey:
        return (self.kind, self.venue, self.subject)


class PersistableDeadline(Protocol):
    """A watchdog's own record of a deadline, which can say what to persist of it."""

    def persisted(self) -> PersistedDeadline: ...


class DeadlineJournal:
    def __init__(self) -> None:
        # A noted record is held by reference and read at the take: between steps an arming
        # costs a dict slot, not a copy of the record (armings come by the thousand per step).
        self._changes: dict[JournalKey, PersistedDeadline | PersistableDeadline | None] = {}

    def put(self, record: PersistedDeadline) -> None:
        self._changes[record.key] = record

    def note(self, key: JournalKey, record: PersistableDeadline) -> None:
        """Persist `record` as it stands at the next take (unless it is dropped before)."""
        self._changes[key] = record

    def drop(self, kind: str, venue: str, subject: str) -> None:
        self._changes[(kind, venue, subject)] = None

    def take(self) -> dict[JournalKey, PersistedDeadline | None]:
        """The changes since the last take: a record to upsert, or None to delete."""
        changes, self._changes = self._changes, {}
        return {
            key: record if record is None or isinstance(record, PersistedDeadline) else record.persisted()
            for key, record in changes.items()
        }

    def __bool__(self) -> bool:
        return bool(self._changes)
