"""Integration tests for the ProphetX session against the real loopback simulator (REST + Pusher).

One simulator serves the whole module (it takes ~0.2 s to stop), so every test reads the
simulator's current state (app key, socket ids) instead of assuming a fresh one, and the
per-test fixture heals faults and waits for the test's sockets to go. Backoff sleeps are
injected (`FakeSleep`), the chores' sleeps too (`Ticker`: a test releases one token-refresh or
config-refresh tick at a time), jitter is seeded and the session's clock is virtual.

Every session fixture also checks, at teardown, that no access/secret key, bearer token or
channel signature appeared in any event or any log record (DEBUG, every logger).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from riskmon.clock import VirtualClock
from riskmon.config.schema import Backoff, Desk, MonitorConfig, ProphetXSubscription, ProphetXVenue
from riskmon.config.types import Duration, Secret
from riskmon.engine.engine import Engine
from riskmon.events import (
    BookLevel,
    BookSide,
    BookSnapshot,
    FeedDown,
    FeedUp,
    FrameMalformed,
    Heartbeat,
    OrderStatus,
    OrderUpdate,
    Subscribed,
    SubscriptionFailed,
    TradeExecuted,
)
from riskmon.replay import ReplayResult, replay
from riskmon.venues.base import Inbound
from riskmon.venues.prophetx.session import ProphetXSession
from riskmon.venues.prophetx.sim_frames import MALFORMED_KINDS, MalformedKind
from riskmon.venues.prophetx.simulator import ProphetXSimulator, selection_level
from tests.venues.prophetx.helpers import (
    ACCESS_KEY,
    ACCOUNT,
    DESK,
    SECRET_KEY,
    SIGNATURE,
    SIM_NOW,
    VENUE,
    desk_session,
    leaks,
    sockets_gone,
)
from tests.venues.session_harness import (
    TIMEOUT,
    SessionHarness,
    ingest,
    reference_delays,
    session_pool,
    write_capture,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

START = 1_784_813_285.0  # the session's virtual clock
SEED = 20240610
EVENT_ID = 10078829
MARKET_ID = 219
TOKEN_REFRESH = 480.0
CONFIG_REFRESH = 1800.0
ACTIVITY_TIMEOUT = 120.0
BROADCAST = "private-broadcast-service=3-device_type=5"
PRIVATE = f"private-service=3-device_type=5-user={ACCOUNT}"
EVENT_CHANNEL = f"{BROADCAST}-event={EVENT_ID}"
CHANNELS = [BROADCAST, PRIVATE, EVENT_CHANNEL]
SUBSCRIPTIONS: list[dict[str, Any]] = [
    {"type": "tournament", "ids": ["109"]},
    {"type": "event", "ids": [str(EVENT_ID)]},
]


class Ticker:
    """The chores' sleep: each call parks until the test releases one tick of that length.

    The token refresh, config refresh and keepalive sleeps have distinct lengths, so a test
    drives exactly the chore it means to.
    """

    def __init__(self) -> None:
        self._parked: dict[float, list[asyncio.Future[None]]] = {}
        self._watchers: list[asyncio.Future[None]] = []

    async def __call__(self, delay: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._parked.setdefault(delay, []).append(fut)
        watchers, self._watchers = self._watchers, []
        for watcher in watchers:
            if not watcher.done():
                watcher.set_result(None)
        await fut

    def _live(self, delay: float) -> list[asyncio.Future[None]]:
        live = [fut for fut in self._parked.get(delay, []) if not fut.done()]
        self._parked[delay] = live
        return live

    async def parked(self, delay: float) -> None:
        """Return once a chore sleeps `delay` (it finished its previous round)."""
        async with asyncio.timeout(TIMEOUT):
            while not self._live(delay):
                watcher: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._watchers.append(watcher)
                await watcher

    async def tick(self, delay: float) -> None:
        """Wake the (one) chore sleeping `delay`."""
        await self.parked(delay)
        (fut,) = self._live(delay)
        fut.set_result(None)
        self._parked[delay] = []


class ProphetXHarness(SessionHarness):
    session: ProphetXSession  # set once started: the REST reads are called on it

    def __init__(self) -> None:
        super().__init__(VirtualClock(START))
        self.ticker = Ticker()

    async def handshake(self, sim: ProphetXSimulator) -> str:
        """connection_established → register → signin + one Subscribed per channel → FeedUp.

        The feed is up only once every registered channel is subscribed. Returns the socket id
        the simulator gave this connection.
        """
        established = await self.next()
        assert isinstance(established.frame, str)
        assert established.rest is None
        assert established.events == []
        socket_id = json.loads(json.loads(established.frame)["data"])["socket_id"]
        register = await self.next()
        assert register.rest == "register"
        assert register.events == []
        assert isinstance(register.frame, str)
        body = json.loads(register.frame)
        assert body["data"]["subscriptions"] == SUBSCRIPTIONS  # the config's subscriptions, echoed
        assert [c["channel_name"] for c in body["data"]["authorized_channel"]] == CHANNELS
        assert await self.frame_events() == [Subscribed(VENUE, "user signin")]
        for channel in CHANNELS:
            assert await self.frame_events() == [Subscribed(VENUE, channel)]
        assert await self.next_report() == FeedUp(VENUE, sim.ws_host)
        assert socket_id in sim.socket_ids()
        assert sim.subscribed_channels(socket_id) == set(CHANNELS)
        return str(socket_id)

    async def marker(self, sim: ProphetXSimulator) -> None:
        """A health_check sent now arrives next: nothing else was on the stream before it."""
        assert await sim.emit_health_check() >= 1
        (event,) = await self.frame_events()
        assert isinstance(event, Heartbeat), event

    async def drain(self, sim: ProphetXSimulator) -> None:
        """Wait until everything the simulator sent so far has been handed on."""
        assert await sim.emit_health_check() >= 1
        while True:
            events = await self.frame_events()
            if len(events) == 1 and isinstance(events[0], Heartbeat):
                return


SessionFactory = Callable[..., Awaitable[ProphetXHarness]]


def venue_config(rest_url: str, *, initial: float = 1.0, maximum: float = 8.0) -> ProphetXVenue:
    return ProphetXVenue(
        rest_url=rest_url,
        access_key=Secret(ACCESS_KEY),
        secret_key=Secret(SECRET_KEY),
        subscriptions=[ProphetXSubscription(type=s["type"], ids=list(s["ids"])) for s in SUBSCRIPTIONS],
        token_refresh=Duration(TOKEN_REFRESH),
        config_refresh=Duration(CONFIG_REFRESH),
        activity_timeout=Duration(ACTIVITY_TIMEOUT),
        pong_timeout=Duration(30.0),
        reconnect=Backoff(initial=Duration(initial), max=Duration(maximum)),
        open_timeout=Duration(TIMEOUT),
        rest_timeout=Duration(TIMEOUT),
    )


def monitor_config(rest_url: str) -> MonitorConfig:
    return MonitorConfig(venues={VENUE: venue_config(rest_url)}, desks={DESK: Desk(accounts={VENUE: [ACCOUNT]})})


@pytest_asyncio.fixture(loop_scope="module")
async def start_session(sim: ProphetXSimulator, caplog: pytest.LogCaptureFixture) -> AsyncIterator[SessionFactory]:
    caplog.set_level(logging.DEBUG)
    async with session_pool() as pool:

        async def start(*, initial: float = 1.0, maximum: float = 8.0) -> ProphetXHarness:
            h = ProphetXHarness()
            config = venue_config(sim.rest_url, initial=initial, maximum=maximum)
            h.session = desk_session(h, config, seed=SEED, heartbeat_sleep=h.ticker)
            pool.start(h, h.session, "prophetx-session")
            return h

        yield start
        await pool.stop()
        sim.resume_health_check()
        await sockets_gone(sim)
        for harness in pool.harnesses:
            for event in harness.events():
                assert leaks(repr(event)) == [], event
        records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
        logged = [f"{r.name}: {r.getMessage()}" for r in records]
        assert logged
        assert [line for line in logged if leaks(line)] == []


def place(sim: ProphetXSimulator, *, odds: int = 110, stake: float = 100.0, outcome: int = 4) -> str:
    return sim.place_order(event_id=EVENT_ID, market_id=MARKET_ID, outcome_id=outcome, odds=odds, stake=stake)


def order_update(sim: ProphetXSimulator, order_id: str, **changes: Any) -> OrderUpdate:
    """The OrderUpdate the simulator's current view of an order must decode to."""
    info = sim.order_info(order_id)
    fields: dict[str, Any] = {
        "venue": VENUE,
        "desk": DESK,
        "account": ACCOUNT,
        "order_id": order_id,
        "market": f"{EVENT_ID}/{MARKET_ID}/{info['outcome_id']}",
        "status": OrderStatus.OPEN,
        "venue_status": info["status"],
        "sequence": info["sequence_number"],
        "venue_ts": SIM_NOW,
        "reason": info.get("reason"),
        "external_id": info["external_id"],
        "price": Decimal(info["odds"]),
        "quantity": Decimal(str(info["stake"])),
        "filled_quantity": Decimal(str(info["totally_matched_stake"])),
        "fill_price": Decimal(info["matched_odds"]),
        "worst_case_loss_usd": Decimal(str(info["totally_matched_stake"])),
    }
    fields.update(changes)
    return OrderUpdate(**fields)


