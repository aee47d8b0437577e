"""StateStore: every kind of book state round-trips through a real SQLite file; the fill history
is bounded on disk by the retention and restores to exactly the ledger that wrote it; a torn or
corrupt file or a newer schema is a clear error, and the monitor then runs without persistence."""

from __future__ import annotations

import logging
import random
import sqlite3
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from riskmon.engine.exposure import PositionKey
from riskmon.engine.fills import FillChunk, FillLedger
from riskmon.engine.restore import decode_quote, encode_quote
from riskmon.engine.state_journal import StateChanges, StateJournal, StoredOrder
from riskmon.engine.trading import Quote
from riskmon.events import (
    FillReceived,
    Liquidity,
    MarketStatusChanged,
    OrderStatus,
    OrderUpdate,
    QuoteLeg,
    QuoteStatus,
    Side,
)
from riskmon.store.state import SCHEMA_VERSION, StateStore, StoreError
from riskmon.watchdogs.journal import PersistedDeadline

ACCOUNT = "DMjLV5AdbdnAxEE9CCJYdzGhEDVAaKPJDRTZQ7kgMZwm"
KEY = PositionKey("alpha", "mango", "acct", "SOL-PERP")
BET = PositionKey("bets", "px", "u1", "ev1/m1/o1")


def fill(key: str, seq: int, qty: str = "1.5", stream: str = "q1", as_of: int | None = 7) -> FillReceived:
    return FillReceived(
        venue="mango",
        desk="alpha",
        account="acct",
        market="SOL-PERP",
        side=Side.SELL if seq % 3 == 0 else Side.BUY,
        quantity=Decimal(qty),
        price=Decimal("149.000000000000000001"),
        fill_key=key,
        stream=stream,
        sequence=seq,
        liquidity=Liquidity.MAKER,
        fee_rate=Decimal("-0.0001"),
        venue_ts=1_700_000_000.25,
        as_of=as_of,
    )


def order(order_id: str, status: OrderStatus = OrderStatus.OPEN) -> OrderUpdate:
    return OrderUpdate(
        venue="px",
        desk="bets",
        account="u1",
        order_id=order_id,
        market="ev1/m1/o1",
        status=status,
        venue_status=status.value,
        sequence=4,
        venue_ts=1_700_000_000.0,
        price=Decimal(-110),
        quantity=Decimal("250.00"),
        filled_quantity=Decimal("100"),
        worst_case_loss_usd=Decimal("100.00"),
    )


def plain_order(stored: StoredOrder) -> StoredOrder:
    """The stored form decodes to array-shaped subclasses: compare by value, as plain structs."""
    return StoredOrder(OrderUpdate(*msgspec.structs.astuple(stored.update)), stored.newest_sequence, stored.filled)


def plain_deadline(record: PersistedDeadline) -> PersistedDeadline:
    return PersistedDeadline(*msgspec.structs.astuple(record))


def restored_ledger(store: StateStore, retention: int = 1000) -> FillLedger:
    ledger = FillLedger(retention)
    ledger.restore(store.load().fills)
    return ledger


def test_every_kind_round_trips(tmp_path: Path) -> None:
    quote = Quote(
        "tot", "rfq-desk", "mm1", "q1", "r1", QuoteStatus.ACCEPTED, Decimal("512.25"), 1_700_000_030.0, 1_700_000_000.0
    )
    quote.legs = (QuoteLeg("kalshi", "KX-1", "yes", Decimal("10")),)
    quote.history.append(QuoteStatus.ACCEPTED)
    quote.sightings = 2
    status = MarketStatusChanged("phx", "SOL", "paused", tradable=False, final_price=Decimal("150.5"))
    deadline = PersistedDeadline("activation", "px", "o2", 1_700_000_010.0, {"placed_at": "1700000000.0"})
    changes = StateChanges(
        fills=[fill("a", 1), fill("b", 2, as_of=None), ("mango", "q1", "a")],
        positions={KEY: Decimal("-0.000000000000000001"), BET: Decimal(0)},
        marks={("mango", "SOL-PERP"): Decimal("149.5")},
        reference_marks={"SOL": Decimal("149.25")},
        risk={BET: {"o1": (Decimal("100.00"), False), "q9": (Decimal("7"), True)}},
        orders={("px", "o1"): StoredOrder(order("o1"), 4, Decimal("100")), ("px", "o2"): None},
        quotes={("tot", "q1"): encode_quote(quote)},
        seen=[("mob", "liquidation:1", True), ("mob", "amend:2", True), ("mob", "liquidation:1", False)],
        statuses={("phx", "SOL"): status},
    )
    store = StateStore(tmp_path / "state.db")
    store.write(changes, {deadline.key: deadline})
    store.close()

    store = StateStore(tmp_path / "state.db")
    snapshot = store.load()
    assert snapshot.positions == {KEY: Decimal("-0.000000000000000001"), BET: Decimal(0)}
    assert snapshot.marks == {("mango", "SOL-PERP"): Decimal("149.5")}
    assert snapshot.reference_marks == {"SOL": Decimal("149.25")}
    assert snapshot.risk == {BET: {"o1": (Decimal("100.00"), False), "q9": (Decimal("7"), True)}}
    assert [plain_order(o) for o in snapshot.orders] == [StoredOrder(order("o1"), 4, Decimal("100"))]
    assert snapshot.quotes == [quote]
    assert snapshot.seen == {"mob": ["amend:2"]}
    assert snapshot.statuses == [status]
    assert [plain_deadline(d) for d in snapshot.deadlines] == [deadline]
    ledger = FillLedger()
    ledger.restore(snapshot.fills)
    assert list(ledger.held("mango", "q1")) == ["b"]
    assert ledger.get("mango", "q1", "b") == fill("b", 2, as_of=None)

    # Deletions and replacements in a later batch.
    store.write(
        StateChanges(
            risk={BET: {}},
            orders={("px", "o1"): None},
            quotes={("tot", "q1"): None},
            positions={KEY: Decimal("3")},
        ),
        {deadline.key: None},
    )
    again = store.load()
    assert (again.risk, again.orders, again.quotes, again.deadlines) == ({}, [], [], [])
    assert again.positions[KEY] == Decimal("3")
    store.close()


