"""The ProphetX session's reconciliation reads against the real loopback simulator: fetch_books
(get_multiple_markets, compared with the stream's books, §3.5 "every 15 min") and fetch_order
(the activation watchdog's get_order, §3.5 "no activation within 10 s").

One simulator serves the module; each test uses its own event ids, since the simulator keeps
every book it was given. Backoff is a recording fake, the chores' sleeps park for ever (no chore
runs), the session clock is virtual. Teardown checks that no credential reached an event, a
captured REST body's events or a log record.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio

from riskmon.clock import VirtualClock
from riskmon.config.schema import Backoff, ProphetXSubscription, ProphetXVenue
from riskmon.config.types import Duration, Secret
from riskmon.events import (
    BookLevel,
    BookSide,
    BookSnapshot,
    FeedUp,
    Heartbeat,
    OrderStatus,
    OrderUpdate,
)
from riskmon.venues.base import Inbound
from riskmon.venues.prophetx.session import MARKETS_PER_CALL, ProphetXSession
from riskmon.venues.prophetx.simulator import ProphetXSimulator, selection_level
from riskmon.venues.session_failures import VenueUnavailable
from tests.venues.prophetx.helpers import (
    ACCESS_KEY,
    ACCOUNT,
    DESK,
    SECRET_KEY,
    SIM_NOW,
    VENUE,
    desk_session,
    leaks,
    sockets_gone,
)
from tests.venues.session_harness import TIMEOUT, SessionHarness, session_pool

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

START = 1_784_813_285.0
SEED = 20240611
STREAMED_EVENT = 10078829  # the one event the session's channels carry
MARKETS_PATH = "/partner/mm/get_multiple_markets"


async def park(delay: float) -> None:
    """The chores' sleep: token refresh, config check and pings never come round in these tests."""
    await asyncio.get_running_loop().create_future()


class RestReadsHarness(SessionHarness):
    session: ProphetXSession  # set once started: the reads under test are called on it

    async def up(self, sim: ProphetXSimulator) -> None:
        """Skip the handshake's items until the feed is up (test_session.py checks them)."""
        await self.until(
            lambda items: bool(items) and items[-1].frame is None and items[-1].events == [FeedUp(VENUE, sim.ws_host)]
        )

    async def marker(self, sim: ProphetXSimulator) -> None:
        """A health_check sent now arrives next: nothing else came over the stream before it."""
        assert await sim.emit_health_check() == 1
        (socket_id,) = sim.socket_ids()
        assert await self.frame_events() == [Heartbeat(VENUE, socket_id, SIM_NOW)]

    def rest_items(self) -> list[Inbound]:
        return [item for item in self.seen if item.rest is not None and item.rest != "register"]


def venue_config(rest_url: str) -> ProphetXVenue:
    return ProphetXVenue(
        rest_url=rest_url,
        access_key=Secret(ACCESS_KEY),
        secret_key=Secret(SECRET_KEY),
        subscriptions=[ProphetXSubscription(type="event", ids=[str(STREAMED_EVENT)])],
        reconnect=Backoff(initial=Duration(1.0), max=Duration(8.0)),
        open_timeout=Duration(TIMEOUT),
        rest_timeout=Duration(TIMEOUT),
    )


@pytest_asyncio.fixture(loop_scope="module")
async def harness(sim: ProphetXSimulator, caplog: pytest.LogCaptureFixture) -> AsyncIterator[RestReadsHarness]:
    """A running session, up (signed in, every channel subscribed)."""
    caplog.set_level(logging.DEBUG)
    h = RestReadsHarness(VirtualClock(START))
    h.session = desk_session(h, venue_config(sim.rest_url), seed=SEED, heartbeat_sleep=park)
    async with session_pool() as pool:
        pool.start(h, h.session, "prophetx-session")
        await h.up(sim)
        yield h
    await sockets_gone(sim)
    assert h.sleep.delays == []  # never reconnected: the reads leave the stream alone
    for event in h.events():
        assert leaks(repr(event)) == [], event
    logged = [f"{r.name}: {r.getMessage()}" for r in caplog.records]
    assert [line for line in logged if leaks(line)] == []


def book(event_id: int, market_id: int, sides: list[tuple[str, list[tuple[int, str]]]], sequence: int) -> BookSnapshot:
    """The BookSnapshot a book of these (outcome, [(odds, stake)]) sides must decode to."""
    return BookSnapshot(
        VENUE,
        f"{event_id}/{market_id}",
        tuple(BookSide(o, tuple(BookLevel(Decimal(p), Decimal(s)) for p, s in levels)) for o, levels in sides),
        sequence,
    )