async def next_order(h: ProphetXHarness) -> OrderUpdate:
    (event,) = await h.frame_events()
    assert isinstance(event, OrderUpdate), event
    return event


# ---- handshake, keepalive -----------------------------------------------------------------------


async def test_handshake_logs_in_registers_signs_in_and_subscribes_every_channel(
    sim: ProphetXSimulator, start_session: SessionFactory
) -> None:
    calls_before = len(sim.rest_calls)
    h = await start_session()
    socket_id = await h.handshake(sim)
    assert sim.rest_calls[calls_before:] == [
        ("POST", "/partner/auth/login"),
        ("GET", "/partner/websocket/connection-config"),
        ("POST", "/partner/v4/mm/websocket"),
    ]
    await sim.wait_for_signed_in(1)
    assert h.sleep.delays == []

    # health_check arrives as a Heartbeat naming this connection and the venue's time.
    assert await sim.emit_health_check() == 1
    item = await h.next()
    assert item.received_at == START
    assert item.events == [Heartbeat(VENUE, socket_id, SIM_NOW)]

    # A server pusher:ping is answered with a pusher:pong.
    pongs = len(sim.pongs)
    await sim.server_ping()
    await sim.wait_for_pongs(pongs + 1)
    assert sim.pongs[pongs:] == [socket_id]
    assert await h.frame_events() == []


