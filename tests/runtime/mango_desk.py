"""The SOL desk on Mango that the runtime tests trade: the simulator's SOL-PERP market, the desk's and
the street's accounts, the book's key for the desk's position, a monitor.yaml watching it, and a
Monitor run around a test body. Import with `from tests.runtime.mango_desk import ...`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Literal

from riskmon.engine.exposure import PositionKey
from riskmon.runtime.monitor import Monitor
from riskmon.venues.mango_v3.simulator import SimFill, SimMarket

SOL = SimMarket("SOL-PERP", "31cKs646dt1YkA3zPyxZ7rUAkxTBz279w4XEobFXcAKP")
DESK = "DMjLV5AdbdnAxEE9CCJYdzGhEDVAaKPJDRTZQ7kgMZwm"
STREET = "GJw8MDxaeVh4sSNsi6cEWSHW5bp93UAtCBuMo18hW2nX"
POSITION = PositionKey("sol-desk", "mango", DESK, "SOL-PERP")
# $2,500 is 16.67 SOL at the $150 every trade() is priced at.
SOL_LIMIT = "max_net_notional_usd: [{market: SOL-PERP, max_usd: 2500}]"


def trade(lots: int) -> SimFill:
    """The desk takes |lots| (100 a SOL) at $150 from the street: a buy if lots > 0, a sell if < 0."""
    side: Literal["bid", "ask"] = "bid" if lots > 0 else "ask"
    return SimFill(maker=STREET, taker=DESK, taker_side=side, price_lots=15_000, quantity_lots=abs(lots), timestamp=1)


def desk_config(
    state: Path | str, url: str, *, server: Sequence[str] = (), limits: Sequence[str] = (), more: str = ""
) -> str:
    """A monitor.yaml with the state file, one Mango venue at `url` that reconnects within 50 ms and
    the SOL desk on it; `server` and `limits` are the lines of those mappings, `more` whole sections
    to follow (receivers, routes, delivery)."""
    text = f"""\
state:
  path: "{state}"
venues:
  mango:
    kind: mango_v3_fills
    urls: ["{url}"]
    reconnect: {{initial: 10ms, max: 50ms}}
desks:
  sol-desk:
    accounts: {{mango: [{DESK}]}}
"""
    if limits:
        text += "    limits:\n" + "".join(f"      {line}\n" for line in limits)
    if server:
        text += "server:\n" + "".join(f"  {line}\n" for line in server)
    return text + more


@contextlib.asynccontextmanager
async def running(monitor: Monitor) -> AsyncIterator[Monitor]:
    """The monitor runs while the block does; entered before it has started, so a test can hold the restore."""
    stop = asyncio.Event()
    runner = asyncio.create_task(monitor.run(stop))
    try:
        yield monitor
    finally:
        stop.set()
        await asyncio.wait_for(runner, timeout=10)


async def until(monitor: Monitor, condition: Callable[[], bool]) -> None:
    """Wait for the engine to reach `condition`, looking after every batch it applies."""
    async with asyncio.timeout(5):
        while not condition():
            monitor.applied.clear()
            await monitor.applied.wait()