def levels(outcome: int, *quotes: tuple[int, float]) -> list[dict[str, Any]]:
    return [selection_level(outcome_id=outcome, odds=odds, stake=stake) for odds, stake in quotes]


# ---- fetch_books --------------------------------------------------------------------------------


async def test_rest_books_equal_the_streamed_books_until_only_rest_changes(
    sim: ProphetXSimulator, harness: RestReadsHarness
) -> None:
    h = harness
    spread = [levels(4, (110, 110.0), (120, 55.5)), levels(5, (-130, 200.0))]
    moneyline = [levels(8, (-10000, 0.01)), levels(9, (10000, 100000000.0))]
    assert await sim.push_market_selections(STREAMED_EVENT, 219, spread, sequence_number=1234567890) == 1
    assert await sim.push_market_selections(STREAMED_EVENT, 220, moneyline, sequence_number=77) == 1
    spread_book = book(STREAMED_EVENT, 219, [("4", [(110, "110"), (120, "55.5")]), ("5", [(-130, "200")])], 1234567890)
    moneyline_book = book(STREAMED_EVENT, 220, [("8", [(-10000, "0.01")]), ("9", [(10000, "100000000")])], 77)
    assert await h.frame_events() == [spread_book]
    assert await h.frame_events() == [moneyline_book]

    calls = len(sim.rest_calls)
    assert await h.session.fetch_books([str(STREAMED_EVENT)]) == [spread_book, moneyline_book]
    assert sim.rest_calls[calls:] == [("GET", MARKETS_PATH)]
    item = await h.next()  # handed on like a frame, under its REST name, so a capture replays it
    assert (item.rest, item.received_at, item.events) == ("markets", START, [spread_book, moneyline_book])
    assert isinstance(item.frame, str)
    assert list(json.loads(item.frame)["data"]) == [str(STREAMED_EVENT)]

    # Drift: the venue's REST book moves and the stream never says so.
    drifted = [levels(4, (125, 80.0)), []]
    sim.set_rest_book_only(STREAMED_EVENT, 219, drifted)
    await h.marker(sim)  # nothing came over the stream
    rest_books = await h.session.fetch_books([str(STREAMED_EVENT)])
    drifted_book = book(STREAMED_EVENT, 219, [("4", [(125, "80")]), ("", [])], 1234567891)
    assert rest_books == [drifted_book, moneyline_book]
    assert rest_books[0] != spread_book  # what the reconciliation is there to see
    assert (await h.next()).events == rest_books

    # The next streamed book brings both sides together again.
    assert await sim.push_market_selections(STREAMED_EVENT, 219, drifted, sequence_number=1234567892) == 1
    (streamed,) = await h.frame_events()
    assert await h.session.fetch_books([str(STREAMED_EVENT)]) == [streamed, moneyline_book]


async def test_fetch_books_asks_for_at_most_twenty_events_a_call(
    sim: ProphetXSimulator, harness: RestReadsHarness
) -> None:
    h = harness
    assert MARKETS_PER_CALL == 20
    events = [str(900_000 + n) for n in range(45)]
    for n in (0, 19, 20, 44):  # the first and last event of the chunks
        sim.set_rest_book_only(int(events[n]), 1, [levels(2, (100 + n, 10.0 + n))], sequence_number=n)
    calls = len(sim.rest_calls)
    fetched = await h.session.fetch_books([*events, events[3], events[20]])  # repeats asked once
    assert fetched == [book(int(events[n]), 1, [("2", [(100 + n, f"{10 + n}.0")])], n) for n in (0, 19, 20, 44)]
    assert sim.rest_calls[calls:] == [("GET", MARKETS_PATH)] * 3
    bodies = [json.loads(item.frame) for item in h.rest_items() if isinstance(item.frame, str)]
    assert [list(body["data"]) for body in bodies] == [events[:20], events[20:40], events[40:]]
    assert [item.rest for item in h.rest_items()] == ["markets"] * 3
    assert [len(item.events) for item in h.rest_items()] == [2, 1, 1]

    calls = len(sim.rest_calls)
    assert await h.session.fetch_books([]) == []
    assert sim.rest_calls[calls:] == []


