"""Integration tests for the Phoenix perps session against the real loopback simulator.

The session (riskmon/venues/phoenix/session.py) drives the real PhoenixCodec over a real websocket
to the PhoenixSimulator. Backoff sleeps are injected (`FakeSleep`), so reconnects never wait in
real time; jitter comes from a seeded `random.Random`, so delays are exact; the clock is virtual.
Every item the session hands on is also applied to a real Engine, as the runtime does, so the
tests check the exposure and alerts the frames lead to, not only the events.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from riskmon.capture import read_capture
from riskmon.clock import VirtualClock
from riskmon.config.desks import desk_accounts
from riskmon.config.schema import Backoff, Desk, DeskLimits, MonitorConfig, NetNotionalLimit, PhoenixVenue
from riskmon.config.types import Duration, Secret
from riskmon.engine.engine import Engine
from riskmon.engine.exposure import PositionKey
from riskmon.events import (
    BookLevel,
    BookSide,
    BookSnapshot,
    Event,
    FeedDown,
    FeedUp,
    FrameMalformed,
    MarketStatusChanged,
    MarkKind,
    MarkPrice,
    PositionsReported,
    ReportedPosition,
    SequenceGap,
    StreamResynced,
    Subscribed,
    SubscriptionFailed,
    TradeExecuted,
)
from riskmon.replay import ReplayResult, replay
from riskmon.venues.phoenix.codec import PhoenixCodec
from riskmon.venues.phoenix.session import PhoenixSession
from riskmon.venues.phoenix.sim_server import _Client
from riskmon.venues.phoenix.simulator import MalformedKind, PhoenixSimulator, SimMarket
from tests.venues.session_harness import (
    TIMEOUT,
    SessionHarness,
    reference_delays,
    refusing_http_server,
    session_pool,
    started,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

VENUE = "phoenix"
DESK = "perp-desk"
START = 1_750_000_000.0
SEED = 20260608
ALICE = "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"  # the desk's wallet authority
BOB = "HN7cABqLq46Es1jh92dQQisAq662SmxELLLsHHe4YWrH"  # someone else's
SOL = SimMarket("SOL", base_lots_decimals=2, tick_size=100)  # a tick is $0.01, a lot 0.01 SOL
ETH = SimMarket("ETH", base_lots_decimals=3, tick_size=100)  # a tick is $0.10, a lot 0.001 ETH
BTC = SimMarket("BTC", base_lots_decimals=4, tick_size=100)  # a tick is $1, a lot 0.0001 BTC (§5.5)
SYMBOLS = ["SOL", "ETH"]  # `market` channels; BTC is priced by allMids only
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJyaXNrbW9uLWRlc2sifQ.UEhYX1NFQ1JFVF9TSUdOQVRVUkU"
WRONG_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ3cm9uZyJ9.V1JPTkdfU0lHTkFUVVJFX1BIWA"
UNDERLYING = "SOL-USD"
NET_LIMIT = Decimal(2000)
EXCHANGE_SEQUENCE = 58_211  # the simulator's first exchange sequenceNumber

TRADER_SUB = {"channel": "traderState", "authority": ALICE, "traderPdaIndex": 0}
EXCHANGE_SUB = {"channel": "exchange", "encoding": "json"}
CONNECT_SUBS = [
    TRADER_SUB,
    EXCHANGE_SUB,
    {"channel": "allMids"},
    {"channel": "market", "symbol": "SOL"},
    {"channel": "market", "symbol": "ETH"},
]
CONNECT_LABELS = ["traderState", "exchange", "allMids", "market:SOL", "market:ETH"]


def pos(market: str, quantity: str, entry: str | None) -> ReportedPosition:
    return ReportedPosition(market, Decimal(quantity), None if entry is None else Decimal(entry))


# What seed_positions() leaves ALICE holding, as the snapshot must report it (sorted by market):
# SOL 1234 + 66 lots over two subaccounts = 13.00; ETH -5000 lots = -5.000 (short); BTC 0.1234.
SEEDED = (pos("BTC", "0.1234", "65000"), pos("ETH", "-5.000", "3100.5"), pos("SOL", "13.00", "150.25"))


async def seed_positions(sim: PhoenixSimulator) -> None:
    """ALICE: three markets on the primary subaccount (sequence 1 -> 4), SOL also on isolated 1."""
    await sim.set_position(ALICE, "SOL", 1234, 15_025)  # entry 15025 ticks = $150.25
    await sim.set_position(ALICE, "ETH", -5000, 31_005)  # entry $3100.50
    await sim.set_position(ALICE, "BTC", 1234, 65_000)  # entry $65000
    await sim.set_position(ALICE, "SOL", 66, 15_100, subaccount=1)  # isolated: sequence 0 -> 1
    await sim.set_position(BOB, "SOL", 99_999, 15_000)  # never subscribed: must never show up


def venue_config(url: str, *, jwt: str | None = None, ping: float = 20.0, ping_timeout: float = 20.0) -> PhoenixVenue:
    return PhoenixVenue(
        url=url,
        authority=ALICE,
        symbols=list(SYMBOLS),
        jwt=None if jwt is None else Secret(jwt),
        ping_interval=Duration(ping),
        ping_timeout=Duration(ping_timeout),
        reconnect=Backoff(initial=Duration(1.0), max=Duration(8.0)),
        open_timeout=Duration(TIMEOUT),
    )


def monitor_config(venue: PhoenixVenue) -> MonitorConfig:
    limits = DeskLimits(max_net_notional_usd=[NetNotionalLimit(market=UNDERLYING, max_usd=NET_LIMIT)])
    return MonitorConfig(
        venues={VENUE: venue},
        desks={DESK: Desk(accounts={VENUE: [ALICE]}, limits=limits)},
        underlyings={UNDERLYING: {VENUE: "SOL"}},
    )


def endpoint(url: str) -> str:
    """How the session reports an endpoint: scheme://host:port, never the path."""
    return url.removesuffix("/v1/ws")


