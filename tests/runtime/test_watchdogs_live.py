"""The watchdogs live: each one detects a simulator fault and its remedy really happens.

Real Monitor, real sessions, real websockets and HTTP on 127.0.0.1, a real SQLite state file under
tmp_path and the real clock (one test shifts it forward to stand for time passed while riskmon was
down). Timeouts are tiny so that each test takes a second or two. Nothing sleeps to wait: every wait
is on a condition (an alert received, an engine step applied, a simulator counter) under a bounded
asyncio.timeout.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
import msgspec
import pytest
import pytest_asyncio

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.clock import Clock
from riskmon.config import parse_config
from riskmon.config.schema import MonitorConfig, WatchdogsConfig
from riskmon.config.types import Duration
from riskmon.events import OrderIntake
from riskmon.replay import replay
from riskmon.runtime.monitor import Monitor
from riskmon.store.deadlines import DeadlineStore
from riskmon.venues.mobula.simulator import MobulaPerpEventsSimulator
from riskmon.venues.phoenix.simulator import PhoenixSimulator, SimMarket
from riskmon.venues.prophetx.simulator import ProphetXSimulator, selection_level
from riskmon.venues.totalis.simulator import TotalisRfqSimulator
from riskmon.watchdogs.feeds import FeedState

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

WAIT = 5.0  # the bound on any single wait; a passing test needs a small fraction of it

TOKEN = "intake-T0ken-0123456789"
PX = "px"
PX_DESK = "bets"
PX_ACCOUNT = "acct-live"
PX_ACCESS = "AKliveAccess0123"
PX_SECRET = "SKliveSecret3210"
GET_ORDER = "/partner/mm/get_order/"

MOB = "mob"
MOB_KEY = "mobula-live-key"
MOB_WALLET = "0x5011de5c0000000000000000000000000000a11c"

PHX = "phx"
PHX_DESK = "sol-desk"
PHX_AUTHORITY = "5ZWj7a1f8tWkjBESHKgrLmXshuXxqeY9SYcfbshpAqPG"
PHX_SOL = SimMarket("SOL", base_lots_decimals=2, tick_size=100)

TOT = "tot"
TOT_DESK = "rfq-desk"
TOT_KEY = "totalis-live-key"
TOT_MM = "did:privy:mm-live"
LEGS = [
    {"venue": "kalshi", "market_ticker": "KXBTC-26JUN01-T72500", "side": "yes"},
    {"venue": "polymarket", "market_ticker": "0x" + "ab" * 32, "side": "no"},
]

FAST_BACKOFF = "{initial: 10ms, max: 50ms}"
FAST_RECONNECT = f"reconnect: {FAST_BACKOFF}"


# --- harness ------------------------------------------------------------------------------------


class Collect:
    """A receiver that keeps every transition and wakes waiters (timer-fired alerts included)."""

    def __init__(self) -> None:
        self.transitions: list[AlertTransition] = []
        self.changed = asyncio.Event()

    def deliver(self, transition: AlertTransition) -> None:
        self.transitions.append(transition)
        self.changed.set()

    def named(self, alertname: str, status: str | None = None, since: int = 0) -> list[AlertTransition]:
        """Transitions of `alertname` (with `status`), from the `since`-th transition received on."""
        return [
            t for t in self.transitions[since:] if t.alertname == alertname and (status is None or t.status == status)
        ]

    def timeline(self) -> list[tuple[str, str, str, dict[str, str]]]:
        return [(t.alertname, t.severity, t.status, t.labels) for t in self.transitions]


def own(transition: AlertTransition) -> dict[str, str]:
    """An alert's own labels (without the alertname and severity every alert carries)."""
    return {k: v for k, v in transition.labels.items() if k not in ("alertname", "severity")}


