"""KeyedChunks: whatever mix of writes, rewrites and deletes in whatever batches, the table loads
exactly the live entries in recency order (the last written last), through tail sealing, dead
positions, in-place compaction, a reopened file and a rolled-back transaction."""

from __future__ import annotations

import random
import sqlite3
from collections import OrderedDict
from contextlib import closing
from pathlib import Path

import msgspec
import pytest

from riskmon.store.keyed_chunks import JSON, MSGPACK, ContainerCodec, KeyedChunks

_strings = msgspec.msgpack.Decoder(list[str])
_json_strings = msgspec.json.Decoder(list[str])


def opened(path: Path, table: KeyedChunks) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    for statement in table.schema():
        db.execute(statement)
    return db


def write(db: sqlite3.Connection, table: KeyedChunks, batch: list[tuple[tuple[str, ...], bytes | None]]) -> None:
    with db:
        db.execute("BEGIN IMMEDIATE")
        table.write(db, batch)


def loaded(db: sqlite3.Connection, table: KeyedChunks, codec: ContainerCodec) -> list[str]:
    decode = _strings.decode if codec is MSGPACK else _json_strings.decode
    return table.load(db, decode)


def encoded(codec: ContainerCodec, value: str) -> bytes:
    return msgspec.msgpack.encode(value) if codec is MSGPACK else msgspec.json.encode(value)


@pytest.mark.parametrize("codec", [MSGPACK, JSON], ids=["msgpack", "json"])
@pytest.mark.parametrize("seed", range(8))
def test_loads_exactly_the_live_entries_in_recency_order(tmp_path: Path, codec: ContainerCodec, seed: int) -> None:
    rng = random.Random(seed)
    table = KeyedChunks("t", codec, chunk_size=rng.choice([1, 3, 8]))
    db = opened(tmp_path / "state.db", table)
    model: OrderedDict[tuple[str, str], str] = OrderedDict()
    universe = [("v", f"k{i}") for i in range(40)]
    for step in range(rng.randrange(20, 60)):
        batch: dict[tuple[str, str], bytes | None] = {}
        for _ in range(rng.randrange(1, 12)):
            key = rng.choice(universe)
            batch.pop(key, None)  # moved to the end, as the journal orders a batch
            if rng.random() < 0.3:
                batch[key] = None
                model.pop(key, None)
            else:
                value = f"{key[1]}@{step}"
                batch[key] = encoded(codec, value)
                model.pop(key, None)
                model[key] = value
        write(db, table, list(batch.items()))
        assert loaded(db, table, codec) == list(model.values())
    db.close()
    reopened = KeyedChunks("t", codec, chunk_size=3)  # counts re-read from the file
    db = opened(tmp_path / "state.db", reopened)
    assert loaded(db, reopened, codec) == list(model.values())
    write(db, reopened, [(("v", "new"), encoded(codec, "new"))])
    assert loaded(db, reopened, codec) == [*model.values(), "new"]
    db.close()


def test_a_mostly_dead_chunk_is_compacted_in_place(tmp_path: Path) -> None:
    table = KeyedChunks("t", MSGPACK, chunk_size=4)
    db = opened(tmp_path / "state.db", table)
    write(db, table, [(("v", k), encoded(MSGPACK, k)) for k in "abcdefgh"])  # two sealed chunks
    write(db, table, [(("v", "a"), None)])  # one dead of four: marked, not rewritten
    assert db.execute("SELECT size, live, dead FROM t_chunks ORDER BY chunk_id").fetchall() == [
        (4, 3, b"[0]"),
        (4, 4, b"[]"),
    ]
    write(db, table, [(("v", "b"), None), (("v", "c"), encoded(MSGPACK, "c2"))])  # one live of four left
    assert db.execute("SELECT size, live, dead FROM t_chunks ORDER BY chunk_id").fetchall() == [
        (1, 1, b"[]"),
        (4, 4, b"[]"),
    ]
    assert loaded(db, table, MSGPACK) == ["d", "e", "f", "g", "h", "c2"]
    write(db, table, [(("v", "d"), None)])  # the last live entry: the chunk goes
    assert db.execute("SELECT COUNT(*) FROM t_chunks").fetchone() == (1,)
    assert loaded(db, table, MSGPACK) == ["e", "f", "g", "h", "c2"]
    db.close()


def test_a_rolled_back_batch_leaves_no_trace(tmp_path: Path) -> None:
    table = KeyedChunks("t", MSGPACK, chunk_size=2)
    db = opened(tmp_path / "state.db", table)
    write(db, table, [(("v", "a"), encoded(MSGPACK, "a"))])

    def failing_batch() -> None:
        with db:
            db.execute("BEGIN IMMEDIATE")
            table.write(db, [(("v", "b"), encoded(MSGPACK, "b")), (("v", "c"), encoded(MSGPACK, "c"))])
            raise RuntimeError("the disk went away")

    with pytest.raises(RuntimeError):
        failing_batch()
    table.forget_counts()
    assert loaded(db, table, MSGPACK) == ["a"]
    write(db, table, [(("v", "d"), encoded(MSGPACK, "d"))])  # seals a and d: the count was re-read
    assert db.execute("SELECT COUNT(*) FROM t_tail").fetchone() == (0,)
    assert loaded(db, table, MSGPACK) == ["a", "d"]
    db.close()


def test_sqlite_reads_json_chunks_without_riskmon(tmp_path: Path) -> None:
    table = KeyedChunks("t", JSON, chunk_size=2)
    path = tmp_path / "state.db"
    db = opened(path, table)
    write(db, table, [(("v", k), encoded(JSON, k)) for k in "abc"])
    write(db, table, [(("v", "a"), None)])
    db.close()
    with closing(sqlite3.connect(path)) as raw:
        live = raw.execute(
            "SELECT e.value FROM t_chunks AS c, json_each(CAST(c.body AS TEXT)) AS e"
            " WHERE e.key NOT IN (SELECT value FROM json_each(CAST(c.dead AS TEXT)))"
        ).fetchall()
    assert live == [("b",), ("c",)]  # both chunks sealed; a is a dead position of the first