async def test_fetch_books_failures_raise_venue_unavailable(sim: ProphetXSimulator, harness: RestReadsHarness) -> None:
    h = harness
    sim.fail_rest(503, times=1, paths=MARKETS_PATH)
    with pytest.raises(VenueUnavailable) as failed:
        await h.session.fetch_books([str(STREAMED_EVENT)])
    assert (str(failed.value), failed.value.status) == ("GET /mm/get_multiple_markets: HTTP 503", 503)
    with pytest.raises(VenueUnavailable) as refused:
        await h.session.fetch_books(["not-an-event"])  # the simulator's 400 malformed_id
    assert (str(refused.value), refused.value.status) == ("GET /mm/get_multiple_markets: HTTP 400", 400)
    assert h.rest_items() == []  # nothing handed on
    await h.marker(sim)


# ---- fetch_order --------------------------------------------------------------------------------


def order_update(sim: ProphetXSimulator, order_id: str, status: OrderStatus) -> OrderUpdate:
    info = sim.order_info(order_id)
    return OrderUpdate(
        venue=VENUE,
        desk=DESK,
        account=ACCOUNT,
        order_id=order_id,
        market=f"{info['sport_event_id']}/{info['market_id']}/{info['outcome_id']}",
        status=status,
        venue_status=info["status"],
        sequence=info["sequence_number"],
        venue_ts=0.0,  # get_order carries no venue timestamp
        reason=None,
        external_id=info["external_id"],
        price=Decimal(info["odds"]),
        quantity=Decimal(str(info["stake"])),
        filled_quantity=Decimal(0),
        fill_price=Decimal(0),
        worst_case_loss_usd=Decimal(0),
    )


async def test_the_watchdog_sees_a_lost_activation_under_its_own_read_name(
    sim: ProphetXSimulator, harness: RestReadsHarness
) -> None:
    h = harness
    order = sim.place_order(event_id=STREAMED_EVENT, market_id=219, outcome_id=4, odds=-120, stake=60.0)
    sim.drop_next_activation()
    await sim.activate(order)
    await h.marker(sim)  # the activation never came over the stream

    calls = len(sim.rest_calls)
    expected = order_update(sim, order, OrderStatus.OPEN)
    assert (expected.venue_status, expected.sequence) == ("open", 2)
    assert await h.session.fetch_order(order, source="reconcile_order") == [expected]
    assert await h.session.fetch_order(order) == [expected]
    assert sim.rest_calls[calls:] == [("GET", f"/partner/mm/get_order/{order}")] * 2
    reconciled, plain = h.rest_items()
    assert (reconciled.rest, plain.rest) == ("reconcile_order", "get_order")
    assert reconciled.frame == plain.frame
    assert isinstance(reconciled.frame, str)
    assert json.loads(reconciled.frame) == {"data": sim.order_info(order)}


async def test_fetch_order_of_an_unknown_order_is_a_404(sim: ProphetXSimulator, harness: RestReadsHarness) -> None:
    h = harness
    with pytest.raises(VenueUnavailable) as unknown:
        await h.session.fetch_order("999999", source="reconcile_order")
    assert (str(unknown.value), unknown.value.status) == ("GET /mm/get_order/999999: HTTP 404", 404)
    with pytest.raises(VenueUnavailable) as odd:
        await h.session.fetch_order("a/b?c")  # quoted into one path segment: still just unknown
    assert (str(odd.value), odd.value.status) == ("GET /mm/get_order/a%2Fb%3Fc: HTTP 404", 404)
    assert h.rest_items() == []


@pytest.mark.parametrize("status", [503, 429, 401])
async def test_fetch_order_with_rest_failing_raises_without_a_secret(
    sim: ProphetXSimulator, harness: RestReadsHarness, status: int
) -> None:
    h = harness
    order = sim.place_order(
        event_id=STREAMED_EVENT, market_id=219, outcome_id=5, odds=150, stake=5.0, external_id=f"fail-{status}"
    )
    sim.fail_rest(status)  # every path: a 401 also refuses the refresh and the login that follow
    with pytest.raises(VenueUnavailable) as failed:
        await h.session.fetch_order(order)
    message = str(failed.value)
    assert failed.value.status == status
    assert message == ("POST /auth/login: HTTP 401" if status == 401 else f"GET /mm/get_order/{order}: HTTP {status}")
    chain: list[BaseException] = []
    link: BaseException | None = failed.value
    while link is not None:  # what a traceback of it would print, context included
        chain.append(link)
        link = link.__cause__ or link.__context__
    assert all(isinstance(link, VenueUnavailable) for link in chain)
    assert [leaks(repr(link.args)) for link in chain] == [[]] * len(chain)
    sim.heal_rest()
    assert await h.session.fetch_order(order) == [order_update(sim, order, OrderStatus.PENDING)]