class Live:
    """A running monitor and what it told its receiver."""

    def __init__(self, monitor: Monitor, received: Collect) -> None:
        self.monitor = monitor
        self.received = received

    async def until(self, condition: Callable[[], bool], timeout: float = WAIT) -> None:  # noqa: ASYNC109
        """Return once `condition()` holds; re-checked after every engine step and every alert."""
        events = (self.monitor.applied, self.received.changed)
        async with asyncio.timeout(timeout):
            while not condition():
                for event in events:
                    event.clear()
                waiters = [asyncio.ensure_future(event.wait()) for event in events]
                try:
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()
                    await asyncio.gather(*waiters, return_exceptions=True)

    async def alert(
        self,
        alertname: str,
        status: str = "firing",
        n: int = 1,
        since: int = 0,
        timeout: float = WAIT,  # noqa: ASYNC109
    ) -> AlertTransition:
        """The n-th transition of `alertname` with `status` (counted from `since`), once it has arrived."""
        await self.until(lambda: len(self.received.named(alertname, status, since)) >= n, timeout)
        return self.received.named(alertname, status, since)[n - 1]

    def mark(self) -> int:
        """A place in the timeline: what a fault causes is looked for after it."""
        return len(self.received.transitions)

    def feed(self, venue: str) -> FeedState:
        return self.monitor.engine.watchdogs.feeds.state(venue)

    async def feed_up(self, venue: str) -> None:
        await self.until(lambda: self.feed(venue) is FeedState.UP)


@asynccontextmanager
async def running(
    config: MonitorConfig,
    *,
    clock: Clock | None = None,
    record: Path | None = None,
    http: bool = False,
) -> AsyncIterator[Live]:
    """A Monitor running against the simulators; stopped (and its task awaited) on the way out."""
    received = Collect()
    monitor = Monitor(config, clock=clock, record=record, listeners=[received], http=http, http_port=0)
    stop = asyncio.Event()
    runner = asyncio.create_task(monitor.run(stop), name="monitor")
    try:
        yield Live(monitor, received)
    finally:
        stop.set()
        async with asyncio.timeout(WAIT):
            await runner  # re-raises whatever broke inside the monitor


def no_tasks_left() -> set[asyncio.Task[Any]]:
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task() and not task.done()}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class ShiftedClock:
    """The wall clock plus an offset the test moves forward: time passing while riskmon is down."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


# --- configs --------------------------------------------------------------------------------------


def prophetx_config(
    sim: ProphetXSimulator,
    state: Path,
    *,
    activation_timeout: str = "300ms",
    health_check_gap: str = "60s",
    extra: str = "",
) -> MonitorConfig:
    text = f"""
server:
  token: ${{TOKEN}}
state:
  path: ${{STATE}}
venues:
  {PX}:
    kind: prophetx
    rest_url: ${{PX_URL}}
    access_key: ${{PX_ACCESS}}
    secret_key: ${{PX_SECRET}}
    activation_timeout: {activation_timeout}
    health_check_gap: {health_check_gap}
    rest_timeout: 1s
    feed_down_grace: 2s  # startup under load must not raise FeedDown
    {FAST_RECONNECT}
    {extra}
desks:
  {PX_DESK}:
    accounts: {{{PX}: [{PX_ACCOUNT}]}}
"""
    env = {"TOKEN": TOKEN, "STATE": str(state), "PX_URL": sim.rest_url, "PX_ACCESS": PX_ACCESS, "PX_SECRET": PX_SECRET}
    return parse_config(text, "prophetx.yaml", env)


def mobula_config(url: str, state: Path, *, reconnect: str) -> MonitorConfig:
    text = f"""
state:
  path: ${{STATE}}
venues:
  {MOB}:
    kind: mobula_perp_events
    url: ${{MOB_URL}}
    api_key: ${{MOB_KEY}}
    ping_interval: 100ms
    pong_timeout: 100ms
    feed_down_grace: 300ms
    reconnect: {reconnect}
desks:
  perps:
    accounts: {{{MOB}: ["{MOB_WALLET}"]}}
"""
    return parse_config(text, "mobula.yaml", {"STATE": str(state), "MOB_URL": url, "MOB_KEY": MOB_KEY})


def phoenix_config(sim: PhoenixSimulator, state: Path, *, pings: str = "") -> MonitorConfig:
    text = f"""
state:
  path: ${{STATE}}
venues:
  {PHX}:
    kind: phoenix
    url: ${{PHX_URL}}
    authority: {PHX_AUTHORITY}
    feed_down_grace: 300ms
    {pings}
    {FAST_RECONNECT}
desks:
  {PHX_DESK}:
    accounts: {{{PHX}: [{PHX_AUTHORITY}]}}
"""
    return parse_config(text, "phoenix.yaml", {"STATE": str(state), "PHX_URL": sim.url})


def totalis_config(sim: TotalisRfqSimulator, state: Path, extra: str = "") -> MonitorConfig:
    text = f"""
state:
  path: ${{STATE}}
