"""Integration tests for the Mobula perp events session against the real loopback simulator.

Backoff sleeps are injected (`FakeSleep`), so reconnects never wait in real time, and the
jitter comes from a seeded `random.Random`, so the delays are exact and reproducible. The
keepalive needs wall-clock intervals: those tests ping every 50 ms, allow 150 ms for a pong,
and wait on the resulting event with a bounded timeout.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from riskmon.capture import read_capture
from riskmon.clock import VirtualClock
from riskmon.config.schema import Backoff, Desk, MobulaPerpEventsVenue, MonitorConfig
from riskmon.config.types import Duration, Secret
from riskmon.engine.engine import Engine
from riskmon.engine.exposure import PositionKey
from riskmon.events import (
    FeedDown,
    FeedUp,
    FillReceived,
    FrameMalformed,
    Heartbeat,
    Liquidation,
    Liquidity,
    MarkKind,
    MarkPrice,
    PositionAmended,
    Side,
    Subscribed,
    SubscriptionFailed,
)
from riskmon.replay import ReplayResult, replay
from riskmon.venues.base import Inbound
from riskmon.venues.mobula.codec import MobulaPerpEventsCodec
from riskmon.venues.mobula.session import MobulaPerpEventsSession
from riskmon.venues.mobula.simulator import (
    MalformedKind,
    MobulaPerpEventsSimulator,
    gains_trade,
    lighter_liquidation,
    raw_amount,
    trade_stored,
)
from tests.venues.session_harness import TIMEOUT, SessionHarness, ingest, reference_delays, session_pool, started

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

VENUE = "mobula"
DESK = "perp-desk"
START = 1_750_000_000.0
SEED = 20260608
API_KEY = "mk_live_SESSION_TEST_KEY_7f3a9c"
WRONG_KEY = "mk_live_WRONG_KEY_0b1d2e"
CHAINS = ["evm:42161", "lighter:304"]
SUBSCRIPTION = "perp-events"
DESK_WALLET = "0xAbC0000000000000000000000000000000dEaD01"  # checksummed-style case, as configs hold it
DESK_WIRE = DESK_WALLET.lower()
STRANGER = "0x2222222222222222222222222222222222222222"
DATE = "2026-06-08T00:18:34.613Z"
DATE_TS = 1780877914.613
BLOCK = 312_456_789  # sim_frames.DEFAULT_BLOCK
BTC = "gains-btc-usd-usdc"
PONG = '{"event":"pong"}'


def tx(n: int) -> str:
    return "0x" + f"{n:02x}" * 32


def desk_buy(qty: str, *, trade_id: str = "101", tx_n: int = 1, price: float = 65000.5) -> dict[str, Any]:
    """The desk opens a long on Gains (MARKET_BUY)."""
    return gains_trade(
        "MARKET_BUY",
        DESK_WIRE,
        trade_id=trade_id,
        tx_hash=tx(tx_n),
        base_amount_raw=raw_amount(qty),
        price_usd=price,
        long=True,
        date=DATE,
    )


def expected_fill(qty: str, side: Side, *, kind: str, trade_id: str, tx_n: int, price: str) -> FillReceived:
    return FillReceived(
        venue=VENUE,
        desk=DESK,
        account=DESK_WIRE,
        market=BTC,
        side=side,
        quantity=Decimal(qty),
        price=Decimal(price),
        fill_key=f"{tx(tx_n)}:{kind}:{DESK_WIRE}:{trade_id}",
        stream="gains",
        sequence=BLOCK,
        liquidity=Liquidity.TAKER,
        fee_rate=Decimal(0),
        venue_ts=DATE_TS,
    )


def venue_config(url: str, **overrides: Any) -> MobulaPerpEventsVenue:
    fields: dict[str, Any] = {
        "url": url,
        "api_key": Secret(API_KEY),
        "chain_ids": CHAINS,
        "subscription_name": "riskmon-session-test",
        "reconnect": Backoff(initial=Duration(1.0), max=Duration(8.0)),
        "open_timeout": Duration(TIMEOUT),
    }
    fields.update(overrides)
    return MobulaPerpEventsVenue(**fields)


def monitor_config(url: str) -> MonitorConfig:
    return MonitorConfig(
        venues={VENUE: venue_config(url)},
        desks={DESK: Desk(accounts={VENUE: [DESK_WALLET]})},
    )


def endpoint(url: str) -> str:
    """How the session reports an endpoint: scheme://host:port, no path."""
    return url.rstrip("/")