async def test_keepalive_pings_and_the_pong_keeps_the_connection(
    sim: ProphetXSimulator, start_session: SessionFactory
) -> None:
    h = await start_session()
    await h.handshake(sim)
    for _ in range(2):
        await h.ticker.tick(ACTIVITY_TIMEOUT)  # pusher:ping goes out...
        pong = await h.next()
        assert (pong.frame, pong.events) == ('{"event":"pusher:pong","data":"{}"}', [])  # ...and is answered
        await h.ticker.tick(30.0)  # the pong timeout passes with the pong in
        await h.ticker.parked(ACTIVITY_TIMEOUT)
    await h.marker(sim)
    assert not [event for event in h.events() if isinstance(event, FeedDown)]


async def test_stopped_health_check_sends_no_heartbeat(sim: ProphetXSimulator, start_session: SessionFactory) -> None:
    h = await start_session()
    socket_id = await h.handshake(sim)
    assert await sim.emit_health_check() == 1
    assert await h.frame_events() == [Heartbeat(VENUE, socket_id, SIM_NOW)]

    sim.stop_health_check()
    assert await sim.emit_health_check() == 0
    assert await sim.emit_health_check() == 0
    # The next thing on the stream is the book pushed after them: no Heartbeat came first.
    await sim.push_matched_bet(109, {**_trade_info(), "sequence_number": 7})
    (trade,) = await h.frame_events()
    assert isinstance(trade, TradeExecuted)
    assert trade.sequence == 7
    assert sum(isinstance(event, Heartbeat) for event in h.events()) == 1

    sim.resume_health_check()
    assert await sim.emit_health_check() == 1
    assert await h.frame_events() == [Heartbeat(VENUE, socket_id, SIM_NOW)]


# ---- orders -------------------------------------------------------------------------------------