venues:
  {TOT}:
    kind: totalis_rfq
    ws_url: ${{TOT_WS}}
    rest_url: ${{TOT_REST}}
    api_key: ${{TOT_KEY}}
    rest_timeout: 1s
    feed_down_grace: 2s  # startup under load must not raise FeedDown
    {FAST_RECONNECT}
    {extra}
desks:
  {TOT_DESK}:
    accounts: {{{TOT}: ["{TOT_MM}"]}}
"""
    env = {"STATE": str(state), "TOT_WS": sim.ws_url, "TOT_REST": sim.rest_url, "TOT_KEY": TOT_KEY}
    return parse_config(text, "totalis.yaml", env)


# --- simulators -----------------------------------------------------------------------------------


class Simulator(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


SimT = TypeVar("SimT", bound=Simulator)


@asynccontextmanager
async def started(sim: SimT) -> AsyncIterator[SimT]:
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()
        # Everything a test started (monitor, sessions, lookups, servers) is gone with it.
        assert no_tasks_left() == set()


@pytest_asyncio.fixture
async def prophetx() -> AsyncIterator[ProphetXSimulator]:
    # No background health_check: the activation tests are about activations only.
    async with started(ProphetXSimulator(PX_ACCESS, PX_SECRET, account_id=PX_ACCOUNT, health_check_interval=None)) as s:
        yield s


@pytest_asyncio.fixture
async def prophetx_beating() -> AsyncIterator[ProphetXSimulator]:
    sim = ProphetXSimulator(PX_ACCESS, PX_SECRET, account_id=PX_ACCOUNT, health_check_interval=0.1)
    async with started(sim) as s:
        yield s


@pytest_asyncio.fixture
async def mobula() -> AsyncIterator[MobulaPerpEventsSimulator]:
    async with started(MobulaPerpEventsSimulator(MOB_KEY)) as s:
        yield s


@pytest_asyncio.fixture
async def phoenix() -> AsyncIterator[PhoenixSimulator]:
    async with started(PhoenixSimulator(markets=[PHX_SOL], authorities=[PHX_AUTHORITY])) as s:
        yield s


@pytest_asyncio.fixture
async def totalis() -> AsyncIterator[TotalisRfqSimulator]:
    async with started(TotalisRfqSimulator(TOT_KEY, mm_id=TOT_MM)) as s:
        yield s


def place(sim: ProphetXSimulator, outcome_id: int = 4) -> str:
    return sim.place_order(event_id=10078829, market_id=219, outcome_id=outcome_id, odds=-110, stake=220.0)


async def declare(monitor: Monitor, order_id: str) -> None:
    """The intake without HTTP: what the endpoint hands the engine."""
    await monitor.declare_order(OrderIntake(PX, order_id, desk=PX_DESK))


def lookups(sim: ProphetXSimulator, order_id: str) -> int:
    return sim.rest_calls.count(("GET", GET_ORDER + order_id))


async def post_order(port: int | None, order_id: str, *, token: str | None = TOKEN) -> httpx.Response:
    """What the trading system does when it places an order: declare it on the intake API."""
    assert port is not None
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=WAIT) as client:
        return await client.post(
            "/api/v1/orders", json={"venue": PX, "order_id": order_id, "desk": PX_DESK}, headers=headers
        )


# --- 1. activation watchdog (ProphetX) ----------------------------------------------------------------


async def test_lost_activation_message_reconnects_looks_the_order_up_and_warns_activated_late(
    prophetx: ProphetXSimulator, tmp_path: Path
) -> None:
    config = prophetx_config(prophetx, tmp_path / "state.db")
    async with running(config, http=True) as live:
        await live.feed_up(PX)
        first_sockets = set(prophetx.socket_ids())
        order_id = place(prophetx)

        refused = await post_order(live.monitor.http_port, order_id, token=None)
        assert refused.status_code == 401
        declared_at = time.time()
        accepted = await post_order(live.monitor.http_port, order_id)
        assert accepted.status_code == 202
        activation = live.monitor.engine.watchdogs.activation
        await live.until(lambda: len(activation) == 1)

        prophetx.drop_next_activation()
        await prophetx.activate(order_id)  # REST says open; the stream never does
        assert prophetx.order_info(order_id)["status"] == "open"

        alert = await live.alert("OrderActivationTimeout")
        stats = live.monitor.engine.stats[PX]
        await live.until(lambda: stats.reconnects == 1 and live.feed(PX) is FeedState.UP)
        new_sockets = set(prophetx.socket_ids()) - first_sockets

    assert (alert.severity, own(alert)) == (
        "warning",
        {"desk": PX_DESK, "venue": PX, "order_id": order_id, "outcome": "activated_late"},
    )
    assert "the REST lookup reports it open" in alert.annotations["description"]
    assert "missed_while_down" not in alert.annotations
    assert alert.ts - declared_at >= 0.3  # decided after the activation timeout, by the lookup's answer
    # The remedy happened: a REST get_order, and a new socket (a new Pusher socket id).
    assert lookups(prophetx, order_id) == 1
    assert new_sockets
    assert activation.outcomes[(PX, "activated_late")] == 1
    # The order arrived over HTTP and fired once; it is tracked as open now, not watched any more.
    assert len(activation) == 0
    assert [t.alertname for t in live.received.transitions] == ["OrderActivationTimeout"]


async def test_refusal_whose_message_was_lost_is_reported_invalid_with_the_venues_reason(
    prophetx: ProphetXSimulator, tmp_path: Path
) -> None:
    config = prophetx_config(prophetx, tmp_path / "state.db")
    async with running(config, http=True) as live:
        await live.feed_up(PX)
        order_id = place(prophetx, outcome_id=5)
        assert (await post_order(live.monitor.http_port, order_id)).status_code == 202
        # The simulator's fault API drops only activation messages; a refusal is lost by changing
        # the venue's state without publishing (its wager book is what REST get_order reads).
        prophetx._wagers.reject(order_id, "insufficient_balance")
        alert = await live.alert("OrderActivationTimeout")

    assert (alert.severity, alert.labels["outcome"], alert.labels["order_id"]) == ("warning", "invalid", order_id)
    assert alert.annotations["reason"] == "insufficient_balance"
    assert lookups(prophetx, order_id) == 1
    # The watchdog reported the refusal: the engine's own OrderActivationFailed is not raised twice.
    assert [t.alertname for t in live.received.transitions] == ["OrderActivationTimeout"]


# --- 2. health_check gap (ProphetX) ---------------------------------------------------------------


async def test_health_check_gap_fires_reconnects_and_resolves_when_health_checks_resume(
    prophetx_beating: ProphetXSimulator, tmp_path: Path
) -> None:
    sim = prophetx_beating
    config = prophetx_config(sim, tmp_path / "state.db", health_check_gap="400ms")
    async with running(config) as live:
        stats = live.monitor.engine.stats[PX]
        await live.until(lambda: live.feed(PX) is FeedState.UP and stats.heartbeats >= 2)
        first_sockets = set(sim.socket_ids())
        reconnects = stats.reconnects

        mark = live.mark()
        sim.stop_health_check()
        fired = await live.alert("VenueHealthCheckGap", since=mark)
        # The remedy: the session drops the socket and comes back on a new one.
        await live.until(lambda: stats.reconnects == reconnects + 1 and live.feed(PX) is FeedState.UP)
        new_sockets = set(sim.socket_ids()) - first_sockets
        # The simulator keeps health_check stopped across connections (a venue-wide switch), so the
        # reconnect alone does not end the gap: the alert is still firing on the new socket.
        assert live.received.named("VenueHealthCheckGap", "resolved", since=mark) == []
        heartbeats = stats.heartbeats

        sim.resume_health_check()
        resolved = await live.alert("VenueHealthCheckGap", "resolved", since=mark)

    assert (fired.severity, own(fired)) == ("warning", {"venue": PX})
    assert "no health_check for 0.4s" in fired.annotations["summary"]
    assert new_sockets
    assert stats.heartbeats > heartbeats
    assert own(resolved) == own(fired)
    assert live.monitor.engine.watchdogs.health_check.gaps_detected[PX] >= 1


# --- 3. silent socket / unreachable venue -----------------------------------------------------------


async def test_unanswered_pings_drop_the_socket_and_feed_down_fires_then_resolves_on_reconnect(
    mobula: MobulaPerpEventsSimulator, tmp_path: Path
) -> None:
    # The reconnect backoff (0.5-1 s) is longer than the 300 ms grace, so the feed stays down long
    # enough for FeedDown to fire before the session is back.
    config = mobula_config(mobula.url, tmp_path / "state.db", reconnect="{initial: 1s, max: 1s}")
    async with running(config) as live:
        await live.feed_up(MOB)
        await mobula.wait_for_pings(1, timeout=WAIT)

        mark = live.mark()
        mobula.set_answer_pings(False)
        fired = await live.alert("FeedDown", since=mark)
        mobula.set_answer_pings(True)
        resolved = await live.alert("FeedDown", "resolved", since=mark)
        stats = live.monitor.engine.stats[MOB]
        await mobula.wait_for_subscribed(1, timeout=WAIT)

    assert (fired.severity, own(fired)) == ("warning", {"venue": MOB})
    assert "last reason: no pong within 0.1s" in fired.annotations["description"]
    assert "No desk holds exposure on it." in fired.annotations["description"]
    assert own(resolved) == own(fired)
    assert stats.reconnects == 1
    assert len(mobula.subscriptions) == 2  # the subscribe of each connection


async def test_venue_that_never_connects_raises_feed_down_after_the_grace_from_start(tmp_path: Path) -> None:
    config = mobula_config(f"ws://127.0.0.1:{closed_port()}/", tmp_path / "state.db", reconnect=FAST_BACKOFF)
    started_at = time.time()
    async with running(config) as live:
        fired = await live.alert("FeedDown")
        stats = live.monitor.engine.stats[MOB]
    assert no_tasks_left() == set()

    assert (fired.severity, own(fired)) == ("warning", {"venue": MOB})
    # Stamped with its due time: the grace after start, not after some later failed retry.
    assert 0.3 <= fired.ts - started_at < 0.3 + 0.5
    assert "last reason: cannot connect (ConnectionRefusedError)" in fired.annotations["description"]
    assert stats.reconnects == 0  # it was never up
    assert live.received.named("FeedDown", "resolved") == []


async def test_hung_phoenix_server_raises_feed_down(phoenix: PhoenixSimulator, tmp_path: Path) -> None:
    pings = "ping_interval: 100ms\n    ping_timeout: 100ms"
    config = phoenix_config(phoenix, tmp_path / "state.db", pings=pings)
    async with running(config) as live:
        await phoenix.wait_for_subscriptions(3, timeout=WAIT)
        await live.feed_up(PHX)
        # The server stops reading every socket, new ones included: no pong, no subscription answered.
        mark = live.mark()
        phoenix.set_answer_pings(False)
        try:
            # Fixed, FeedDown fires ~0.5 s from here (the 200 ms ping cycle, then the 300 ms grace).
            fired = await live.alert("FeedDown", since=mark, timeout=2.0)
        finally:
            phoenix.set_answer_pings(True)
        await live.alert("FeedDown", "resolved", since=mark)
    assert (fired.severity, own(fired)) == ("warning", {"venue": PHX})


# --- 4. sequence gap (Phoenix) -------------------------------------------------------------------


def record_feed_states(monitor: Monitor, venue: str) -> list[FeedState]:
    """The feed's state after every engine step that changed it."""
    seen: list[FeedState] = []
    ingest = monitor.engine.ingest

    def recording(*args: Any, **kwargs: Any) -> list[AlertTransition]:
        out = ingest(*args, **kwargs)
        state = monitor.engine.watchdogs.feeds.state(venue)
        if not seen or seen[-1] is not state:
            seen.append(state)
        return out

    monitor.engine.ingest = recording  # type: ignore[method-assign]
    return seen


