"""Section `memory`: the bytes riskmon holds per open order, its activation deadline included.

Each order arrives the way it does in production: the trading system's `OrderIntake` (which arms
the activation watchdog: a WatchedOrder, which is its own deadline heap entry) and then the venue's first
word on it, a ProphetX `wagers` frame for the placed, not yet active wager, built by the
simulator's wager book and decoded by the real codec into a pending `OrderUpdate` that the
engine's order book keeps. Every order has its own ids and its own decoded values, as live.

tracemalloc traces every arming, from a fresh engine, with the journal taken and dropped after
each step (as the runtime does once it has written it): what stays allocated at the end, divided
by the orders, is the figure, container growth included. The journal record an arming holds until
the runtime takes it is reported apart. Deadlines fall due a day ahead, beyond the measurement.
"""

from __future__ import annotations

import time
import tracemalloc
from dataclasses import asdict, dataclass
from typing import Any

from riskmon.config import MonitorConfig, parse_config
from riskmon.engine.engine import Engine
from riskmon.events import FeedUp, OrderIntake
from riskmon.venues.prophetx.sim_frames import event_frame, private_channel
from riskmon.venues.prophetx.sim_state import WagerBook
from riskmon.venues.registry import build_codec

PROPHETX = "prophetx"
ACCOUNT = "acct-bench"
DESK = "bet-desk"
ORDER_ID_BASE = 1_800_000_000_000_000_000  # 19-character numeric ids, as ProphetX wager ids are
DUE_AHEAD = 86_400.0


@dataclass(frozen=True, slots=True)
class OpenOrderMemoryResult:
    orders: int
    bytes_per_open_order: float  # order book entry + activation deadline + ids, journal dropped
    journal_bytes_per_order: float  # held per arming until the runtime takes the journal
    open_orders: int  # orders the engine's order book holds at the end
    pending_deadlines: int  # deadlines in the engine's heap at the end
    method: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def orders_config(rest_url: str = "http://127.0.0.1:9") -> MonitorConfig:
    text = f"""
venues:
  {PROPHETX}: {{kind: prophetx, rest_url: "{rest_url}", access_key: bench, secret_key: bench}}
desks:
  {DESK}:
    accounts: {{{PROPHETX}: [{ACCOUNT}]}}
    limits: {{max_worst_case_loss_usd: 1000000000}}
"""
    return parse_config(text, "bench-orders.yaml", {})


class PendingWagers:
    """The venue's frame for each placed wager (status `inactive`), one fresh wager id each."""

    def __init__(self, timestamp_ns: int) -> None:
        template = WagerBook(ACCOUNT).place(
            event_id=10_078_829,
            market_id=219,
            outcome_id=4,
            odds=-110,
            stake=250.0,
            line=-3.5,
            line_id=None,
            external_id=None,
            order_id="0",
        )
        self._info = template.info()
        self._channel = private_channel(ACCOUNT)
        self._ts_ns = timestamp_ns

    def frame(self, order_id: str) -> str:
        info = {**self._info, "id": order_id, "external_id": f"desk-{order_id}"}
        return event_frame("wagers", self._channel, self._ts_ns, "wager", "u", {"info": info})


def arm_open_orders(engine: Engine, count: int, now: float, *, first: int = 0, take_journal: bool = True) -> None:
    """Declare `count` orders and let the venue report each pending, through the real codec."""
    codec = build_codec(engine.config, PROPHETX)
    wagers = PendingWagers(int(now * 1e9))
    placed_at = now + DUE_AHEAD
    for i in range(first, first + count):
        order_id = str(ORDER_ID_BASE + i)
        engine.ingest(PROPHETX, [OrderIntake(PROPHETX, order_id, placed_at)], now, is_frame=False)
        engine.ingest(PROPHETX, codec.receive_text(wagers.frame(order_id)), now)
        if take_journal:
            engine.take_journal()


def run_open_order_memory_bench(orders: int = 100_000) -> OpenOrderMemoryResult:
    if orders < 1:
        raise ValueError("orders must be positive")
    engine = Engine(orders_config())
    now = time.time()
    engine.start(now)
    engine.ingest(PROPHETX, [FeedUp(PROPHETX, "bench")], now, is_frame=False)
    arm_open_orders(engine, 1, now, first=orders)  # codec, decoders and order book warmed up, untraced
    engine.take_actions()
    started = time.perf_counter()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    arm_open_orders(engine, orders, now)
    held = tracemalloc.get_traced_memory()[0] - base
    # The journal record of one more arming, before the runtime takes it.
    arm_open_orders(engine, 1, now, first=orders + 1, take_journal=False)
    with_journal = tracemalloc.get_traced_memory()[0]
    engine.take_journal()
    journal = with_journal - tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    seconds = time.perf_counter() - started
    return OpenOrderMemoryResult(
        orders=orders,
        bytes_per_open_order=round(held / orders, 1),
        journal_bytes_per_order=round(journal, 1),
        open_orders=len(engine.orders.orders()),
        pending_deadlines=len(engine.deadlines),
        method=f"tracemalloc over all {orders:,} armings from a fresh engine, journal taken after each",
        seconds=round(seconds, 3),
    )
