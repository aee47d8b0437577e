"""The engine's books in SQLite, so a restart resumes exactly where the monitor stopped.

Same state file as the other stores (WAL, synchronous=NORMAL: a batch is durable once the WAL
reaches the disk at the next checkpoint or sync; what a power cut loses, the venues replay). One
write transaction per batch of StateChanges, deadlines included. Schema versioned in `state_meta`.

Fills are the bulk: each stream's recent fills are sealed in chunks and bounded by retention on
disk (riskmon.store.fill_tables).

Open orders and pending deadlines come by the hundred thousand: they are kept a chunk of entries
per row (riskmon.store.keyed_chunks), orders as compact msgpack arrays, deadlines as JSON arrays
behind a `watchdog_deadlines` view of the old row shape for other readers. Everything else is
small and kept as one row per key, Decimals as exact text.

Schema version 2 (this one) changed the fill chunks, orders and deadlines; a version 1 file is
migrated in place when opened (riskmon.store.state_format), in one transaction.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from riskmon.engine.exposure import PositionKey
from riskmon.engine.fills import FillChunk, StoredStep, StreamKey, stored_step
from riskmon.engine.restore import decode_quote
from riskmon.engine.state_journal import StateChanges, StateSnapshot
from riskmon.events import FillReceived, MarketStatusChanged
from riskmon.store.alert_states import (
    create_alert_state_tables,
    read_alert_states,
    read_alert_states_revision,
    write_alert_state_changes,
)
from riskmon.store.deadlines import StoreError
from riskmon.store.fill_tables import FillTables
from riskmon.store.state_format import (
    SCHEMA_VERSION,
    STATE_META,
    check_version,
    create_deadline_view,
    deadline_chunks,
    decode_deadlines,
    decode_orders,
    encode_deadline,
    encode_order,
    migrate,
    order_chunks,
)
from riskmon.watchdogs.journal import JournalKey, PersistedDeadline

log = logging.getLogger(__name__)

# The books' tables; the state_meta, fill, order and deadline tables are their own modules'.
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS positions (desk TEXT NOT NULL, venue TEXT NOT NULL, account TEXT NOT NULL,"
    " market TEXT NOT NULL, quantity TEXT NOT NULL, PRIMARY KEY (desk, venue, account, market)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS marks (venue TEXT NOT NULL, market TEXT NOT NULL, price TEXT NOT NULL,"
    " PRIMARY KEY (venue, market)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS reference_marks (underlying TEXT PRIMARY KEY, price TEXT NOT NULL) WITHOUT ROWID",
    # One row per position: its orders' and quotes' USD at risk, {source: [amount, pending]}.
    "CREATE TABLE IF NOT EXISTS risk (desk TEXT NOT NULL, venue TEXT NOT NULL, account TEXT NOT NULL,"
    " market TEXT NOT NULL, sources BLOB NOT NULL, PRIMARY KEY (desk, venue, account, market)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS quotes (ord INTEGER PRIMARY KEY, venue TEXT NOT NULL, quote_id TEXT NOT NULL,"
    " body BLOB NOT NULL, UNIQUE (venue, quote_id))",
    "CREATE TABLE IF NOT EXISTS seen_keys (venue TEXT NOT NULL, key TEXT NOT NULL, ord INTEGER NOT NULL,"
    " PRIMARY KEY (venue, key)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS market_statuses (venue TEXT NOT NULL, market TEXT NOT NULL, body BLOB NOT NULL,"
    " PRIMARY KEY (venue, market)) WITHOUT ROWID",
)

_encoder = msgspec.msgpack.Encoder()
_status_decoder = msgspec.msgpack.Decoder(MarketStatusChanged)
_risk_decoder = msgspec.msgpack.Decoder(dict[str, tuple[Decimal, bool]])
_S = TypeVar("_S")
_T = TypeVar("_T")


class StateStore:
    def __init__(self, path: str | Path, fill_retention: int = 200_000) -> None:
        self.path = Path(path)
        self._fills = FillTables(fill_retention)
        self._seen_ord: int | None = None  # the next seen_keys.ord, once read
        self._orders = order_chunks()
        self._deadlines = deadline_chunks()
        try:
            # Written from one worker thread at a time (the runtime serialises calls).
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                older = check_version(self._db, self.path)
                for statement in (
                    STATE_META,
                    *self._fills.schema(),
                    *_SCHEMA,
                    *self._orders.schema(),
                    *self._deadlines.schema(),
                ):
                    self._db.execute(statement)
                create_alert_state_tables(self._db)
                migrate(self._db, older, self._orders, self._deadlines, self.path)
                create_deadline_view(self._db)
        except (sqlite3.DatabaseError, StoreError) as exc:
            self._db.close()
            raise exc if isinstance(exc, StoreError) else self._error(exc) from None

    def _error(self, exc: BaseException | str, table: str | None = None) -> StoreError:
        where = f" (table {table})" if table else ""
        return StoreError(f"state file {self.path}{where}: {exc}")

    # --- load ------------------------------------------------------------------------------------

    def load(self) -> StateSnapshot:
        """Everything stored. A part that cannot be read fails the load naming its table: a
        partial ledger would count a replayed fill twice, so none beats a wrong one."""
        try:
            return self._load()
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None
        except _Unreadable as exc:
            raise self._error(exc.reason, exc.table) from None

    def _load(self) -> StateSnapshot:
        snapshot = StateSnapshot()
        snapshot.fills = self._fills.load(
            self._db,
            lambda body: _decoded("fill_chunks", FillChunk.decode, body),
            lambda tail: _decoded("fill_tail", FillChunk.of_steps, tail),
        )
        query = self._db.execute
        snapshot.positions = {
            PositionKey(desk, venue, account, market): _decimal("positions", quantity)
            for desk, venue, account, market, quantity in query("SELECT * FROM positions")
        }
        snapshot.marks = {
            (venue, market): _decimal("marks", price) for venue, market, price in query("SELECT * FROM marks")
        }
        snapshot.reference_marks = {
            name: _decimal("reference_marks", price) for name, price in query("SELECT * FROM reference_marks")
        }
        snapshot.risk = {
            PositionKey(desk, venue, account, market): _decoded("risk", _risk_decoder.decode, sources)
            for desk, venue, account, market, sources in query("SELECT * FROM risk")
        }
        snapshot.orders = self._orders.load(self._db, lambda body: _decoded(self._orders.chunks, decode_orders, body))
        snapshot.quotes = [
            _decoded("quotes", decode_quote, body) for (body,) in query("SELECT body FROM quotes ORDER BY ord")
        ]
        for venue, key in query("SELECT venue, key FROM seen_keys ORDER BY ord"):
            snapshot.seen.setdefault(venue, []).append(key)
        snapshot.statuses = [
            _decoded("market_statuses", _status_decoder.decode, body)
            for (body,) in query("SELECT body FROM market_statuses")
        ]
        snapshot.deadlines = self._load_deadlines()
        snapshot.alerts = read_alert_states(self._db, self.path)
        return snapshot

    def alerts_revision(self) -> int:
        """The revision the stored alert states are as of (riskmon.store.alert_states)."""
        try:
            return read_alert_states_revision(self._db)
        except sqlite3.DatabaseError as exc:
            raise self._error(exc, "alert_states_revision") from None

    def load_deadlines(self) -> list[PersistedDeadline]:
        """The pending deadlines alone (what load() reads of them)."""
        try:
            return self._load_deadlines()
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None

    def _load_deadlines(self) -> list[PersistedDeadline]:
        return self._deadlines.load(self._db, lambda body: decode_deadlines(body, self.path))

    # --- write -----------------------------------------------------------------------------------

    def write(
        self,
        changes: StateChanges,
        deadlines: Mapping[JournalKey, PersistedDeadline | None] | None = None,
        *,
        alerts_revision: int | None = None,
    ) -> None:
        """Apply one batch in a single transaction; `alerts_revision`: the revision its alert states
        are as of (riskmon.store.alert_states), None to leave the stored one."""
        if not changes and not deadlines and alerts_revision is None:
            return
        steps: dict[StreamKey, list[StoredStep]] = {}
        for step in changes.fills:
            key = (step.venue, step.stream) if isinstance(step, FillReceived) else (step[0], step[1])
            steps.setdefault(key, []).append(stored_step(step))
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._fills.write(self._db, steps)
                self._write_books(changes)
                if deadlines:
                    self._deadlines.write(
                        self._db, ((key, None if r is None else encode_deadline(r)) for key, r in deadlines.items())
                    )
                write_alert_state_changes(self._db, changes.alerts, alerts_revision)
        except BaseException as exc:
            self._seen_ord = None  # maybe ahead of the rolled-back file: re-read
            self._fills.forget_counts()
            self._orders.forget_counts()
            self._deadlines.forget_counts()
            if isinstance(exc, sqlite3.DatabaseError):
                raise self._error(exc) from None
            raise

    def _write_books(self, changes: StateChanges) -> None:
        db = self._db
        if changes.positions:
            db.executemany(
                "INSERT OR REPLACE INTO positions VALUES (?, ?, ?, ?, ?)",
                [(*key, str(quantity)) for key, quantity in changes.positions.items()],
            )
        if changes.marks:
            db.executemany(
                "INSERT OR REPLACE INTO marks VALUES (?, ?, ?)", [(*key, str(p)) for key, p in changes.marks.items()]
            )
        if changes.reference_marks:
            db.executemany(
                "INSERT OR REPLACE INTO reference_marks VALUES (?, ?)",
                [(name, str(p)) for name, p in changes.reference_marks.items()],
            )
        _upsert(
            db,
            "risk",
            "DELETE FROM risk WHERE desk = ? AND venue = ? AND account = ? AND market = ?",
            "INSERT OR REPLACE INTO risk VALUES (?, ?, ?, ?, ?)",
            ((key, (_encoder.encode(sources),) if sources else None) for key, sources in changes.risk.items()),
        )
        if changes.orders:
            self._orders.write(
                db, ((key, None if order is None else encode_order(order)) for key, order in changes.orders.items())
            )
        _upsert(
            db,
            "quotes",
            "DELETE FROM quotes WHERE venue = ? AND quote_id = ?",
            "INSERT OR REPLACE INTO quotes (venue, quote_id, body) VALUES (?, ?, ?)",
            ((key, None if body is None else (body,)) for key, body in changes.quotes.items()),
        )
        if changes.seen:
            last: dict[tuple[str, str], bool] = {}
            for venue, key, kept in changes.seen:
                last.pop((venue, key), None)
                last[(venue, key)] = kept
            if self._seen_ord is None:
                self._seen_ord = int(db.execute("SELECT COALESCE(MAX(ord), -1) + 1 FROM seen_keys").fetchone()[0])
            first = self._seen_ord
            rows = [(venue_key, (first + i,) if kept else None) for i, (venue_key, kept) in enumerate(last.items())]
            self._seen_ord = first + len(rows)
            _upsert(
                db,
                "seen_keys",
                "DELETE FROM seen_keys WHERE venue = ? AND key = ?",
                "INSERT OR REPLACE INTO seen_keys VALUES (?, ?, ?)",
                rows,
            )
        if changes.statuses:
            db.executemany(
                "INSERT OR REPLACE INTO market_statuses VALUES (?, ?, ?)",
                [(*key, _encoder.encode(status)) for key, status in changes.statuses.items()],
            )

    def close(self) -> None:
        self._db.close()


def _upsert(
    db: sqlite3.Connection,
    table: str,
    delete: str,
    insert: str,
    rows: Iterable[tuple[tuple[Any, ...], tuple[Any, ...] | None]],
) -> None:
    """(key, values or None to delete) rows, in order: deletes first, then inserts in the given order."""
    deletes: list[tuple[Any, ...]] = []
    inserts: list[tuple[Any, ...]] = []
    for key, values in rows:
        if values is None:
            deletes.append(key)
        else:
            inserts.append((*key, *values))
    if deletes:
        db.executemany(delete, deletes)
    if inserts:
        db.executemany(insert, inserts)


class _Unreadable(Exception):
    def __init__(self, table: str, reason: str) -> None:
        super().__init__(table, reason)
        self.table = table
        self.reason = reason


def _decoded(table: str, decode: Callable[[_S], _T], body: _S) -> _T:
    try:
        return decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError) as exc:
        # The decoder's words, never the row's contents.
        raise _Unreadable(table, f"a stored row cannot be read: {type(exc).__name__}") from None


def _decimal(table: str, text: str) -> Decimal:
    try:
        return Decimal(text)
    except (InvalidOperation, TypeError, ValueError):
        raise _Unreadable(table, "a stored amount is not a decimal") from None


__all__ = ["SCHEMA_VERSION", "StateStore", "StoreError"]