@pytest.mark.parametrize("stream", ["traderState:0", "exchange"])
async def test_sequence_gap_alerts_resubscribes_and_resyncs(
    phoenix: PhoenixSimulator, tmp_path: Path, stream: str
) -> None:
    config = phoenix_config(phoenix, tmp_path / "state.db")
    async with running(config) as live:
        states = record_feed_states(live.monitor, PHX)
        stats = live.monitor.engine.stats[PHX]
        await phoenix.wait_for_subscriptions(3, timeout=WAIT)  # traderState, exchange, allMids
        await live.until(lambda: live.feed(PHX) is FeedState.UP and stats.position_reports >= 1)
        subscribed = len(phoenix.subscriptions)

        if stream == "exchange":
            await phoenix.skip_exchange_sequence(3)
            await phoenix.set_market_status("SOL", "active")
        else:
            await phoenix.skip_trader_sequence(PHX_AUTHORITY, 3)
            await phoenix.set_position(PHX_AUTHORITY, "SOL", 500, 15_000)
        gap = await live.alert("SequenceGap")
        resync = live.monitor.engine.watchdogs.feeds.resync_seconds[PHX]
        await live.until(lambda: resync.count == 1)
        await phoenix.wait_for_subscriptions(subscribed + 1, timeout=WAIT)

    assert (gap.severity, own(gap)) == ("warning", {"venue": PHX, "stream": stream})
    assert gap.value == 2.0  # two updates skipped
    channel = "traderState" if stream != "exchange" else "exchange"
    assert [s["subscription"]["channel"] for s in phoenix.subscriptions[subscribed:]] == [channel]
    assert states[-3:] == [FeedState.UP, FeedState.RESYNCING, FeedState.UP]
    assert resync.count == 1
    assert stats.sequence_gaps == 1
    assert stats.reconnects == 0
    if stream != "exchange":
        # The fresh snapshot carries the update the gapped delta held.
        rows = [(row.key.market, row.position) for row in live.monitor.engine.book.rows()]
        assert rows == [("SOL", Decimal(5))]


