"""A keyed, recency-ordered table of encoded entries, stored a chunk of entries per row.

Open orders and pending deadlines come by the hundred thousand: one row each made a restart
step SQLite and the decoder once per entry. Here a restart reads a few hundred chunk blobs and
decodes each in one call. The last entries written are rows of `<name>_tail` (a write touches
only its own entries); once the tail holds `chunk_size` entries it is sealed into one chunk.
An entry that is rewritten or deleted while in a sealed chunk leaves a dead position in it
(`<name>_keys` says where each sealed key lives); a chunk that is mostly dead is compacted in
place, so chunks keep their order and the table its recency order: chunks by id, then the tail.

Entries are opaque to this module: a codec joins encoded entries into one container (a msgpack
or JSON array) and splits one back. Runs inside the caller's transaction, on the caller's thread.
"""

# ruff: noqa: S608 - every statement is built from this module's own table names, never from input

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import msgspec

_T = TypeVar("_T")
Key = tuple[str, ...]

_positions = msgspec.json.Decoder(list[int])
_raw_msgpack = msgspec.msgpack.Decoder(list[msgspec.Raw])
_raw_json = msgspec.json.Decoder(list[msgspec.Raw])
_key_list = msgspec.msgpack.Decoder(list[bytes])
_NONE_DEAD = b"[]"


@dataclass(frozen=True, slots=True)
class ContainerCodec:
    """How entries of one encoding are joined into one array, and split back."""

    join: Callable[[list[bytes]], bytes]
    split: Callable[[bytes], list[bytes]]


def _msgpack_join(entries: list[bytes]) -> bytes:
    return b"\xdd" + struct.pack(">I", len(entries)) + b"".join(entries)


MSGPACK = ContainerCodec(_msgpack_join, lambda body: [bytes(raw) for raw in _raw_msgpack.decode(body)])
# JSON chunks stay readable by SQLite's json functions (a compatibility view can expand them).
JSON = ContainerCodec(
    lambda entries: b"[" + b",".join(entries) + b"]", lambda body: [bytes(raw) for raw in _raw_json.decode(body)]
)


def encode_key(key: Key) -> bytes:
    return msgspec.msgpack.encode(key)


@dataclass(frozen=True, slots=True)
class _Statements:
    """The SQL of one keyed table; the table names are the code's own constants, never input."""

    schema: tuple[str, ...]
    load_chunks: str
    load_tail: str
    count_tail: str
    find_sealed: str
    forget_sealed: str
    forget_tail: str
    add_tail: str
    chunk_counts: str
    drop_chunk: str
    mark_dead: str
    chunk_body: str
    compact: str
    move_sealed: str
    tail_in_order: str
    seal: str
    add_sealed: str
    clear_tail: str


def _statements(n: str) -> _Statements:
    return _Statements(
        schema=(
            # dead: a JSON array of the positions of entries rewritten or deleted since (SQLite reads it).
            # keys: the entries' keys in order, read only to compact the chunk (after body: not read to load).
            f"CREATE TABLE IF NOT EXISTS {n}_chunks (chunk_id INTEGER PRIMARY KEY, size INTEGER NOT NULL,"
            " live INTEGER NOT NULL, dead BLOB NOT NULL, body BLOB NOT NULL, keys BLOB NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {n}_tail (ord INTEGER PRIMARY KEY, key BLOB NOT NULL UNIQUE,"
            " body BLOB NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {n}_keys (key BLOB PRIMARY KEY, chunk_id INTEGER NOT NULL,"
            " pos INTEGER NOT NULL) WITHOUT ROWID",
        ),
        load_chunks=f"SELECT dead, body FROM {n}_chunks ORDER BY chunk_id",
        load_tail=f"SELECT body FROM {n}_tail ORDER BY ord",
        count_tail=f"SELECT COUNT(*) FROM {n}_tail",
        find_sealed=f"SELECT chunk_id, pos FROM {n}_keys WHERE key = ?",
        forget_sealed=f"DELETE FROM {n}_keys WHERE key = ?",
        forget_tail=f"DELETE FROM {n}_tail WHERE key = ?",
        add_tail=f"INSERT INTO {n}_tail (key, body) VALUES (?, ?)",
        chunk_counts=f"SELECT size, live, dead FROM {n}_chunks WHERE chunk_id = ?",
        drop_chunk=f"DELETE FROM {n}_chunks WHERE chunk_id = ?",
        mark_dead=f"UPDATE {n}_chunks SET live = ?, dead = ? WHERE chunk_id = ?",
        chunk_body=f"SELECT body, keys FROM {n}_chunks WHERE chunk_id = ?",
        compact=f"UPDATE {n}_chunks SET size = ?, live = ?, dead = ?, body = ?, keys = ? WHERE chunk_id = ?",
        move_sealed=f"UPDATE {n}_keys SET pos = ? WHERE key = ?",
        tail_in_order=f"SELECT key, body FROM {n}_tail ORDER BY ord",
        seal=f"INSERT INTO {n}_chunks (size, live, dead, body, keys) VALUES (?, ?, ?, ?, ?)",
        add_sealed=f"INSERT INTO {n}_keys (key, chunk_id, pos) VALUES (?, ?, ?)",
        clear_tail=f"DELETE FROM {n}_tail",
    )


