"""Frames of each of the five venues as their simulators build them, for the pipeline benchmark.

Each source drives its simulator's own builders (Mango's FillEvent encoder, Mobula's push-data
builders, ProphetX's wager and book state with its Pusher envelope, Totalis' quote lifecycle,
Phoenix's market, trade and traderState pushes) without a socket: a simulator that has no client
connected builds and returns the frame and sends it nowhere. Every frame carries fresh ids and
sequence numbers, so the engine's dedupe never short-cuts the work.

`handshake(codec)` returns what a fresh codec must see first on a connection (confirmations,
snapshots, an auth answer): the benchmark feeds it before the clock starts.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any, Literal

from riskmon.bench.mango_feed import MangoFeed
from riskmon.config import MonitorConfig
from riskmon.venues.base import VenueCodec
from riskmon.venues.mobula import sim_frames as mobula
from riskmon.venues.phoenix.sim_frames import SimMarket as PhoenixMarket
from riskmon.venues.phoenix.sim_frames import dumps as phoenix_dumps
from riskmon.venues.phoenix.simulator import PhoenixSimulator
from riskmon.venues.prophetx.sim_frames import (
    HEALTH_PAYLOAD_B64,
    envelope,
    event_channel,
    event_frame,
    private_channel,
    pusher_frame,
    selection_level,
)
from riskmon.venues.prophetx.sim_state import MarketBook, WagerBook
from riskmon.venues.totalis.sim_frames import dumps as totalis_dumps
from riskmon.venues.totalis.simulator import TotalisRfqSimulator

MOBULA = "mobula"
PROPHETX = "prophetx"
TOTALIS = "totalis"
PHOENIX = "phoenix"

MOBULA_DESK_WALLET = "0x5011de5c0000000000000000000000000000a11c"
PHOENIX_AUTHORITY = "5ZWj7a1f8tWkjBESHKgrLmXshuXxqeY9SYcfbshpAqPG"
PROPHETX_ACCOUNT = "acct-bench"
TOTALIS_MM = "did:privy:mm-bench"
PHOENIX_MARKETS = (
    PhoenixMarket("SOL", base_lots_decimals=2, tick_size=100),  # a tick is $0.01
    PhoenixMarket("ETH", base_lots_decimals=3, tick_size=100),  # a tick is $0.1
)
_PHOENIX_TICKS = {"SOL": 15_000, "ETH": 30_000}
_PROPHETX_EVENT = 10_078_829


class MangoSource:
    """Every fill on the market (a mark price), one in ten the desk's own (a position change)."""

    venue = "mango"

    def __init__(self, config: MonitorConfig, timestamp: int) -> None:
        self._feed = MangoFeed(config, frames=True, timestamp=timestamp)

    def handshake(self, codec: VenueCodec) -> list[str]:
        return []  # the legacy feed needs no subscribe; the checkpoint is left out of the mix

    async def frames(self, n: int) -> list[str]:
        return [self._feed.next_frame() for _ in range(n)]