async def test_wager_lifecycle_arrives_as_order_updates(sim: ProphetXSimulator, start_session: SessionFactory) -> None:
    h = await start_session()
    await h.handshake(sim)

    # Activation confirmed: inactive → open.
    order = place(sim, odds=110, stake=100.0)
    await sim.activate(order)
    opened = await next_order(h)
    assert opened == order_update(sim, order, status=OrderStatus.OPEN)
    assert (opened.venue_status, opened.sequence, opened.price, opened.quantity) == (
        "open",
        2,
        Decimal(110),
        Decimal(100),
    )
    assert (opened.filled_quantity, opened.worst_case_loss_usd) == (Decimal(0), Decimal(0))

    # Activation failed: inactive → invalid, with the venue's reason.
    refused = place(sim, odds=-150, stake=50.0, outcome=5)
    await sim.reject(refused, "insufficient_balance")
    rejected = await next_order(h)
    assert rejected == order_update(sim, refused, status=OrderStatus.REJECTED, worst_case_loss_usd=Decimal(0))
    assert (rejected.status, rejected.venue_status, rejected.reason) == (
        OrderStatus.REJECTED,
        "invalid",
        "insufficient_balance",
    )

    # Two fills: cumulative filled quantity, the matched stake is what a loss costs.
    await sim.match(order, 30.0)
    first = await next_order(h)
    assert first == order_update(sim, order)
    assert (first.filled_quantity, first.fill_price, first.worst_case_loss_usd) == (
        Decimal(30),
        Decimal(110),
        Decimal(30),
    )
    await sim.match(order, 12.5, odds=115)
    second = await next_order(h)
    assert (second.sequence, second.filled_quantity, second.fill_price) == (4, Decimal("42.5"), Decimal(115))
    assert second.worst_case_loss_usd == Decimal("42.5")

    # Cancel after a partial fill: the matched part stays open (fully_matched), still at risk.
    await sim.cancel(order)
    partial_cancel = await next_order(h)
    assert partial_cancel == order_update(sim, order)
    assert (partial_cancel.status, partial_cancel.worst_case_loss_usd) == (OrderStatus.OPEN, Decimal("42.5"))

    # Cancel of an unmatched order: canceled, nothing at risk.
    idle = place(sim, odds=200, stake=20.0, outcome=6)
    await sim.activate(idle)
    assert (await next_order(h)).status is OrderStatus.OPEN
    await sim.cancel(idle)
    canceled = await next_order(h)
    assert canceled == order_update(sim, idle, status=OrderStatus.CANCELED)
    assert (canceled.venue_status, canceled.worst_case_loss_usd) == ("canceled", Decimal(0))

    # Settlement: nothing at risk any more.
    await sim.settle(order, "won")
    settled = await next_order(h)
    assert settled == order_update(sim, order, status=OrderStatus.SETTLED, worst_case_loss_usd=Decimal(0))
    assert (settled.venue_status, settled.sequence, settled.filled_quantity) == ("settled", 6, Decimal("42.5"))


async def test_lost_activation_is_seen_through_fetch_order(
    sim: ProphetXSimulator, start_session: SessionFactory
) -> None:
    h = await start_session()
    await h.handshake(sim)
    order = place(sim, odds=-120, stake=60.0)
    sim.drop_next_activation()
    await sim.activate(order)
    await h.marker(sim)  # the activation never came over the stream
    assert not [event for event in h.events() if isinstance(event, OrderUpdate)]

    calls = len(sim.rest_calls)
    events = await h.session.fetch_order(order)
    expected = order_update(sim, order, venue_ts=0.0)  # get_order carries no venue timestamp
    assert events == [expected]
    assert (expected.status, expected.sequence) == (OrderStatus.OPEN, 2)
    assert sim.rest_calls[calls:] == [("GET", f"/partner/mm/get_order/{order}")]
    item = await h.next()  # handed on like a frame, so a capture replays it
    assert item.rest == "get_order"
    assert item.events == [expected]
    assert isinstance(item.frame, str)
    assert json.loads(item.frame) == {"data": sim.order_info(order)}

    # The next activation is not dropped.
    other = place(sim, odds=105, stake=10.0, outcome=7)
    await sim.activate(other)
    assert await next_order(h) == order_update(sim, other)