# --- 5. Totalis: REST reconciliation and the RFQ confirmation deadline ----------------------------------


async def test_reconciliation_failing_raises_and_the_next_success_resolves(
    totalis: TotalisRfqSimulator, tmp_path: Path
) -> None:
    config = totalis_config(totalis, tmp_path / "state.db")
    async with running(config) as live:
        await live.feed_up(TOT)
        drift = live.monitor.engine.watchdogs.drift

        totalis.fail_rest(503)
        await live.monitor.reconciler.reconcile(TOT, "test")
        fired = await live.alert("ReconciliationFailed")
        totalis.heal_rest()
        await live.monitor.reconciler.reconcile(TOT, "test")
        resolved = await live.alert("ReconciliationFailed", "resolved")

    assert (fired.severity, own(fired)) == ("warning", {"venue": TOT})
    assert "GET /mm/quotes: HTTP 503" in fired.annotations["description"]
    assert own(resolved) == own(fired)
    assert (drift.runs[TOT], drift.failures[TOT]) == (2, 1)
    assert [(c.method, c.path, c.status) for c in totalis.rest_calls][-2:] == [
        ("GET", "/mm/quotes", 503),
        ("GET", "/mm/quotes", 200),
    ]


async def test_reconciliation_reads_open_orders_and_books_and_names_the_book_the_stream_missed(
    prophetx: ProphetXSimulator, tmp_path: Path
) -> None:
    event = 10078829
    subscribed = f'subscriptions: [{{type: event, ids: ["{event}"]}}]'
    config = prophetx_config(prophetx, tmp_path / "state.db", extra=subscribed)
    config = msgspec.structs.replace(config, watchdogs=WatchdogsConfig(drift_grace=Duration(0.1)))
    book = [
        [selection_level(outcome_id=4, odds=110, stake=110.0)],
        [selection_level(outcome_id=5, odds=-130, stake=200.0)],
    ]
    async with running(config) as live:
        await live.feed_up(PX)
        engine = live.monitor.engine
        order_id = place(prophetx)
        await prophetx.activate(order_id)
        await prophetx.push_market_selections(event, 219, book, sequence_number=7)
        await live.until(lambda: (PX, f"{event}/219") in engine.markets.books and engine.orders.get(PX, order_id))

        # A clean run first: REST agrees with the stream.
        await live.monitor.reconciler.reconcile(PX, "test")
        await live.until(lambda: engine.watchdogs.drift.runs[PX] == 1)
        # Then the venue's book moves and the stream never says so.
        prophetx.set_rest_book_only(event, 219, [[selection_level(outcome_id=4, odds=125, stake=80.0)], []])
        await live.monitor.reconciler.reconcile(PX, "test")
        drift = await live.alert("StreamDrift")

    # Each run read the open order and the held event's books over REST.
    assert lookups(prophetx, order_id) == 2
    assert sum(1 for _method, path in prophetx.rest_calls if "get_multiple_markets" in path) == 2
    assert (drift.severity, own(drift)) == ("warning", {"venue": PX})
    assert f"book {event}/219: the stream is at sequence 7" in drift.annotations["description"]
    assert engine.watchdogs.drift.drifts[PX] == 1


