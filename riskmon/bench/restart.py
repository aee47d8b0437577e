"""Section `restart`: from Monitor construction to ready, with a state file of open orders and
a fill history.

The state file is seeded with what riskmon persists: `open_orders` open ProphetX orders (pending
activation, as the memory section arms them) with their activation deadlines, written through a
real Engine's journals (the rows are the ones the runtime writes), due a day ahead so that none
fires during the start; and `fill_history` Mango fills over five event queues, written through
the state store's own path (riskmon.bench.state_seed) under this config's desk and account, the
first queue being the one the Mango simulator serves, so its checkpoint meets a restored stream.

The clock starts at `Monitor(...)` in an interpreter that has imported riskmon (imports are not
counted) and stops once riskmon is ready as /readyz judges it (every venue, and alert delivery): a
ProphetX simulator (REST login, channel registration, Pusher subscribe) and a Mango simulator,
both on loopback and started before the clock.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from riskmon.bench.mango_feed import DESK_ACCOUNT, MANGO, MARKET, QUEUE
from riskmon.bench.measure import until_ready
from riskmon.bench.open_orders import ACCOUNT, DESK, PROPHETX, arm_open_orders
from riskmon.bench.state_seed import SeedBooks, seed_state
from riskmon.config import MonitorConfig, parse_config
from riskmon.engine.engine import Engine
from riskmon.engine.state_journal import StateSnapshot
from riskmon.events import FeedUp
from riskmon.runtime.monitor import Monitor
from riskmon.store.state import StateStore
from riskmon.venues.mango_v3.simulator import MangoV3FillsSimulator, SimMarket
from riskmon.venues.prophetx.simulator import ProphetXSimulator

_ACCESS_KEY = "bench-access"
_SECRET_KEY = "bench-secret"  # noqa: S105 - the loopback simulator's own credential
_READY_LIMIT = 60.0
PERP_DESK = "perp-desk"
_FILL_STREAMS = 5


@dataclass(frozen=True, slots=True)
class StateSeed:
    open_orders: int
    deadlines_written: int
    fill_history: int  # fills seeded into the durable store (0: not seeded)
    seconds: float
    file_bytes: int


@dataclass(frozen=True, slots=True)
class RestartResult:
    restart_to_ready_s: float
    deadlines_restored: int  # in the engine's heap once ready
    deadline_load_s: float  # of it, about: StateStore(path).load_deadlines() alone, timed after the restart
    seed: StateSeed
    note: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def restart_config(state_path: Path, prophetx_rest: str, mango_url: str, fill_history: int = 0) -> MonitorConfig:
    # Every seeded fill stays within the retention, as it would in the monitor that wrote them.
    retention = max(200_000, -(-fill_history // _FILL_STREAMS))
    text = f"""
state: {{path: "{state_path}", fill_retention: {retention}}}
venues:
  {PROPHETX}: {{kind: prophetx, rest_url: "{prophetx_rest}", access_key: {_ACCESS_KEY}, secret_key: {_SECRET_KEY}}}
  {MANGO}: {{kind: mango_v3_fills, urls: ["{mango_url}"]}}
desks:
  {DESK}:
    accounts: {{{PROPHETX}: [{ACCOUNT}]}}
    limits: {{max_worst_case_loss_usd: 1000000000}}
  {PERP_DESK}:
    accounts: {{{MANGO}: [{DESK_ACCOUNT}]}}
    limits:
      max_net_notional_usd: [{{market: {MARKET}, max_usd: 1000000000}}]
"""
    return parse_config(text, "bench-restart.yaml", {})


def seed_restart_state(path: Path, config: MonitorConfig, open_orders: int, fill_history: int = 0) -> StateSeed:
    """Write what a monitor holding `open_orders` open orders and `fill_history` fills persists."""
    started = time.perf_counter()
    if fill_history > 0:
        books = SeedBooks(desk=PERP_DESK, streams=((MARKET, QUEUE),))
        seed_state(path, fills=fill_history, open_orders=0, streams=_FILL_STREAMS, books=books)
    engine = Engine(config)
    engine.restore(StateSnapshot())  # an empty file: the engine journals its books from here
    now = time.time()
    engine.start(now)
    engine.ingest(PROPHETX, [FeedUp(PROPHETX, "bench")], now, is_frame=False)
    arm_open_orders(engine, open_orders, now, take_journal=False)
    deadlines = engine.take_journal()
    store = StateStore(path, config.state.fill_retention)
    try:
        store.write(engine.take_state_changes(), deadlines)
    finally:
        store.close()
    return StateSeed(
        open_orders, len(deadlines), fill_history, round(time.perf_counter() - started, 3), path.stat().st_size
    )


def restart_note(fill_history: int) -> str:
    fills = f"{fill_history:,} fills of history" if fill_history else "no fill history"
    return (
        "Monitor(...) construction to ready (/readyz verdict: every venue, and alert delivery), imports excluded; "
        f"the state file holds the open orders pending activation with their activation deadlines, and {fills}"
    )


def run_restart_bench(open_orders: int = 100_000, fill_history: int = 0) -> RestartResult:
    if open_orders < 0 or fill_history < 0:
        raise ValueError("open_orders and fill_history must not be negative")
    return asyncio.run(_run(open_orders, fill_history))


async def _run(open_orders: int, fill_history: int) -> RestartResult:
    prophetx = ProphetXSimulator(_ACCESS_KEY, _SECRET_KEY, account_id=ACCOUNT, health_check_interval=None)
    mango = MangoV3FillsSimulator([SimMarket(MARKET, QUEUE)])
    await prophetx.start()
    await mango.start()
    try:
        with tempfile.TemporaryDirectory(prefix="riskmon-bench-") as tmp:
            path = Path(tmp) / "state.db"
            config = restart_config(path, prophetx.rest_url, mango.url, fill_history)
            seed = await asyncio.to_thread(seed_restart_state, path, config, open_orders, fill_history)
            started = time.perf_counter()
            monitor = Monitor(config, http=False, console=io.StringIO())
            stop = asyncio.Event()
            runner = asyncio.create_task(monitor.run(stop), name="bench-monitor")
            try:
                async with asyncio.timeout(_READY_LIMIT):
                    await until_ready(monitor)
                ready_s = time.perf_counter() - started
                restored = len(monitor.engine.deadlines)
            finally:
                stop.set()
                await runner
            load_s = await asyncio.to_thread(_time_deadline_load, path)
    finally:
        await mango.stop()
        await prophetx.stop()
    return RestartResult(round(ready_s, 4), restored, round(load_s, 4), seed, restart_note(fill_history))


def _time_deadline_load(path: Path) -> float:
    """What reading the deadlines takes of a restart: the state store's own read of them (the file's
    `watchdog_deadlines` is a compatibility view, not what a restart reads)."""
    started = time.perf_counter()
    store = StateStore(path)
    try:
        store.load_deadlines()
    finally:
        store.close()
    return time.perf_counter() - started
