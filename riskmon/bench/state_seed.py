"""The state store at scale: a seeded state file, its restore time, flush throughput and the
engine's per-fill journal cost. A benchmark, not a test: it prints numbers and asserts nothing.

`seed_state` writes a realistic file through the store's own write path (so other benchmarks can
start from one): Mango-like fills on several event queues, ProphetX-like open orders each with its
worst-case loss, positions and marks. Restore is what a start does before any venue connects:
`StateStore.load()` then `Engine.restore()`.

    python -m riskmon.bench.state_seed [--fills 1000000] [--orders 100000] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path

import msgspec

from riskmon.bench.mango_feed import DESK_ACCOUNT, MANGO, MangoFeed
from riskmon.config import MonitorConfig, parse_config
from riskmon.engine.engine import Engine
from riskmon.engine.exposure import ExposureBook, PositionKey
from riskmon.engine.fills import FillLedger
from riskmon.engine.state_journal import RiskSources, StateChanges, StateJournal, StateSnapshot, StoredOrder
from riskmon.events import FeedUp, FillReceived, Liquidity, OrderStatus, OrderUpdate, Side
from riskmon.store.state import StateStore

DESK = "sol-desk"
BET_DESK = "bets"
PROPHETX = "prophetx"
_QUEUE = "31cKs646dt1YkA3zPyxZ7rUAkxTBz279w4XEobFXcAKP"
_SLOT = 128_473_811

CONFIG = f"""
state: {{path: unused.db, fill_retention: 200000}}
venues:
  {MANGO}: {{kind: mango_v3_fills, urls: ["ws://127.0.0.1:1"]}}
desks:
  {DESK}:
    accounts: {{{MANGO}: [{DESK_ACCOUNT}]}}
    limits:
      max_net_notional_usd: [{{market: SOL-PERP, max_usd: 1000000000}}]