class KeyedChunks:
    def __init__(self, name: str, codec: ContainerCodec, chunk_size: int = 1024) -> None:
        self.name = name
        self.chunks = f"{name}_chunks"
        self._sql = _statements(name)
        self._codec = codec
        self._chunk_size = chunk_size
        self._tail_count: int | None = None  # read when first needed; None again after a rollback

    def schema(self) -> tuple[str, ...]:
        return self._sql.schema

    def forget_counts(self) -> None:
        """The transaction rolled back: what is cached of the file may be ahead of it."""
        self._tail_count = None

    # --- load ------------------------------------------------------------------------------------

    def load(self, db: sqlite3.Connection, decode: Callable[[bytes], list[_T]]) -> list[_T]:
        """Every live entry, least recently written first; `decode` decodes one container."""
        out: list[_T] = []
        for dead, body in db.execute(self._sql.load_chunks):
            entries = decode(body)
            if dead != _NONE_DEAD:
                gone = set(_positions.decode(dead))
                entries = [entry for i, entry in enumerate(entries) if i not in gone]
            out.extend(entries)
        tail = [body for (body,) in db.execute(self._sql.load_tail)]
        if tail:
            out.extend(decode(self._codec.join(tail)))
        return out

    # --- write -----------------------------------------------------------------------------------

    def write(self, db: sqlite3.Connection, changes: Iterable[tuple[Key, bytes | None]]) -> None:
        """Apply (key, encoded entry, or None to delete) in order: a written key becomes the newest."""
        sql = self._sql
        if self._tail_count is None:
            self._tail_count = int(db.execute(sql.count_tail).fetchone()[0])
        dead: dict[int, list[int]] = {}
        for key, body in changes:
            packed = encode_key(key)
            sealed = db.execute(sql.find_sealed, (packed,)).fetchone()
            if sealed is not None:
                db.execute(sql.forget_sealed, (packed,))
                dead.setdefault(sealed[0], []).append(sealed[1])
            else:
                self._tail_count -= db.execute(sql.forget_tail, (packed,)).rowcount
            if body is not None:
                db.execute(sql.add_tail, (packed, body))
                self._tail_count += 1
        for chunk_id, positions in dead.items():
            self._mark_dead(db, chunk_id, positions)
        if self._tail_count >= self._chunk_size:
            self._seal(db)

    def _mark_dead(self, db: sqlite3.Connection, chunk_id: int, positions: list[int]) -> None:
        sql = self._sql
        size, live, dead = db.execute(sql.chunk_counts, (chunk_id,)).fetchone()
        live -= len(positions)
        if live <= 0:
            db.execute(sql.drop_chunk, (chunk_id,))
            return
        gone = set(_positions.decode(dead)) | set(positions)
        if live * 2 >= size:
            db.execute(sql.mark_dead, (live, msgspec.json.encode(sorted(gone)), chunk_id))
            return
        # Mostly dead: rewrite it in place with its live entries, so it keeps its place in the order.
        body, keys = db.execute(sql.chunk_body, (chunk_id,)).fetchone()
        entries = zip(_key_list.decode(keys), self._codec.split(body), strict=True)
        kept = [entry for i, entry in enumerate(entries) if i not in gone]
        db.execute(
            sql.compact,
            (
                len(kept),
                len(kept),
                _NONE_DEAD,
                self._codec.join([body for _, body in kept]),
                msgspec.msgpack.encode([key for key, _ in kept]),
                chunk_id,
            ),
        )
        db.executemany(sql.move_sealed, [(i, key) for i, (key, _) in enumerate(kept)])

    def _seal(self, db: sqlite3.Connection) -> None:
        """Move the whole tail, in order, into chunks of at most `chunk_size` entries."""
        sql = self._sql
        rows = db.execute(sql.tail_in_order).fetchall()
        for first in range(0, len(rows), self._chunk_size):
            part = rows[first : first + self._chunk_size]
            keys = [key for key, _ in part]
            body = self._codec.join([body for _, body in part])
            cursor = db.execute(sql.seal, (len(part), len(part), _NONE_DEAD, body, msgspec.msgpack.encode(keys)))
            db.executemany(sql.add_sealed, [(key, cursor.lastrowid, i) for i, key in enumerate(keys)])
        db.execute(sql.clear_tail)
        self._tail_count = 0
