"""How the state file encodes open orders and pending deadlines, and how an older file is migrated.

Version 1 kept one row per order (a msgpack map), one row per deadline (`watchdog_deadlines`,
its data as JSON text) and uncompressed fill chunks. Version 2 keeps orders and deadlines a chunk
of entries per row (riskmon.store.keyed_chunks): an order as a msgpack array (its fields in
declaration order, no names), a deadline as a JSON array [kind, venue, subject, due, data], so
that a `watchdog_deadlines` view can show other readers (riskmon.store.deadlines, an operator's
sqlite3 shell) the rows they know. Fill chunks compress their parts (riskmon.engine.fills).

A version 1 file is migrated in place, inside the transaction that opens it: a restarted monitor
must keep its ledger (or a replayed fill counts twice) and its open orders' watchdogs.
"""

from __future__ import annotations

import logging
import sqlite3
from array import array
from pathlib import Path
from typing import cast

import msgspec

from riskmon.engine.fills import FillChunk, StoredStep
from riskmon.engine.state_journal import StoredOrder
from riskmon.events import OrderUpdate
from riskmon.store.deadlines import StoreError, read_deadlines
from riskmon.store.keyed_chunks import JSON, MSGPACK, KeyedChunks
from riskmon.watchdogs.journal import PersistedDeadline

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
STATE_META = "CREATE TABLE IF NOT EXISTS state_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID"


class _CompactUpdate(OrderUpdate, array_like=True, frozen=True, gc=False):
    """OrderUpdate as a msgpack array."""


class _CompactOrder(StoredOrder, array_like=True, frozen=True, gc=False):
    update: _CompactUpdate


class _CompactDeadline(PersistedDeadline, array_like=True, frozen=True, gc=False):
    """PersistedDeadline as a JSON array."""


_msgpack = msgspec.msgpack.Encoder()
_json = msgspec.json.Encoder()
_orders_decoder = msgspec.msgpack.Decoder(list[_CompactOrder])
_deadlines_decoder = msgspec.json.Decoder(list[_CompactDeadline])
_deadline_decoder = msgspec.json.Decoder(_CompactDeadline)


def order_chunks() -> KeyedChunks:
    """Orders by (venue, order id), least recently moved first: the OrderBook's recency order."""
    return KeyedChunks("order", MSGPACK)


def deadline_chunks() -> KeyedChunks:
    """Deadlines by (kind, venue, subject)."""
    return KeyedChunks("deadline", JSON)


def encode_order(order: StoredOrder) -> bytes:
    return _msgpack.encode((msgspec.structs.astuple(order.update), order.newest_sequence, order.filled))


def decode_orders(body: bytes) -> list[StoredOrder]:
    """One chunk's orders. Their updates are a subclass of OrderUpdate: the OrderBook keeps its own
    copy of what it needs (riskmon.engine.trading.kept_update), so none is converted here."""
    return cast(list[StoredOrder], _orders_decoder.decode(body))


def encode_deadline(record: PersistedDeadline) -> bytes:
    return _json.encode((record.kind, record.venue, record.subject, record.due, record.data))