async def test_duplicates_reach_the_engine_which_drops_them_and_a_capture_replays_the_same(
    sim: ProphetXSimulator, start_session: SessionFactory, tmp_path: Path
) -> None:
    config = monitor_config(sim.rest_url)
    engine = Engine(config)
    capture = tmp_path / "prophetx.jsonl"
    h = await start_session()
    await h.handshake(sim)

    order = place(sim, odds=110, stake=100.0)
    other = place(sim, odds=-200, stake=80.0, outcome=5)
    await sim.activate(order)
    await sim.activate(other)
    await sim.match(order, 40.0)
    await sim.match(other, 25.25)
    await sim.repeat_last_update(order)  # byte for byte the same frame
    await sim.send_stale_update(order)  # the previous version (open, nothing matched)
    await sim.send_stale_update(other)
    await sim.match(order, 10.0)
    await sim.repeat_last_update(other)
    await h.drain(sim)

    updates = [event for event in h.events() if isinstance(event, OrderUpdate)]
    assert [(u.order_id, u.sequence) for u in updates] == [
        (order, 2),
        (other, 2),
        (order, 3),
        (other, 3),
        (order, 3),
        (order, 2),
        (other, 2),
        (order, 4),
        (other, 3),
    ]
    ingest(engine, h.seen)
    write_capture(capture, h.seen)

    stats = engine.venue_stats(VENUE)
    assert (stats.order_updates, stats.stale_updates, stats.fills) == (5, 4, 3)
    assert engine.book.desk_worst_case_loss(DESK) == Decimal("75.25")  # 40 + 10 + 25.25, exactly
    held = engine.orders.get(VENUE, order)
    assert held is not None
    assert (held.sequence, held.filled_quantity) == (4, Decimal(50))

    lines = [json.loads(line) for line in capture.read_text().splitlines()]
    assert [line.get("rest") for line in lines[:2]] == [None, "register"]

    replayed = replay(capture, config)
    assert replayed.engine.book.desk_worst_case_loss(DESK) == Decimal("75.25")
    assert replayed.engine.venue_stats(VENUE).stale_updates == 4
    assert replayed.engine.venue_stats(VENUE).order_updates == 5
    live_rows = sorted(engine.book.risk_rows())
    assert live_rows
    assert sorted(replayed.engine.book.risk_rows()) == live_rows
    assert replayed.engine.orders.orders() == engine.orders.orders()
    assert replayed.exposure() == ReplayResult(engine).exposure()
    assert replayed.skipped_lines == 0


# ---- books and trades ---------------------------------------------------------------------------


def _trade_info() -> dict[str, Any]:
    return {
        "sport_event_id": EVENT_ID,
        "market_id": MARKET_ID,
        "line_id": "cffa7d",
        "outcome_id": 4,
        "line": 0,
        "odds": 124,
        "matched_odds": 124,
        "matched_stake": 45.3,
        "origin_market_line": 0,
        "sequence_number": 1709130007835319000,
    }


async def test_market_selections_and_matched_bets(sim: ProphetXSimulator, start_session: SessionFactory) -> None:
    h = await start_session()
    await h.handshake(sim)
    selections = [
        [selection_level(outcome_id=4, odds=110, stake=110.0), selection_level(outcome_id=4, odds=120, stake=55.5)],
        [selection_level(outcome_id=5, odds=-130, stake=200.0)],
    ]
    assert await sim.push_market_selections(EVENT_ID, MARKET_ID, selections, sequence_number=1234567890) == 1
    assert await h.frame_events() == [
        BookSnapshot(
            VENUE,
            f"{EVENT_ID}/{MARKET_ID}",
            (
                BookSide("4", (BookLevel(Decimal(110), Decimal(110)), BookLevel(Decimal(120), Decimal("55.5")))),
                BookSide("5", (BookLevel(Decimal(-130), Decimal(200)),)),
            ),
            1234567890,
        )
    ]

    await sim.push_matched_bet(109, _trade_info())
    assert await h.frame_events() == [
        TradeExecuted(VENUE, f"{EVENT_ID}/{MARKET_ID}/4", Decimal(124), Decimal("45.3"), 1709130007835319000, SIM_NOW)
    ]


# ---- reconnects ---------------------------------------------------------------------------------


