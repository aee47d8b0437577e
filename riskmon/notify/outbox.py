"""The durable notification outbox: a notification is committed to SQLite before any send.

States: pending -> sent, or pending -> dead (dead-lettered: too old, or refused for good).
A claim is held in memory only, so a crash between claim and send leaves the row pending and
the reopened outbox delivers it. Within a (receiver, group_key) the oldest pending row goes
first and alone: a later notification of a group waits until the earlier one is sent or dead,
so a receiver never sees "resolved" before "firing".

Pure of asyncio: the caller passes `now` (unix seconds) and does the sending. WAL mode. With
sync="full" an enqueue commits with synchronous=FULL (the WAL is fsynced: the notification survives
power loss before any send); with sync="normal" it does not wait for the disk, and survives a crash
of the process but not of the machine. The bookkeeping after a send (sent, retry, dead) commits with
synchronous=NORMAL, without a fsync of its own: the WAL is append-only, so power loss can lose only
the latest such updates; a lost "sent" resends the notification with the same idempotency key,
which the receiver drops, as after a crash between send and mark.

A batch may carry the alert and group states its notifications reflect (riskmon.notify.outbox_states:
bodies encoded by riskmon.store.alert_states and never decoded here): they are committed in the
batch's transaction, one row per key, so a crash before the state file saves them loses neither
(riskmon.store.alert_states explains the revisions and the restore).
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from riskmon.notify.outbox_states import STATE_SCHEMA, StateRows, write_state_rows

Status = Literal["pending", "sent", "dead"]

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS notify_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        receiver TEXT NOT NULL,
        group_key TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        payload BLOB NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        enqueued_at REAL NOT NULL,
        next_attempt_at REAL NOT NULL,
        finished_at REAL,
        last_error TEXT,
        UNIQUE (receiver, idempotency_key)
    )
    """,
    "CREATE INDEX IF NOT EXISTS notify_outbox_due ON notify_outbox (receiver, status, group_key, id)",
    *STATE_SCHEMA,
)
_INSERT = (
    "INSERT INTO notify_outbox (receiver, group_key, idempotency_key, payload, status, enqueued_at, next_attempt_at)"
    " VALUES (?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT (receiver, idempotency_key) DO NOTHING"
)
_ID_OF_KEY = "SELECT id FROM notify_outbox WHERE receiver = ? AND idempotency_key = ?"
_EARLIER_PENDING = (
    "SELECT 1 FROM notify_outbox WHERE receiver = ? AND status = 'pending' AND group_key = ? AND id < ? LIMIT 1"
)


