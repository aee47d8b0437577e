"""The alert and group states that ride in the outbox with the notifications they reflect.

Each batch of notifications carries the states as of its flush, stamped with a revision, in the
same transaction (riskmon.store.alert_states explains why: a kill between the outbox's commit and
the state file's write must not start a new episode). A restart reads back the rows newer than
the state file's revision, under the lock the delivery process holds on the outbox.
"""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

STATE_SCHEMA = (
    # body NULL: the alert ended, or the group is gone.
    "CREATE TABLE IF NOT EXISTS outbox_alert_states (fingerprint TEXT PRIMARY KEY, revision INTEGER NOT NULL,"
    " body BLOB) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS outbox_alert_states_revision ON outbox_alert_states (revision)",
    "CREATE TABLE IF NOT EXISTS outbox_group_states (route_id TEXT NOT NULL, group_key TEXT NOT NULL,"
    " revision INTEGER NOT NULL, body BLOB, PRIMARY KEY (route_id, group_key)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS outbox_group_states_revision ON outbox_group_states (revision)",
)
_LOCK_POLL_S = 0.02


class StateRowsUnreadable(RuntimeError):
    """The outbox's state rows could not be read (the message names the file, never a row)."""


@dataclass(frozen=True, slots=True)
class StateRows:
    """Alert and group states as of one flush of the notifier, encoded, stamped with its revision.

    `confirmed`: the state file holds every revision up to it, so the commit drops such rows."""

    revision: int
    confirmed: int
    alerts: tuple[tuple[str, bytes | None], ...]  # (fingerprint, body or None: ended)
    groups: tuple[tuple[str, str, bytes | None], ...]  # (route_id, group_key, body or None: gone)


@dataclass(slots=True)
class StoredStateRows:
    """The outbox's state rows newer than a revision: (key..., revision, body or None)."""

    alerts: list[tuple[str, int, bytes | None]]
    groups: list[tuple[str, str, int, bytes | None]]


def write_state_rows(db: sqlite3.Connection, rows: StateRows) -> None:
    """Inside the enqueue's transaction. Revisions rise in commit order within a run and start past
    every stored one after a restart, so the latest commit of a key is always the newest state."""
    db.execute("DELETE FROM outbox_alert_states WHERE revision <= ?", (rows.confirmed,))
    db.execute("DELETE FROM outbox_group_states WHERE revision <= ?", (rows.confirmed,))
    if rows.alerts:
        db.executemany(
            "INSERT OR REPLACE INTO outbox_alert_states VALUES (?, ?, ?)",
            [(fp, rows.revision, body) for fp, body in rows.alerts],
        )
    if rows.groups:
        db.executemany(
            "INSERT OR REPLACE INTO outbox_group_states VALUES (?, ?, ?, ?)",
            [(route_id, group_key, rows.revision, body) for route_id, group_key, body in rows.groups],
        )


def outbox_lock_path(outbox: Path) -> Path:
    """The lock a delivery process holds on the outbox for its whole life."""
    return outbox.with_name(outbox.name + ".lock")


def read_state_rows(path: str | Path, after: int, *, wait: float) -> StoredStateRows:
    """The state rows of the outbox at `path` with a revision above `after` (none if it does not exist).

    Waits up to `wait` seconds for a delivery process still holding the outbox (one whose engine
    process was killed commits what it was handed before it exits), so its last commit is seen;
    past that, reads what is committed."""
    path = Path(path)
    if not path.exists():
        return StoredStateRows([], [])
    with contextlib.ExitStack() as held:
        with contextlib.suppress(OSError):
            lock = held.enter_context(open(outbox_lock_path(path), "ab"))
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(_LOCK_POLL_S)
        try:
            db = held.enter_context(contextlib.closing(sqlite3.connect(path, isolation_level=None)))
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"outbox_alert_states", "outbox_group_states"} <= tables:
                return StoredStateRows([], [])  # written by a version without them
            alerts = db.execute(
                "SELECT fingerprint, revision, body FROM outbox_alert_states WHERE revision > ?", (after,)
            ).fetchall()
            groups = db.execute(
                "SELECT route_id, group_key, revision, body FROM outbox_group_states WHERE revision > ?", (after,)
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StateRowsUnreadable(f"outbox {path}: {exc}") from None
    return StoredStateRows(
        [(fp, int(rev), None if body is None else bytes(body)) for fp, rev, body in alerts],
        [(route, key, int(rev), None if body is None else bytes(body)) for route, key, rev, body in groups],
    )