async def test_connection_config_change_reconnects_to_the_new_key(
    sim: ProphetXSimulator, start_session: SessionFactory
) -> None:
    h = await start_session()
    old_socket = await h.handshake(sim)

    # An unchanged config keeps the connection.
    calls = len(sim.rest_calls)
    await h.ticker.tick(CONFIG_REFRESH)
    await h.ticker.parked(CONFIG_REFRESH)
    assert sim.rest_calls[calls:] == [("GET", "/partner/websocket/connection-config")]
    await h.marker(sim)

    old_key = sim.app_key
    sim.change_connection_config()
    assert sim.app_key != old_key
    calls = len(sim.rest_calls)
    await h.ticker.tick(CONFIG_REFRESH)
    assert await h.next_report() == FeedDown(VENUE, sim.ws_host, "connection config changed")
    new_socket = await h.handshake(sim)
    assert new_socket != old_socket
    # The simulator accepts sockets on the new key only, and a subscription only when signed
    # with the key the socket connected with: the handshake above proves the new key was used.
    assert sim.socket_ids() == [new_socket]
    assert sim.rest_calls[calls:] == [
        ("GET", "/partner/websocket/connection-config"),  # the check that saw the change
        ("GET", "/partner/websocket/connection-config"),  # the reconnect's own read
        ("POST", "/partner/v4/mm/websocket"),  # re-registered with the new socket id
    ]
    assert len(h.sleep.delays) == 1
    assert await sim.emit_health_check() == 1
    assert await h.frame_events() == [Heartbeat(VENUE, new_socket, SIM_NOW)]


async def test_disconnect_reconnects_and_registers_the_new_socket(
    sim: ProphetXSimulator, start_session: SessionFactory
) -> None:
    h = await start_session(initial=1.0, maximum=8.0)
    old_socket = await h.handshake(sim)
    await sim.disconnect_all()
    assert await h.next_report() == FeedDown(VENUE, sim.ws_host, "connection closed (code 4200)")
    new_socket = await h.handshake(sim)
    assert new_socket != old_socket
    assert h.sleep.delays == reference_delays(SEED, 1, 1.0, 8.0)

    # The new socket carries the private channel again.
    order = place(sim)
    await sim.activate(order)
    assert await next_order(h) == order_update(sim, order)


async def test_login_failure_backs_off_then_recovers(sim: ProphetXSimulator, start_session: SessionFactory) -> None:
    sim.fail_rest(503, times=2, paths="/partner/auth/login")
    h = await start_session(initial=1.0, maximum=3.0)
    for _ in range(2):
        down = await h.next_report()
        assert down == FeedDown(VENUE, "?", "POST /auth/login: HTTP 503")
    await h.handshake(sim)
    assert h.sleep.delays == reference_delays(SEED, 2, 1.0, 3.0)
    for delay, ceiling in zip(h.sleep.delays, [1.0, 2.0], strict=True):
        assert ceiling / 2 <= delay <= ceiling


async def test_registration_failure_is_reported_and_reconnects(
    sim: ProphetXSimulator, start_session: SessionFactory
) -> None:
    sim.fail_rest(503, times=1, paths="/partner/v4/mm/websocket")
    h = await start_session()
    established = await h.next()  # never up: the channels were not registered
    assert established.events == []
    assert established.rest is None
    assert await h.next_report() == SubscriptionFailed(
        VENUE, "channel registration", "POST /v4/mm/websocket: HTTP 503", False
    )
    assert await h.next_report() == FeedDown(
        VENUE, sim.ws_host, "channel registration failed (POST /v4/mm/websocket: HTTP 503)"
    )
    await h.handshake(sim)
    assert len(h.sleep.delays) == 1


# ---- tokens -------------------------------------------------------------------------------------


async def test_token_refresh_chore_and_revoked_token_recovery(
    sim: ProphetXSimulator, start_session: SessionFactory
) -> None:
    h = await start_session()
    await h.handshake(sim)
    order = place(sim)

    calls = len(sim.rest_calls)
    await h.ticker.tick(TOKEN_REFRESH)
    await h.ticker.parked(TOKEN_REFRESH)
    assert sim.rest_calls[calls:] == [("POST", "/partner/auth/refresh")]
    assert await h.session.fetch_order(order) == [order_update(sim, order, status=OrderStatus.PENDING, venue_ts=0.0)]

    # Every token revoked: the next refresh is refused and the chore logs in again.
    sim.revoke_tokens()
    calls = len(sim.rest_calls)
    await h.ticker.tick(TOKEN_REFRESH)
    await h.ticker.parked(TOKEN_REFRESH)
    assert sim.rest_calls[calls:] == [("POST", "/partner/auth/refresh"), ("POST", "/partner/auth/login")]
    assert await h.session.fetch_order(order) == [order_update(sim, order, status=OrderStatus.PENDING, venue_ts=0.0)]
    assert not [event for event in h.events() if isinstance(event, FeedDown)]