async def test_the_scheduler_reconciles_every_interval_and_a_clean_run_raises_nothing(
    totalis: TotalisRfqSimulator, tmp_path: Path
) -> None:
    config = totalis_config(totalis, tmp_path / "state.db", "reconcile_interval: 200ms")
    async with running(config) as live:
        await live.feed_up(TOT)
        drift = live.monitor.engine.watchdogs.drift
        await live.until(lambda: drift.runs[TOT] >= 2)
        scheduled_reads = [c for c in totalis.rest_calls if (c.method, c.path) == ("GET", "/mm/quotes")]

    # One read after connecting, then one per scheduled run; none of them found a difference.
    assert len(scheduled_reads) >= 3
    assert (drift.failures[TOT], drift.drifts[TOT]) == (0, 0)
    assert live.received.named("StreamDrift") == []
    assert live.received.named("ReconciliationFailed") == []


async def test_missed_rfq_confirmation_is_critical_reconciles_and_resolves_when_the_venue_expires_it(
    totalis: TotalisRfqSimulator, tmp_path: Path
) -> None:
    config = totalis_config(totalis, tmp_path / "state.db")
    async with running(config) as live:
        await live.feed_up(TOT)
        rfq = live.monitor.engine.watchdogs.rfq
        reads_before = sum(1 for c in totalis.rest_calls if c.path == "/mm/quotes")
        deadline = time.time() + 0.5
        await totalis.accept_quote(
            quote_id="q-1",
            rfq_id="rfq-1",
            user_cost=25,
            payout_odds=4.25,
            legs=LEGS,
            confirmation_deadline=deadline,
            # The economics first: a quote:accepted without them would trigger a pricing read of its own.
            order="mm_first",
        )
        await live.until(lambda: rfq.pending(TOT) == 1)
        pending = [row.pending_usd for row in live.monitor.engine.book.risk_rows()]

        missed = await live.alert("RfqConfirmationMissed")
        # The remedy: a REST read of the venue's quotes, right away.
        await live.until(lambda: live.monitor.engine.watchdogs.drift.runs[TOT] == 1)
        reads_after = sum(1 for c in totalis.rest_calls if c.path == "/mm/quotes")
        still_pending = [row.pending_usd for row in live.monitor.engine.book.risk_rows()]

        await totalis.expire("q-1")
        resolved = await live.alert("RfqConfirmationMissed", "resolved")
        released = [row.pending_usd for row in live.monitor.engine.book.risk_rows()]

    assert (missed.severity, own(missed)) == (
        "critical",
        {"desk": TOT_DESK, "venue": TOT, "quote_id": "q-1", "rfq_id": "rfq-1"},
    )
    # Stamped with the deadline itself (the frames carry it to the millisecond).
    assert missed.ts >= deadline - 0.001
    assert reads_after == reads_before + 1
    assert rfq.missed[TOT] == 1
    assert own(resolved) == own(missed)
    # Resolved as it fired, and why: released by the venue, not confirmed late.
    assert resolved.annotations == {
        **missed.annotations,
        "resolution": "the venue released it (expired); its pending exposure is released",
    }
    # Pending exposure stays reserved after the miss, and is released only by the venue's word.
    assert pending == still_pending
    assert sum(pending) > 0
    assert sum(released) == 0