def is_pong(item: Inbound) -> bool:
    """A pong frame: the venue's liveness signal, one Heartbeat."""
    return item.frame == PONG and [type(event) for event in item.events] == [Heartbeat]


class SilentCodec(MobulaPerpEventsCodec):
    """Queues no subscribe on open: the socket stays idle, as on a host that is not the stream."""

    def connection_opened(self) -> None:
        super().connection_opened()
        self.data_to_send()


async def subscribed(h: SessionHarness, url: str) -> str:
    """The ack frame gives Subscribed, and only then is the feed reported up; the subscription id."""
    ack = await h.next_frame()
    assert isinstance(ack.frame, str)
    assert '"event":"subscribed"' in ack.frame
    assert ack.events == [Subscribed(VENUE, SUBSCRIPTION)]
    assert await h.next_report() == FeedUp(VENUE, endpoint(url))
    return str(json.loads(ack.frame)["subscriptionId"])


async def next_skipping_pongs(h: SessionHarness) -> Inbound:
    h.skip = is_pong
    try:
        return await h.next()
    finally:
        h.skip = None


SessionFactory = Callable[..., Awaitable[SessionHarness]]


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[MobulaPerpEventsSimulator]:
    async with started(MobulaPerpEventsSimulator(API_KEY)) as server:
        yield server


@pytest_asyncio.fixture
async def start_session() -> AsyncIterator[SessionFactory]:
    async with session_pool() as pool:

        async def start(
            url: str,
            *,
            codec_class: type[MobulaPerpEventsCodec] = MobulaPerpEventsCodec,
            engine: Engine | None = None,
            capture: Path | None = None,
            **overrides: Any,
        ) -> SessionHarness:
            config = venue_config(url, **overrides)
            h = SessionHarness(VirtualClock(START), engine=engine, capture=capture)
            codec = codec_class(VENUE, {DESK_WALLET: DESK}, config)
            session = MobulaPerpEventsSession(
                VENUE, config, codec, h.sink, h.clock, rng=random.Random(SEED), sleep=h.sleep
            )
            return pool.start(h, session, "mobula-session")

        yield start


# ---- connect and subscribe --------------------------------------------------------------------


async def test_subscribe_is_the_first_frame_then_ack_then_feed_up(
    sim: MobulaPerpEventsSimulator, start_session: SessionFactory
) -> None:
    h = await start_session(sim.url)
    await subscribed(h, sim.url)
    assert [item.received_at for item in h.seen] == [START, START]

    assert len(sim.subscriptions) == 1
    assert sim.subscriptions[0] == {
        "type": "stream",
        "authorization": API_KEY,
        "payload": {
            "name": "riskmon-session-test",
            "chainIds": CHAINS,
            "events": ["order"],
            "subscriptionTracking": "true",
        },
    }
    assert sim.pings_received == 0  # the subscribe came first, not a ping
    assert sim.subscribed_count == 1
    assert h.sleep.delays == []


# ---- fills, marks, amendments, liquidations ------------------------------------------------------