async def test_token_revoked_between_refreshes_is_renewed_on_the_next_call(
    sim: ProphetXSimulator, start_session: SessionFactory
) -> None:
    """A token the venue refuses before its refresh is due (revoked, or expired while the host
    slept) is renewed at once: the REST read succeeds and a reconnect does not loop on 401s."""
    h = await start_session()
    await h.handshake(sim)
    order = place(sim)

    sim.revoke_tokens()
    calls = len(sim.rest_calls)
    assert await h.session.fetch_order(order) == [order_update(sim, order, status=OrderStatus.PENDING, venue_ts=0.0)]
    assert sim.rest_calls[calls:] == [
        ("GET", f"/partner/mm/get_order/{order}"),  # 401
        ("POST", "/partner/auth/refresh"),  # 401: revoked too
        ("POST", "/partner/auth/login"),
        ("GET", f"/partner/mm/get_order/{order}"),
    ]
    assert (await h.next()).rest == "get_order"

    sim.revoke_tokens()
    await sim.disconnect_all()
    assert await h.next_report() == FeedDown(VENUE, sim.ws_host, "connection closed (code 4200)")
    await h.handshake(sim)
    assert len(h.sleep.delays) == 1


# ---- malformed frames ---------------------------------------------------------------------------

MALFORMED_REASONS: dict[MalformedKind, str] = {
    "not_json": "pusher frame: not JSON",
    "data_not_json": "envelope: not JSON",
    "payload_not_base64": "payload: not valid base64",
    "payload_not_json": "wager payload: not JSON",
    "missing_info": "wager payload: unexpected shape: Object missing required field `info`",
}


async def test_every_malformed_kind_is_frame_malformed(sim: ProphetXSimulator, start_session: SessionFactory) -> None:
    assert set(MALFORMED_REASONS) == set(MALFORMED_KINDS)
    h = await start_session()
    await h.handshake(sim)
    for kind in MALFORMED_KINDS:
        assert await sim.send_malformed(kind) == 1
        assert await h.frame_events() == [FrameMalformed(VENUE, MALFORMED_REASONS[kind])], kind
    await h.marker(sim)  # the connection survives them all
    assert not [event for event in h.events() if isinstance(event, FeedDown)]


# ---- secrets ------------------------------------------------------------------------------------


def _frames(items: Iterable[Inbound]) -> str:
    return "\n".join(item.frame for item in items if isinstance(item.frame, str))


async def test_credentials_never_reach_events_or_logs(
    sim: ProphetXSimulator, start_session: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    sim.fail_rest(401, times=1, paths="/partner/auth/login")
    h = await start_session()
    down = await h.next_report()
    assert down == FeedDown(VENUE, "?", "POST /auth/login: HTTP 401")
    await h.handshake(sim)
    await h.ticker.tick(TOKEN_REFRESH)
    await h.ticker.parked(TOKEN_REFRESH)
    sim.revoke_tokens()
    await h.ticker.tick(TOKEN_REFRESH)
    await h.ticker.parked(TOKEN_REFRESH)
    sim.fail_rest(503, times=1, paths="/partner/websocket/connection-config")
    await h.ticker.tick(CONFIG_REFRESH)
    await h.ticker.parked(CONFIG_REFRESH)
    await h.marker(sim)

    # The detector works: the captured register body does carry the signatures...
    assert len(SIGNATURE.findall(_frames(h.seen))) == len(CHANNELS) + 2  # channels, signin, top-level auth
    # ...and nothing else does (the fixture also checks every event and log record at teardown).
    assert leaks("\n".join(repr(event) for event in h.events())) == []
    records = [r.getMessage() for r in caplog.records]
    assert any("token refresh refused" in line for line in records)
    assert any("connection config check failed" in line for line in records)
    assert [line for line in records if leaks(line)] == []