def test_orders_and_quotes_keep_the_books_recency_order(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.write(StateChanges(orders={("px", i): StoredOrder(order(i), None, None) for i in ("a", "b", "c")}))
    store.write(StateChanges(orders={("px", "a"): StoredOrder(order("a", OrderStatus.CANCELED), None, None)}))
    assert [o.update.order_id for o in store.load().orders] == ["b", "c", "a"]
    store.close()


def test_fill_history_is_sealed_in_chunks_and_bounded_by_retention_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(path, fill_retention=3)
    for seq in range(1, 11):  # one fill per batch: three-step chunks are sealed from the tail
        store.write(StateChanges(fills=[fill(f"k{seq}", seq)]))
    store.close()
    with closing(sqlite3.connect(path)) as db:
        chunks = db.execute("SELECT COUNT(*) FROM fill_chunks").fetchone()[0]
        tail = db.execute("SELECT COUNT(*) FROM fill_tail").fetchone()[0]
    # Newer chunks alone hold >= 3 live fills: only the newest chunk and the tail remain.
    assert (chunks, tail) == (1, 1)
    ledger = restored_ledger(StateStore(path, fill_retention=3), retention=3)
    assert list(ledger.held("mango", "q1")) == ["k8", "k9", "k10"]
    assert ledger.get("mango", "q1", "k9") == fill("k9", 9)


@pytest.mark.parametrize("seed", range(12))
def test_the_restored_ledger_is_exactly_the_one_that_wrote_it(tmp_path: Path, seed: int) -> None:
    """Random records, revokes, re-records after a revoke or after retention forgot the key, and
    checkpoint voids, written in random batches: the restored ledger holds the same fills, in the
    same order (which decides what retention forgets next)."""
    rng = random.Random(seed)
    retention = rng.choice([1, 2, 5, 9])
    ledger = FillLedger(retention)
    ledger.journal = journal = StateJournal()
    store = StateStore(tmp_path / "state.db", fill_retention=retention)
    universe = [f"k{i}" for i in range(15)]
    for step in range(rng.randrange(30, 120)):
        key = rng.choice(universe)
        stream = rng.choice(["q1", "q2"])
        if rng.random() < 0.3:
            ledger.revoke("mango", stream, key)
        else:
            ledger.record(fill(key, step, stream=stream))
        if rng.random() < 0.3:
            store.write(StateChanges(fills=journal.fills))
            journal.fills = []
    store.write(StateChanges(fills=journal.fills))
    restored = restored_ledger(StateStore(tmp_path / "state.db", fill_retention=retention), retention)
    # A larger retention may bring back older fills the file still has, never different newer ones.
    larger = restored_ledger(StateStore(tmp_path / "state.db", fill_retention=retention), retention + 3)
    for stream in ("q1", "q2"):
        held = list(ledger.held("mango", stream))
        assert list(restored.held("mango", stream)) == held
        assert [restored.get("mango", stream, k) for k in held] == [ledger.get("mango", stream, k) for k in held]
        assert list(larger.held("mango", stream))[-len(held) :] == held if held else True


def test_a_restored_chunk_decodes_only_the_fill_a_revoke_needs(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db", fill_retention=4)
    store.write(StateChanges(fills=[fill(f"k{i}", i, qty=f"{i}.25") for i in range(4)]))
    ledger = restored_ledger(store, retention=4)
    entry = ledger.held("mango", "q1")["k2"]
    assert isinstance(entry, FillChunk)  # held encoded
    assert ledger.revoke("mango", "q1", "k2") == fill("k2", 2, qty="2.25")
    assert ledger.revoke("mango", "q1", "k2") is None
    assert not ledger.record(fill("k3", 3))  # a duplicate, known from the restored chunk


def test_a_new_file_is_stamped_with_the_schema_version_and_a_newer_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateStore(path).close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT value FROM state_meta WHERE name = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION),
        )
        with db:
            db.execute("UPDATE state_meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(StoreError) as raised:
        StateStore(path)
    assert str(raised.value) == (
        f"state file {path}: schema version 99, but this riskmon reads version {SCHEMA_VERSION};"
        " move the file aside to start from empty state"
    )


def test_a_torn_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(path)
    store.write(StateChanges(fills=[fill(f"k{i}", i) for i in range(50)], positions={KEY: Decimal(1)}))
    store.close()
    path.write_bytes(path.read_bytes()[:1500])  # the header survives, the pages do not
    with pytest.raises(StoreError, match=rf"^state file {path}: "):
        StateStore(path).load()


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not an SQLite file, it only sits where one should" * 100)
    with pytest.raises(StoreError, match=rf"^state file {path}: file is not a database$"):
        StateStore(path)


def test_a_corrupt_row_names_its_table_and_not_its_contents(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(path, fill_retention=2)
    store.write(StateChanges(fills=[fill("k1", 1), fill("k2", 2)]))
    store.close()
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE fill_chunks SET body = x'c1c1c1'")
    with pytest.raises(StoreError) as raised:
        StateStore(path).load()
    assert str(raised.value) == f"state file {path} (table fill_chunks): a stored row cannot be read: DecodeError"


@pytest.mark.asyncio
async def test_a_corrupt_file_leaves_the_monitor_running_without_persistence(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from riskmon.config import parse_config
    from riskmon.engine.engine import Engine
    from riskmon.runtime.persistence import StatePersistence

    path = tmp_path / "state.db"
    garbage = b"\x00garbage" * 512
    path.write_bytes(garbage)
    config = parse_config(
        f"state: {{path: '{path}'}}\nvenues: {{mango: {{kind: mango_v3_fills, urls: ['ws://127.0.0.1:1']}}}}\n"
        f"desks: {{alpha: {{accounts: {{mango: [{ACCOUNT}]}}}}}}\n",
        "t.yaml",
        {},
    )
    engine = Engine(config)
    persistence = StatePersistence(engine, config.state)
    with caplog.at_level(logging.ERROR):
        assert await persistence.open() == []
    assert not persistence.persisting
    assert [r.getMessage() for r in caplog.records] == [
        f"monitoring without persistence (nothing will survive a restart): state file {path}: file is not a database"
    ]
    engine.start(1_700_000_000.0)
    engine.ingest("mango", [msgspec.structs.replace(fill("k1", 1), account=ACCOUNT)], 1_700_000_000.0)
    persistence.after_step()
    await persistence.close()
    assert engine.book.position(KEY._replace(account=ACCOUNT)) == Decimal("1.5")
    assert path.read_bytes() == garbage  # left for an operator to inspect


def test_quote_codec_round_trips_every_field() -> None:
    quote = Quote("tot", "d", "mm", "q", None, QuoteStatus.EXECUTED, None, None, None, "r", "x", (), True, 3)
    quote.history.extend([QuoteStatus.ACCEPTED, QuoteStatus.EXECUTED])
    assert decode_quote(encode_quote(quote)) == quote


def write_version_1_file(path: Path) -> None:
    """A state file as riskmon wrote it at schema version 1: orders one row each (msgpack maps),
    deadlines as rows of `watchdog_deadlines`, fill chunks uncompressed."""
    from array import array

    from riskmon.engine.fills import encode_fill

    StateStore(path).close()
    steps = [fill("a", 1), fill("b", 2, as_of=None), ("mango", "q1", "a"), fill("c", 3)]
    keys = [s.fill_key if isinstance(s, FillReceived) else s[2] for s in steps]
    bodies = [encode_fill(s) if isinstance(s, FillReceived) else b"" for s in steps]
    offsets = array("q", [0])
    for body in bodies:
        offsets.append(offsets[-1] + len(body))
    as_of = array("q", [s.as_of if isinstance(s, FillReceived) and s.as_of is not None else -(2**63) for s in steps])
    sequences = array("q", [s.sequence if isinstance(s, FillReceived) else 0 for s in steps])
    chunk = msgspec.msgpack.encode(
        [msgspec.msgpack.encode(keys), False, sequences.tobytes(), as_of.tobytes(), offsets.tobytes(), b"".join(bodies)]
    )
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("DROP VIEW watchdog_deadlines")
        for name in ("order", "deadline"):
            for part in ("chunks", "tail", "keys"):
                db.execute(f"DROP TABLE {name}_{part}")
        db.execute("UPDATE state_meta SET value = '1' WHERE name = 'schema_version'")
        db.execute(
            "CREATE TABLE orders (ord INTEGER PRIMARY KEY, venue TEXT NOT NULL, order_id TEXT NOT NULL,"
            " body BLOB NOT NULL, UNIQUE (venue, order_id))"
        )
        db.executemany(
            "INSERT INTO orders (venue, order_id, body) VALUES (?, ?, ?)",
            [("px", i, msgspec.msgpack.encode(StoredOrder(order(i), 4, Decimal("100")))) for i in ("o2", "o1")],
        )
        db.execute(
            "CREATE TABLE watchdog_deadlines (kind TEXT NOT NULL, venue TEXT NOT NULL, subject TEXT NOT NULL,"
            " due REAL NOT NULL, data TEXT NOT NULL, PRIMARY KEY (kind, venue, subject)) WITHOUT ROWID"
        )
        db.execute(
            "INSERT INTO watchdog_deadlines VALUES ('activation', 'px', 'o2', 1700000010.123456789,"
            ' \'{"desk": "bets", "placed_at": "1700000000.123456789"}\')'
        )
        db.execute("INSERT INTO fill_streams (stream_id, venue, stream) VALUES (1, 'mango', 'q1')")
        db.execute("INSERT INTO fill_chunks (stream_id, net, body) VALUES (1, 2, ?)", (chunk,))


def test_a_version_1_file_is_migrated_in_place(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:

    path = tmp_path / "state.db"
    write_version_1_file(path)
    deadline = PersistedDeadline(
        "activation", "px", "o2", 1700000010.123456789, {"desk": "bets", "placed_at": "1700000000.123456789"}
    )
    with caplog.at_level(logging.WARNING):
        store = StateStore(path, fill_retention=10)
    assert [r.getMessage() for r in caplog.records] == [f"state file {path}: migrating schema version 1 to 2"]
    snapshot = store.load()
    assert [plain_order(o) for o in snapshot.orders] == [StoredOrder(order(i), 4, Decimal("100")) for i in ("o2", "o1")]
    assert [plain_deadline(d) for d in snapshot.deadlines] == [deadline]
    ledger = FillLedger(10)
    ledger.restore(snapshot.fills)
    assert list(ledger.held("mango", "q1")) == ["b", "c"]
    assert ledger.get("mango", "q1", "b") == fill("b", 2, as_of=None)
    assert ledger.held("mango", "q1")["c"].sequence("c") == 3  # type: ignore[union-attr]
    store.write(StateChanges(orders={("px", "o2"): None}), {deadline.key: None})  # and it goes on from there
    store.close()
    with closing(sqlite3.connect(path)) as db:
        kinds = dict(db.execute("SELECT name, type FROM sqlite_master WHERE name IN ('orders', 'watchdog_deadlines')"))
        version = db.execute("SELECT value FROM state_meta WHERE name = 'schema_version'").fetchone()
    assert (kinds, version) == ({"watchdog_deadlines": "view"}, ("2",))
    again = StateStore(path)
    assert [o.update.order_id for o in again.load().orders] == ["o1"]
    again.close()


def test_other_readers_still_see_the_deadlines_as_rows(tmp_path: Path) -> None:
    """`watchdog_deadlines` is a view over the deadline chunks: a DeadlineStore (or an operator's
    sqlite3 shell) reading the state file sees exactly the pending deadlines."""
    from riskmon.store.deadlines import DeadlineStore

    path = tmp_path / "state.db"
    store = StateStore(path)
    records = [
        PersistedDeadline("activation", "px", f"o{i}", 1_700_000_010.5 + i, {"desk": "bets", "placed_at": f"{i}.25"})
        for i in range(1500)  # sealed chunks and a tail
    ]
    store.write(StateChanges(), {r.key: r for r in records})
    store.write(StateChanges(), {records[0].key: None, records[1499].key: None})
    store.close()
    reader = DeadlineStore(path)
    try:
        assert sorted(reader.load(), key=lambda r: r.due) == records[1:1499]
    finally:
        reader.close()