async def test_desk_fills_arrive_exact_and_strangers_only_move_the_mark(
    sim: MobulaPerpEventsSimulator, start_session: SessionFactory
) -> None:
    h = await start_session(sim.url)
    await subscribed(h, sim.url)

    h.clock.advance(1.5)
    assert await sim.push(desk_buy("1.234567890123456789")) == 1
    item = await h.next_frame()
    assert item.received_at == START + 1.5
    assert item.events == [
        MarkPrice(VENUE, BTC, Decimal("65000.5"), DATE_TS, MarkKind.TRADE),
        expected_fill("1.234567890123456789", Side.BUY, kind="MARKET_BUY", trade_id="101", tx_n=1, price="65000.5"),
    ]

    # The desk closes part of its long: a MARKET_SELL of a long (extra.open false) is a sell.
    close = gains_trade(
        "MARKET_SELL",
        DESK_WIRE,
        trade_id="101",
        tx_hash=tx(2),
        base_amount_raw=raw_amount("0.000000000000000001"),
        price_usd=65100.25,
        long=True,
        date=DATE,
    )
    await sim.push(close)
    mark, sold = (await h.next_frame()).events
    assert mark == MarkPrice(VENUE, BTC, Decimal("65100.25"), DATE_TS, MarkKind.TRADE)
    assert sold == expected_fill(
        "0.000000000000000001", Side.SELL, kind="MARKET_SELL", trade_id="101", tx_n=2, price="65100.25"
    )

    # Someone else's trade: the market's latest price, nothing for any desk.
    stranger = gains_trade(
        "MARKET_BUY",
        STRANGER,
        trade_id="555",
        tx_hash=tx(3),
        base_amount_raw=raw_amount(3),
        price_usd=64999.75,
        long=True,
        date=DATE,
    )
    await sim.push(stranger)
    assert (await h.next_frame()).events == [MarkPrice(VENUE, BTC, Decimal("64999.75"), DATE_TS, MarkKind.TRADE)]
    assert h.sleep.delays == []


async def test_trade_stored_and_market_buy_of_one_tx_are_two_events_counted_once(
    sim: MobulaPerpEventsSimulator, start_session: SessionFactory
) -> None:
    h = await start_session(sim.url)
    await subscribed(h, sim.url)

    stored = trade_stored(
        DESK_WIRE,
        trade_id="77",
        tx_hash=tx(7),
        long=True,
        collateral=raw_amount(500),
        leverage=25,
        open_price=65000.5,
        tp=70000,
        sl=60000,
        date=DATE,
    )
    await sim.push(stored)
    await sim.push(desk_buy("0.5", trade_id="77", tx_n=7))

    (amended,) = (await h.next_frame()).events
    assert isinstance(amended, PositionAmended)
    assert (amended.venue, amended.desk, amended.account, amended.market) == (VENUE, DESK, DESK_WIRE, BTC)
    assert (amended.change, amended.venue_ts) == ("TRADE_STORED", DATE_TS)
    assert amended.key == f"{tx(7)}:TRADE_STORED:{DESK_WIRE}:77"
    details = dict(amended.details)
    assert (details["leverage"], details["long"], details["collateralAmount"]) == ("25", "True", raw_amount(500))

    mark, fill = (await h.next_frame()).events
    assert isinstance(mark, MarkPrice)
    assert fill == expected_fill("0.5", Side.BUY, kind="MARKET_BUY", trade_id="77", tx_n=7, price="65000.5")
    assert isinstance(fill, FillReceived)
    assert fill.fill_key != amended.key

    engine = Engine(monitor_config(sim.url))
    ingest(engine, h.seen)
    key = PositionKey(DESK, VENUE, DESK_WIRE, BTC)
    assert engine.book.position(key) == Decimal("0.5")
    stats = engine.stats[VENUE]
    assert (stats.fills, stats.amendments, stats.duplicates, stats.malformed) == (1, 1, 0, 0)
    assert engine.book.notional(key) == Decimal("32500.25")