def decode_deadlines(body: bytes, path: Path) -> list[PersistedDeadline]:
    """One chunk's deadlines; one that cannot be read is skipped with its reason, as a row was."""
    try:
        return cast(list[PersistedDeadline], _deadlines_decoder.decode(body))
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    try:
        entries = JSON.split(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.warning("state file %s: skipped a chunk of deadlines that cannot be read: %s", path, exc)
        return []
    records: list[PersistedDeadline] = []
    for position, entry in enumerate(entries):
        try:
            records.append(_deadline_decoder.decode(entry))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            # msgspec's words name the position and the expected type, never the stored value.
            log.warning("state file %s: skipped deadline %d of a chunk: %s", path, position, exc)
    return records


_DEADLINE_VIEW = """
CREATE VIEW IF NOT EXISTS watchdog_deadlines (kind, venue, subject, due, data) AS
SELECT json_extract(e.value, '$[0]'), json_extract(e.value, '$[1]'), json_extract(e.value, '$[2]'),
    json_extract(e.value, '$[3]'), json_extract(e.value, '$[4]')
FROM deadline_chunks AS c, json_each(CAST(c.body AS TEXT)) AS e
WHERE e.key NOT IN (SELECT value FROM json_each(CAST(c.dead AS TEXT)))
UNION ALL
SELECT json_extract(t.entry, '$[0]'), json_extract(t.entry, '$[1]'), json_extract(t.entry, '$[2]'),
    json_extract(t.entry, '$[3]'), json_extract(t.entry, '$[4]')
FROM (SELECT CAST(body AS TEXT) AS entry FROM deadline_tail) AS t
"""


def create_deadline_view(db: sqlite3.Connection) -> None:
    """The deadlines as version 1 rows (kind, venue, subject, due, data), read-only."""
    db.execute(_DEADLINE_VIEW)


# --- migration ------------------------------------------------------------------------------------


class _ChunkBodyV1(msgspec.Struct, array_like=True, frozen=True):
    keys: bytes
    plain: bool
    sequences: bytes
    as_of: bytes
    offsets: bytes
    fills: bytes


_NO_AS_OF_V1 = -(2**63)
_chunk_v1 = msgspec.msgpack.Decoder(_ChunkBodyV1)
_keys_v1 = msgspec.msgpack.Decoder(list[str])
_order_v1 = msgspec.msgpack.Decoder(StoredOrder)


def check_version(db: sqlite3.Connection, path: Path) -> int | None:
    """Stamp a new file; the version of an older one that must be migrated (None: nothing to do)."""
    exists = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'state_meta'").fetchone()
    row = db.execute("SELECT value FROM state_meta WHERE name = 'schema_version'").fetchone() if exists else None
    if row is None:
        db.execute(STATE_META)
        db.execute("INSERT INTO state_meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        return None
    if row[0] == str(SCHEMA_VERSION):
        return None
    if row[0] == "1":
        log.warning("state file %s: migrating schema version 1 to %d", path, SCHEMA_VERSION)
        db.execute("UPDATE state_meta SET value = ? WHERE name = 'schema_version'", (str(SCHEMA_VERSION),))
        return 1
    raise StoreError(
        f"state file {path}: schema version {row[0]}, but this riskmon reads version {SCHEMA_VERSION};"
        " move the file aside to start from empty state"
    )


def migrate(db: sqlite3.Connection, older: int | None, orders: KeyedChunks, deadlines: KeyedChunks, path: Path) -> None:
    """Bring the file to this version inside the caller's transaction."""
    try:
        if older == 1:
            _migrate_orders(db, orders)
            _migrate_fill_chunks(db)
        if _is_table(db, "watchdog_deadlines"):  # version 1, or a file a DeadlineStore created
            records = read_deadlines(db, path)
            deadlines.write(db, ((record.key, encode_deadline(record)) for record in records))
            db.execute("DROP TABLE watchdog_deadlines")
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        raise StoreError(
            f"state file {path}: cannot migrate it: a stored row cannot be read: {type(exc).__name__}"
        ) from None


def _is_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def _migrate_orders(db: sqlite3.Connection, orders: KeyedChunks) -> None:
    if not _is_table(db, "orders"):
        return
    rows = db.execute("SELECT venue, order_id, body FROM orders ORDER BY ord").fetchall()
    orders.write(db, (((venue, order_id), encode_order(_order_v1.decode(body))) for venue, order_id, body in rows))
    db.execute("DROP TABLE orders")


def _migrate_fill_chunks(db: sqlite3.Connection) -> None:
    for chunk_id, body in db.execute("SELECT chunk_id, body FROM fill_chunks").fetchall():
        old = _chunk_v1.decode(body)
        keys = _keys_v1.decode(old.keys)
        sequences, as_of, offsets = (array("q", part) for part in (old.sequences, old.as_of, old.offsets))
        if not len(keys) == len(sequences) == len(as_of) == len(offsets) - 1:
            raise ValueError("fill chunk arrays disagree in length")
        steps: list[StoredStep] = [
            (
                key,
                sequences[i],
                None if as_of[i] == _NO_AS_OF_V1 else as_of[i],
                old.fills[offsets[i] : offsets[i + 1]] if offsets[i + 1] != offsets[i] else None,
            )
            for i, key in enumerate(keys)
        ]
        db.execute("UPDATE fill_chunks SET body = ? WHERE chunk_id = ?", (FillChunk.encode(steps), chunk_id))