# --- 6. restart past a deadline ----------------------------------------------------------------------


async def test_deadline_that_passed_while_down_fires_at_once_after_restart(
    prophetx: ProphetXSimulator, tmp_path: Path
) -> None:
    state = tmp_path / "state.db"
    config = prophetx_config(prophetx, state, activation_timeout="1s")
    clock = ShiftedClock()
    order_id = place(prophetx)

    async with running(config, clock=clock) as first:
        await first.feed_up(PX)
        await declare(first.monitor, order_id)
        activation = first.monitor.engine.watchdogs.activation
        await first.until(lambda: len(activation) == 1)
    assert first.received.transitions == []
    persisted = DeadlineStore(state)
    try:
        records = persisted.load()
    finally:
        persisted.close()
    assert [(r.kind, r.venue, r.subject) for r in records] == [("activation", PX, order_id)]

    await prophetx.activate(order_id)  # while riskmon is down: nobody hears it
    clock.offset += 5.0  # ... and five seconds pass, four past the deadline

    restarted_at = clock.now()
    async with running(config, clock=clock) as second:
        alert = await second.alert("OrderActivationTimeout")
        await second.feed_up(PX)

    assert (alert.severity, alert.labels["outcome"], alert.labels["order_id"]) == (
        "warning",
        "activated_late",
        order_id,
    )
    assert alert.annotations["missed_while_down"] == "true"
    assert "passed while riskmon was down" in alert.annotations["description"]
    assert alert.ts - restarted_at < 1.0  # at once, not a timeout later
    assert lookups(prophetx, order_id) == 1
    persisted = DeadlineStore(state)
    try:
        assert persisted.load() == []  # decided: nothing left to re-arm
    finally:
        persisted.close()


