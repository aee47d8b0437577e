"""The demo's scripted scenario, played on the Mango simulator.

A desk builds a SOL position through its warning and critical limits, a fork revokes two of its
fills, a malformed frame arrives, the connection drops while a fork voids another fill (caught
by the checkpoint merge on reconnect), a checkpoint is replayed twice, then prices drift.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from riskmon.venues.mango_v3.simulator import MangoV3FillsSimulator, SimFill, SimMarket

SOL = SimMarket("SOL-PERP", "31cKs646dt1YkA3zPyxZ7rUAkxTBz279w4XEobFXcAKP")
ETH = SimMarket("ETH-PERP", "9vDfKNPJkCvQv9bzR4JNTGciQC2RVHPVNMMHiVDgT1mw")
MARKETS = (SOL, ETH)

SOL_DESK = "DMjLV5AdbdnAxEE9CCJYdzGhEDVAaKPJDRTZQ7kgMZwm"
MM_DESK = "FSDQFx8F1a29b2CNMXGf3HxyLxxrPg1VY2o477kBvSuu"
ETH_DESK = "8w5hAPpu1XvsC2K84zgUELWfiqnTa8LQwDVvmBAQVMNg"
STREET_1 = "GJw8MDxaeVh4sSNsi6cEWSHW5bp93UAtCBuMo18hW2nX"
STREET_2 = "HzBQ2NpiAfRZRrmjQDkTsFywmf2nf9V2RPXaPGWkBc4N"

# SOL-PERP: 100 price lots = $1, 100 base lots = 1 SOL. ETH-PERP: 10 price lots = $1, 1000 base lots = 1 ETH.
SOL_150 = 15_000
ETH_3000 = 30_000


class DemoScenario:
    def __init__(
        self,
        simulator: MangoV3FillsSimulator,
        now: Callable[[], float],
        step: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._sim = simulator
        self._now = now
        self._step = step
        self._sleep = sleep
        self._rng = random.Random(7)  # noqa: S311 - a repeatable price walk, not cryptography

    def _fill(self, maker: str, taker: str, side: str, price: int, qty: int) -> SimFill:
        return SimFill(
            maker=maker,
            taker=taker,
            taker_side="bid" if side == "bid" else "ask",
            price_lots=price,
            quantity_lots=qty,
            timestamp=int(self._now()),
        )

    async def seed(self) -> None:
        """Street trades before the monitor connects, so its first checkpoint carries marks."""
        for _ in range(3):
            await self._sim.push_fill(SOL.name, self._fill(STREET_1, STREET_2, "bid", SOL_150, 500))
            await self._sim.push_out(SOL.name)
            await self._sim.push_fill(ETH.name, self._fill(STREET_2, STREET_1, "ask", ETH_3000, 1_000))

    async def play(self) -> None:
        sim = self._sim
        # 1. sol-desk lifts 20 SOL a step: warning at $20k (7th fill), critical at $25k (9th).
        for _ in range(9):
            await sim.push_fill(SOL.name, self._fill(STREET_1, SOL_DESK, "bid", SOL_150, 2_000))
            await sim.push_fill(ETH.name, self._fill(MM_DESK, STREET_2, "ask", ETH_3000, 500))
            await self._sleep(self._step)
        # 2. A fork drops the last two fills: Revokes take the desk back under its critical limit.
        await sim.rollback(SOL.name, 2)
        await self._sleep(self._step * 2)
        # 3. A frame the monitor cannot read: counted and logged, nothing changes.
        await sim.send_malformed("bad_base64")
        await self._sleep(self._step * 2)
        # 4. eth-desk buys, and while the feed is down a fork voids its last fill.
        for _ in range(3):
            await sim.push_fill(ETH.name, self._fill(STREET_1, ETH_DESK, "bid", ETH_3000, 4_000))
            await self._sleep(self._step)
        await sim.disconnect_all()
        await sim.rollback(ETH.name, 1)
        await sim.push_fill(ETH.name, self._fill(STREET_1, STREET_2, "bid", ETH_3000, 100))
        await sim.wait_for_connections(1, timeout=30)
        await self._sleep(self._step * 2)
        # 5. The server replays its checkpoints: every fill in them is already held.
        await sim.send_checkpoints()
        await self._sleep(self._step * 2)
        # 6. Prices drift; SOL rallies, pushing sol-desk over its limit again.
        sol, eth = SOL_150, ETH_3000
        while True:
            sol += self._rng.randint(-60, 150)
            eth += self._rng.randint(-400, 400)
            await sim.push_fill(SOL.name, self._fill(STREET_2, STREET_1, "bid", sol, 300))
            await sim.push_fill(ETH.name, self._fill(STREET_1, STREET_2, "ask", eth, 200))
            await self._sleep(self._step)
