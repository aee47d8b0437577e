"""Integration tests for the Totalis RFQ session against the real loopback simulator.

The session is `up_on_open = False`: after auth it reconciles over REST (`GET /mm/quotes`) and
only then reports FeedUp. Backoff sleeps are injected (`FakeSleep`) and the jitter is seeded, so
delays are exact; the session's clock is virtual. Only the keepalive test runs on wall time, with
50 ms intervals. One simulator serves the whole module (uvicorn takes ~0.2 s to start and stop);
each test resets it.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, get_args

import pytest
import pytest_asyncio
from websockets.asyncio.server import ServerConnection, serve

from riskmon.clock import VirtualClock
from riskmon.config.schema import Backoff, Desk, MonitorConfig, TotalisRfqVenue
from riskmon.config.types import Duration, Secret
from riskmon.engine.engine import Engine
from riskmon.events import (
    Event,
    FeedDown,
    FeedUp,
    FrameMalformed,
    QuoteLeg,
    QuoteStatus,
    QuoteUpdate,
    RfqPositionStatus,
    RfqPositionUpdate,
    Subscribed,
    SubscriptionFailed,
)
from riskmon.replay import ReplayResult, replay
from riskmon.venues.base import Inbound
from riskmon.venues.totalis.codec import TotalisRfqCodec
from riskmon.venues.totalis.session import TotalisRfqSession
from riskmon.venues.totalis.simulator import AcceptOrder, MalformedKind, RestCall, TotalisRfqSimulator
from tests.venues.session_harness import (
    TIMEOUT,
    SessionHarness,
    SimClock,
    reference_delays,
    session_pool,
    started,
    write_capture,
)

VENUE = "totalis"
DESK = "parlays"
API_KEY = "tk_live_DO_NOT_LOG_5e1b"
MM = "did:privy:mm-sim"
QUOTES = f"mm:quotes:{MM}"
SEED = 20260601
NOW = 1780339545.0  # 2026-06-01T18:45:45.000Z: the simulator's clock
DEADLINE = NOW + 30
START = NOW  # the session's virtual clock
EMPTY_QUOTES = '{"data":{"quotes":[]}}'
GET_QUOTES = RestCall("GET", "/mm/quotes", "", 200)
LEGS: list[dict[str, Any]] = [
    {"venue": "kalshi", "market_ticker": "KXBTC-26JUN01-T72500", "side": "yes"},
    {"venue": "polymarket", "market_ticker": "0x5f2a9c", "side": "no", "leg_id": "pm-1", "leg_odds": 2.5},
]

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


# ---- helpers ------------------------------------------------------------------------------------


def legs_of(*shares: str) -> tuple[QuoteLeg, ...]:
    return (
        QuoteLeg("kalshi", "KXBTC-26JUN01-T72500", "yes", Decimal(shares[0])),
        QuoteLeg("polymarket", "0x5f2a9c", "no", Decimal(shares[1])),
    )


def short_accept(quote_id: str, rfq_id: str) -> QuoteUpdate:
    """What `quote:accepted` says: ids and deadline, no economics."""
    return QuoteUpdate(VENUE, DESK, MM, quote_id, rfq_id, QuoteStatus.ACCEPTED, confirmation_deadline=DEADLINE)


def full_accept(quote_id: str, rfq_id: str, loss: str, *shares: str) -> QuoteUpdate:
    """What `mm_quote:accepted` says: the §4.3 economics and the per-leg exposure."""
    return QuoteUpdate(
        VENUE,
        DESK,
        MM,
        quote_id,
        rfq_id,
        QuoteStatus.ACCEPTED,
        venue_ts=NOW,
        worst_case_loss_usd=Decimal(loss),
        confirmation_deadline=DEADLINE,
        legs=legs_of(*shares),
    )


def is_pong(item: Inbound) -> bool:
    return isinstance(item.frame, str) and not item.events and json.loads(item.frame).get("type") == "pong"


class TotalisHarness(SessionHarness):
    """Feeds what the session hands on into a real Engine as the runtime does; `next` skips pongs."""

    engine: Engine

    def __init__(self, config: MonitorConfig, endpoint: str) -> None:
        super().__init__(VirtualClock(START), engine=Engine(config), skip=is_pong)
        self.endpoint = endpoint  # the redacted ws endpoint FeedUp/FeedDown name

    async def until_up(self) -> list[Inbound]:
        items = await self.until_event(FeedUp)
        assert items[-1].events == [FeedUp(VENUE, self.endpoint)]
        return items

    async def frames(self, n: int) -> list[Event]:
        """The events of the next `n` frames (not REST bodies, not reports)."""
        events: list[Event] = []
        for _ in range(n):
            events.extend(await self.frame_events())
        return events

    def exposure(self) -> tuple[Decimal, Decimal]:
        """(confirmed worst-case loss, pending) of the desk, USD."""
        return self.engine.book.desk_worst_case_loss(DESK), self.engine.book.desk_pending(DESK)


SessionFactory = Callable[..., Awaitable[TotalisHarness]]


def venue_config(sim: TotalisRfqSimulator, **overrides: Any) -> TotalisRfqVenue:
    fields: dict[str, Any] = {
        "ws_url": sim.ws_url,
        "rest_url": sim.rest_url,
        "api_key": Secret(API_KEY),
        "rfq_ids": ["rfq-cfg"],
        "ping_interval": Duration(3600.0),  # no app pings unless a test asks
        "pong_timeout": Duration(10.0),
        "reconnect": Backoff(initial=Duration(1.0), max=Duration(8.0)),
        "open_timeout": Duration(TIMEOUT),
        "rest_timeout": Duration(TIMEOUT),
    }
    fields.update(overrides)
    return TotalisRfqVenue(**fields)


def monitor_config(venue: TotalisRfqVenue) -> MonitorConfig:
    return MonitorConfig(venues={VENUE: venue}, desks={DESK: Desk(accounts={VENUE: [MM]})})


# ---- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim_clock() -> SimClock:
    return SimClock(NOW)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def shared_sim(sim_clock: SimClock) -> AsyncIterator[TotalisRfqSimulator]:
    async with started(TotalisRfqSimulator(API_KEY, mm_id=MM, clock=sim_clock)) as server:
        yield server


@pytest_asyncio.fixture(loop_scope="module")
async def sim(shared_sim: TotalisRfqSimulator, sim_clock: SimClock) -> AsyncIterator[TotalisRfqSimulator]:
    sim_clock.now = NOW
    await shared_sim.reset()
    try:
        yield shared_sim
    finally:
        await shared_sim.reset()


@pytest_asyncio.fixture(loop_scope="module")
async def start_session(sim: TotalisRfqSimulator) -> AsyncIterator[SessionFactory]:
    async with session_pool() as pool:

        async def start(config: TotalisRfqVenue | None = None, *, hold: bool = False) -> TotalisHarness:
            config = config or venue_config(sim)
            h = TotalisHarness(monitor_config(config), sim.ws_url.removesuffix("/ws"))
            if hold:
                h.sleep.hold()
            codec = TotalisRfqCodec(VENUE, {MM: DESK}, DESK, config)
            session = TotalisRfqSession(VENUE, config, codec, h.sink, h.clock, rng=random.Random(SEED), sleep=h.sleep)
            pool.start(h, session, "totalis-session")
            return h

        yield start


async def accept(
    sim: TotalisRfqSimulator,
    quote_id: str,
    rfq_id: str,
    *,
    order: AcceptOrder = "mm_only",
    user_cost: float = 25,
    payout_odds: float = 4.25,
    epoch_ms: bool = False,
) -> dict[str, Any]:
    return await sim.accept_quote(
        quote_id=quote_id,
        rfq_id=rfq_id,
        user_cost=user_cost,
        payout_odds=payout_odds,
        legs=LEGS,
        confirmation_deadline=DEADLINE,
        order=order,
        epoch_ms_timestamps=epoch_ms,
    )


async def connected(start_session: SessionFactory, config: TotalisRfqVenue | None = None) -> TotalisHarness:
    h = await start_session(config)
    await h.until_up()
    return h


# ---- handshake ----------------------------------------------------------------------------------


async def test_auth_subscribe_then_rest_reconcile_then_feed_up(
    sim: TotalisRfqSimulator, start_session: SessionFactory
) -> None:
    h = await start_session()
    items = await h.until_up()

    auth = items[0]
    assert auth.frame == f'{{"type":"auth:success","user_id":"{MM}","user_type":"market_maker"}}'
    assert (auth.venue, auth.received_at, auth.rest) == (VENUE, START, None)
    assert auth.events == [Subscribed(VENUE, "auth")]
    # The acks for what the session subscribed on auth:success: our quotes, then the configured RFQ.
    acks = [e for e in h.events(items) if isinstance(e, Subscribed) and e.subscription != "auth"]
    assert acks == [Subscribed(VENUE, QUOTES), Subscribed(VENUE, "rfq:rfq-cfg")]
    (rest,) = [item for item in items if item.rest is not None]
    assert (rest.rest, rest.frame, rest.events, rest.received_at) == ("quotes", EMPTY_QUOTES, [], START)
    # The reconciliation is handed on before the feed counts as up, and FeedUp is the last word.
    assert items.index(rest) < len(items) - 1
    assert items[-1].frame is None
    assert items[-1].events == [FeedUp(VENUE, h.endpoint)]
    assert [e for e in h.events() if isinstance(e, FeedUp | FeedDown | FrameMalformed | SubscriptionFailed)] == [
        FeedUp(VENUE, h.endpoint)
    ]
    # The REST call carried the key (the simulator answers 401 without it).
    assert list(sim.rest_calls) == [GET_QUOTES]
    await sim.wait_for_subscribed(1, QUOTES)
    await sim.wait_for_subscribed(1, "rfq:rfq-cfg")
    assert sim.connection_count == 1
    assert sim.heartbeats == 0  # a monitor never keeps the firm's quotes alive
    assert h.sleep.delays == []


async def test_first_frames_on_the_wire_are_auth_then_subscribes(
    sim: TotalisRfqSimulator, start_session: SessionFactory
) -> None:
    """A recording venue on loopback: the exact frames the session sends, in order."""
    received: list[dict[str, Any]] = []

    async def venue(ws: ServerConnection) -> None:
        async for text in ws:
            frame = json.loads(text)
            received.append(frame)
            if frame["type"] == "auth":
                await ws.send(json.dumps({"type": "auth:success", "user_id": MM, "user_type": "market_maker"}))
            elif frame["type"] == "subscribe":
                await ws.send(json.dumps({"type": "subscribed", "channel": frame["channel"]}))

    async with serve(venue, "127.0.0.1", 0, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        config = venue_config(sim, ws_url=f"ws://127.0.0.1:{port}/ws", rfq_ids=["rfq-cfg", "rfq-two"])
        h = await start_session(config)
        h.endpoint = f"ws://127.0.0.1:{port}"
        await h.until_up()
        assert received == [
            {"type": "auth", "api_key": API_KEY},
            {"type": "subscribe", "channel": QUOTES},
            {"type": "subscribe", "channel": "rfq:rfq-cfg"},
            {"type": "subscribe", "channel": "rfq:rfq-two"},
        ]
        assert list(sim.rest_calls) == [GET_QUOTES]  # REST goes to rest_url, with the key


# ---- quote lifecycles -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "user_cost", "odds", "loss", "share", "epoch_ms"),
    [
        ("quote_first", 25, 4.25, "81.25", "40.625", False),  # §4.3: 25 x 4.25 = 106.25, MM risk 81.25
        ("mm_first", 7, 1.37, "2.59", "1.295", True),
        ("quote_only", 100, 1000, "99900", "49950", False),
        ("mm_only", 3, 2.5, "4.5", "2.25", True),
    ],
)
async def test_accept_in_each_order_reserves_the_exact_worst_case_loss(
    sim: TotalisRfqSimulator,
    start_session: SessionFactory,
    order: AcceptOrder,
    user_cost: int,
    odds: float,
    loss: str,
    share: str,
    epoch_ms: bool,
) -> None:
    h = await connected(start_session)
    h.clock.advance(1.5)
    await accept(sim, "q-1", "rfq-1", order=order, user_cost=user_cost, payout_odds=odds, epoch_ms=epoch_ms)
    names = {
        "quote_first": ["short", "full"],
        "mm_first": ["full", "short"],
        "quote_only": ["short"],
        "mm_only": ["full"],
    }[order]
    expected = {"short": short_accept("q-1", "rfq-1"), "full": full_accept("q-1", "rfq-1", loss, share, share)}
    # Accepting a quote follows its RFQ, so position events will arrive: the venue acks rfq:rfq-1.
    items = await h.until(
        lambda items: (
            len([i for i in items if i.frame and not i.rest]) >= len(names) + 1
            and h.exposure() == (Decimal(0), Decimal(loss))
        )
    )
    frames = [item for item in items if item.frame is not None and item.rest is None]
    assert [item.received_at for item in frames] == [START + 1.5] * len(frames)
    assert [e for item in frames for e in item.events] == [expected[name] for name in names] + [
        Subscribed(VENUE, "rfq:rfq-1")
    ]
    await sim.wait_for_subscribed(1, "rfq:rfq-1")
    # The engine holds one pending reservation of exactly mm_cost, in Decimal.
    quote = h.engine.quotes.get(VENUE, "q-1")
    assert quote is not None
    assert (quote.status, quote.worst_case_loss_usd, quote.pending) == (QuoteStatus.ACCEPTED, Decimal(loss), True)
    assert h.exposure() == (Decimal(0), Decimal(loss))
    if order == "quote_only":
        # Only REST knows this quote's economics: the session read them (see the next test).
        assert list(sim.rest_calls) == [GET_QUOTES, GET_QUOTES]
    elif order != "quote_first":  # there, whether the follow-up read is needed depends on timing
        assert list(sim.rest_calls) == [GET_QUOTES]


async def test_quote_only_accept_fetches_the_missing_economics_over_rest(
    sim: TotalisRfqSimulator, start_session: SessionFactory
) -> None:
    """`quote:accepted` has no economics; when `mm_quote:accepted` is lost, REST has them."""
    h = await connected(start_session)
    await accept(sim, "q-1", "rfq-1", order="quote_only")
    items = await h.until(lambda items: any(item.rest for item in items))
    (rest,) = [item for item in items if item.rest]
    assert rest.rest == "quotes"
    assert (
        QuoteUpdate(
            VENUE,
            DESK,
            MM,
            "q-1",
            "rfq-1",
            QuoteStatus.ACCEPTED,
            venue_ts=NOW,
            worst_case_loss_usd=Decimal("81.25"),
            confirmation_deadline=DEADLINE,
            legs=legs_of("40.625", "40.625"),
        )
        in rest.events
    )
    assert h.exposure() == (Decimal(0), Decimal("81.25"))
    assert list(sim.rest_calls) == [GET_QUOTES, GET_QUOTES]


async def test_confirm_execute_and_position_events_on_the_followed_rfq(
    sim: TotalisRfqSimulator, start_session: SessionFactory, sim_clock: SimClock
) -> None:
    h = await connected(start_session)
    await accept(sim, "q-1", "rfq-1")
    assert await h.frames(2) == [
        full_accept("q-1", "rfq-1", "81.25", "40.625", "40.625"),
        Subscribed(VENUE, "rfq:rfq-1"),
    ]
    assert h.exposure() == (Decimal(0), Decimal("81.25"))

    await sim.confirm("q-1")
    assert await h.frames(1) == [
        QuoteUpdate(VENUE, DESK, MM, "q-1", "rfq-1", QuoteStatus.CONFIRMED, execution_id="exec-000001")
    ]
    assert h.exposure() == (Decimal("81.25"), Decimal(0))  # pending became confirmed
    await sim.execute("q-1")
    assert await h.frames(1) == [QuoteUpdate(VENUE, DESK, MM, "q-1", "rfq-1", QuoteStatus.EXECUTED)]
    assert h.exposure() == (Decimal("81.25"), Decimal(0))

    # Position events go to rfq:rfq-1 (followed since the accept) and are copied to our channel.
    sim_clock.now = NOW + 60.5  # the venue stamps position events: ISO-8601 with ms
    sim_clock_ts = NOW + 60.5
    await sim.position_created("rfq-1", "PdA1")
    created = RfqPositionUpdate(VENUE, DESK, MM, "rfq-1", RfqPositionStatus.CREATED, sim_clock_ts, "PdA1")
    assert await h.frames(2) == [created, created]
    assert [(e.channel, e.event, e.delivered) for e in sim.events][-2:] == [
        ("rfq:rfq-1", "position:created", 1),
        (QUOTES, "position:created", 1),
    ]
    await sim.position_error("rfq-1", "vault busy")
    error = RfqPositionUpdate(VENUE, DESK, MM, "rfq-1", RfqPositionStatus.ERROR, sim_clock_ts, detail="vault busy")
    assert await h.frames(2) == [error, error]
    await sim.position_settled("rfq-1", "won", "5sigX")
    settled = RfqPositionUpdate(VENUE, DESK, MM, "rfq-1", RfqPositionStatus.SETTLED, sim_clock_ts, "PdA1", "won")
    assert await h.frames(2) == [settled, settled]
    assert h.exposure() == (Decimal(0), Decimal(0))
    assert not [e for e in h.events() if isinstance(e, FrameMalformed | FeedDown)]


async def test_expire_reject_withdraw_and_cancel_release_the_reservation(
    sim: TotalisRfqSimulator, start_session: SessionFactory
) -> None:
    h = await connected(start_session)
    for n, (cost, odds) in enumerate([(10, 3.3), (4, 2.0), (50, 1.5), (20, 2.0)]):
        await accept(sim, f"q-{n}", f"rfq-{n}", user_cost=cost, payout_odds=odds)
        await h.frames(2)  # the accept and the rfq ack
    # 23 + 4 + 25 + 20 pending, nothing confirmed.
    assert h.exposure() == (Decimal(0), Decimal(72))

    await sim.expire("q-0")
    assert await h.frames(1) == [QuoteUpdate(VENUE, DESK, MM, "q-0", "rfq-0", QuoteStatus.EXPIRED)]
    assert h.exposure() == (Decimal(0), Decimal(49))
    await sim.reject("q-1", "insufficient_liquidity")
    assert await h.frames(1) == [
        QuoteUpdate(VENUE, DESK, MM, "q-1", "rfq-1", QuoteStatus.REJECTED, reason="insufficient_liquidity")
    ]
    assert h.exposure() == (Decimal(0), Decimal(45))
    await sim.withdraw("q-2")
    assert await h.frames(1) == [QuoteUpdate(VENUE, DESK, MM, "q-2", "rfq-2", QuoteStatus.WITHDRAWN)]
    assert h.exposure() == (Decimal(0), Decimal(20))
    await sim.position_cancelled("rfq-3", "user cancelled")
    cancelled = RfqPositionUpdate(
        VENUE,
        DESK,
        MM,
        "rfq-3",
        RfqPositionStatus.CANCELLED,
        NOW,
        sim.events[-1].data["position_pda"],
        "user cancelled",
    )
    assert await h.frames(2) == [cancelled, cancelled]
    assert h.exposure() == (Decimal(0), Decimal(0))
    statuses = {q.quote_id: (q.status, q.closed) for q in h.engine.quotes.quotes()}
    assert statuses == {
        "q-0": (QuoteStatus.EXPIRED, False),
        "q-1": (QuoteStatus.REJECTED, False),
        "q-2": (QuoteStatus.WITHDRAWN, False),
        "q-3": (QuoteStatus.ACCEPTED, True),
    }


async def test_event_key_variant_decodes_the_same(sim: TotalisRfqSimulator, start_session: SessionFactory) -> None:
    h = await connected(start_session)
    sim.set_event_key("event")
    await accept(sim, "q-1", "rfq-1", order="mm_first")
    items = await h.until(lambda items: len(items) >= 3 and h.exposure()[1] == Decimal("81.25"))
    frames = [item for item in items if item.frame is not None and item.rest is None][:3]
    assert all('"event":"' in str(item.frame) for item in frames[:2])
    assert h.events(frames) == [
        full_accept("q-1", "rfq-1", "81.25", "40.625", "40.625"),
        short_accept("q-1", "rfq-1"),
        Subscribed(VENUE, "rfq:rfq-1"),  # control frames keep `type`
    ]
    await sim.confirm("q-1", "exec-9")
    assert await h.frames(1) == [
        QuoteUpdate(VENUE, DESK, MM, "q-1", "rfq-1", QuoteStatus.CONFIRMED, execution_id="exec-9")
    ]
    assert h.exposure() == (Decimal("81.25"), Decimal(0))


# ---- reconnects and reconciliation --------------------------------------------------------------


async def test_disconnect_all_reconnects_with_a_fresh_handshake(
    sim: TotalisRfqSimulator, start_session: SessionFactory
) -> None:
    h = await connected(start_session)
    await sim.disconnect_all()
    assert await h.next_report() == FeedDown(VENUE, h.endpoint, "server closed the connection")
    items = await h.until_up()
    assert items[0].events == [Subscribed(VENUE, "auth")]
    assert [item.rest for item in items if item.rest] == ["quotes"]
    assert h.sleep.delays == reference_delays(SEED, 1)
    assert list(sim.rest_calls) == [GET_QUOTES, GET_QUOTES]
    await sim.wait_for_subscribed(1, QUOTES)
    assert sim.connection_count == 1


async def missed_while_disconnected(sim: TotalisRfqSimulator, h: TotalisHarness) -> None:
    """Quotes move live, then while the session is away, then it comes back and reconciles."""
    await accept(sim, "q-1", "rfq-1", order="quote_first")  # 81.25 pending
    await accept(sim, "q-4", "rfq-4", user_cost=10, payout_odds=3.3)  # 23
    await sim.confirm("q-4")
    await h.until(lambda _: h.exposure() == (Decimal(23), Decimal("81.25")))
    await h.until(lambda _: any(Subscribed(VENUE, "rfq:rfq-4") in i.events for i in h.seen))

    h.sleep.hold()  # keep the session away while the venue moves on
    h.clock.advance(2.0)
    await sim.disconnect_all()
    await h.until_event(FeedDown)
    await h.sleep.wait_sleeping()
    assert sim.connection_count == 0
    mark = len(sim.events)
    await sim.confirm("q-1")  # pending 81.25 -> confirmed
    await accept(sim, "q-2", "rfq-2", order="quote_first", user_cost=7, payout_odds=1.37)  # 2.59 pending
    await accept(sim, "q-3", "rfq-3", user_cost=50, payout_odds=1.5)
    await sim.withdraw("q-3")  # reserved and released: nothing
    await sim.position_settled("rfq-4", "lost", "5sigY")  # q-4's 23 is gone
    missed = list(sim.events)[mark:]
    assert len(missed) == 7
    assert {e.delivered for e in missed} == {0}  # the venue never redelivers these

    h.clock.advance(3.0)
    h.sleep.release()
    await h.until_up()


async def test_events_missed_while_disconnected_come_back_through_rest(
    sim: TotalisRfqSimulator, start_session: SessionFactory
) -> None:
    h = await connected(start_session)
    await missed_while_disconnected(sim, h)

    rest = [item for item in h.seen if item.rest == "quotes"][-1]
    assert rest.received_at == START + 5.0
    by_quote = {e.quote_id: e.status for e in rest.events if isinstance(e, QuoteUpdate)}
    assert by_quote == {
        "q-1": QuoteStatus.CONFIRMED,
        "q-4": QuoteStatus.EXECUTED,  # the position settled: the RFQ's terminal word
        "q-2": QuoteStatus.ACCEPTED,
        "q-3": QuoteStatus.WITHDRAWN,
    }
    # [I] the REST row of a settled quote carries neither outcome nor pda: only the closure.
    assert RfqPositionUpdate(VENUE, DESK, MM, "rfq-4", RfqPositionStatus.SETTLED) in rest.events
    # Confirmed 81.25 (q-1), pending 2.59 (q-2); q-3 released, q-4 settled.
    assert h.exposure() == (Decimal("81.25"), Decimal("2.59"))
    rows = {(row.key.market, row.worst_case_loss_usd, row.pending_usd) for row in h.engine.book.risk_rows()}
    assert rows == {("rfq:rfq-1", Decimal("81.25"), Decimal(0)), ("rfq:rfq-2", Decimal(0), Decimal("2.59"))}
    # The reconnect follows the live RFQs again, and the accepted quote REST found.
    await sim.wait_for_subscribed(1, "rfq:rfq-1")
    await sim.wait_for_subscribed(1, "rfq:rfq-2")
    await sim.position_created("rfq-2", "PdA2")
    assert [(e.channel, e.delivered) for e in list(sim.events)[-2:]] == [("rfq:rfq-2", 1), (QUOTES, 1)]


async def test_failing_rest_holds_feed_up_and_retries_with_backoff_while_frames_flow(
    sim: TotalisRfqSimulator, start_session: SessionFactory
) -> None:
    sim.fail_rest(503)
    h = await start_session(hold=True)
    await h.sleep.wait_sleeping()  # the first GET failed; the retry waits at the gate
    assert list(sim.rest_calls) == [RestCall("GET", "/mm/quotes", "", 503)]

    # The socket is up and frames keep flowing, but the feed is not reported up.
    await accept(sim, "q-1", "rfq-1")
    await h.until(lambda _: h.exposure() == (Decimal(0), Decimal("81.25")))
    h.sleep.release()
    h.sleep.hold()
    await h.sleep.wait_sleeping()  # the second GET failed too
    assert [call.status for call in sim.rest_calls] == [503, 503]
    assert not [e for e in h.events() if isinstance(e, FeedUp | FeedDown)]
    assert not [item for item in h.seen if item.rest]

    sim.heal_rest()
    h.sleep.release()
    items = await h.until_up()
    assert [item.rest for item in items if item.rest] == ["quotes"]
    assert [call.status for call in sim.rest_calls] == [503, 503, 200]
    # Capped, jittered, growing. The session's reconnect and REST-retry backoffs share one rng, so
    # the draws interleave in the order they happen: here the REST retries drew first and only.
    assert h.sleep.delays == reference_delays(SEED, 2)
    assert 0.5 <= h.sleep.delays[0] <= 1.0 <= h.sleep.delays[1] <= 2.0
    assert sim.connection_count == 1  # REST trouble never dropped the socket
    assert h.exposure() == (Decimal(0), Decimal("81.25"))


async def test_a_frame_that_arrives_just_before_the_close_is_still_handed_on(
    sim: TotalisRfqSimulator, start_session: SessionFactory
) -> None:
    h = await connected(start_session)
    h.sleep.hold()
    # The codec answers this accept with `subscribe rfq:rfq-1`; the close is already behind it on the wire.
    await accept(sim, "q-1", "rfq-1")
    await sim.disconnect_all()
    items = await h.until_event(FeedDown)
    assert h.events(items) == [
        full_accept("q-1", "rfq-1", "81.25", "40.625", "40.625"),
        # The subscribe the codec answered with meets a closing socket and is dropped (the
        # connection is ending anyway): the close is the venue's, reported as any other.
        FeedDown(VENUE, h.endpoint, "server closed the connection"),
    ]


async def test_wrong_api_key_is_a_misconfiguration(sim: TotalisRfqSimulator, start_session: SessionFactory) -> None:
    wrong = "tk_live_WRONG_KEY_91c0"
    h = await start_session(venue_config(sim, api_key=Secret(wrong)), hold=True)
    refused = await h.next()
    assert refused.frame == '{"type":"auth:error","message":"Invalid API key"}'
    assert refused.events == [SubscriptionFailed(VENUE, "auth", "Invalid API key", misconfigured=True)]
    assert await h.next_report() == FeedDown(VENUE, h.endpoint, "connection closed (code 4001)")
    await h.sleep.wait_sleeping()
    assert list(sim.rest_calls) == []  # never reconciles without auth
    assert not [e for e in h.events() if isinstance(e, FeedUp)]
    assert h.sleep.delays == reference_delays(SEED, 1)
    for item in h.seen:
        assert wrong not in repr(item.events)
        assert wrong not in str(item.frame)


async def test_unanswered_pings_drop_and_the_reconnect_refollows_live_rfqs(
    sim: TotalisRfqSimulator, start_session: SessionFactory
) -> None:
    config = venue_config(sim, ping_interval=Duration(0.05), pong_timeout=Duration(0.2))
    h = await connected(start_session, config)
    await accept(sim, "q-a", "rfq-a")
    await accept(sim, "q-b", "rfq-b", user_cost=10, payout_odds=3.3)
    await accept(sim, "q-c", "rfq-c", user_cost=4, payout_odds=2.0)
    await sim.confirm("q-b")
    await sim.withdraw("q-c")
    await h.until(lambda _: h.exposure() == (Decimal(23), Decimal("81.25")))

    h.sleep.hold()
    sim.set_answer_pings(False)
    items = await h.until_event(FeedDown)
    assert items[-1].events == [FeedDown(VENUE, h.endpoint, "no pong within 0.2s")]
    await h.sleep.wait_sleeping()
    mark = len(h.seen)
    sim.set_answer_pings(True)
    h.sleep.release()

    want = {Subscribed(VENUE, ch) for ch in ("auth", QUOTES, "rfq:rfq-cfg", "rfq:rfq-a", "rfq:rfq-b")}
    await h.until(
        lambda _: want <= set(h.events(h.seen[mark:])) and FeedUp(VENUE, h.endpoint) in h.events(h.seen[mark:])
    )
    after = h.events(h.seen[mark:])
    assert after[0] == Subscribed(VENUE, "auth")  # re-authenticated first
    # The withdrawn quote's RFQ is not followed again: a position event there reaches nobody.
    await sim.position_error("rfq-c", "late")
    await sim.position_error("rfq-a", "vault busy")
    error = RfqPositionUpdate(VENUE, DESK, MM, "rfq-a", RfqPositionStatus.ERROR, NOW, detail="vault busy")
    await h.until(lambda _: h.events(h.seen[mark:]).count(error) == 2)
    sent = [(e.channel, e.delivered) for e in list(sim.events)[-4:]]
    assert sent == [("rfq:rfq-c", 0), (QUOTES, 1), ("rfq:rfq-a", 1), (QUOTES, 1)]
    assert not [e for e in after if isinstance(e, Subscribed) and e.subscription == "rfq:rfq-c"]
    assert len(h.sleep.delays) == 1
    assert h.exposure() == (Decimal(23), Decimal("81.25"))


MALFORMED: dict[MalformedKind, str] = {
    "not_json": "not JSON",
    "no_event_key": "frame without a type or event key",
    "unknown_event": "unknown event 'quote:teleported'",
    "missing_quote_id": "quote:accepted: without quote_id",
    "bad_deadline": "quote:accepted: confirmation_deadline not an ISO-8601 or epoch timestamp",
}


async def test_every_malformed_kind_is_frame_malformed_and_the_feed_stays_up(
    sim: TotalisRfqSimulator, start_session: SessionFactory
) -> None:
    assert set(MALFORMED) == set(get_args(MalformedKind))
    h = await connected(start_session)
    for kind, reason in MALFORMED.items():
        assert await sim.send_malformed(kind) == 1
        item = await h.next()
        assert item.frame is not None
        assert item.rest is None
        assert item.events == [FrameMalformed(VENUE, reason)], kind
    await accept(sim, "q-1", "rfq-1")
    assert (await h.frames(1))[0] == full_accept("q-1", "rfq-1", "81.25", "40.625", "40.625")
    assert h.engine.stats[VENUE].malformed == 5
    assert not [e for e in h.events() if isinstance(e, FeedDown)]
    assert h.exposure() == (Decimal(0), Decimal("81.25"))  # the malformed accepts reserved nothing


# ---- secrets ------------------------------------------------------------------------------------


async def test_the_api_key_never_appears_in_logs_or_events(
    sim: TotalisRfqSimulator, start_session: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sim.fail_rest(401, times=1)  # a REST refusal is logged
    h = await connected(start_session)
    await accept(sim, "q-1", "rfq-1", order="quote_first")
    await h.until(lambda _: h.exposure() == (Decimal(0), Decimal("81.25")))
    # A venue echoing the key back, in an error and as an event name.
    await sim.send_raw(json.dumps({"type": "error", "message": f"bad key {API_KEY}"}))
    await sim.send_raw(json.dumps({"type": f"x{API_KEY}"}))
    await h.until(lambda _: h.engine.stats[VENUE].malformed == 1)
    await sim.disconnect_all()
    down = await h.until_event(FeedDown)
    assert down[-1].events == [FeedDown(VENUE, h.endpoint, "server closed the connection")]
    await h.until_up()
    wrong = await start_session(venue_config(sim, api_key=Secret("tk_live_OTHER_SECRET_77")), hold=True)
    await wrong.until_event(FeedDown)

    events = h.events() + wrong.events()
    assert SubscriptionFailed(VENUE, "ws", "bad key ***") in events
    assert FrameMalformed(VENUE, "unknown event (unprintable name)") in events
    for event in events:
        assert API_KEY not in repr(event)
        assert "OTHER_SECRET" not in repr(event)
    lines = [record.getMessage() for record in caplog.records]
    assert any("reconciliation failed (GET /mm/quotes: HTTP 401)" in line for line in lines)
    leaked = [
        (record.name, record.getMessage())
        for record in caplog.records
        if API_KEY in record.getMessage() or "OTHER_SECRET" in record.getMessage()
    ]
    assert leaked == []
    assert API_KEY not in caplog.text  # formatted records, tracebacks included
    assert "OTHER_SECRET" not in caplog.text


# ---- capture and replay -----------------------------------------------------------------------


async def test_capture_replays_to_the_live_engines_exposure(
    sim: TotalisRfqSimulator, start_session: SessionFactory, tmp_path: Path
) -> None:
    config = venue_config(sim)
    h = await connected(start_session, config)
    await missed_while_disconnected(sim, h)
    await accept(sim, "q-5", "rfq-5", order="mm_first", user_cost=2, payout_odds=11)  # 20 pending
    await sim.reject("q-2", "stale")
    await h.until(lambda _: h.exposure() == (Decimal("81.25"), Decimal(20)))

    path = tmp_path / "capture.jsonl"
    write_capture(path, h.seen)
    replayed = replay(path, monitor_config(config))
    live = ReplayResult(h.engine)

    assert replayed.exposure() == live.exposure()
    assert replayed.exposure() == [
        {
            "desk": DESK,
            "venue": VENUE,
            "account": MM,
            "market": market,
            "position": None,
            "notional_usd": None,
            "worst_case_loss_usd": confirmed,
            "pending_usd": pending,
        }
        for market, confirmed, pending in [("rfq:rfq-1", 81.25, 0.0), ("rfq:rfq-5", 0.0, 20.0)]
    ]

    def quotes(engine: Engine) -> list[tuple[str, QuoteStatus, Decimal | None, bool]]:
        return sorted((q.quote_id, q.status, q.worst_case_loss_usd, q.closed) for q in engine.quotes.quotes())

    assert quotes(replayed.engine) == quotes(h.engine)
    assert replayed.skipped_lines == 0
    assert replayed.stats()["malformed"] == 0
