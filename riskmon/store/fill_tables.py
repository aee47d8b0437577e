"""The fill ledger's tables in the state file: each venue stream's recent fills, bounded by retention.

Fills are the bulk of the state file: a stream's recent ledger steps are rows of `fill_tail`;
every min(4096, retention) steps they are sealed into one FillChunk row, so a restart reads a few
hundred blobs instead of a million rows and keeps the fills encoded (riskmon.engine.fills). The
retention bound holds on disk: the oldest chunks of a stream go while the newer ones still hold
`retention` live fills. Each chunk's parts are zlib-compressed and inflated when the ledger needs them.

Runs inside the state store's transaction, on its thread (riskmon.store.state); decoding a stored
row is the caller's, so a row that cannot be read is reported as every other table's is.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from riskmon.engine.fills import FillChunk, HistoryStep, StoredStep, StreamKey

__all__ = ["FillTables"]

_CHUNK_STEPS = 4096

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS fill_streams (stream_id INTEGER PRIMARY KEY, venue TEXT NOT NULL,"
    " stream TEXT NOT NULL, UNIQUE (venue, stream))",
    "CREATE TABLE IF NOT EXISTS fill_chunks (chunk_id INTEGER PRIMARY KEY, stream_id INTEGER NOT NULL,"
    " net INTEGER NOT NULL, body BLOB NOT NULL)",
    # body NULL: the step dropped the fill (revoked, or voided by a checkpoint).
    "CREATE TABLE IF NOT EXISTS fill_tail (stream_id INTEGER NOT NULL, ord INTEGER NOT NULL, fill_key TEXT NOT NULL,"
    " sequence INTEGER NOT NULL, as_of INTEGER, body BLOB, PRIMARY KEY (stream_id, ord)) WITHOUT ROWID",
)


@dataclass(slots=True)
class _Stream:
    """What the store must know of a stream's stored fills to append and bound them."""

    stream_id: int
    chunks: deque[tuple[int, int]] = field(default_factory=deque)  # (chunk_id, live fills it adds), oldest first
    chunked_net: int = 0
    tail: list[StoredStep] = field(default_factory=list)
    # Live fills the tail adds: kept as it grows, since summing it afresh on every write made each
    # write cost O(tail) (up to 4096 steps) however few fills it brought.
    tail_net: int = 0
    next_ord: int = 0


class FillTables:
    def __init__(self, retention: int) -> None:
        self._retention = retention
        self._chunk_steps = max(1, min(_CHUNK_STEPS, retention))
        self._streams: dict[StreamKey, _Stream] | None = None  # read on first use

    def schema(self) -> tuple[str, ...]:
        return _SCHEMA

    def forget_counts(self) -> None:
        """After a rolled-back write: what is held may be ahead of the file, so re-read it."""
        self._streams = None

    def load(
        self,
        db: sqlite3.Connection,
        decode_chunk: Callable[[bytes], FillChunk],
        decode_tail: Callable[[list[StoredStep]], FillChunk],
    ) -> dict[StreamKey, list[HistoryStep]]:
        """Every stream's stored steps, oldest first: its sealed chunks, then its tail as one more."""
        streams = self._streams = self._read_streams(db)
        by_id = {stream.stream_id: key for key, stream in streams.items()}
        fills: dict[StreamKey, list[HistoryStep]] = {key: [] for key in streams}
        for stream_id, body in db.execute("SELECT stream_id, body FROM fill_chunks ORDER BY chunk_id"):
            fills[by_id[stream_id]].append(decode_chunk(body))
        for key, stream in streams.items():
            if stream.tail:
                # Held as one chunk, as the sealed ones: a restart does not decode thousands of fills.
                fills[key].append(decode_tail(stream.tail))
        return fills

    def _read_streams(self, db: sqlite3.Connection) -> dict[StreamKey, _Stream]:
        streams: dict[StreamKey, _Stream] = {}
        by_id: dict[int, _Stream] = {}
        for stream_id, venue, name in db.execute("SELECT stream_id, venue, stream FROM fill_streams"):
            by_id[stream_id] = streams[(venue, name)] = _Stream(stream_id)
        for chunk_id, stream_id, net in db.execute(
            "SELECT chunk_id, stream_id, net FROM fill_chunks ORDER BY chunk_id"
        ):
            stream = by_id[stream_id]
            stream.chunks.append((chunk_id, net))
            stream.chunked_net += net
        tail = "SELECT stream_id, ord, fill_key, sequence, as_of, body FROM fill_tail ORDER BY stream_id, ord"
        for stream_id, ordinal, fill_key, sequence, as_of, body in db.execute(tail):
            stream = by_id[stream_id]
            stream.tail.append((fill_key, sequence, as_of, body))
            stream.tail_net += 1 if body is not None else -1
            stream.next_ord = ordinal + 1
        return streams

    def write(self, db: sqlite3.Connection, steps: Mapping[StreamKey, list[StoredStep]]) -> None:
        if not steps:
            return
        if self._streams is None:
            self._streams = self._read_streams(db)
        for key, new in steps.items():
            stream = self._streams.get(key)
            if stream is None:
                cursor = db.execute("INSERT INTO fill_streams (venue, stream) VALUES (?, ?)", key)
                stream = self._streams[key] = _Stream(_row_id(cursor))
            # The stream's tail is extended in place: a failed write re-reads every stream (forget_counts).
            tail = stream.tail
            tail_net = stream.tail_net + _net(new)
            if len(tail) + len(new) >= self._chunk_steps:
                had_tail = bool(tail)
                tail += new
                cursor = db.execute(
                    "INSERT INTO fill_chunks (stream_id, net, body) VALUES (?, ?, ?)",
                    (stream.stream_id, tail_net, FillChunk.encode(tail)),
                )
                if had_tail:
                    db.execute("DELETE FROM fill_tail WHERE stream_id = ?", (stream.stream_id,))
                stream.chunks.append((_row_id(cursor), tail_net))
                stream.chunked_net += tail_net
                stream.tail = []
                stream.tail_net = 0
            else:
                first = stream.next_ord
                db.executemany(
                    "INSERT INTO fill_tail (stream_id, ord, fill_key, sequence, as_of, body) VALUES (?, ?, ?, ?, ?, ?)",
                    [(stream.stream_id, first + i, *step) for i, step in enumerate(new)],
                )
                stream.next_ord = first + len(new)
                tail += new
                stream.tail_net = tail_net
            self._bound(db, stream)

    def _bound(self, db: sqlite3.Connection, stream: _Stream) -> None:
        """Drop the oldest chunks while the newer steps alone still hold `retention` live fills.

        A newer step can drop at most one fill, so adds minus drops after a point is a floor on
        the live fills after it; trimming to exactly `retention` is then the restore's job.
        """
        live = stream.chunked_net + stream.tail_net
        gone: list[tuple[int]] = []
        while stream.chunks and live - stream.chunks[0][1] >= self._retention:
            chunk_id, net = stream.chunks.popleft()
            stream.chunked_net -= net
            live -= net
            gone.append((chunk_id,))
        if gone:
            db.executemany("DELETE FROM fill_chunks WHERE chunk_id = ?", gone)


def _net(steps: Iterable[StoredStep]) -> int:
    return sum(1 if step[3] is not None else -1 for step in steps)


def _row_id(cursor: sqlite3.Cursor) -> int:
    if cursor.lastrowid is None:
        raise sqlite3.DatabaseError("no row id after an insert")
    return cursor.lastrowid
