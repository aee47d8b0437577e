"""Silences in SQLite, so a restart keeps muting what operators muted.

Same state file as the other stores, its own table. WAL mode, as in riskmon.store.deadlines: a reader
(another riskmon command, a backup) never blocks the monitor's writes. A silence is written whole on
each change (create, expire) and deleted when the registry prunes it. Errors name the file, never a
row's contents.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import msgspec

from riskmon.alerts.silences import Silence
from riskmon.store.deadlines import StoreError, open_state_file

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY,
    matchers TEXT NOT NULL,
    starts_at REAL NOT NULL,
    ends_at REAL NOT NULL,
    created_by TEXT NOT NULL,
    comment TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
) WITHOUT ROWID
"""
_COLUMNS = "id, matchers, starts_at, ends_at, created_by, comment, created_at, updated_at"

__all__ = ["SilenceStore", "StoreError"]


class SilenceStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = open_state_file(self.path, lambda db: db.execute(_SCHEMA))

    def load(self) -> list[Silence]:
        """Every stored silence; a row that cannot be read is skipped with its id and the reason."""
        try:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM silences ORDER BY created_at, id").fetchall()  # noqa: S608
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"state file {self.path}: {exc}") from None
        silences: list[Silence] = []
        for row in rows:
            try:
                silences.append(_from_row(row))
            except (ValueError, TypeError) as exc:
                log.warning("state file %s: skipped silence %r: %s", self.path, row[0], exc)
        return silences

    def save(self, silence: Silence) -> None:
        """Insert or replace the silence with this id."""
        self.save_many([silence])

    def save_many(self, silences: Iterable[Silence]) -> None:
        """Insert or replace several silences in one transaction."""
        rows = [_to_row(s) for s in silences]
        if not rows:
            return
        placeholders = ", ".join("?" * len(rows[0]))
        self._write(f"INSERT OR REPLACE INTO silences ({_COLUMNS}) VALUES ({placeholders})", rows)  # noqa: S608

    def delete(self, silence_ids: Iterable[str]) -> None:
        """Forget pruned silences, in one transaction."""
        self._write("DELETE FROM silences WHERE id = ?", [(sid,) for sid in silence_ids])

    def close(self) -> None:
        self._db.close()

    def _write(self, sql: str, rows: list[tuple[object, ...]]) -> None:
        if not rows:
            return
        try:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(sql, rows)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"state file {self.path}: {exc}") from None


def _to_row(s: Silence) -> tuple[object, ...]:
    matchers = json.dumps(list(s.matchers))
    return (s.id, matchers, s.starts_at, s.ends_at, s.created_by, s.comment, s.created_at, s.updated_at)


def _from_row(row: tuple[object, ...]) -> Silence:
    fields = dict(zip(_COLUMNS.split(", "), row, strict=True))
    if not isinstance(fields["matchers"], str):
        raise TypeError("matchers is not text")
    fields["matchers"] = json.loads(fields["matchers"])
    try:
        return msgspec.convert(fields, Silence)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None
