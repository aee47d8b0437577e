"""FillLedger: which fills are live, so none is counted twice and a revoke undoes exactly one.

Held fills are kept per (venue, stream) in arrival order with a retention bound; the oldest are
forgotten first. The bound must stay far above any venue's replay window (Mango: 256 events).

A ledger restored from the state file holds most of its fills as FillChunks: the keys are known at
once (for dedupe), the fills stay encoded until a revoke or a checkpoint needs one, so a restart
with a million fills of history does not decode a million fills. A stored chunk's parts are
zlib-compressed, each inflated when first needed (keys when the stream is settled).
"""

from __future__ import annotations

import zlib
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice, repeat
from typing import TYPE_CHECKING, Union

import msgspec

from riskmon.events import FillReceived, FillSnapshot

if TYPE_CHECKING:
    from riskmon.engine.state_journal import StateJournal

StreamKey = tuple[str, str]  # (venue, stream)
# A held fill: decoded, or still encoded in the chunk it was restored from.
HeldFill = Union[FillReceived, "FillChunk"]
# One step of a stream's stored history: a fill added (decoded or encoded with its key) or the key of one dropped.
HistoryStep = Union["FillChunk", FillReceived, str]


@dataclass(slots=True)
class SnapshotMerge:
    new: list[FillReceived] = field(default_factory=list)
    duplicates: int = 0
    voided: list[FillReceived] = field(default_factory=list)


class FillLedger:
    def __init__(self, retention: int = 200_000) -> None:
        if retention < 1:
            raise ValueError("retention must be positive")
        self._retention = retention
        self._streams: dict[StreamKey, dict[str, HeldFill]] = {}
        # Restored history not replayed yet, per stream: a stream is settled when first touched
        # (or by settle_next() between events), so a restart need not index every key up front.
        self._unsettled: dict[StreamKey, list[HistoryStep]] = {}
        self.journal: StateJournal | None = None

    @property
    def retention(self) -> int:
        return self._retention

    def held(self, venue: str, stream: str) -> dict[str, HeldFill]:
        return self._stream((venue, stream))

    def get(self, venue: str, stream: str, fill_key: str) -> FillReceived | None:
        entry = self._stream((venue, stream)).get(fill_key)
        return None if entry is None else _decoded(entry, fill_key)

    def __len__(self) -> int:
        while self.settle_next():
            pass
        return sum(len(held) for held in self._streams.values())

    def _stream(self, stream: StreamKey) -> dict[str, HeldFill]:
        if self._unsettled and stream in self._unsettled:
            self._settle(stream, self._unsettled.pop(stream))
        held = self._streams.get(stream)
        if held is None:  # not setdefault: that would build a dict per fill to throw away
            held = self._streams[stream] = {}
        return held

    def record(self, fill: FillReceived) -> bool:
        """True when the fill is new; False for a duplicate that must not be applied."""
        held = self._stream((fill.venue, fill.stream))
        if fill.fill_key in held:
            return False
        held[fill.fill_key] = fill
        if self.journal is not None:
            self.journal.fills.append(fill)
        if len(held) > self._retention:
            # Not journaled: the store bounds its own copy by the same retention.
            del held[next(iter(held))]
        return True

    def revoke(self, venue: str, stream: str, fill_key: str) -> FillReceived | None:
        """Remove and return the held fill; None when it is not held (unknown, or already revoked)."""
        entry = self._stream((venue, stream)).pop(fill_key, None)
        if entry is None:
            return None
        if self.journal is not None:
            self.journal.fills.append((venue, stream, fill_key))
        return _decoded(entry, fill_key)

    def merge_snapshot(self, snapshot: FillSnapshot) -> SnapshotMerge:
        """Merge a venue's replay of recent fills; nothing already held is counted again.

        A held fill inside the snapshot's window that the snapshot lacks was voided while we
        were not listening (a fork missed during a disconnect), so it is removed and returned.
        Above the window's newest fill the snapshot speaks only if it is at least as recent as
        the fill (by `as_of`): a lagging failover server has simply not seen newer fills yet.
        """
        result = SnapshotMerge()
        held = self._stream((snapshot.venue, snapshot.stream))
        present = set()
        for fill in snapshot.fills:
            present.add(fill.fill_key)
            if self.record(fill):
                result.new.append(fill)
            else:
                result.duplicates += 1
        if snapshot.window_start is not None:
            missing = [
                key
                for key, entry in held.items()
                if key not in present and _in_window(snapshot, entry, key, snapshot.window_start)
            ]
            for key in missing:
                voided = self.revoke(snapshot.venue, snapshot.stream, key)
                if voided is not None:
                    result.voided.append(voided)
        return result

    def restore(self, history: Mapping[StreamKey, list[HistoryStep]]) -> None:
        """Take each stream's stored history (oldest first); it is replayed when the stream is
        first touched or by settle_next(), and then this ledger's retention applies."""
        for stream, steps in history.items():
            self._unsettled.setdefault(stream, []).extend(steps)

    def settle_next(self) -> bool:
        """Replay the next step (one sealed chunk at most) of the restored history; False when
        none is left. Small steps keep each pause of the event loop to a millisecond or two; a
        stream that is only partly replayed still counts as unsettled, so an event on it replays
        the rest first."""
        if not self._unsettled:
            return False
        stream, steps = next(iter(self._unsettled.items()))
        self._settle(stream, steps[:1])
        del steps[:1]  # a chunk holds thousands of fills; this shift is a few hundred pointers
        if not steps:
            del self._unsettled[stream]
        return True

    def _settle(self, stream: StreamKey, steps: list[HistoryStep]) -> None:
        held = self._streams.setdefault(stream, {})
        for step in steps:
            if isinstance(step, FillChunk):
                step.replay_into(held, self._retention)
            elif isinstance(step, str):
                held.pop(step, None)
            else:
                held.pop(step.fill_key, None)
                held[step.fill_key] = step
                _trim(held, self._retention)
        _trim(held, self._retention)