"""


def bench_config() -> MonitorConfig:
    return parse_config(CONFIG, "bench.yaml", {})


@dataclass(frozen=True, slots=True)
class SeedResult:
    fills: int
    open_orders: int
    batches: int
    write_s: float
    fills_per_s: float  # flush throughput: fills written per second of store.write, orders included
    file_bytes: int


@dataclass(frozen=True, slots=True)
class SeedBooks:
    """Whose fills and orders a seed writes: the names of the config the file is restored under."""

    desk: str = DESK  # the Mango desk of the fills and positions
    bet_desk: str = BET_DESK  # the ProphetX desk of the open orders
    order_account: str = "acct-1"
    # (market, event queue) of the first streams, e.g. the one a restarted monitor subscribes to;
    # the other streams are synthetic.
    streams: tuple[tuple[str, str], ...] = ()

    def stream(self, stream: int) -> tuple[str, str]:
        if stream < len(self.streams):
            return self.streams[stream]
        return f"MKT{stream}-PERP", f"{_QUEUE[:-2]}{stream:02d}"


def seed_fill(stream: int, seq: int, books: SeedBooks = SeedBooks()) -> FillReceived:
    market, queue = books.stream(stream)
    return FillReceived(
        venue=MANGO,
        desk=books.desk,
        account=DESK_ACCOUNT,
        market=market,
        side=Side.BUY if seq % 2 else Side.SELL,
        quantity=Decimal("0.37"),
        price=Decimal("149.6812"),
        fill_key=f"{queue}:{seq}:taker",
        stream=queue,
        sequence=seq,
        liquidity=Liquidity.TAKER,
        fee_rate=Decimal("0.0004"),
        venue_ts=1_700_000_000.0 + seq,
        as_of=_SLOT + seq,
    )


def seed_order(n: int, books: SeedBooks = SeedBooks()) -> OrderUpdate:
    return OrderUpdate(
        venue=PROPHETX,
        desk=books.bet_desk,
        account=books.order_account,
        order_id=str(1_800_000_000_000_000_000 + n),
        market=f"{10_000 + n % 500}/{n % 7}/{n % 3}",
        status=OrderStatus.OPEN,
        venue_status="open",
        sequence=3,
        venue_ts=1_700_000_000.0 + n,
        external_id=f"ext-{n}",
        price=Decimal(-110),
        quantity=Decimal("250.00"),
        filled_quantity=Decimal("100.00"),
        worst_case_loss_usd=Decimal("100.00"),
    )


def seed_state(
    path: Path,
    *,
    fills: int = 1_000_000,
    open_orders: int = 100_000,
    streams: int = 5,
    batch: int = 10_000,
    books: SeedBooks = SeedBooks(),
) -> SeedResult:
    """Write `fills` fills over `streams` event queues and `open_orders` open orders (with their
    risk) in batches of `batch` fills, as the runtime's coalesced flushes would."""
    store = StateStore(path, fill_retention=max(1, -(-fills // streams)))
    write_s = 0.0
    batches = 0
    per_stream = -(-fills // streams)
    seq = 0
    order = 0
    orders_per_batch = max(1, -(-open_orders * batch // max(fills, 1)))
    risk: defaultdict[PositionKey, RiskSources] = defaultdict(dict)
    try:
        while seq < per_stream or order < open_orders:
            changes = StateChanges()
            for s in range(streams):
                market, _queue = books.stream(s)
                for q in range(seq, min(seq + batch // streams, per_stream)):
                    changes.fills.append(seed_fill(s, q, books))
                changes.positions[PositionKey(books.desk, MANGO, DESK_ACCOUNT, market)] = Decimal(seq) / 7
                changes.marks[(MANGO, market)] = Decimal("149.6812")
            seq += batch // streams
            for n in range(order, min(order + orders_per_batch, open_orders)):
                update = seed_order(n, books)
                changes.orders[(PROPHETX, update.order_id)] = StoredOrder(update, 3, Decimal("100.00"))
                key = PositionKey(books.bet_desk, PROPHETX, books.order_account, update.market)
                risk[key][update.order_id] = (Decimal("100.00"), False)
                changes.risk[key] = dict(risk[key])
            order += orders_per_batch
            started = time.perf_counter()
            store.write(changes)
            write_s += time.perf_counter() - started
            batches += 1
    finally:
        store.close()
    total = min(fills, per_stream * streams)
    return SeedResult(total, open_orders, batches, write_s, total / write_s if write_s else 0.0, path.stat().st_size)


@dataclass(frozen=True, slots=True)
class RestoreResult:
    load_s: float  # StateStore(path) + load(): reading and decoding the file
    restore_s: float  # Engine.restore(snapshot)
    total_s: float  # "restored": the engine can apply events
    index_s: float  # then indexing every restored fill key (per stream, when first touched or between events)
    fills_held: int
    orders_held: int


def measure_restore(path: Path, config: MonitorConfig) -> RestoreResult:
    started = time.perf_counter()
    store = StateStore(path, config.state.fill_retention)
    snapshot = store.load()
    loaded = time.perf_counter()
    engine = Engine(config)
    engine.restore(snapshot)
    done = time.perf_counter()
    while engine.ledger.settle_next():
        pass
    indexed = time.perf_counter()
    store.close()
    return RestoreResult(
        loaded - started, done - loaded, done - started, indexed - done, len(engine.ledger), len(engine.orders.orders())
    )


@dataclass(frozen=True, slots=True)
class JournalResult:
    frames: int
    fills: int
    take_every: int
    plain_us_per_frame: float
    journaled_us_per_frame: float
    overhead_us_per_frame: float  # journaling, has_changes_to_persist() every step, the amortized take
    events_per_s_journaled: float
    fill_journal_us: float  # isolated: FillLedger.record + apply_fill + set_mark, journaled minus not


def measure_journal(frames: int = 200_000, rounds: int = 3, take_every: int = 256) -> JournalResult:
    """Mango frames (a mark each, a desk fill one in ten) through Engine.ingest with and without
    journaling, the best of `rounds` each, interleaved so both see the same machine.

    Journaled, each step also asks has_changes_to_persist() (what StatePersistence.after_step
    asks when no write is in flight) and the changes are taken every `take_every` steps, as they
    are when each write to the state file covers that many steps.
    """
    best: dict[bool, float] = {False: float("inf"), True: float("inf")}
    events = fills = 0
    for _ in range(rounds):
        for journaled in (False, True):
            config = bench_config()
            engine = Engine(config)
            now = 1_700_000_000.0
            if journaled:
                engine.restore(StateSnapshot())
            engine.start(now)
            engine.ingest(MANGO, [FeedUp(MANGO, "bench")], now, is_frame=False)
            feed = MangoFeed(config, frames=False, timestamp=int(now))
            items = feed.position(now) + [feed.next_item(now) for _ in range(frames)]
            events = sum(len(item.events) for item in items)
            fills = sum(1 for item in items for e in item.events if isinstance(e, FillReceived))
            started = time.perf_counter()
            for step, item in enumerate(items):
                engine.ingest(MANGO, item.events, now)
                engine.take_journal()
                if journaled and engine.has_changes_to_persist() and step % take_every == 0:
                    engine.take_state_changes()
            best[journaled] = min(best[journaled], time.perf_counter() - started)
    n = len(items)
    return JournalResult(
        n,
        fills,
        take_every,
        best[False] / n * 1e6,
        best[True] / n * 1e6,
        (best[True] - best[False]) / n * 1e6,
        events / best[True],
        measure_fill_journal(),
    )


def measure_fill_journal(fills: int = 200_000, rounds: int = 7) -> float:
    """Microseconds the journal adds to one fill's own work (ledger record, position, a mark)."""
    batch = [seed_fill(0, seq) for seq in range(fills)]
    price = Decimal("150")
    best: dict[bool, float] = {False: float("inf"), True: float("inf")}
    for _ in range(rounds):
        for journaled in (False, True):
            ledger, book = FillLedger(fills), ExposureBook()
            if journaled:
                ledger.journal = book.journal = StateJournal()
            started = time.perf_counter()
            for fill in batch:
                if ledger.record(fill):
                    book.apply_fill(fill)
                book.set_mark(fill.venue, fill.market, price)
            best[journaled] = min(best[journaled], time.perf_counter() - started)
    return (best[True] - best[False]) / fills * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m riskmon.bench.state_seed", description=__doc__)
    parser.add_argument("--fills", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--streams", type=int, default=5)
    parser.add_argument("--frames", type=int, default=200_000, help="frames for the journal overhead")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.db"
        seeded = seed_state(path, fills=args.fills, open_orders=args.orders, streams=args.streams)
        config = msgspec.structs.replace(
            bench_config(),
            state=msgspec.structs.replace(bench_config().state, fill_retention=-(-args.fills // args.streams)),
        )
        measure_restore(path, config)  # warm the page cache: a restart reads a file the OS has seen
        restored = measure_restore(path, config)
    journal = measure_journal(args.frames)
    result = {"seed": asdict(seeded), "restore": asdict(restored), "journal": asdict(journal)}
    if args.json:
        print(json.dumps(result))
        return
    for section, values in result.items():
        print(section)
        for name, value in values.items():
            print(f"  {name:28} {value:,.3f}" if isinstance(value, float) else f"  {name:28} {value:,}")


if __name__ == "__main__":
    main()