async def test_liquidation_gives_liquidation_and_closing_fill(
    sim: MobulaPerpEventsSimulator, start_session: SessionFactory
) -> None:
    h = await start_session(sim.url)
    await subscribed(h, sim.url)

    # A Gains liquidation of the desk's long, in the §2.2 Gains field set.
    liquidation = gains_trade(
        "MARKET_SELL",
        DESK_WIRE,
        trade_id="88",
        tx_hash=tx(8),
        base_amount_raw=raw_amount("2.5"),
        price_usd=60000,
        long=True,
        date=DATE,
    )
    liquidation["type"] = "LIQUIDATION_LONG"
    await sim.push(liquidation)
    mark, liquidated, fill = (await h.next_frame()).events
    assert mark == MarkPrice(VENUE, BTC, Decimal("60000"), DATE_TS, MarkKind.TRADE)
    key = f"{tx(8)}:LIQUIDATION_LONG:{DESK_WIRE}:88"
    assert liquidated == Liquidation(
        venue=VENUE,
        desk=DESK,
        account=DESK_WIRE,
        market=BTC,
        side=Side.SELL,
        quantity=Decimal("2.5"),
        price=Decimal("60000"),
        key=key,
        venue_ts=DATE_TS,
    )
    assert fill == expected_fill("2.5", Side.SELL, kind="LIQUIDATION_LONG", trade_id="88", tx_n=8, price="60000")

    # A Lighter liquidation of a short in Lighter's `account, price, size` names (size in base units).
    await sim.push(
        lighter_liquidation(
            "LIQUIDATION_SHORT",
            DESK_WIRE,
            size="0.75",
            price=3120.5,
            tx_hash=tx(9),
            trade_id="9",
            date=DATE,
        )
    )
    mark, liquidated, fill = (await h.next_frame()).events
    lighter_key = f"{tx(9)}:LIQUIDATION_SHORT:{DESK_WIRE}:9"
    assert mark == MarkPrice(VENUE, "lighter-eth-usd", Decimal("3120.5"), DATE_TS, MarkKind.TRADE)
    assert liquidated == Liquidation(
        venue=VENUE,
        desk=DESK,
        account=DESK_WIRE,
        market="lighter-eth-usd",
        side=Side.BUY,  # a short is closed by buying
        quantity=Decimal("0.75"),
        price=Decimal("3120.5"),
        key=lighter_key,
        venue_ts=DATE_TS,
    )
    assert isinstance(fill, FillReceived)
    assert (fill.market, fill.side, fill.quantity, fill.price) == (
        "lighter-eth-usd",
        Side.BUY,
        Decimal("0.75"),
        Decimal("3120.5"),
    )
    assert (fill.fill_key, fill.stream, fill.sequence, fill.liquidity) == (
        lighter_key,
        "lighter",
        BLOCK,
        Liquidity.TAKER,
    )

    # Both alert once and move the positions they closed, exactly.
    engine = Engine(monitor_config(sim.url))
    ingest(engine, h.seen)
    assert engine.stats[VENUE].liquidations == 2
    assert engine.book.position(PositionKey(DESK, VENUE, DESK_WIRE, BTC)) == Decimal("-2.5")
    assert engine.book.position(PositionKey(DESK, VENUE, DESK_WIRE, "lighter-eth-usd")) == Decimal("0.75")


# ---- duplicates across a reconnect ------------------------------------------------------------------


async def test_repeat_after_reconnect_has_the_same_fill_key_and_counts_once(
    sim: MobulaPerpEventsSimulator, start_session: SessionFactory
) -> None:
    h = await start_session(sim.url)
    await subscribed(h, sim.url)
    await sim.push(desk_buy("1.5"))
    first = await h.next_frame()
    fill = first.events[-1]
    assert isinstance(fill, FillReceived)

    await sim.disconnect_all()
    assert await h.next_report() == FeedDown(VENUE, endpoint(sim.url), "connection closed (code 1011)")
    await subscribed(h, sim.url)
    assert await sim.repeat_last() == 1
    again = await h.next_frame()
    # A new subscription id in the envelope, the same trade: identical events, identical key.
    assert again.frame != first.frame
    assert again.events == first.events
    repeat = again.events[-1]
    assert isinstance(repeat, FillReceived)
    assert repeat.fill_key == fill.fill_key == f"{tx(1)}:MARKET_BUY:{DESK_WIRE}:101"

    engine = Engine(monitor_config(sim.url))
    ingest(engine, h.seen)
    assert engine.book.position(PositionKey(DESK, VENUE, DESK_WIRE, BTC)) == Decimal("1.5")
    stats = engine.stats[VENUE]
    assert (stats.fills, stats.duplicates, stats.reconnects, stats.feed_up) == (1, 1, 1, True)
    assert len(h.sleep.delays) == 1


# ---- keepalive ---------------------------------------------------------------------------------------


