"""Pending watchdog deadlines in SQLite, so a restart re-arms them (and fires at once what fell
due while riskmon was down).

WAL mode: the runtime writes a batch of changes per engine step off the event loop, and a reader
(another riskmon command, a backup) never blocks it. One table, keyed by (kind, venue, subject).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path

import msgspec

from riskmon.watchdogs.journal import JournalKey, PersistedDeadline

log = logging.getLogger(__name__)
# A restart reads one row per open order: a typed decode is ~10x cheaper than json.loads + checks.
_data_decoder = msgspec.json.Decoder(dict[str, str])

_SCHEMA = """
CREATE TABLE IF NOT EXISTS watchdog_deadlines (
    kind TEXT NOT NULL,
    venue TEXT NOT NULL,
    subject TEXT NOT NULL,
    due REAL NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (kind, venue, subject)
) WITHOUT ROWID
"""


class StoreError(RuntimeError):
    pass


def create_deadline_table(db: sqlite3.Connection) -> None:
    db.execute(_SCHEMA)


def read_deadlines(db: sqlite3.Connection, path: Path) -> list[PersistedDeadline]:
    """Every stored deadline; a row that cannot be read is skipped with its reason."""
    records: list[PersistedDeadline] = []
    try:
        rows = db.execute("SELECT kind, venue, subject, due, data FROM watchdog_deadlines").fetchall()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"state file {path}: {exc}") from None
    decode, append = _data_decoder.decode, records.append
    for kind, venue, subject, due, data in rows:
        try:
            append(PersistedDeadline(kind, venue, subject, float(due), decode(data)))
        except (msgspec.DecodeError, ValueError, TypeError) as exc:
            # msgspec's words name the path and the expected type, never the stored value.
            log.warning("state file %s: skipped the %s deadline of %s %s: %s", path, kind, venue, subject, exc)
    return records


def write_deadline_changes(db: sqlite3.Connection, changes: Mapping[JournalKey, PersistedDeadline | None]) -> None:
    """Apply changes (None deletes) inside the caller's transaction."""
    deletes = [key for key, r in changes.items() if r is None]
    upserts = [
        (r.kind, r.venue, r.subject, r.due, json.dumps(r.data, sort_keys=True))
        for r in changes.values()
        if r is not None
    ]
    if deletes:
        db.executemany("DELETE FROM watchdog_deadlines WHERE kind = ? AND venue = ? AND subject = ?", deletes)
    if upserts:
        db.executemany(
            "INSERT OR REPLACE INTO watchdog_deadlines (kind, venue, subject, due, data) VALUES (?, ?, ?, ?, ?)",
            upserts,
        )


def open_state_file(path: Path, create: Callable[[sqlite3.Connection], object]) -> sqlite3.Connection:
    """The state file in WAL mode with `create` run on it (its tables); StoreError naming the file
    when it cannot be opened. Written from one worker thread at a time: the runtime serialises calls."""
    try:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"state file {path}: {exc}") from None
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        create(db)
    except sqlite3.DatabaseError as exc:
        db.close()
        raise StoreError(f"state file {path}: {exc}") from None
    return db


class DeadlineStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = open_state_file(self.path, create_deadline_table)

    def load(self) -> list[PersistedDeadline]:
        """Every stored deadline; a row that cannot be read is skipped with its reason."""
        return read_deadlines(self._db, self.path)

    def write(self, changes: Mapping[JournalKey, PersistedDeadline | None]) -> None:
        """Apply one batch of changes (None deletes) in a single transaction."""
        if not changes:
            return
        try:
            with self._db:
                self._db.execute("BEGIN")
                write_deadline_changes(self._db, changes)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"state file {self.path}: {exc}") from None

    def close(self) -> None:
        self._db.close()