def _trim(held: dict[str, HeldFill], retention: int) -> None:
    excess = len(held) - retention
    if excess == 1:
        del held[next(iter(held))]
    elif excess > 0:
        for key in list(islice(held, excess)):
            del held[key]


def _decoded(entry: HeldFill, fill_key: str) -> FillReceived:
    return entry if isinstance(entry, FillReceived) else entry.fill(fill_key)


def _in_window(snapshot: FillSnapshot, entry: HeldFill, key: str, window_start: int) -> bool:
    if isinstance(entry, FillReceived):
        sequence, as_of = entry.sequence, entry.as_of
    elif entry.max_sequence < window_start:
        return False  # an older chunk: no need to index its keys
    else:
        sequence, as_of = entry.sequence(key), entry.as_of(key)
    if sequence < window_start:
        return False
    if snapshot.window_end is None or sequence <= snapshot.window_end:
        return True
    return snapshot.as_of is not None and as_of is not None and snapshot.as_of >= as_of


# --- stored form ---------------------------------------------------------------------------------

_NO_AS_OF = -(2**63)
# zlib's fastest level: a chunk's fills repeat their venue, desk, account, market and stream, so
# even this level shrinks them ~15x; zlib releases the GIL, so sealing a chunk does not hold the
# event loop, and a restart reads a twentieth of the bytes.
_ZLIB_LEVEL = 1


class _StoredFill(FillReceived, array_like=True, frozen=True, gc=False):
    """FillReceived as a msgpack array: field names are not repeated in every stored fill."""


_fill_decoder = msgspec.msgpack.Decoder(_StoredFill)
_encoder = msgspec.msgpack.Encoder()


def encode_fill(fill: FillReceived) -> bytes:
    return _encoder.encode(msgspec.structs.astuple(fill))


def decode_fill(body: bytes) -> FillReceived:
    return FillReceived(*msgspec.structs.astuple(_fill_decoder.decode(body)))


class _ChunkBody(msgspec.Struct, array_like=True, frozen=True):
    """A sealed chunk as stored. Each bytes field is zlib-compressed and inflated only when the
    ledger first needs it: keys when the chunk is replayed, sequences for a checkpoint's window,
    fills for a revoke. The counts let a restart check and use the chunk without inflating it."""

    steps: int
    max_sequence: int  # -1 for none
    plain: bool  # adds only, no key twice
    keys: bytes  # a msgpack array of the fill keys
    sequences: bytes  # array('q') per step
    as_of: bytes  # array('q') per step, _NO_AS_OF for None
    offsets: bytes  # array('q') of steps + 1 into `fills`; an empty slice is a drop
    fills: bytes  # encode_fill() of each added fill, concatenated


_chunk_decoder = msgspec.msgpack.Decoder(_ChunkBody)
_keys_decoder = msgspec.msgpack.Decoder(list[str])

# A stored step: (fill key, sequence, as_of, encode_fill() bytes, or None for a drop).
StoredStep = tuple[str, int, int | None, bytes | None]


def _int_array(compressed: bytes, length: int) -> array[int]:
    values = array("q", zlib.decompress(compressed))
    if len(values) != length:
        raise ValueError("fill chunk arrays disagree in length")
    return values