class MobulaSource:
    """Perp events of every trader on the chains: Gains trades (one in ten TRADE_STORED beside
    them), Lighter liquidations; one in twenty events is the desk's wallet."""

    venue = MOBULA

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._n = 0

    def handshake(self, codec: VenueCodec) -> list[str]:
        return ['{"event":"subscribed","subscriptionId":"sub_bench"}']

    async def frames(self, n: int) -> list[str]:
        return [self._next() for _ in range(n)]

    def _next(self) -> str:
        self._n += 1
        k, rng = self._n, self._rng
        ours = k % 20 == 0
        trader = MOBULA_DESK_WALLET if ours else f"0x{rng.getrandbits(160):040x}"
        tx_hash = f"0x{k:064x}"
        date = datetime.fromtimestamp(1_780_000_000 + k / 1000, UTC)
        if k % 10 == 3:
            data = mobula.trade_stored(
                trader,
                trade_id=str(k),
                tx_hash=tx_hash,
                long=True,
                collateral="1000000000",
                leverage=10,
                open_price=3500.25,
                tp=4000,
                sl=3000,
                market="gains-eth-usd-usdc",
                date=date,
            )
            chain = mobula.GAINS_CHAIN_ID
        elif k % 25 == 7 and not ours:
            data = mobula.lighter_liquidation(
                "LIQUIDATION_LONG", trader, size="0.75", price=3120.5, tx_hash=tx_hash, trade_id=str(k), date=date
            )
            chain = mobula.LIGHTER_CHAIN_ID
        else:
            buy = rng.random() < 0.5
            data = mobula.gains_trade(
                "MARKET_BUY" if buy else "MARKET_SELL",
                trader,
                market="gains-eth-usd-usdc",
                trade_id=str(k),
                tx_hash=tx_hash,
                base_amount_raw=mobula.raw_amount("0.25"),
                price_usd=3500.0 + rng.randint(-50, 50),
                long=buy,
                date=date,
            )
            chain = mobula.GAINS_CHAIN_ID
        # The push envelope of protocols.md §2.2 around the builder's data object.
        return json.dumps({"data": data, "chainId": chain, "duplicateCount": 1, "subscriptionId": "sub_bench"})


class ProphetXSource:
    """The event's order book (market_selections) and the desk's wagers through their lifecycle
    (placed inactive, activated, two partial matches, cancel of the rest); a health_check now and then."""

    venue = PROPHETX

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._wagers = WagerBook(PROPHETX_ACCOUNT)
        self._books = MarketBook()
        self._channel = private_channel(PROPHETX_ACCOUNT)
        self._ts_ns = 1_780_000_000_000_000_000
        self._book_seq = 0
        self._pending: list[str] = []

    def handshake(self, codec: VenueCodec) -> list[str]:
        established = json.dumps({"socket_id": "123.456", "activity_timeout": 120})
        return [pusher_frame("pusher:connection_established", established)]

    async def frames(self, n: int) -> list[str]:
        out: list[str] = []
        while len(out) < n:
            self._ts_ns += 1_000_000
            k = len(out)
            if k % 50 == 49:
                out.append(self._health_check())
            elif k % 5 < 3:
                out.append(self._book())
            else:
                if not self._pending:
                    self._pending = self._wager_lifecycle()
                out.append(self._pending.pop(0))
        return out

    def _book(self) -> str:
        self._book_seq += 1
        market_id = 200 + self._book_seq % 8
        selections = [
            [selection_level(outcome_id=o, odds=odds, stake=float(self._rng.randint(10, 5000))) for odds in (110, 125)]
            for o in (1, 2)
        ]
        info = self._books.update(
            _PROPHETX_EVENT, market_id, selections, self._book_seq, (None, None, None), rest_only=False
        )
        payload = {"sport_event_id": _PROPHETX_EVENT, "market_id": market_id, "info": info}
        return event_frame(
            "market_selections", event_channel(_PROPHETX_EVENT), self._ts_ns, "market_selections", "u", payload
        )

    def _wager_lifecycle(self) -> list[str]:
        wager = self._wagers.place(
            event_id=_PROPHETX_EVENT,
            market_id=219,
            outcome_id=4,
            odds=-110,
            stake=250.0,
            line=-3.5,
            line_id=None,
            external_id=None,
            order_id=None,
        )
        order_id = wager.id
        self._wagers.activate(order_id)
        self._wagers.match(order_id, 50.0, None)
        self._wagers.match(order_id, 75.0, None)
        self._wagers.cancel(order_id)
        return [
            event_frame("wagers", self._channel, self._ts_ns + i, "wager", "u", {"info": info})
            for i, info in enumerate(wager.history)
        ]

    def _health_check(self) -> str:
        data = envelope(self._ts_ns, "private_system_signal", "u", HEALTH_PAYLOAD_B64)
        return pusher_frame("health_check", data, self._channel)