async def test_pings_keep_the_socket_and_a_missing_pong_reconnects_and_resubscribes(
    sim: MobulaPerpEventsSimulator, start_session: SessionFactory
) -> None:
    h = await start_session(sim.url, ping_interval=Duration(0.05), pong_timeout=Duration(0.15))
    subscription_id = await subscribed(h, sim.url)
    await sim.wait_for_pings(3)
    assert sim.connections == 1
    assert len(sim.subscriptions) == 1  # pings are not subscribes
    # Each pong is the venue's liveness signal, naming the connection by its subscription id.
    assert all(item.frame == PONG and item.events == [Heartbeat(VENUE, subscription_id)] for item in h.seen[2:])
    assert len(h.seen) >= 4  # at least two pongs handed on (the third may be in flight)

    h.sleep.hold()
    sim.set_answer_pings(False)
    down = await next_skipping_pongs(h)
    assert down.frame is None
    assert down.events == [FeedDown(VENUE, endpoint(sim.url), "no pong within 0.15s")]
    await h.sleep.wait_sleeping()
    # The connection had frames, so backoff starts afresh.
    assert h.sleep.delays == reference_delays(SEED, ["next"])
    sim.set_answer_pings(True)
    h.sleep.release()

    await subscribed(h, sim.url)
    assert len(sim.subscriptions) == 2
    assert sim.subscriptions[1] == sim.subscriptions[0]
    await sim.wait_for_connections(1)
    assert sim.subscribed_count == 1


# ---- refused subscriptions ---------------------------------------------------------------------------


async def test_idle_socket_closed_4001_is_a_misconfiguration(start_session: SessionFactory) -> None:
    async with started(MobulaPerpEventsSimulator(API_KEY, idle_timeout=0.05)) as idle:
        h = await start_session(idle.url, codec_class=SilentCodec)
        h.sleep.hold()
        failed = await h.next_report()
        assert isinstance(failed, SubscriptionFailed)
        assert (failed.venue, failed.subscription, failed.misconfigured) == (VENUE, "perp-events", True)
        assert "4001" in failed.reason
        # The feed never counted as up: nothing was subscribed.
        assert await h.next_report() == FeedDown(VENUE, endpoint(idle.url), "connection closed (code 4001)")
        await h.sleep.wait_sleeping()
        assert h.sleep.delays == reference_delays(SEED, ["next"])
        assert idle.subscriptions == []
        assert not any(isinstance(e, FeedUp) for e in h.events())