def reported(positions: tuple[ReportedPosition, ...], *, complete: bool, sequence: int | None = None) -> Event:
    return PositionsReported(VENUE, DESK, ALICE, positions, complete, sequence)


def auth_failed(reason: str) -> SubscriptionFailed:
    return SubscriptionFailed(VENUE, "auth", reason, misconfigured=True)


class RecordingSimulator(PhoenixSimulator):
    """The real simulator, also noting each handshake's credentials and the websocket frame type
    of every control message it reads."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.received: list[tuple[type, dict[str, Any]]] = []
        self.handshakes: list[tuple[str | None, list[str]]] = []

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        headers = request.headers
        self.handshakes.append((headers.get("Authorization"), headers.get_all("Sec-WebSocket-Protocol")))
        return super()._process_request(conn, request)

    def _on_message(self, client: _Client, message: str | bytes) -> bool:
        self.received.append((type(message), json.loads(message)))
        return super()._on_message(client, message)


class MarketDataCodec(PhoenixCodec):
    """The real codec plus the trades and orderbook subscriptions of the configured symbols.

    The stock codec subscribes only traderState, exchange, allMids and `market`; a deployment that
    wants the public tape adds these, sent as binary frames like the codec's own.
    """

    def __init__(self, venue: str, accounts: dict[str, str], config: PhoenixVenue) -> None:
        super().__init__(venue, accounts, config)
        self._symbols = list(config.symbols)
        self._extra: list[str | bytes] = []

    def connection_opened(self) -> None:
        super().connection_opened()
        self._extra = [
            msgspec.json.encode({"type": "subscribe", "subscription": {"channel": channel, "symbol": symbol}})
            for symbol in self._symbols
            for channel in ("trades", "orderbook")
        ]

    def data_to_send(self) -> list[str | bytes]:
        frames, self._extra = super().data_to_send() + self._extra, []
        return frames


class PhoenixHarness(SessionHarness):
    """Also applies what the session hands on to a real Engine, like the runtime."""

    engine: Engine

    def __init__(self, config: MonitorConfig, capture: Path | None) -> None:
        super().__init__(VirtualClock(START), engine=Engine(config), capture=capture)
        self.config = config

    async def connected(self, url: str, trader: list[Event], exchange: list[Event]) -> None:
        """The exact sequence of a (re)connect: the traderState confirmation, FeedUp (the feed is up
        only once the venue confirms the desk's positions channel), the other confirmations, and the
        snapshot frames carrying `trader` and `exchange` events."""
        assert await self.frame_events() == [Subscribed(VENUE, "traderState")]
        assert await self.next_report() == FeedUp(VENUE, endpoint(url))
        snapshot = await self.next_frame()
        assert isinstance(snapshot.frame, str)
        assert json.loads(snapshot.frame)["messageType"] == "snapshot"
        assert snapshot.events == trader
        assert await self.frame_events() == [Subscribed(VENUE, "exchange")]
        exchange_snapshot = await self.next_frame()
        assert isinstance(exchange_snapshot.frame, str)
        assert json.loads(exchange_snapshot.frame)["messageType"] == "snapshot"
        assert exchange_snapshot.events == exchange
        for label in CONNECT_LABELS[2:]:
            assert await self.frame_events() == [Subscribed(VENUE, label)]

    async def first_connect(self, url: str, positions: tuple[ReportedPosition, ...] = SEEDED) -> None:
        """On the first connection the trader snapshot precedes the exchange snapshot, so units are
        unknown: open positions are held back and reported complete once the exchange gives units
        (with no position at all, nothing waits: the trader snapshot is complete at once)."""
        if positions:
            await self.connected(url, [], [reported(positions, complete=True)])
        else:
            await self.connected(url, [reported((), complete=True)], [])

    def position(self, market: str) -> Decimal:
        return self.engine.book.position(PositionKey(DESK, VENUE, ALICE, market))

    def alerts(self, name: str) -> list[tuple[str, str, dict[str, str]]]:
        return [(t.status, t.severity, t.labels) for t in self.transitions if t.alertname == name]


SessionFactory = Callable[..., Awaitable[PhoenixHarness]]


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[RecordingSimulator]:
    async with started(RecordingSimulator(markets=[SOL, ETH, BTC], authorities=[ALICE, BOB])) as server:
        yield server


@pytest_asyncio.fixture
async def jwt_sim() -> AsyncIterator[RecordingSimulator]:
    async with started(RecordingSimulator(markets=[SOL, ETH, BTC], authorities=[ALICE, BOB], jwt=JWT)) as server:
        yield server


@pytest_asyncio.fixture
async def start_session() -> AsyncIterator[SessionFactory]:
    async with session_pool() as pool:

        async def start(
            url: str,
            *,
            jwt: str | None = None,
            ping: float = 20.0,
            ping_timeout: float = 20.0,
            codec_type: type[PhoenixCodec] = PhoenixCodec,
            capture: Path | None = None,
        ) -> PhoenixHarness:
            venue = venue_config(url, jwt=jwt, ping=ping, ping_timeout=ping_timeout)
            h = PhoenixHarness(monitor_config(venue), capture)
            codec = codec_type(VENUE, desk_accounts(h.config, VENUE), venue)
            session = PhoenixSession(VENUE, venue, codec, h.sink, h.clock, rng=random.Random(SEED), sleep=h.sleep)
            pool.start(h, session, "phoenix-session")
            return h

        yield start


@pytest_asyncio.fixture
async def seeded(sim: RecordingSimulator, start_session: SessionFactory) -> PhoenixHarness:
    """A session whose first connect (checked exactly) found the positions of seed_positions()."""
    await seed_positions(sim)
    h = await start_session(sim.url)
    await h.first_connect(sim.url)
    return h


# ---- connect, subscribe, snapshot units --------------------------------------------------------


async def test_connect_subscribes_in_binary_then_snapshots_report_exact_positions(
    sim: RecordingSimulator, seeded: PhoenixHarness
) -> None:
    h = seeded

    # The codec's subscribes went out as binary frames, in order, one per channel and symbol.
    assert sim.received == [(bytes, {"type": "subscribe", "subscription": sub}) for sub in CONNECT_SUBS]
    assert [message["subscription"] for message in sim.subscriptions] == CONNECT_SUBS
    assert sim.connections == 1
    assert sim.handshakes == [(None, [])]  # no JWT configured: no credentials offered

    # The exact Decimals of §5.5: lots / 10^baseLotsDecimals, summed over both subaccounts.
    report = h.seen[4].events[0]
    assert isinstance(report, PositionsReported)
    assert [(p.market, str(p.quantity)) for p in report.positions] == [
        ("BTC", "0.1234"),
        ("ETH", "-5.000"),
        ("SOL", "13.00"),
    ]
    assert h.position("SOL") == Decimal("13.00")
    assert h.position("ETH") == Decimal("-5.000")
    assert h.position("BTC") == Decimal("0.1234")
    assert [row.key.account for row in h.engine.book.rows()] == [ALICE] * 3  # BOB never shows up
    assert h.engine.stats[VENUE].malformed == 0
    assert h.transitions == []
    assert h.sleep.delays == []


async def test_trader_deltas_give_partial_reports_and_stale_ones_are_dropped(
    sim: RecordingSimulator, seeded: PhoenixHarness
) -> None:
    h = seeded

    # Primary subaccount 4 -> 5: SOL is 2000 + 66 isolated lots; the entry is the primary's.
    await sim.set_position(ALICE, "SOL", 2000, 15_100)
    assert await h.frame_events() == [reported((pos("SOL", "20.66", "151"),), complete=False, sequence=5)]
    # Isolated subaccount 1 -> 2 flips the short side: -166 + 2000.
    await sim.set_position(ALICE, "SOL", -166, 15_200, subaccount=1)
    assert await h.frame_events() == [reported((pos("SOL", "18.34", "151"),), complete=False, sequence=2)]
    # Closing the ETH short reports it flat; the other markets are untouched.
    await sim.close_position(ALICE, "ETH")
    assert await h.frame_events() == [reported((pos("ETH", "0", None),), complete=False, sequence=6)]
    # A stale delta (sequence below the current one) with a phantom -777 lots is ignored.
    await sim.send_stale_trader_delta(ALICE)
    assert await h.frame_events() == []
    # Orders and collateral move no position: the deltas arrive and report nothing.
    await sim.set_order(ALICE, "SOL", side="bid", price_ticks=14_900, size_lots=500)
    assert await h.frame_events() == []
    await sim.set_collateral(ALICE, "5000000000")
    assert await h.frame_events() == []
    # The isolated subaccount's next delta (2 -> 3) is contiguous: applied, no gap.
    await sim.close_position(ALICE, "SOL", subaccount=1)
    assert await h.frame_events() == [reported((pos("SOL", "20.00", "151"),), complete=False, sequence=3)]

    assert (h.position("SOL"), h.position("ETH"), h.position("BTC")) == (
        Decimal("20.00"),
        Decimal(0),
        Decimal("0.1234"),
    )
    assert h.engine.stats[VENUE].sequence_gaps == 0
    assert len(sim.subscriptions) == len(CONNECT_SUBS)  # nothing was resubscribed


# ---- sequence gaps -------------------------------------------------------------------------------


async def test_trader_sequence_gap_resubscribes_for_a_fresh_snapshot(
    sim: RecordingSimulator, seeded: PhoenixHarness
) -> None:
    h = seeded
    before = len(sim.received)

    await sim.skip_trader_sequence(ALICE)  # the next delta jumps 4 -> 6
    await sim.set_position(ALICE, "SOL", 1500, 15_050)
    assert await h.frame_events() == [SequenceGap(VENUE, "traderState:0", 5, 6)]

    # The codec queued unsubscribe + subscribe, flushed by the session as binary frames.
    unsubscribed = await h.next_frame()
    assert isinstance(unsubscribed.frame, str)
    assert json.loads(unsubscribed.frame)["status"] == "unsubscribed"
    assert unsubscribed.events == []
    assert sim.received[before:] == [
        (bytes, {"type": "unsubscribe", "subscription": TRADER_SUB}),
        (bytes, {"type": "subscribe", "subscription": TRADER_SUB}),
    ]
    assert await h.frame_events() == [Subscribed(VENUE, "traderState")]
    # The fresh snapshot carries the delta the gap hid: SOL 1500 + 66 lots.
    fresh = (pos("BTC", "0.1234", "65000"), pos("ETH", "-5.000", "3100.5"), pos("SOL", "15.66", "150.5"))
    assert await h.frame_events() == [reported(fresh, complete=True), StreamResynced(VENUE, "traderState:0")]

    # Deltas after the snapshot apply again.
    await sim.set_position(ALICE, "BTC", -10, 64_000)
    assert await h.frame_events() == [reported((pos("BTC", "-0.0010", "64000"),), complete=False, sequence=7)]
    assert (h.position("SOL"), h.position("BTC")) == (Decimal("15.66"), Decimal("-0.001"))
    assert h.engine.stats[VENUE].sequence_gaps == 1
    assert h.alerts("SequenceGap") == [
        (
            "firing",
            "warning",
            {"venue": VENUE, "stream": "traderState:0", "alertname": "SequenceGap", "severity": "warning"},
        )
    ]
    assert h.sleep.delays == []  # a resubscribe, not a reconnect
    assert sim.connections == 1


async def test_exchange_sequence_gap_resubscribes_and_the_snapshot_restores_the_status(
    sim: RecordingSimulator, seeded: PhoenixHarness
) -> None:
    h = seeded
    before = len(sim.received)

    await sim.set_market_status("ETH", "postOnly")  # sequence 58212: applied
    assert await h.frame_events() == [MarketStatusChanged(VENUE, "ETH", "postOnly", False)]
    await sim.skip_exchange_sequence()
    await sim.set_market_status("SOL", "paused")  # sequence 58214: 58213 is missing
    assert await h.frame_events() == [SequenceGap(VENUE, "exchange", EXCHANGE_SEQUENCE + 2, EXCHANGE_SEQUENCE + 3)]
    assert (await h.next_frame()).events == []  # subscriptionStatus: unsubscribed
    assert sim.received[before:] == [
        (bytes, {"type": "unsubscribe", "subscription": EXCHANGE_SUB}),
        (bytes, {"type": "subscribe", "subscription": EXCHANGE_SUB}),
    ]
    assert await h.frame_events() == [Subscribed(VENUE, "exchange")]
    # The status change the gap hid comes from the fresh snapshot, once; ETH is not repeated.
    assert await h.frame_events() == [
        MarketStatusChanged(VENUE, "SOL", "paused", False),
        StreamResynced(VENUE, "exchange"),
    ]

    # Deltas continue from the snapshot's sequence.
    await sim.set_market_status("SOL", "active")
    assert await h.frame_events() == [MarketStatusChanged(VENUE, "SOL", "active", True)]
    assert h.engine.stats[VENUE].sequence_gaps == 1
    assert h.sleep.delays == []


# ---- market status and the engine ----------------------------------------------------------------


async def test_market_closed_with_exposure_fires_and_resolves_in_the_engine(
    sim: RecordingSimulator, seeded: PhoenixHarness
) -> None:
    h = seeded
    sol_labels = {"desk": DESK, "venue": VENUE, "market": "SOL", "account": ALICE}
    eth_labels = {**sol_labels, "market": "ETH"}

    def closed_alerts() -> list[tuple[str, dict[str, str], float | None]]:
        return [
            (t.status, {k: v for k, v in t.labels.items() if k in sol_labels}, t.value)
            for t in h.transitions
            if t.alertname == "MarketClosedWithExposure"
        ]

    await sim.set_market_status("SOL", "paused")
    assert await h.frame_events() == [MarketStatusChanged(VENUE, "SOL", "paused", False)]
    assert closed_alerts() == [("firing", sol_labels, 13.0)]
    await sim.set_market_status("SOL", "active")
    assert await h.frame_events() == [MarketStatusChanged(VENUE, "SOL", "active", True)]
    assert closed_alerts()[1:] == [("resolved", sol_labels, 13.0)]

    await sim.close_market("SOL", "149.87")
    assert await h.frame_events() == [MarketStatusChanged(VENUE, "SOL", "closed", False, Decimal("149.87"))]
    fired = h.transitions[-1]
    assert (fired.status, fired.alertname, fired.severity) == ("firing", "MarketClosedWithExposure", "critical")
    assert fired.annotations["description"].startswith("The venue marked SOL closed (final price 149.87)")
    await sim.set_market_status("SOL", "active")
    assert await h.frame_events() == [MarketStatusChanged(VENUE, "SOL", "active", True)]
    assert closed_alerts()[2:] == [("firing", sol_labels, 13.0), ("resolved", sol_labels, 13.0)]

    # A tombstoned market where the desk is short.
    await sim.tombstone_market("ETH")
    assert await h.frame_events() == [MarketStatusChanged(VENUE, "ETH", "tombstoned", False)]
    assert closed_alerts()[4:] == [("firing", eth_labels, -5.0)]
    # Flattening resolves it: nothing is stuck in a market that cannot trade.
    await sim.close_position(ALICE, "ETH")
    assert await h.frame_events() == [reported((pos("ETH", "0", None),), complete=False, sequence=5)]
    assert closed_alerts()[5:] == [("resolved", eth_labels, 0.0)]

    # The whole exchange pauses: every market the desk still holds is stuck, the flat ETH is not.
    btc_labels = {**sol_labels, "market": "BTC"}
    await sim.set_exchange_status("paused")
    assert await h.frame_events() == [MarketStatusChanged(VENUE, "*", "paused", False)]
    assert closed_alerts()[6:] == [("firing", btc_labels, 0.1234), ("firing", sol_labels, 13.0)]
    await sim.set_exchange_status("active")
    assert await h.frame_events() == [MarketStatusChanged(VENUE, "*", "active", True)]
    assert closed_alerts()[8:] == [("resolved", btc_labels, 0.1234), ("resolved", sol_labels, 13.0)]
    assert h.engine.markets.statuses[(VENUE, "SOL")].status == "active"


# ---- marks, valuation, limits --------------------------------------------------------------------


async def test_market_and_mids_marks_value_the_position_against_the_limit(
    sim: RecordingSimulator, seeded: PhoenixHarness
) -> None:
    h = seeded
    key = PositionKey(DESK, VENUE, ALICE, "SOL")

    await sim.push_market("SOL", 150.1)
    assert await h.frame_events() == [MarkPrice(VENUE, "SOL", Decimal("150.1"), 0.0, MarkKind.MARK)]
    assert h.engine.book.notional(key) == Decimal("1951.300")  # 13.00 SOL x $150.1, exact
    # 1951.30 is over the 80% warning line of the $2000 net limit on the SOL-USD underlying.
    assert h.alerts("ExposureLimitBreach") == [
        (
            "firing",
            "warning",
            {
                "desk": DESK,
                "market": UNDERLYING,
                "limit": "net_notional",
                "alertname": "ExposureLimitBreach",
                "severity": "warning",
            },
        )
    ]

    # BTC has no `market` subscription: its mark never arrives; allMids covers it.
    await sim.push_market("BTC", 65_100.0)
    await sim.push_mids({"SOL": 155.0, "BTC": 65_000.5})
    assert await h.frame_events() == [
        MarkPrice(VENUE, "SOL", Decimal("155.0"), 0.0, MarkKind.MID),
        MarkPrice(VENUE, "BTC", Decimal("65000.5"), 0.0, MarkKind.MID),
    ]
    assert h.engine.book.notional(key) == Decimal("2015.000")
    assert h.engine.book.notional(PositionKey(DESK, VENUE, ALICE, "BTC")) == Decimal("8021.0617")
    assert h.alerts("ExposureLimitBreach")[1][:2] == ("firing", "critical")
    assert h.engine.book.desk_market_net(DESK, UNDERLYING) == Decimal("2015.000")

    # The short ETH: a negative notional from the ETH market mark.
    await sim.push_market("ETH", 3000.25)
    assert await h.frame_events() == [MarkPrice(VENUE, "ETH", Decimal("3000.25"), 0.0, MarkKind.MARK)]
    assert h.engine.book.notional(PositionKey(DESK, VENUE, ALICE, "ETH")) == Decimal("-15001.25")

    # The desk cuts SOL: the report revalues and the critical alert clears below 95% of $2000.
    await sim.set_position(ALICE, "SOL", 1000, 15_025)
    assert await h.frame_events() == [reported((pos("SOL", "10.66", "150.25"),), complete=False, sequence=5)]
    assert [(status, severity) for status, severity, _ in h.alerts("ExposureLimitBreach")] == [
        ("firing", "warning"),
        ("firing", "critical"),
        ("resolved", "critical"),
    ]
    assert h.engine.book.notional(key) == Decimal("1652.300")


# ---- public tape ---------------------------------------------------------------------------------


async def test_trades_and_orderbook_are_not_delivered_without_a_subscription(
    sim: RecordingSimulator, start_session: SessionFactory
) -> None:
    h = await start_session(sim.url)
    await h.first_connect(sim.url, ())
    await sim.push_trade("SOL", side="bid", base_lots=250, price_ticks=15_030)
    await sim.push_orderbook("SOL", [(150.25, 100.0)], [(150.3, 150.0)])
    await sim.push_market("SOL", 150.2)  # the simulator keeps each client's frames in order
    assert await h.frame_events() == [MarkPrice(VENUE, "SOL", Decimal("150.2"), 0.0, MarkKind.MARK)]
    assert h.engine.stats[VENUE].trades == 0
    assert h.engine.stats[VENUE].book_updates == 0


async def test_trades_and_orderbook_arrive_when_subscribed_for_the_config_symbols(
    sim: RecordingSimulator, start_session: SessionFactory
) -> None:
    h = await start_session(sim.url, codec_type=MarketDataCodec)
    await h.first_connect(sim.url, ())
    for symbol in SYMBOLS:
        assert await h.frame_events() == [Subscribed(VENUE, f"trades:{symbol}")]
        assert await h.frame_events() == [Subscribed(VENUE, f"orderbook:{symbol}")]
    assert sim.received[len(CONNECT_SUBS) :] == [
        (bytes, {"type": "subscribe", "subscription": {"channel": channel, "symbol": symbol}})
        for symbol in SYMBOLS
        for channel in ("trades", "orderbook")
    ]

    # 250 lots = 2.5 SOL for 250 x 15030 x 100 quote lots = $375.75: $150.30 each.
    trades = await sim.push_trade("SOL", side="bid", base_lots=250, price_ticks=15_030, timestamp=1_750_000_123)
    assert await h.frame_events() == [
        TradeExecuted(VENUE, "SOL", Decimal("150.3"), Decimal("2.5"), 1001, 1_750_000_123.0)
    ]
    # A replayed trades frame (same tradeSequenceNumber) is dropped.
    await sim.send_raw(json.dumps(trades))
    assert await h.frame_events() == []
    # ETH: 1500 lots = 1.5 ETH for $4650.75.
    await sim.push_trade("ETH", side="ask", base_lots=1500, price_ticks=31_005, timestamp=1_750_000_124)
    assert await h.frame_events() == [
        TradeExecuted(VENUE, "ETH", Decimal("3100.5"), Decimal("1.5"), 1001, 1_750_000_124.0)
    ]

    await sim.push_orderbook("SOL", [(150.25, 100.0), (150.2, 7.5)], [(150.3, 150.0)])
    assert await h.frame_events() == [
        BookSnapshot(
            VENUE,
            "SOL",
            (
                BookSide(
                    "bid", (BookLevel(Decimal("150.25"), Decimal("100.0")), BookLevel(Decimal("150.2"), Decimal("7.5")))
                ),
                BookSide("ask", (BookLevel(Decimal("150.3"), Decimal("150.0")),)),
            ),
        )
    ]
    # BTC is not a config symbol: neither its trades nor its book arrive.
    await sim.push_trade("BTC", side="bid", base_lots=1, price_ticks=65_000)
    await sim.push_orderbook("BTC", [(64_999.0, 1.0)], [(65_001.0, 1.0)])
    await sim.push_orderbook("ETH", [], [(3100.5, 2.0)])
    assert await h.frame_events() == [
        BookSnapshot(
            VENUE, "ETH", (BookSide("bid", ()), BookSide("ask", (BookLevel(Decimal("3100.5"), Decimal("2.0")),)))
        )
    ]
    stats = h.engine.stats[VENUE]
    assert (stats.trades, stats.book_updates) == (2, 2)


# ---- JWT ------------------------------------------------------------------------------------------


async def test_jwt_handshake_is_accepted_with_the_right_token(
    jwt_sim: RecordingSimulator, start_session: SessionFactory
) -> None:
    await seed_positions(jwt_sim)
    h = await start_session(jwt_sim.url, jwt=JWT)
    # The simulator refuses (401) unless both the Bearer header and the subprotocols carry it.
    await h.first_connect(jwt_sim.url)
    assert jwt_sim.handshakes == [(f"Bearer {JWT}", [f"phoenix-jwt, {JWT}"])]
    assert jwt_sim.connections == 1
    assert h.sleep.delays == []
    assert not any(isinstance(event, SubscriptionFailed) for item in h.seen for event in item.events)


async def test_wrong_jwt_is_refused_with_backoff_until_the_venue_accepts_it(
    jwt_sim: RecordingSimulator, start_session: SessionFactory
) -> None:
    h = await start_session(jwt_sim.url, jwt=WRONG_JWT)
    h.sleep.hold()
    for attempt in (1, 2):
        assert await h.next_report() == auth_failed("handshake refused (HTTP 401)")
        assert await h.next_report() == FeedDown(VENUE, endpoint(jwt_sim.url), "handshake refused (HTTP 401)")
        await h.sleep.wait_for_sleeps(attempt)
        assert jwt_sim.connections == 0
        if attempt == 1:
            h.sleep.release()
            h.sleep.hold()
    # Capped, jittered, growing: no reconnect storm against a venue that refuses us.
    assert h.sleep.delays == reference_delays(SEED, ["next", "next"])
    assert 0.5 <= h.sleep.delays[0] <= 1.0
    assert 1.0 <= h.sleep.delays[1] <= 2.0
    alert = h.alerts("VenueSubscriptionError")
    assert alert == [
        (
            "firing",
            "critical",
            {"venue": VENUE, "subscription": "auth", "alertname": "VenueSubscriptionError", "severity": "critical"},
        )
    ]

    jwt_sim.set_jwt(WRONG_JWT)  # the venue now accepts that token (rotated on its side)
    h.sleep.release()
    await h.connected(jwt_sim.url, [reported((), complete=True)], [])
    # Accepted and delivering: the auth alert resolves.
    assert [status for status, _, _ in h.alerts("VenueSubscriptionError")] == ["firing", "resolved"]
    assert len(h.sleep.delays) == 2


async def test_expired_token_closes_4401_then_reconnects_when_accepted_again(
    jwt_sim: RecordingSimulator, start_session: SessionFactory
) -> None:
    await seed_positions(jwt_sim)
    h = await start_session(jwt_sim.url, jwt=JWT)
    await h.first_connect(jwt_sim.url)

    h.sleep.hold()
    await jwt_sim.expire_token()
    assert await h.next_report() == auth_failed("the venue closed the session: access_token_expired")
    assert await h.next_report() == FeedDown(VENUE, endpoint(jwt_sim.url), "connection closed (code 4401)")
    await h.sleep.wait_for_sleeps(1)
    await jwt_sim.set_position(ALICE, "SOL", 1400, 15_025)  # missed while away (4 -> 5)
    h.sleep.release()
    h.sleep.hold()
    # The same token is refused while expired: a reconnect attempt, then backoff again.
    assert await h.next_report() == auth_failed("handshake refused (HTTP 401)")
    assert await h.next_report() == FeedDown(VENUE, endpoint(jwt_sim.url), "handshake refused (HTTP 401)")
    await h.sleep.wait_for_sleeps(2)

    jwt_sim.set_jwt(JWT)
    h.sleep.release()
    fresh = (pos("BTC", "0.1234", "65000"), pos("ETH", "-5.000", "3100.5"), pos("SOL", "14.66", "150.25"))
    # Units are known from the first connection: the trader snapshot is complete at once.
    await h.connected(jwt_sim.url, [reported(fresh, complete=True)], [])
    assert h.position("SOL") == Decimal("14.66")
    # The first connection's data reset the backoff: both delays start from `initial`.
    assert h.sleep.delays == reference_delays(SEED, ["next", "next"])
    assert [status for status, _, _ in h.alerts("VenueSubscriptionError")] == ["firing", "resolved"]
    assert [message["subscription"] for message in jwt_sim.subscriptions] == CONNECT_SUBS * 2


@pytest.mark.parametrize(("status", "auth"), [(403, True), (401, True), (404, False), (502, False)])
async def test_handshake_refusals_are_auth_failures_only_for_401_and_403(
    start_session: SessionFactory, status: int, auth: bool
) -> None:
    """The simulator only ever answers 401; a bare HTTP server gives the other statuses."""
    async with refusing_http_server(status) as port:
        url = f"ws://127.0.0.1:{port}/v1/ws"
        h = await start_session(url, jwt=JWT)
        h.sleep.hold()
        if auth:
            assert await h.next_report() == auth_failed(f"handshake refused (HTTP {status})")
        assert await h.next_report() == FeedDown(VENUE, endpoint(url), f"handshake refused (HTTP {status})")
        await h.sleep.wait_for_sleeps(1)
        assert len(h.seen) == (2 if auth else 1)


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        (4403, "forbidden", "code 4403"),
        (1008, "policy violation", "code 1008"),
        (4000, "session_missing", "session_missing"),
        (1011, "invalid_access_token", "invalid_access_token"),
        (4000, "authz_refresh_required", "authz_refresh_required"),
        (1011, "internal error", None),
        (4000, "SECRET-ish free text", None),
    ],
)
async def test_auth_close_codes_and_reasons_report_refused_auth(
    sim: RecordingSimulator, start_session: SessionFactory, code: int, reason: str, expected: str | None
) -> None:
    h = await start_session(sim.url)
    await h.first_connect(sim.url, ())
    h.sleep.hold()
    await sim.disconnect_all(code, reason)
    if expected is not None:
        assert await h.next_report() == auth_failed(f"the venue closed the session: {expected}")
    assert await h.next_report() == FeedDown(VENUE, endpoint(sim.url), f"connection closed (code {code})")
    h.sleep.release()
    await h.connected(sim.url, [reported((), complete=True)], [])
    failures = [e for item in h.seen for e in item.events if isinstance(e, SubscriptionFailed)]
    assert len(failures) == (0 if expected is None else 1)
    if expected is not None and expected.startswith("code"):
        assert reason not in failures[0].reason  # a close reason that is not a token reason is never echoed
    assert h.sleep.delays == reference_delays(SEED, ["next"])


async def test_auth_reason_on_a_normal_close_reports_refused_auth(
    sim: RecordingSimulator, start_session: SessionFactory
) -> None:
    h = await start_session(sim.url)
    await h.first_connect(sim.url, ())
    h.sleep.hold()
    await sim.disconnect_all(1000, "access_token_expired")
    assert await h.next_report() == auth_failed("the venue closed the session: access_token_expired")


# ---- liveness and reconnects ---------------------------------------------------------------------


async def test_unanswered_transport_pings_drop_the_feed_and_reconnect_fresh(
    sim: RecordingSimulator, start_session: SessionFactory
) -> None:
    await seed_positions(sim)
    h = await start_session(sim.url, ping=0.05, ping_timeout=0.1)
    await h.first_connect(sim.url)
    h.sleep.hold()
    sim.set_answer_pings(False)
    try:
        # ping_interval + ping_timeout is 0.15 s: a dead socket must be dropped well within 1 s.
        down = (await h.next(timeout=1.0)).events
        assert down == [FeedDown(VENUE, endpoint(sim.url), "connection closed (code 1011)")]
    finally:
        sim.set_answer_pings(True)
    await sim.set_position(ALICE, "ETH", -4000, 31_005)  # while away
    h.sleep.release()
    fresh = (pos("BTC", "0.1234", "65000"), pos("ETH", "-4.000", "3100.5"), pos("SOL", "13.00", "150.25"))
    await h.connected(sim.url, [reported(fresh, complete=True)], [])


async def test_answered_transport_pings_keep_the_feed_up(
    sim: RecordingSimulator, start_session: SessionFactory
) -> None:
    h = await start_session(sim.url, ping=0.05, ping_timeout=0.2)
    await h.first_connect(sim.url, ())
    # A late pong would fail the keepalive and, the simulator reading, close at once (1011).
    # Six ping intervals pass while the simulator answers: nothing arrives, in particular no
    # FeedDown (a bounded wait for an event that must not happen).
    with pytest.raises(AssertionError, match="no inbound item"):
        await h.next(timeout=0.3)
    await sim.push_market("SOL", 150.5)
    assert await h.frame_events() == [MarkPrice(VENUE, "SOL", Decimal("150.5"), 0.0, MarkKind.MARK)]
    assert sim.connections == 1
    assert h.sleep.delays == []


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (1011, "connection closed (code 1011)"),
        (1006, "connection closed (code 1006)"),
        (1001, "server closed the connection"),
    ],
)
async def test_disconnect_reconnects_resubscribes_and_rebuilds_from_snapshots(
    sim: RecordingSimulator, seeded: PhoenixHarness, code: int, reason: str
) -> None:
    h = seeded

    h.sleep.hold()
    await sim.disconnect_all(code)
    assert await h.next_report() == FeedDown(VENUE, endpoint(sim.url), reason)
    await h.sleep.wait_for_sleeps(1)
    # Missed while disconnected: a position closed, another opened, a market paused.
    await sim.close_position(ALICE, "BTC")
    await sim.set_position(ALICE, "ETH", 250, 31_100)
    await sim.set_market_status("SOL", "paused")
    h.sleep.release()

    fresh = (pos("ETH", "0.250", "3110"), pos("SOL", "13.00", "150.25"))
    await h.connected(sim.url, [reported(fresh, complete=True)], [MarketStatusChanged(VENUE, "SOL", "paused", False)])
    assert [message["subscription"] for message in sim.subscriptions] == CONNECT_SUBS * 2
    assert sim.received[len(CONNECT_SUBS) :] == [
        (bytes, {"type": "subscribe", "subscription": s}) for s in CONNECT_SUBS
    ]
    # The complete report flattened BTC in the engine; the paused SOL is held: the alert fires.
    assert (h.position("BTC"), h.position("ETH"), h.position("SOL")) == (Decimal(0), Decimal("0.250"), Decimal("13.00"))
    assert [status for status, _, _ in h.alerts("MarketClosedWithExposure")] == ["firing"]
    assert h.sleep.delays == reference_delays(SEED, ["next"])
    assert h.engine.stats[VENUE].reconnects == 1

    # Deltas resume on the new connection with the snapshot's sequences.
    await sim.set_position(ALICE, "SOL", 0, 15_025)
    assert await h.frame_events() == [reported((pos("SOL", "0.66", "150.25"),), complete=False, sequence=7)]


# ---- malformed frames ----------------------------------------------------------------------------

MALFORMED: list[tuple[MalformedKind, str]] = [
    ("not_json", "not JSON"),
    ("unknown_channel_message", "unknown channel or message type"),
    ("trader_missing_sequence", "traderState: Object missing required field `sequence` at `$.deltas[0]`"),
    ("position_bad_lots", "traderState: subaccount 0 basePositionLots is not a signed integer"),
    ("exchange_bad_sequence", "exchange: sequenceNumber is not an unsigned integer"),
]


@pytest.mark.parametrize(("kind", "reason"), MALFORMED)
async def test_every_malformed_kind_is_frame_malformed_and_changes_nothing(
    sim: RecordingSimulator, seeded: PhoenixHarness, kind: MalformedKind, reason: str
) -> None:
    h = seeded

    text = await sim.send_malformed(kind)
    item = await h.next_frame()
    assert item.frame == text
    assert item.events == [FrameMalformed(VENUE, reason)]

    # The phantom frames carried the next sequence: the real next delta still applies, no gap.
    await sim.set_position(ALICE, "SOL", 100, 15_025)
    assert await h.frame_events() == [reported((pos("SOL", "1.66", "150.25"),), complete=False, sequence=5)]
    await sim.set_market_status("SOL", "paused")
    assert await h.frame_events() == [MarketStatusChanged(VENUE, "SOL", "paused", False)]
    assert h.engine.stats[VENUE].malformed == 1
    assert h.engine.stats[VENUE].sequence_gaps == 0
    assert (h.position("ETH"), h.position("BTC")) == (Decimal("-5.000"), Decimal("0.1234"))
    assert h.sleep.delays == []


async def test_binary_frames_are_decoded_and_binary_garbage_is_malformed(
    sim: RecordingSimulator, start_session: SessionFactory
) -> None:
    h = await start_session(sim.url)
    await h.first_connect(sim.url, ())
    await sim.send_raw(b'{"channel":"allMids","mids":{"SOL":151.5},"slot":1,"slotIndex":0}')
    item = await h.next_frame()
    assert isinstance(item.frame, bytes)
    assert item.events == [MarkPrice(VENUE, "SOL", Decimal("151.5"), 0.0, MarkKind.MID)]
    await sim.send_raw(b"\xff\xfe\x00garbage")
    assert await h.frame_events() == [FrameMalformed(VENUE, "not JSON")]
    await sim.send_raw('{"channel":"allMids","mids":{"SOL":"NaN"}}')
    assert await h.frame_events() == [FrameMalformed(VENUE, "allMids: mid is not a finite number")]
    assert h.engine.stats[VENUE].malformed == 2


# ---- secrets -------------------------------------------------------------------------------------


async def test_the_jwt_never_appears_in_logs_events_or_frames(
    jwt_sim: RecordingSimulator, start_session: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await seed_positions(jwt_sim)
    wrong = await start_session(jwt_sim.url, jwt=WRONG_JWT)
    wrong.sleep.hold()
    assert await wrong.next_report() == auth_failed("handshake refused (HTTP 401)")
    assert isinstance(await wrong.next_report(), FeedDown)

    h = await start_session(jwt_sim.url, jwt=JWT)
    await h.first_connect(jwt_sim.url)
    h.sleep.hold()
    await jwt_sim.expire_token()
    assert await h.next_report() == auth_failed("the venue closed the session: access_token_expired")
    assert isinstance(await h.next_report(), FeedDown)

    items = wrong.seen + h.seen
    assert len(items) >= 12
    for item in items:
        for token in (JWT, WRONG_JWT):
            assert token not in repr(item.events)
            assert item.frame is None or token not in (
                item.frame if isinstance(item.frame, str) else item.frame.decode("utf-8", "replace")
            )
    for harness in (wrong, h):
        for transition in harness.transitions:
            assert JWT not in repr(transition)
            assert WRONG_JWT not in repr(transition)
    # The simulator's own websockets server logs the request headers at DEBUG: that is test
    # scaffolding (the venue's side), not riskmon.
    ours = [r for r in caplog.records if not r.name.startswith("websockets.server")]
    assert any(r.name.startswith("riskmon") for r in ours), "the session and engine log"
    for record in ours:
        text = record.getMessage() + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
        for token in (JWT, WRONG_JWT):
            assert token not in text, record.name
            assert token.split(".")[2] not in text, record.name  # not even the signature part
    assert "Secret('***')" in repr(venue_config(jwt_sim.url, jwt=JWT))


# ---- capture and replay --------------------------------------------------------------------------


async def test_capture_round_trip_replays_to_the_live_exposure_and_alerts(
    sim: RecordingSimulator, start_session: SessionFactory, tmp_path: Path
) -> None:
    path = tmp_path / "phoenix.jsonl"
    await seed_positions(sim)
    h = await start_session(sim.url, capture=path)
    await h.first_connect(sim.url)

    h.clock.advance(1.0)
    await sim.push_market("SOL", 150.1)
    assert len(await h.frame_events()) == 1
    h.clock.advance(1.0)
    await sim.set_position(ALICE, "SOL", 2000, 15_100)
    assert len(await h.frame_events()) == 1
    h.clock.advance(1.0)
    await sim.skip_trader_sequence(ALICE)
    await sim.set_position(ALICE, "BTC", 2000, 64_000)
    assert isinstance((await h.frame_events())[0], SequenceGap)
    assert await h.frame_events() == []  # unsubscribed
    assert await h.frame_events() == [Subscribed(VENUE, "traderState")]
    assert isinstance((await h.frame_events())[0], PositionsReported)
    h.clock.advance(1.0)
    # A binary frame: captured as frame_b64.
    await sim.send_raw(b'{"channel":"allMids","mids":{"SOL":160.5,"BTC":64000.25},"slot":9,"slotIndex":0}')
    assert len(await h.frame_events()) == 2
    h.clock.advance(1.0)
    await sim.close_market("SOL", "160.4")
    assert len(await h.frame_events()) == 1
    # A reconnect: replay sees only the frames, never the session's connection_opened().
    h.sleep.hold()
    await sim.disconnect_all()
    assert isinstance(await h.next_report(), FeedDown)
    await sim.set_position(ALICE, "ETH", -6000, 31_005)  # missed while away
    await sim.set_market_status("SOL", "active")
    h.sleep.release()
    fresh = (pos("BTC", "0.2000", "64000"), pos("ETH", "-6.000", "3100.5"), pos("SOL", "20.66", "151"))
    await h.connected(sim.url, [reported(fresh, complete=True)], [MarketStatusChanged(VENUE, "SOL", "active", True)])
    h.clock.advance(1.0)
    await sim.set_position(ALICE, "SOL", 3000, 15_100)
    assert len(await h.frame_events()) == 1
    await sim.send_malformed("position_bad_lots")
    assert isinstance((await h.frame_events())[0], FrameMalformed)
    h.close_capture()

    lines = [line for _, line in read_capture(path)]
    frames = [item for item in h.seen if item.frame is not None]
    assert len(lines) == len(frames)
    binary = [line for line in lines if line.frame_b64 is not None]
    assert len(binary) == 1
    assert binary[0].payload() == next(item.frame for item in frames if isinstance(item.frame, bytes))
    assert [line.ts for line in lines] == [item.received_at for item in frames]

    result = replay(path, h.config)
    live = ReplayResult(h.engine, h.transitions)
    assert result.exposure() == live.exposure()
    assert {row["market"]: row["position"] for row in result.exposure()} == {
        "BTC": "0.2",
        "ETH": "-6",
        "SOL": "30.66",
    }
    assert result.exposure()[2]["notional_usd"] == pytest.approx(30.66 * 160.5)
    assert [(t.ts, t.status, t.alertname, t.labels) for t in result.transitions] == [
        (t.ts, t.status, t.alertname, t.labels) for t in h.transitions
    ]
    assert {t.alertname for t in result.transitions} == {
        "ExposureLimitBreach",
        "SequenceGap",
        "MarketClosedWithExposure",
    }
    assert result.stats()["malformed"] == 1
    assert result.stats()["frames"] == h.engine.stats[VENUE].frames