class OutboxError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Capped exponential backoff with equal jitter, a cap on Retry-After, and a dead-letter age."""

    initial: float = 1.0
    maximum: float = 300.0
    retry_after_cap: float = 900.0
    dead_letter_after: float = 24 * 3600.0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("expected 0 < initial <= maximum")
        if self.retry_after_cap < 0 or self.dead_letter_after <= 0:
            raise ValueError("expected retry_after_cap >= 0 and dead_letter_after > 0")

    def delay(self, attempts: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds until the next attempt after `attempts` failed ones (attempts >= 1)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap)
        ceiling = min(self.maximum, self.initial * float(2 ** min(attempts - 1, 32)))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    receiver: str
    group_key: str
    idempotency_key: str
    payload: bytes
    attempts: int
    enqueued_at: float


@dataclass(frozen=True, slots=True)
class Enqueued:
    """What `enqueue_and_claim` committed (ids, as `enqueue_many` returns them) and claimed, per receiver."""

    ids: list[int]
    claimed: dict[str, list[OutboxItem]]


class Outbox:
    def __init__(
        self,
        path: str | Path,
        policy: RetryPolicy | None = None,
        *,
        rng: random.Random | None = None,
        sync: Literal["normal", "full"] = "full",
        auto_checkpoint: bool = True,
    ) -> None:
        self.path = Path(path)
        self.sync = sync
        self._checkpointer: sqlite3.Connection | None = None
        self.policy = policy or RetryPolicy()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._claimed: dict[int, tuple[str, str]] = {}  # id -> (receiver, group_key)
        try:
            # One writer at a time (the runtime serialises calls); any thread may be it.
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"outbox {self.path}: {exc}") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            if not auto_checkpoint:
                # The commit that crosses the WAL's size limit would copy it back into the database,
                # fsyncs included (~4 ms): the caller runs `checkpoint` on another thread instead.
                self._db.execute("PRAGMA wal_autocheckpoint=0")
            for statement in _SCHEMA:
                self._db.execute(statement)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise OutboxError(f"outbox {self.path}: {exc}") from None

    def enqueue(self, receiver: str, group_key: str, idempotency_key: str, payload: bytes, now: float) -> int:
        """Commit one notification; the same (receiver, idempotency_key) again returns the first id."""
        return self.enqueue_many([(receiver, group_key, idempotency_key, payload)], now)[0]

    def enqueue_many(
        self, rows: Sequence[tuple[str, str, str, bytes]], now: float, states: Sequence[StateRows] = ()
    ) -> list[int]:
        """Commit (receiver, group_key, idempotency_key, payload) rows in one durable transaction, in
        order (one fsync for all), with the state rows they reflect; returns their ids, the first
        row's id for a repeated key."""
        return self.enqueue_and_claim(rows, now, states).ids

    def enqueue_and_claim(
        self,
        rows: Sequence[tuple[str, str, str, bytes]],
        now: float,
        states: Sequence[StateRows] = (),
        claim_for: Container[str] = (),
        limit: int = 100,
    ) -> Enqueued:
        """`enqueue_many`, and claim (after the commit) each row it inserted for a receiver in
        `claim_for` that heads its group: due now, such a row is what `claim` would return, found
        without a query for what is due. At most `limit` per receiver; the rest stay pending, as do
        a repeated key's row and other due rows of these receivers (the caller's `claim` finds them)."""
        if not rows:
            return Enqueued([], {})
        ids: list[int] = []
        heads: list[OutboxItem] = []
        db = self._db
        try:
            # Outside any transaction: the level applies to the commit below, then drops back. The
            # connection's level is NORMAL otherwise, so sync="normal" needs neither statement.
            if self.sync == "full":
                db.execute("PRAGMA synchronous=FULL")
            try:
                with db:
                    db.execute("BEGIN IMMEDIATE")
                    for receiver, group_key, idempotency_key, payload in rows:
                        cursor = db.execute(_INSERT, (receiver, group_key, idempotency_key, payload, now, now))
                        if cursor.rowcount != 1:  # a repeated key: the first row's id, and nothing to claim
                            row = db.execute(_ID_OF_KEY, (receiver, idempotency_key)).fetchone()
                            ids.append(int(row[0]))
                            continue
                        item_id = cursor.lastrowid
                        assert item_id is not None  # an INSERT that inserted a row
                        ids.append(item_id)
                        # An earlier pending row, this batch's included, goes first: not due yet.
                        if (
                            receiver in claim_for
                            and db.execute(_EARLIER_PENDING, (receiver, group_key, item_id)).fetchone() is None
                        ):
                            heads.append(OutboxItem(item_id, receiver, group_key, idempotency_key, payload, 0, now))
                    for stamped in states:
                        write_state_rows(db, stamped)
            finally:
                if self.sync == "full":
                    db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"outbox {self.path}: {exc}") from None
        claimed: dict[str, list[OutboxItem]] = {}
        for item in heads:
            # No group of these is claimed already: a claimed row is pending, so it would have come first.
            taken = claimed.setdefault(item.receiver, [])
            if len(taken) < limit:
                self._claimed[item.id] = (item.receiver, item.group_key)
                taken.append(item)
        return Enqueued(ids, {receiver: items for receiver, items in claimed.items() if items})

    def adopt_pending(self, older: str | Path) -> int:
        """Move the pending notifications of an outbox table in another SQLite file (where earlier
        versions kept it, inside the state file) into this one, then drop that table. Idempotent:
        a crash between the copy and the drop copies again, and the keys make the rows one."""
        older = Path(older)
        if not older.exists():
            return 0
        try:
            self._db.execute("ATTACH DATABASE ? AS older", (str(older),))
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"outbox {self.path}: cannot read {older}: {exc}") from None
        try:
            found = self._db.execute(
                "SELECT 1 FROM older.sqlite_master WHERE type = 'table' AND name = 'notify_outbox'"
            ).fetchone()
            if found is None:
                return 0
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                moved = self._db.execute(
                    "INSERT INTO notify_outbox (receiver, group_key, idempotency_key, payload, status, attempts,"
                    " enqueued_at, next_attempt_at, last_error) SELECT receiver, group_key, idempotency_key,"
                    " payload, status, attempts, enqueued_at, next_attempt_at, last_error"
                    " FROM older.notify_outbox WHERE status = 'pending' ORDER BY id"
                    " ON CONFLICT (receiver, idempotency_key) DO NOTHING"
                ).rowcount
            self._db.execute("DROP TABLE older.notify_outbox")
            return max(0, moved)
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"outbox {self.path}: cannot adopt {older}: {exc}") from None
        finally:
            self._db.execute("DETACH DATABASE older")

    def claim(self, receiver: str, now: float, limit: int) -> list[OutboxItem]:
        """Due items, oldest first: the head of each group only, and none of a group already claimed."""
        if limit <= 0:
            return []
        busy = self._busy(receiver)
        rows = self._query(
            "SELECT o.id, o.receiver, o.group_key, o.idempotency_key, o.payload, o.attempts, o.enqueued_at"
            " FROM notify_outbox o WHERE o.receiver = ? AND o.status = 'pending' AND o.next_attempt_at <= ?"
            " AND o.id = (SELECT MIN(p.id) FROM notify_outbox p WHERE p.receiver = o.receiver"
            " AND p.group_key = o.group_key AND p.status = 'pending')"
            " ORDER BY o.id",
            (receiver, now),
        )
        items: list[OutboxItem] = []
        for row in rows:
            item = OutboxItem(int(row[0]), row[1], row[2], row[3], bytes(row[4]), int(row[5]), float(row[6]))
            if item.group_key in busy:
                continue
            busy.add(item.group_key)
            self._claimed[item.id] = (item.receiver, item.group_key)
            items.append(item)
            if len(items) >= limit:
                break
        return items

    def release(self, ids: Iterable[int]) -> None:
        """Give back claims that were never sent (a cancelled delivery): they are due again at once."""
        for item_id in ids:
            self._claimed.pop(item_id, None)

    def mark_sent(self, item_id: int, now: float | None = None) -> None:
        self._finish(item_id, "sent", now, None)

    def mark_dead(self, item_id: int, now: float, error: str) -> None:
        """Dead-letter at once: the receiver refused the notification for good (a 4xx)."""
        self._finish(item_id, "dead", now, error)

    def mark_failed(self, item_id: int, now: float, retry_after: float | None, error: str) -> Status:
        """A retryable failure: schedule the next attempt, or dead-letter when the item is too old."""
        self._claimed.pop(item_id, None)
        row = self._query("SELECT attempts, enqueued_at, status FROM notify_outbox WHERE id = ?", (item_id,))
        if not row:
            raise OutboxError(f"outbox {self.path}: no item {item_id}")
        if row[0][2] != "pending":
            return row[0][2]  # type: ignore[no-any-return]
        attempts = int(row[0][0]) + 1
        if now - float(row[0][1]) >= self.policy.dead_letter_after:
            self._write(
                "UPDATE notify_outbox SET status = 'dead', attempts = ?, finished_at = ?, last_error = ? WHERE id = ?",
                (attempts, now, error, item_id),
            )
            return "dead"
        due = now + self.policy.delay(attempts, retry_after, self._rng)
        self._write(
            "UPDATE notify_outbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
            (attempts, due, error, item_id),
        )
        return "pending"

    def next_due(self, receiver: str) -> float | None:
        """When the earliest group head of `receiver` falls due (for the driver's timer). A group with
        a claim in flight is left out: its settlement, not a timer, makes its next row due."""
        busy = self._busy(receiver)
        rows = self._query(
            "SELECT o.group_key, o.next_attempt_at FROM notify_outbox o WHERE o.receiver = ? AND o.status = 'pending'"
            " AND o.id = (SELECT MIN(p.id) FROM notify_outbox p WHERE p.receiver = o.receiver"
            " AND p.group_key = o.group_key AND p.status = 'pending')",
            (receiver,),
        )
        return min((float(due) for group, due in rows if group not in busy), default=None)

    def depth(self, receiver: str) -> int:
        """Pending notifications of `receiver` (claimed ones included)."""
        row = self._query("SELECT COUNT(*) FROM notify_outbox WHERE receiver = ? AND status = 'pending'", (receiver,))
        return int(row[0][0])

    def counts(self) -> dict[tuple[str, str], int]:
        """Rows per (receiver, status), for a scrape-time metrics collector."""
        rows = self._query("SELECT receiver, status, COUNT(*) FROM notify_outbox GROUP BY receiver, status", ())
        return {(r[0], r[1]): int(r[2]) for r in rows}

    def last_error(self, item_id: int) -> str | None:
        row = self._query("SELECT last_error FROM notify_outbox WHERE id = ?", (item_id,))
        return None if not row else row[0][0]

    def status(self, item_id: int) -> Status | None:
        row = self._query("SELECT status FROM notify_outbox WHERE id = ?", (item_id,))
        return None if not row else row[0][0]

    def prune(self, now: float, keep_for: float) -> int:
        """Delete sent and dead rows finished more than `keep_for` seconds ago; returns how many."""
        return self._write(
            "DELETE FROM notify_outbox WHERE status != 'pending' AND COALESCE(finished_at, enqueued_at) <= ?",
            (now - keep_for,),
        )

    def checkpoint(self) -> None:
        """Copy the WAL back into the database without blocking writers (PASSIVE), on a connection
        of its own: call it from a thread other than the one that enqueues."""
        try:
            if self._checkpointer is None:
                self._checkpointer = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"outbox {self.path}: {exc}") from None

    def close(self) -> None:
        self._claimed.clear()
        self._db.close()
        if self._checkpointer is not None:
            self._checkpointer.close()

    def _busy(self, receiver: str) -> set[str]:
        return {group for rcv, group in self._claimed.values() if rcv == receiver}

    def _finish(self, item_id: int, status: Status, now: float | None, error: str | None) -> None:
        self._claimed.pop(item_id, None)
        self._write(
            "UPDATE notify_outbox SET status = ?, attempts = attempts + 1, finished_at = ?,"
            " last_error = COALESCE(?, last_error) WHERE id = ? AND status = 'pending'",
            (status, now, error, item_id),
        )

    def _query(self, sql: str, params: tuple[object, ...]) -> list[Any]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"outbox {self.path}: {exc}") from None

    def _write(self, sql: str, params: tuple[object, ...]) -> int:
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                return self._db.execute(sql, params).rowcount
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"outbox {self.path}: {exc}") from None