async def test_wrong_api_key_closed_4003_is_a_misconfiguration_that_never_shows_the_key(
    sim: MobulaPerpEventsSimulator, start_session: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h = await start_session(sim.url, api_key=Secret(WRONG_KEY))
    h.sleep.hold()
    assert await h.next_report() == SubscriptionFailed(
        VENUE, "perp-events", "closed by the venue with code 4003", misconfigured=True
    )
    assert await h.next_report() == FeedDown(VENUE, endpoint(sim.url), "connection closed (code 4003)")
    await h.sleep.wait_sleeping()
    assert sim.subscriptions[0]["authorization"] == WRONG_KEY
    assert sim.subscribed_count == 0
    # No frame arrived, so every connection attempt is a health report.
    assert all(item.frame is None for item in h.seen)
    for item in h.seen:
        assert WRONG_KEY not in repr(item.events)
    leaked = [r.getMessage() for r in caplog.records if WRONG_KEY in r.getMessage() and not _scaffolding(r)]
    assert leaked == []


async def test_invalid_envelope_error_frame_and_4002_close_are_reported(
    sim: MobulaPerpEventsSimulator, start_session: SessionFactory
) -> None:
    h = await start_session(sim.url, chain_ids=[])
    h.sleep.hold()
    error = await h.next_frame()
    assert error.events == [
        SubscriptionFailed(VENUE, "perp-events", "payload.chainIds must be a non-empty list of strings")
    ]
    assert await h.next_report() == SubscriptionFailed(VENUE, "perp-events", "closed by the venue with code 4002")
    assert await h.next_report() == FeedDown(VENUE, endpoint(sim.url), "connection closed (code 4002)")
    assert sim.subscriptions[0]["payload"]["chainIds"] == []


# ---- disconnect and backoff ---------------------------------------------------------------------------


async def test_disconnect_backs_off_then_reconnects_and_resubscribes(
    sim: MobulaPerpEventsSimulator, start_session: SessionFactory
) -> None:
    h = await start_session(sim.url)
    await subscribed(h, sim.url)

    h.sleep.hold()
    await sim.disconnect_all(1001, "going away")
    assert await h.next_report() == FeedDown(VENUE, endpoint(sim.url), "server closed the connection")
    await h.sleep.wait_sleeping()
    # The subscribed connection had a frame, so the backoff was reset: a first delay again.
    assert h.sleep.delays == reference_delays(SEED, ["next"])
    assert 0.5 <= h.sleep.delays[0] <= 1.0
    assert sim.connections == 0
    h.sleep.release()

    await subscribed(h, sim.url)
    assert len(sim.subscriptions) == 2
    assert sim.subscriptions[1] == sim.subscriptions[0]

    await sim.disconnect_all()
    assert await h.next_report() == FeedDown(VENUE, endpoint(sim.url), "connection closed (code 1011)")
    await subscribed(h, sim.url)
    # Each connection had frames: both delays are first-step delays, the rng drawn twice.
    assert h.sleep.delays == reference_delays(SEED, ["next", "reset", "next"])
    assert all(0.5 <= delay <= 1.0 for delay in h.sleep.delays)
    assert len(sim.subscriptions) == 3


# ---- malformed frames --------------------------------------------------------------------------------

MALFORMED: list[tuple[MalformedKind, str]] = [
    ("not_json", "not JSON"),
    ("not_object", "unexpected frame shape: Expected `object`, got `array`"),
    ("missing_data", "neither a perp event nor a control frame"),
    ("bad_amount", "MARKET_BUY: baseAmountRaw is not a non-negative integer"),
    ("unknown_type", "unknown event type SOMETHING_NEW"),
]


async def test_every_malformed_kind_is_frame_malformed_and_oversized_reconnects(
    sim: MobulaPerpEventsSimulator, start_session: SessionFactory
) -> None:
    h = await start_session(sim.url, max_frame_bytes=64 * 1024)
    await subscribed(h, sim.url)
    for kind, reason in MALFORMED:
        assert await sim.send_malformed(kind) == 1
        item = await h.next_frame()
        assert item.events == [FrameMalformed(VENUE, reason)], kind

    await sim.send_malformed("oversized")
    assert await h.next_report() == FrameMalformed(VENUE, "frame larger than max_frame_bytes")
    assert await h.next_report() == FeedDown(VENUE, endpoint(sim.url), "connection closed (code 1009)")
    await subscribed(h, sim.url)
    assert len(h.sleep.delays) == 1
    assert len(sim.subscriptions) == 2
    assert all(item.frame is None or len(item.frame) <= 64 * 1024 for item in h.seen)

    # The session still works after all that.
    await sim.push(desk_buy("0.1"))
    assert (await h.next_frame()).events[-1] == expected_fill(
        "0.1", Side.BUY, kind="MARKET_BUY", trade_id="101", tx_n=1, price="65000.5"
    )


# ---- secrets -----------------------------------------------------------------------------------------


def _scaffolding(record: logging.LogRecord) -> bool:
    """The simulator's own server-side logs are test scaffolding, not riskmon's."""
    return record.name.startswith("websockets.server") or record.name == "riskmon.venues.mobula.simulator"


async def test_api_key_never_appears_in_logs_or_events(
    sim: MobulaPerpEventsSimulator, start_session: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h = await start_session(sim.url, ping_interval=Duration(0.05), pong_timeout=Duration(0.15))
    await subscribed(h, sim.url)
    await sim.push(desk_buy("1"))
    assert isinstance((await h.next_frame()).events[-1], FillReceived)
    await sim.wait_for_pings(1)
    await sim.send_raw('{"event":"error","message":"bad authorization ' + API_KEY + '"}')
    refused = await next_skipping_pongs(h)
    assert refused.events == [SubscriptionFailed(VENUE, "perp-events", "bad authorization ***", misconfigured=True)]
    await sim.disconnect_all(4003, "Invalid API key")
    failed = await next_skipping_pongs(h)
    assert failed.events == [
        SubscriptionFailed(VENUE, "perp-events", "closed by the venue with code 4003", misconfigured=True)
    ]
    assert (await next_skipping_pongs(h)).events == [
        FeedDown(VENUE, endpoint(sim.url), "connection closed (code 4003)")
    ]
    await subscribed(h, sim.url)

    # The engine's own logs of these events are riskmon logs too.
    engine = Engine(monitor_config(sim.url))
    ingest(engine, h.seen)

    assert sim.subscriptions[0]["authorization"] == API_KEY  # the key really went over the wire
    for item in h.seen:
        assert API_KEY not in repr(item.events)
    riskmon_logs = [r.getMessage() for r in caplog.records if r.name.startswith("riskmon") and not _scaffolding(r)]
    assert riskmon_logs, "the session and engine log"
    leaked = [r.getMessage() for r in caplog.records if API_KEY in r.getMessage() and not _scaffolding(r)]
    assert leaked == []


# ---- live capture and replay ------------------------------------------------------------------------


async def test_captured_frames_replay_to_the_live_exposure(
    sim: MobulaPerpEventsSimulator, start_session: SessionFactory, tmp_path: Path
) -> None:
    config = monitor_config(sim.url)
    live = Engine(config)
    path = tmp_path / "mobula.jsonl"
    h = await start_session(sim.url, engine=live, capture=path)
    await subscribed(h, sim.url)
    frames = 1
    pushes = [
        desk_buy("1.5", trade_id="1", tx_n=1),
        trade_stored(
            DESK_WIRE,
            trade_id="2",
            tx_hash=tx(2),
            long=True,
            collateral=raw_amount(300),
            leverage=10,
            open_price=65010,
            tp=0,
            sl=0,
            date=DATE,
        ),
        desk_buy("0.25", trade_id="2", tx_n=2, price=65010),
        gains_trade(
            "MARKET_SELL",
            DESK_WIRE,
            trade_id="1",
            tx_hash=tx(3),
            base_amount_raw=raw_amount("0.4"),
            price_usd=65200,
            long=True,
            date=DATE,
        ),
        gains_trade(
            "MARKET_BUY",
            STRANGER,
            trade_id="9",
            tx_hash=tx(4),
            base_amount_raw=raw_amount(2),
            price_usd=66000,
            long=True,
            date=DATE,
        ),
    ]
    for data in pushes:
        h.clock.advance(1.0)
        await sim.push(data)
        await h.next_frame()
        frames += 1
    await sim.repeat_last(3)  # venue duplicates: the ledger drops the fill, the mark is unchanged
    for _ in range(3):
        await h.next_frame()
        frames += 1
    await sim.send_malformed("bad_amount")
    await h.next_frame()
    frames += 1
    h.close_capture()

    lines = [line for _, line in read_capture(path)]
    assert len(lines) == frames
    assert all(line.venue == VENUE and line.frame is not None and line.rest is None for line in lines)
    assert [line.ts for line in lines] == [START, *(START + n for n in range(1, 6)), *[START + 5] * 4]
    assert not any(API_KEY in (line.frame or "") for line in lines)

    replayed = replay(path, config)
    live_result = ReplayResult(live)
    assert replayed.exposure() == live_result.exposure()
    assert replayed.exposure() == [
        {
            "desk": DESK,
            "venue": VENUE,
            "account": DESK_WIRE,
            "market": BTC,
            "position": "1.35",
            "notional_usd": 89100.0,
            "worst_case_loss_usd": None,
            "pending_usd": 0.0,
        }
    ]
    assert replayed.stats() == {"frames": frames, "events": 15, "malformed": 1, "duplicates": 2, "revoked": 0}
    assert live.stats[VENUE].fills == replayed.engine.stats[VENUE].fills == 3