async def test_an_intake_is_answered_only_once_its_watch_is_in_the_state_file(
    prophetx: ProphetXSimulator, tmp_path: Path
) -> None:
    state = tmp_path / "state.db"
    order_id = place(prophetx)
    async with running(prophetx_config(prophetx, state, activation_timeout="30s"), http=True) as live:
        await live.feed_up(PX)
        accepted = await post_order(live.monitor.http_port, order_id)
        assert accepted.status_code == 202
        # Read while riskmon runs on: a SIGKILL right after the 202 would find the watch here.
        persisted = DeadlineStore(state)
        try:
            records = persisted.load()
        finally:
            persisted.close()
        assert [(r.kind, r.venue, r.subject) for r in records] == [("activation", PX, order_id)]


# --- 7. capture and replay ------------------------------------------------------------------------------


async def test_capture_of_lookup_failure_and_late_activation_replays_to_the_same_alerts(
    prophetx: ProphetXSimulator, tmp_path: Path
) -> None:
    config = prophetx_config(prophetx, tmp_path / "state.db")
    capture = tmp_path / "live.jsonl"
    async with running(config, record=capture) as live:
        await live.feed_up(PX)
        activation = live.monitor.engine.watchdogs.activation

        # Order A: never activated in time, and REST get_order is down when the watchdog asks.
        order_a = place(prophetx, outcome_id=4)
        prophetx.fail_rest(503, paths=GET_ORDER)
        await declare(live.monitor, order_a)
        failed = await live.alert("OrderActivationTimeout")
        prophetx.heal_rest()

        # Order B: its activation message is lost; the lookup works now.
        order_b = place(prophetx, outcome_id=5)
        await declare(live.monitor, order_b)
        await live.until(lambda: len(activation) == 1)
        prophetx.drop_next_activation()
        await prophetx.activate(order_b)
        late_b = await live.alert("OrderActivationTimeout", n=2)

        # Order A activates at last, on the stream: the critical outcome resolves, a warning says why.
        await prophetx.activate(order_a)
        await live.alert("OrderActivationTimeout", "resolved")
        await live.alert("OrderActivationTimeout", n=3)

    assert (failed.severity, failed.labels["outcome"], failed.labels["order_id"]) == (
        "critical",
        "lookup_failed",
        order_a,
    )
    assert "the REST lookup failed: GET /mm/get_order/" in failed.annotations["description"]
    assert "HTTP 503" in failed.annotations["description"]
    assert (late_b.severity, late_b.labels["outcome"], late_b.labels["order_id"]) == (
        "warning",
        "activated_late",
        order_b,
    )
    live_timeline = live.received.timeline()
    assert [
        (name, severity, status, labels["order_id"], labels["outcome"])
        for name, severity, status, labels in live_timeline
    ] == [
        ("OrderActivationTimeout", "critical", "firing", order_a, "lookup_failed"),
        ("OrderActivationTimeout", "warning", "firing", order_b, "activated_late"),
        ("OrderActivationTimeout", "critical", "resolved", order_a, "lookup_failed"),
        ("OrderActivationTimeout", "warning", "firing", order_a, "activated_late"),
    ]

    records = [json.loads(line) for line in capture.read_text().splitlines() if line]
    intakes = [r["intake"]["order_id"] for r in records if "intake" in r]
    reported = [event["type"] for r in records if "report" in r for event in r["report"]]
    rest = [(r["rest"], r["frame"]) for r in records if "rest" in r]
    assert intakes == [order_a, order_b]
    assert "FeedDown" in reported
    assert "FeedUp" in reported
    assert reported.count("OrderLookupFailed") == 1
    assert [source for source, _ in rest if source == "get_order"] == ["get_order"]
    assert any(order_b in body for source, body in rest if source == "get_order")

    replayed = replay(capture, config, run_on=5)
    assert [(t.alertname, t.severity, t.status, t.labels) for t in replayed.transitions] == live_timeline
