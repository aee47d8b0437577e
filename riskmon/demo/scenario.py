"""The demo's scripted scenario: one script per venue, played at once on the five simulators.

- Mango: sol-desk lifts SOL through its warning and critical limits; a fork revokes two fills;
  a malformed frame; the feed drops while a fork voids an eth-desk fill (caught by the
  checkpoint merge); a checkpoint replayed twice.
- Phoenix: sol-desk also holds SOL there, so the SOL limit is on the cross-venue net; Phoenix
  marks price SOL on every venue; an exchange sequence gap (the feed resyncs from a fresh
  snapshot); ETH paused with a position held.
- Mobula: TRADE_STORED and MARKET_BUY of one transaction (one fill, not two), a venue repeat,
  then a Lighter liquidation of sol-desk.
- ProphetX: the venue stops sending health_check, so the health_check watchdog reconnects
  (VenueHealthCheckGap) and health checks resume on the new connection. Then the trading system
  declares each order it places (order intake): one activates and is matched (worst-case loss),
  one fails activation for lack of balance, and one activation message is lost, so the
  activation watchdog reconnects, asks REST and reports it activated late (OrderActivationTimeout).
- Totalis: an accepted quote reserves pending exposure and is confirmed then settled; another
  expires; a third ends in a position error; a fourth is never confirmed, so the confirmation
  deadline watchdog warns before its deadline (RfqConfirmationDue) and fires at it
  (RfqConfirmationMissed) until the venue withdraws the quote and releases its pending exposure.

Timeline (seconds after the monitor is up, step 0.5 s): health_check stops at 0 and the gap
fires 3-4 s later; the lost activation times out about 5.5 s after the new connection (9-10 s);
the quote misses its deadline at 5.5 s; the Phoenix gap at 7 s; the liquidation at 10.5 s.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from riskmon.demo.venues import ETH, PHOENIX_AUTHORITY, SOL, DemoVenues
from riskmon.events import OrderIntake
from riskmon.venues.mango_v3.simulator import SimFill
from riskmon.venues.mobula.sim_frames import LIGHTER_CHAIN_ID, gains_trade, lighter_liquidation, raw_amount
from riskmon.venues.mobula.sim_frames import trade_stored as mobula_trade_stored
from riskmon.venues.prophetx.sim_frames import selection_level
from riskmon.venues.totalis.simulator import TotalisRfqSimulator

SOL_DESK = "DMjLV5AdbdnAxEE9CCJYdzGhEDVAaKPJDRTZQ7kgMZwm"
MM_DESK = "FSDQFx8F1a29b2CNMXGf3HxyLxxrPg1VY2o477kBvSuu"
ETH_DESK = "8w5hAPpu1XvsC2K84zgUELWfiqnTa8LQwDVvmBAQVMNg"
STREET_1 = "GJw8MDxaeVh4sSNsi6cEWSHW5bp93UAtCBuMo18hW2nX"
STREET_2 = "HzBQ2NpiAfRZRrmjQDkTsFywmf2nf9V2RPXaPGWkBc4N"
SOL_WALLET = "0x5011de5c0000000000000000000000000000a11c"
ETH_WALLET = "0xe7ade5c000000000000000000000000000000b0b"

# Mango SOL-PERP: 100 price lots = $1, 100 base lots = 1 SOL. ETH-PERP: 10 price lots = $1,
# 1000 base lots = 1 ETH.
SOL_150 = 15_000
ETH_3000 = 30_000
# Phoenix: a SOL tick is $0.01 and 100 lots are 1 SOL; an ETH tick is $0.1, 1000 lots 1 ETH.
PHOENIX_SOL_150 = 15_000
PHOENIX_ETH_3000 = 30_000
PROPHETX_EVENT = 10078829
PROPHETX = "prophetx"  # the venue names demo.yaml gives
MM_DESK_NAME = "mm-desk"
# The unconfirmed quote's deadline, after its acceptance (demo.yaml warns 2 s before it).
QUOTE_MISSED_AFTER = 5.0
# Generous waits for the monitor's remedies, so a loaded machine only makes the story later.
HEALTH_GAP_WAIT = 20.0  # health_check_gap (4 s) + the reconnect
RECONCILE_WAIT = 10.0
POLL = 0.1


class DemoScenario:
    def __init__(
        self,
        venues: DemoVenues,
        now: Callable[[], float],
        step: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        declare_order: Callable[[OrderIntake], Awaitable[None]] | None = None,
    ) -> None:
        self._venues = venues
        self._declare_order = declare_order
        self._now = now
        self._step = step
        self._sleep = sleep
        self._rng = random.Random(7)  # noqa: S311 - a repeatable price walk, not cryptography

    async def _steps(self, n: float) -> None:
        await self._sleep(self._step * n)

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
        mango = self._venues.mango
        for _ in range(3):
            await mango.push_fill(SOL.name, self._fill(STREET_1, STREET_2, "bid", SOL_150, 500))
            await mango.push_out(SOL.name)
            await mango.push_fill(ETH.name, self._fill(STREET_2, STREET_1, "ask", ETH_3000, 1_000))

    async def play(self) -> None:
        await asyncio.gather(self._mango(), self._phoenix(), self._mobula(), self._prophetx(), self._totalis())

    async def _mango(self) -> None:
        sim = self._venues.mango
        # sol-desk lifts 20 SOL a step; with its 30 SOL on Phoenix and 10 on Lighter, the SOL net
        # crosses the $24k warning at the 6th fill and the $30k limit at the 8th.
        for _ in range(9):
            await sim.push_fill(SOL.name, self._fill(STREET_1, SOL_DESK, "bid", SOL_150, 2_000))
            await sim.push_fill(ETH.name, self._fill(MM_DESK, STREET_2, "ask", ETH_3000, 500))
            await self._steps(1)
        # A fork drops the last two fills: Revokes take the desk back under its critical limit.
        await sim.rollback(SOL.name, 2)
        await self._steps(2)
        await sim.send_malformed("bad_base64")
        await self._steps(2)
        # eth-desk buys, and while the feed is down a fork voids its last fill.
        for _ in range(3):
            await sim.push_fill(ETH.name, self._fill(STREET_1, ETH_DESK, "bid", ETH_3000, 4_000))
            await self._steps(1)
        await sim.disconnect_all()
        await sim.rollback(ETH.name, 1)
        await sim.push_fill(ETH.name, self._fill(STREET_1, STREET_2, "bid", ETH_3000, 100))
        await sim.wait_for_connections(1, timeout=30)
        await self._steps(2)
        await sim.send_checkpoints()  # a replay: every fill in it is already held
        while True:  # street flow keeps the Mango feed busy
            await sim.push_fill(SOL.name, self._fill(STREET_2, STREET_1, "bid", SOL_150, 300))
            await self._steps(1)

    async def _phoenix(self) -> None:
        sim = self._venues.phoenix
        await sim.push_market("SOL", 150.0)
        await sim.push_market("ETH", 3000.0)
        await sim.set_position(PHOENIX_AUTHORITY, "SOL", 3_000, PHOENIX_SOL_150)
        await self._steps(14)
        # A skipped exchange sequence number: the monitor resubscribes for a fresh snapshot.
        await sim.skip_exchange_sequence(2)
        await sim.set_market_status("ETH", "active")
        await self._steps(4)
        # sol-desk holds 2 ETH on Phoenix when the venue pauses ETH, then reopens it.
        await sim.set_position(PHOENIX_AUTHORITY, "ETH", 2_000, PHOENIX_ETH_3000)
        await self._steps(1)
        await sim.set_market_status("ETH", "paused")
        await self._steps(6)
        await sim.set_market_status("ETH", "active")
        # Marks drift; SOL rallies, pushing sol-desk's cross-venue SOL net over its limit again.
        sol, eth = 150.0, 3000.0
        while True:
            sol = round(sol + self._rng.uniform(-0.6, 1.5), 2)
            eth = round(eth + self._rng.uniform(-4.0, 4.0), 1)
            await sim.push_market("SOL", sol)
            await sim.push_market("ETH", eth)
            await self._steps(1)

    async def _mobula(self) -> None:
        sim = self._venues.mobula
        await self._steps(3)
        # Gains emits TRADE_STORED and MARKET_BUY for one transaction: one 5 ETH fill, not two.
        tx = "0x" + "e7" * 32
        await sim.push(
            mobula_trade_stored(
                ETH_WALLET,
                trade_id="9001",
                tx_hash=tx,
                long=True,
                collateral=raw_amount(1500),
                leverage=10,
                open_price=3000.0,
                tp=3300.0,
                sl=2850.0,
                market="gains-eth-usd-usdc",
            )
        )
        await sim.push(
            gains_trade(
                "MARKET_BUY",
                ETH_WALLET,
                market="gains-eth-usd-usdc",
                trade_id="9001",
                tx_hash=tx,
                base_amount_raw=raw_amount(5),
                price_usd=3000.0,
                long=True,
            )
        )
        await self._steps(2)
        await sim.repeat_last(1)  # the venue repeats a frame: counted as a duplicate
        # sol-desk opens 10 SOL on Lighter, later liquidated.
        await sim.push(
            gains_trade(
                "MARKET_BUY",
                SOL_WALLET,
                market="lighter-sol-usd",
                chain_id=LIGHTER_CHAIN_ID,
                trade_id="77",
                tx_hash="0x" + "50" * 32,
                base_amount_raw=raw_amount(10),
                price_usd=150.0,
                long=True,
            )
        )
        await self._steps(16)
        await sim.push(
            lighter_liquidation(
                "LIQUIDATION_LONG",
                SOL_WALLET,
                market="lighter-sol-usd",
                size="10",
                price=141.5,
                tx_hash="0x" + "1d" * 32,
                trade_id="78",
            )
        )

    async def _prophetx(self) -> None:
        sim = self._venues.prophetx
        levels = [
            [
                selection_level(outcome_id=4, odds=-110, stake=5_000.0),
                selection_level(outcome_id=4, odds=-115, stake=9_000.0),
            ],
            [selection_level(outcome_id=5, odds=105, stake=4_000.0)],
        ]
        await sim.push_market_selections(PROPHETX_EVENT, 219, levels, sequence_number=1)
        # The venue's health_check stops: after health_check_gap the watchdog reconnects. The
        # simulator's switch is venue-wide, so it is turned back on once the new connection is in.
        sockets = set(sim.socket_ids())
        sim.stop_health_check()
        await self._new_private_socket(sockets, timeout=HEALTH_GAP_WAIT)
        sim.resume_health_check()
        # Orders are placed only on the new connection: a wager update sent while the monitor
        # reconnects would be lost (Pusher keeps no history), which is the next story.
        await self._steps(1)
        backed = sim.place_order(event_id=PROPHETX_EVENT, market_id=219, outcome_id=4, odds=-110, stake=2_200.0)
        await self._declare(backed)
        await sim.activate(backed)
        await self._steps(1)
        await sim.match(backed, 1_100.0)  # $1,100 at risk on outcome 4
        await self._steps(1)
        broke = sim.place_order(event_id=PROPHETX_EVENT, market_id=219, outcome_id=5, odds=105, stake=50_000.0)
        await self._declare(broke)
        await sim.reject(broke, "insufficient_balance")
        # The activation message is lost: REST says open, the stream never did. Its deadline
        # (activation_timeout 3 s) comes over 5 s after the health_check reconnect, so the
        # watchdog's reconnect is its own, not coalesced into that one.
        await self._steps(2)
        sim.drop_next_activation()
        lost = sim.place_order(event_id=PROPHETX_EVENT, market_id=219, outcome_id=5, odds=110, stake=500.0)
        await self._declare(lost)
        await sim.activate(lost)
        sequence = 2
        while True:
            await self._steps(4)
            await sim.push_market_selections(PROPHETX_EVENT, 219, levels, sequence_number=sequence)
            sequence += 1

    async def _declare(self, order_id: str) -> None:
        """The trading system tells the monitor it placed the order, arming its activation watchdog."""
        if self._declare_order is not None:
            await self._declare_order(OrderIntake(PROPHETX, order_id, placed_at=self._now(), desk=MM_DESK_NAME))

    async def _new_private_socket(self, before: set[str], timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until a connection not in `before` is on the private channel (the monitor reconnected)."""
        sim = self._venues.prophetx
        for _ in range(int(timeout / POLL)):
            if any(sim.private_channel in sim.subscribed_channels(s) for s in sim.socket_ids() if s not in before):
                return True
            await self._sleep(POLL)
        return False

    async def _totalis(self) -> None:
        await asyncio.gather(self._totalis_lifecycle(), self._totalis_missed())

    async def _totalis_missed(self) -> None:
        """A quote the desk never confirms: its deadline passes and the venue withdraws it."""
        sim = self._venues.totalis
        await self._steps(1)
        reads = _quote_reads(sim)
        # $60 at 2.5: $90 pending, reserved until the venue says what became of the quote.
        deadline = self._now() + QUOTE_MISSED_AFTER
        await sim.accept_quote(
            quote_id="q-4",
            rfq_id="rfq-4",
            user_cost=60,
            payout_odds=2.5,
            legs=_parlay_legs(),
            confirmation_deadline=datetime.fromtimestamp(deadline, UTC),
        )
        await self._sleep(max(0.0, deadline - self._now()))
        # The missed deadline makes the monitor read the venue's quotes; the venue withdraws the
        # quote after that read (or after a while, should the read never come).
        for _ in range(int(RECONCILE_WAIT / POLL)):
            if _quote_reads(sim) > reads:
                break
            await self._sleep(POLL)
        await self._steps(1)
        await sim.withdraw("q-4")

    async def _totalis_lifecycle(self) -> None:
        sim = self._venues.totalis
        legs = _parlay_legs()

        def deadline() -> datetime:
            return datetime.fromtimestamp(self._now(), UTC) + timedelta(seconds=30)

        await self._steps(2)
        # $25 at 4.25: pending $81.25 until confirmed, then a position until settled.
        await sim.accept_quote(
            quote_id="q-1", rfq_id="rfq-1", user_cost=25, payout_odds=4.25, legs=legs, confirmation_deadline=deadline()
        )
        await self._steps(3)
        await sim.confirm("q-1")
        await sim.position_created("rfq-1", "Fq1p1s5gVgM4QS4i5Wn3d3FPgBcWRN9EjtUFLLTa2eaN")
        # $100 at 10.0 accepted (mm detail first): $900 pending, then the user lets it expire.
        await sim.accept_quote(
            quote_id="q-2",
            rfq_id="rfq-2",
            user_cost=100,
            payout_odds=10.0,
            legs=legs,
            confirmation_deadline=deadline(),
            order="mm_first",
        )
        await self._steps(4)
        await sim.expire("q-2")
        await self._steps(2)
        await sim.accept_quote(
            quote_id="q-3", rfq_id="rfq-3", user_cost=40, payout_odds=3.0, legs=legs, confirmation_deadline=deadline()
        )
        await sim.confirm("q-3")
        await self._steps(3)
        await sim.position_error("rfq-3", "settlement transaction failed")
        await self._steps(6)
        await sim.position_settled("rfq-1", "user_lost", "5" * 64)


def _parlay_legs() -> list[dict[str, Any]]:
    return [
        {"venue": "kalshi", "market_ticker": "KXBTC-26JUN01-T72500", "side": "yes"},
        {"venue": "polymarket", "market_ticker": "0x" + "ab" * 32, "side": "no"},
    ]


def _quote_reads(sim: TotalisRfqSimulator) -> int:
    """`GET /mm/quotes` calls the venue has answered so far."""
    return sum(1 for call in sim.rest_calls if call.method == "GET" and call.path.endswith("/mm/quotes"))