class TotalisSource:
    """The market maker's accepted quotes, then confirmed, the position created and settled (or,
    one in four, the quote expires)."""

    venue = TOTALIS

    def __init__(self) -> None:
        self._sim = TotalisRfqSimulator("bench-key", mm_id=TOTALIS_MM)
        self._quotes = 0

    def handshake(self, codec: VenueCodec) -> list[str]:
        return [totalis_dumps({"type": "auth:success", "user_id": TOTALIS_MM, "user_type": "market_maker"})]

    async def frames(self, n: int) -> list[str]:
        out: list[str] = []
        while len(out) < n:
            out.extend(await self._lifecycle())
        return out[:n]

    async def _lifecycle(self) -> list[str]:
        sim = self._sim
        self._quotes += 1
        quote_id, rfq_id = f"q-{self._quotes}", f"rfq-{self._quotes}"
        legs: list[dict[str, Any]] = [
            {"venue": "kalshi", "market_ticker": "KXBTC-26JUN01-T72500", "side": "yes"},
            {"venue": "polymarket", "market_ticker": "0x" + "ab" * 32, "side": "no"},
        ]
        # Due far beyond any run: the benchmark measures the stream, not the confirmation watchdog.
        deadline = datetime(2100, 1, 1, tzinfo=UTC)
        await sim.accept_quote(
            quote_id=quote_id, rfq_id=rfq_id, user_cost=25, payout_odds=4.25, legs=legs, confirmation_deadline=deadline
        )
        if self._quotes % 4 == 0:
            await sim.expire(quote_id)
        else:
            await sim.confirm(quote_id)
            await sim.position_created(rfq_id, f"pda{self._quotes}")
            await sim.position_settled(rfq_id, "user_lost", "5" * 64)
        frames = [totalis_dumps({"type": e.event, "channel": e.channel, "data": e.data}) for e in sim.events]
        sim.events.clear()
        return frames


class PhoenixSource:
    """allMids, the per-symbol market stats, public trades, and the desk's traderState deltas."""

    venue = PHOENIX

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._sim = PhoenixSimulator(markets=PHOENIX_MARKETS, authorities=[PHOENIX_AUTHORITY])
        self._n = 0

    def handshake(self, codec: VenueCodec) -> list[str]:
        """The simulator's answer to the codec's subscribes: a confirmation each, then the snapshots."""
        codec.connection_opened()
        out: list[str] = []
        for frame in codec.data_to_send():
            subscription = json.loads(frame)["subscription"]
            out.append(phoenix_dumps({"type": "subscriptionConfirmed", "subscription": subscription}))
            if subscription["channel"] == "exchange":
                out.append(phoenix_dumps(self._sim.exchange_snapshot()))
            elif subscription["channel"] == "traderState":
                out.append(phoenix_dumps(self._sim.trader_snapshot(PHOENIX_AUTHORITY)))
        return out

    async def frames(self, n: int) -> list[str]:
        return [phoenix_dumps(await self._next()) for _ in range(n)]

    async def _next(self) -> dict[str, Any]:
        self._n += 1
        k, sim, rng = self._n, self._sim, self._rng
        symbol = "SOL" if k % 2 else "ETH"
        ticks = _PHOENIX_TICKS[symbol] + rng.randint(-20, 20)
        price = float(ticks) / (100 if symbol == "SOL" else 10)
        slot = k % 10
        if slot < 4:
            return await sim.push_mids({"SOL": price if symbol == "SOL" else 150.0, "ETH": 3000.0})
        if slot < 6:
            return await sim.push_market(symbol, price)
        if slot < 9:
            side: Literal["bid", "ask"] = "bid" if rng.random() < 0.5 else "ask"
            return await sim.push_trade(symbol, side=side, base_lots=rng.randint(1, 500), price_ticks=ticks)
        lots = rng.randint(-400, 400) or 1
        return await sim.set_position(PHOENIX_AUTHORITY, symbol, lots, ticks, trade={})