class FillChunk:
    """A run of one stream's ledger history as stored: fills added and keys dropped, in order.

    The ledger holds the chunk itself for every fill it added (no object per fill); a fill is
    decoded when a revoke or a checkpoint needs it.
    """

    __slots__ = ("_as_of", "_body", "_fills", "_index", "_keys", "_offsets", "_sequences", "max_sequence", "plain")

    def __init__(self, body: _ChunkBody) -> None:
        if body.steps < 0:
            raise ValueError("fill chunk with a negative step count")
        self._body = body
        self._keys: list[str] | None = None
        self._sequences: array[int] | None = None
        self._as_of: array[int] | None = None
        self._offsets: array[int] | None = None
        self._fills: bytes | None = None
        self._index: dict[str, int] | None = None
        self.plain = body.plain
        self.max_sequence = body.max_sequence

    @property
    def keys(self) -> list[str]:
        if self._keys is None:
            keys = _keys_decoder.decode(zlib.decompress(self._body.keys))
            if len(keys) != self._body.steps:
                raise ValueError("fill chunk keys disagree with its arrays in length")
            self._keys = keys
        return self._keys

    @classmethod
    def decode(cls, blob: bytes) -> FillChunk:
        return cls(_chunk_decoder.decode(blob))

    @classmethod
    def of_steps(cls, steps: Sequence[StoredStep]) -> FillChunk:
        """Stored steps held as a chunk, so their fills stay encoded until a revoke needs one."""
        return cls.decode(cls.encode(steps, level=0))

    @staticmethod
    def encode(steps: Sequence[StoredStep], *, level: int = _ZLIB_LEVEL) -> bytes:
        """The stored chunk; level 0 only frames the parts (for a chunk that is not stored)."""
        offsets = array("q", [0])
        plain = True
        for _key, _seq, _as_of, encoded in steps:
            if encoded is None:
                plain = False
            offsets.append(offsets[-1] + (len(encoded) if encoded is not None else 0))
        sequences = array("q", [s[1] for s in steps])
        as_of = array("q", [_NO_AS_OF if s[2] is None else s[2] for s in steps])
        fills = b"".join(s[3] for s in steps if s[3] is not None)
        keys = [s[0] for s in steps]
        plain = plain and len(set(keys)) == len(keys)
        body = _ChunkBody(
            len(steps),
            max(sequences, default=-1),
            plain,
            *(
                zlib.compress(part, level)
                for part in (_encoder.encode(keys), sequences.tobytes(), as_of.tobytes(), offsets.tobytes(), fills)
            ),
        )
        return _encoder.encode(body)

    def replay_into(self, held: dict[str, HeldFill], retention: int) -> None:
        """Replay the steps as the ledger took them: each add past `retention` forgets the oldest.

        A plain chunk (adds only, no key twice) whose keys none of the held fills has takes one
        bulk update and one trim for the same result. A key can be held already when a larger
        retention than the writer's keeps a fill the writer forgot and later recorded again.
        """
        keys = self.keys
        if self.plain and held.keys().isdisjoint(keys):
            held.update(zip(keys, repeat(self)))
            _trim(held, retention)
            return
        offsets = self._fill_offsets()
        for i, key in enumerate(keys):
            held.pop(key, None)
            if offsets[i + 1] != offsets[i]:
                held[key] = self
                _trim(held, retention)

    def _fill_offsets(self) -> array[int]:
        if self._offsets is None:
            self._offsets = _int_array(self._body.offsets, self._body.steps + 1)
        return self._offsets

    def _position(self, key: str) -> int:
        if self._index is None:
            # The last step of a key is the one that left it held.
            self._index = dict(zip(self.keys, range(len(self.keys)), strict=True))
        return self._index[key]

    def fill(self, key: str) -> FillReceived:
        i = self._position(key)
        offsets = self._fill_offsets()
        if self._fills is None:
            # Kept once inflated: a fork revokes a run of recent fills, which share a chunk or two.
            self._fills = zlib.decompress(self._body.fills)
            if len(self._fills) != offsets[-1]:
                raise ValueError("fill chunk fills disagree with their offsets")
        return decode_fill(self._fills[offsets[i] : offsets[i + 1]])

    def sequence(self, key: str) -> int:
        if self._sequences is None:
            self._sequences = _int_array(self._body.sequences, self._body.steps)
        return self._sequences[self._position(key)]

    def as_of(self, key: str) -> int | None:
        if self._as_of is None:
            self._as_of = _int_array(self._body.as_of, self._body.steps)
        value = self._as_of[self._position(key)]
        return None if value == _NO_AS_OF else value


def stored_step(step: FillReceived | tuple[str, str, str]) -> StoredStep:
    """A journaled ledger change as the store keeps it."""
    if isinstance(step, FillReceived):
        return (step.fill_key, step.sequence, step.as_of, encode_fill(step))
    return (step[2], 0, None, None)


class SeenKeys:
    """Event keys already applied per venue (liquidations, amendments), so a venue's repeat after a
    reconnect is dropped; the oldest are forgotten beyond `kept` per venue."""

    def __init__(self, kept: int) -> None:
        self._kept = kept
        self._seen: dict[str, dict[str, None]] = {}
        self.journal: StateJournal | None = None

    def first_sighting(self, venue: str, key: str) -> bool:
        """False for a key already seen on this venue."""
        seen = self._seen.setdefault(venue, {})
        if key in seen:
            return False
        seen[key] = None
        if self.journal is not None:
            self.journal.seen.append((venue, key, True))
        if len(seen) > self._kept:
            oldest = next(iter(seen))
            del seen[oldest]
            if self.journal is not None:
                self.journal.seen.append((venue, oldest, False))
        return True

    def keys(self, venue: str) -> list[str]:
        return list(self._seen.get(venue, ()))

    def venues(self) -> list[str]:
        return list(self._seen)

    def restore(self, seen: Mapping[str, Iterable[str]]) -> None:
        for venue, keys in seen.items():
            held = self._seen.setdefault(venue, {})
            held.update(dict.fromkeys(keys))
            for key in list(islice(held, max(0, len(held) - self._kept))):
                del held[key]
