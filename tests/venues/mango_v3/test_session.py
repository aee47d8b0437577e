"""Integration tests for the Mango v3 fills session against the real loopback simulator.

Backoff sleeps are injected (`FakeSleep`), so reconnects never wait in real time, and the
jitter comes from a seeded `random.Random`, so the delays are exact and reproducible.
Also unit tests for `ReconnectBackoff` and `redact_endpoint`.
"""

from __future__ import annotations

import logging
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import base58
import pytest
import pytest_asyncio
from websockets.asyncio.server import ServerConnection, serve

from riskmon.clock import VirtualClock
from riskmon.config.schema import Backoff, MangoV3FillsVenue
from riskmon.config.types import Duration
from riskmon.events import (
    FeedDown,
    FeedUp,
    FillReceived,
    FillRevoked,
    FillSnapshot,
    FrameMalformed,
    Liquidity,
    MarkPrice,
    Side,
)
from riskmon.venues.backoff import ReconnectBackoff
from riskmon.venues.base import redact_endpoint
from riskmon.venues.mango_v3.codec import MangoV3FillsCodec
from riskmon.venues.mango_v3.session import MangoV3FillsSession
from riskmon.venues.mango_v3.simulator import MangoV3FillsSimulator, SimFill, SimMarket
from tests.venues.session_harness import (
    TIMEOUT,
    SessionHarness,
    reference_delays,
    refusing_http_server,
    session_pool,
    started,
)

VENUE = "mango"
START = 1_700_000_000.0
SEED = 20240601
SOL = SimMarket("SOL-PERP", "31cKs646dt1YkA3zPyxZ7rUAkxTBz279w4XEobFXcAKP")
BTC = SimMarket("BTC-PERP", "7t5Me8RieYKsFpfLEV8jnpqcqswNpyWD95ZqgUXuLV8Z")
ACCOUNT_A = "DMjLV5AdbdnAxEE9CCJYdzGhEDVAaKPJDRTZQ7kgMZwm"
ACCOUNT_B = "FSDQFx8F1a29b2CNMXGf3HxyLxxrPg1VY2o477kBvSuu"
DESKS = {ACCOUNT_A: "sol-desk", ACCOUNT_B: "mm-desk"}


def stranger(n: int) -> str:
    """A MangoAccount no desk owns."""
    return base58.b58encode(bytes([n]) * 32).decode("ascii")


def fill(maker: str, taker: str, *, side: str = "bid", price: int = 9047, qty: int = 198, ts: int = 1) -> SimFill:
    return SimFill(
        maker=maker,
        taker=taker,
        taker_side="bid" if side == "bid" else "ask",
        price_lots=price,
        quantity_lots=qty,
        timestamp=1_700_000_000 + ts,
    )


def closed_port() -> int:
    """A loopback port nothing listens on: bound once to pick it, then closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def checkpoints(h: SessionHarness, sim: MangoV3FillsSimulator) -> dict[str, FillSnapshot]:
    """The checkpoint frames the simulator sends on connect, each decoded into one FillSnapshot."""
    snapshots: dict[str, FillSnapshot] = {}
    for frame in sim.checkpoint_frames():
        item = await h.next()
        assert item.frame == frame
        assert item.venue == VENUE
        snapshot = item.events[-1]
        assert isinstance(snapshot, FillSnapshot), item.events
        snapshots[snapshot.market] = snapshot
    return snapshots


SessionFactory = Callable[..., Awaitable[SessionHarness]]


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[MangoV3FillsSimulator]:
    async with started(MangoV3FillsSimulator([SOL, BTC])) as server:
        yield server


@pytest_asyncio.fixture
async def start_session() -> AsyncIterator[SessionFactory]:
    async with session_pool() as pool:

        async def start(
            urls: list[str],
            *,
            initial: float = 1.0,
            maximum: float = 8.0,
            max_frame_bytes: int = 1 << 20,
        ) -> SessionHarness:
            config = MangoV3FillsVenue(
                urls=urls,
                reconnect=Backoff(initial=Duration(initial), max=Duration(maximum)),
                max_frame_bytes=max_frame_bytes,
                open_timeout=Duration(TIMEOUT),
            )
            h = SessionHarness(VirtualClock(START))
            codec = MangoV3FillsCodec(VENUE, DESKS)
            session = MangoV3FillsSession(VENUE, config, codec, h.sink, h.clock, rng=random.Random(SEED), sleep=h.sleep)
            return pool.start(h, session, "mango-session")

        yield start


# ---- connect and decode -----------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.asyncio
async def test_connect_reports_feed_up_then_checkpoints_as_snapshots(
    sim: MangoV3FillsSimulator, start_session: SessionFactory
) -> None:
    ours_sol = await sim.push_fill("SOL-PERP", fill(ACCOUNT_A, stranger(1), side="bid", price=9047, qty=198))
    await sim.push_fill("SOL-PERP", fill(stranger(2), stranger(3), price=9050, ts=2))
    await sim.push_fill("BTC-PERP", fill(stranger(4), ACCOUNT_B, side="ask", price=300_000, qty=5, ts=3))
    assert ours_sol

    h = await start_session([sim.url])
    first = await h.next()
    assert (first.venue, first.frame, first.received_at) == (VENUE, None, START)
    assert first.events == [FeedUp(VENUE, sim.url)]

    sol_item = await h.next()
    assert sol_item.frame == sim.checkpoint_frames()[0]
    assert sol_item.received_at == START
    mark, sol = sol_item.events
    # The newest fill in the window sets the mark, ours or not: 9050 lots of $0.01.
    assert mark == MarkPrice(VENUE, "SOL-PERP", Decimal("90.50"), 1_700_000_002.0)
    assert isinstance(sol, FillSnapshot)
    assert (sol.venue, sol.stream, sol.market, sol.window_start) == (VENUE, SOL.queue, "SOL-PERP", 0)
    (maker_fill,) = sol.fills  # the stranger-only fill is not ours
    assert (maker_fill.desk, maker_fill.account, maker_fill.liquidity) == ("sol-desk", ACCOUNT_A, Liquidity.MAKER)
    # The taker bought (bid), so our maker sold.
    assert (maker_fill.side, maker_fill.quantity, maker_fill.price) == (Side.SELL, Decimal("1.98"), Decimal("90.47"))
    assert (maker_fill.stream, maker_fill.sequence, maker_fill.venue_ts) == (SOL.queue, 0, 1_700_000_001.0)
    assert round(maker_fill.fee_rate, 8) == Decimal("-0.0003")

    btc_item = await h.next()
    assert btc_item.frame == sim.checkpoint_frames()[1]
    btc = btc_item.events[-1]
    assert isinstance(btc, FillSnapshot)
    assert (btc.market, btc.stream, btc.window_start) == ("BTC-PERP", BTC.queue, 0)
    (taker_fill,) = btc.fills
    assert (taker_fill.desk, taker_fill.liquidity, taker_fill.side) == ("mm-desk", Liquidity.TAKER, Side.SELL)
    assert (taker_fill.quantity, taker_fill.price) == (Decimal("0.0005"), Decimal("30000"))
    assert h.sleep.delays == []  # a healthy connect never backs off


@pytest.mark.integration
@pytest.mark.asyncio
async def test_new_fills_for_desk_accounts_arrive_as_fill_received(
    sim: MangoV3FillsSimulator, start_session: SessionFactory
) -> None:
    h = await start_session([sim.url])
    assert await h.next_report() == FeedUp(VENUE, sim.url)
    snapshots = await checkpoints(h, sim)
    assert snapshots["SOL-PERP"].fills == ()
    assert snapshots["SOL-PERP"].window_start is None  # an empty window

    h.clock.advance(2.5)
    await sim.push_fill("SOL-PERP", fill(stranger(9), ACCOUNT_A, side="ask", price=9100, qty=50))
    item = await h.next()
    assert item.received_at == START + 2.5
    assert isinstance(item.frame, str)
    assert '"status":"New"' in item.frame
    mark, received = item.events
    assert mark == MarkPrice(VENUE, "SOL-PERP", Decimal("91.00"), 1_700_000_001.0)
    assert isinstance(received, FillReceived)
    assert (received.desk, received.account, received.market) == ("sol-desk", ACCOUNT_A, "SOL-PERP")
    assert (received.side, received.liquidity, received.sequence) == (Side.SELL, Liquidity.TAKER, 0)
    assert (received.quantity, received.price) == (Decimal("0.50"), Decimal("91.00"))
    assert round(received.fee_rate, 8) == Decimal("0.0005")

    # A fill between strangers only moves the mark.
    await sim.push_fill("SOL-PERP", fill(stranger(9), stranger(10), price=9200, ts=2))
    assert (await h.next()).events == [MarkPrice(VENUE, "SOL-PERP", Decimal("92.00"), 1_700_000_002.0)]

    # Two of our desks on both sides of one fill: two fills, opposite sides, distinct keys.
    await sim.push_fill("BTC-PERP", fill(ACCOUNT_B, ACCOUNT_A, side="bid", price=310_000, qty=20, ts=3))
    events = (await h.next()).events
    fills = [event for event in events if isinstance(event, FillReceived)]
    assert [(f.desk, f.side, f.liquidity) for f in fills] == [
        ("mm-desk", Side.SELL, Liquidity.MAKER),
        ("sol-desk", Side.BUY, Liquidity.TAKER),
    ]
    assert fills[0].fill_key != fills[1].fill_key
    assert {f.quantity for f in fills} == {Decimal("0.0020")}

    # A fork voids that fill: both sides are revoked by the exact keys they arrived with.
    await sim.rollback("BTC-PERP", 1)
    revoked = (await h.next()).events
    assert all(isinstance(event, FillRevoked) for event in revoked)
    assert [event.fill_key for event in revoked if isinstance(event, FillRevoked)] == [f.fill_key for f in fills]
    assert h.sleep.delays == []


# ---- failover, reconnect and backoff ------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.asyncio
async def test_failover_from_a_closed_port_to_the_simulator(
    sim: MangoV3FillsSimulator, start_session: SessionFactory
) -> None:
    dead = f"ws://127.0.0.1:{closed_port()}"
    h = await start_session([dead, sim.url], initial=1.0, maximum=8.0)
    down = await h.next_report()
    assert isinstance(down, FeedDown)
    assert down.endpoint == dead
    assert down.reason.startswith("cannot connect")
    assert await h.next_report() == FeedUp(VENUE, sim.url)
    assert set(await checkpoints(h, sim)) == {"SOL-PERP", "BTC-PERP"}
    assert h.sleep.delays == reference_delays(SEED, ["next"], 1.0, 8.0)
    assert 0.5 <= h.sleep.delays[0] <= 1.0
    assert sim.connection_count == 1


@pytest.mark.integration
@pytest.mark.asyncio
async def test_handshake_failure_is_reported_then_fails_over(
    sim: MangoV3FillsSimulator, start_session: SessionFactory
) -> None:
    async with refusing_http_server(404) as port:
        h = await start_session([f"ws://127.0.0.1:{port}/feed", sim.url])
        down = await h.next_report()
        assert isinstance(down, FeedDown)
        assert down.endpoint == f"ws://127.0.0.1:{port}"
        assert down.reason == "handshake refused (HTTP 404)"
        assert await h.next_report() == FeedUp(VENUE, sim.url)


@pytest.mark.integration
@pytest.mark.asyncio
async def test_disconnect_then_reconnect_gets_fresh_checkpoints(
    sim: MangoV3FillsSimulator, start_session: SessionFactory
) -> None:
    h = await start_session([sim.url])
    assert await h.next_report() == FeedUp(VENUE, sim.url)
    await checkpoints(h, sim)

    h.sleep.hold()  # keep the session away while a fill happens that it cannot see live
    await sim.disconnect_all()
    down = await h.next_report()
    assert isinstance(down, FeedDown)
    # A 1001 "going away" is a clean close from the client's point of view.
    assert down == FeedDown(VENUE, sim.url, "server closed the connection")
    await h.sleep.wait_sleeping()
    assert sim.connection_count == 0
    missed = await sim.push_fill("SOL-PERP", fill(ACCOUNT_A, stranger(5), qty=7))
    assert missed
    h.sleep.release()

    assert await h.next_report() == FeedUp(VENUE, sim.url)
    snapshots = await checkpoints(h, sim)
    # The missed fill comes back inside the checkpoint (a replay to merge), never as a FillReceived.
    (replayed,) = snapshots["SOL-PERP"].fills
    assert (replayed.account, replayed.quantity, replayed.sequence) == (ACCOUNT_A, Decimal("0.07"), 0)
    assert not any(isinstance(event, FillReceived) for item in h.seen for event in item.events)
    assert len(h.sleep.delays) == 1


@pytest.mark.integration
@pytest.mark.asyncio
async def test_backoff_grows_is_capped_and_resets_after_a_connection_with_data(
    sim: MangoV3FillsSimulator, start_session: SessionFactory
) -> None:
    dead = f"ws://127.0.0.1:{closed_port()}"
    h = await start_session([dead, dead, dead, sim.url], initial=1.0, maximum=3.0)
    for _ in range(3):
        down = await h.next_report()
        assert isinstance(down, FeedDown)
        assert down.endpoint == dead
    assert await h.next_report() == FeedUp(VENUE, sim.url)
    await checkpoints(h, sim)
    assert h.sleep.delays == reference_delays(SEED, ["next"] * 3, 1.0, 3.0)

    await sim.disconnect_all()
    assert isinstance(await h.next_report(), FeedDown)  # the simulator went away
    for _ in range(3):
        assert isinstance(await h.next_report(), FeedDown)  # the dead URLs again
    assert await h.next_report() == FeedUp(VENUE, sim.url)
    await checkpoints(h, sim)

    delays = h.sleep.delays
    assert delays == reference_delays(SEED, ["next"] * 3 + ["reset"] + ["next"] * 4, 1.0, 3.0)
    ceilings = [1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 3.0]  # doubling, capped at max, back to initial after data
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 3.0


@pytest.mark.integration
@pytest.mark.asyncio
async def test_connections_without_data_do_not_reset_backoff(start_session: SessionFactory) -> None:
    accepted = 0

    async def hang_up(ws: ServerConnection) -> None:
        nonlocal accepted
        accepted += 1  # accept the handshake, send nothing, close

    async with serve(hang_up, "127.0.0.1", 0, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        h = await start_session([f"ws://127.0.0.1:{port}/"], initial=1.0, maximum=3.0)
        for _ in range(5):
            assert await h.next_report() == FeedUp(VENUE, f"ws://127.0.0.1:{port}")
            down = await h.next_report()
            assert down == FeedDown(VENUE, f"ws://127.0.0.1:{port}", "server closed the connection")
        delays = h.sleep.delays[:5]
        assert delays == reference_delays(SEED, ["next"] * 5, 1.0, 3.0)
        for delay, ceiling in zip(delays, [1.0, 2.0, 3.0, 3.0, 3.0], strict=True):
            assert ceiling / 2 <= delay <= ceiling
        assert accepted >= 5


@pytest.mark.integration
@pytest.mark.asyncio
async def test_oversized_frame_is_malformed_then_the_session_reconnects(
    sim: MangoV3FillsSimulator, start_session: SessionFactory
) -> None:
    h = await start_session([sim.url], max_frame_bytes=1024)
    assert await h.next_report() == FeedUp(VENUE, sim.url)
    await checkpoints(h, sim)

    # Just under the limit: delivered, and the codec (not the transport) rejects it.
    near = "y" * 1000
    await sim.send_raw(near)
    item = await h.next()
    assert item.frame == near
    assert item.events == [FrameMalformed(VENUE, "not JSON")]

    await sim.send_raw("x" * 5000)
    assert await h.next_report() == FrameMalformed(VENUE, "frame larger than max_frame_bytes")
    down = await h.next_report()
    assert isinstance(down, FeedDown)
    assert down.endpoint == sim.url
    assert "1009" in down.reason
    assert await h.next_report() == FeedUp(VENUE, sim.url)
    await checkpoints(h, sim)
    assert len(h.sleep.delays) == 1
    assert all(item.frame is None or len(item.frame) <= 1024 for item in h.seen)


# ---- secrets in URLs --------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.asyncio
async def test_endpoints_never_carry_url_path_query_or_credentials(
    sim: MangoV3FillsSimulator, start_session: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="riskmon")
    port = sim.url.rsplit(":", 1)[1]
    dead_port = closed_port()
    h = await start_session(
        [
            f"ws://127.0.0.1:{dead_port}/v3/SECRET?token=SECRET#SECRET",
            f"ws://user:SECRET@127.0.0.1:{port}/feed?token=SECRET",
        ]
    )
    down = await h.next_report()
    assert isinstance(down, FeedDown)
    assert down.endpoint == f"ws://127.0.0.1:{dead_port}"
    assert await h.next_report() == FeedUp(VENUE, sim.url)  # the server accepts any path
    await checkpoints(h, sim)
    await sim.disconnect_all()
    assert isinstance(await h.next_report(), FeedDown)

    assert len(h.seen) >= 5
    for item in h.seen:
        for event in item.events:
            assert "SECRET" not in repr(event)
            if isinstance(event, FeedUp | FeedDown):
                assert event.endpoint.count("/") == 2  # scheme://host:port and nothing after
    riskmon_logs = [r.getMessage() for r in caplog.records if r.name.startswith("riskmon")]
    assert riskmon_logs, "the session logs its reconnects"
    assert not [line for line in riskmon_logs if "SECRET" in line]


@pytest.mark.integration
@pytest.mark.asyncio
async def test_no_log_line_carries_a_url_secret_even_at_debug(
    sim: MangoV3FillsSimulator, start_session: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h = await start_session([f"{sim.url}/feed?token=SECRET"])
    assert await h.next_report() == FeedUp(VENUE, sim.url)
    await checkpoints(h, sim)
    # The simulator's own server-side logs are test scaffolding, not riskmon's.
    leaked = [r.getMessage() for r in caplog.records if r.name != "websockets.server" and "SECRET" in r.getMessage()]
    assert leaked == []


@pytest.mark.integration
@pytest.mark.asyncio
async def test_url_with_a_bad_port_fails_over_instead_of_killing_the_session(
    sim: MangoV3FillsSimulator, start_session: SessionFactory
) -> None:
    h = await start_session(["ws://127.0.0.1:99999/", sim.url])
    down = await h.next_report()
    assert isinstance(down, FeedDown)
    assert await h.next_report() == FeedUp(VENUE, sim.url)


# ---- ReconnectBackoff ---------------------------------------------------------------------------


class _ExtremeRandom(random.Random):
    """Jitter pinned to one end of its range."""

    def __init__(self, high: bool) -> None:
        super().__init__(0)
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


@pytest.mark.parametrize(("initial", "maximum"), [(0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_backoff_rejects_bad_bounds(initial: float, maximum: float) -> None:
    with pytest.raises(ValueError, match="initial"):
        ReconnectBackoff(initial, maximum)


def test_backoff_jitter_is_within_half_ceiling_and_ceiling() -> None:
    for seed in range(50):
        backoff = ReconnectBackoff(0.5, 30.0, random.Random(seed))
        for attempt in range(12):
            ceiling = min(30.0, 0.5 * 2**attempt)
            assert ceiling / 2 <= backoff.next_delay() <= ceiling


def test_backoff_extremes_are_exactly_half_ceiling_and_ceiling() -> None:
    low = ReconnectBackoff(0.5, 5.0, _ExtremeRandom(high=False))
    high = ReconnectBackoff(0.5, 5.0, _ExtremeRandom(high=True))
    assert [low.next_delay() for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 2.5, 2.5]
    assert [high.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_backoff_stays_capped_after_very_many_attempts() -> None:
    backoff = ReconnectBackoff(0.001, 60.0, _ExtremeRandom(high=True))
    delays = [backoff.next_delay() for _ in range(1000)]  # 2**1000 would overflow a float
    assert max(delays) == 60.0
    assert delays[-1] == 60.0
    low = ReconnectBackoff(0.001, 60.0, _ExtremeRandom(high=False))
    assert [low.next_delay() for _ in range(1000)][-1] == 30.0


def test_backoff_reset_starts_again_from_initial() -> None:
    backoff = ReconnectBackoff(1.0, 16.0, _ExtremeRandom(high=True))
    assert [backoff.next_delay() for _ in range(4)] == [1.0, 2.0, 4.0, 8.0]
    backoff.reset()
    assert [backoff.next_delay() for _ in range(3)] == [1.0, 2.0, 4.0]


def test_backoff_is_deterministic_per_seed_and_jittered_across_seeds() -> None:
    def run(seed: int) -> list[float]:
        backoff = ReconnectBackoff(1.0, 8.0, random.Random(seed))
        return [backoff.next_delay() for _ in range(6)]

    assert run(1) == run(1)
    assert run(1) != run(2)
    assert len({round(d, 9) for d in run(3)[3:]}) == 3  # at the cap, the jitter still varies


def test_backoff_with_default_rng_and_initial_equal_to_max() -> None:
    backoff = ReconnectBackoff(2.0, 2.0)
    assert all(1.0 <= backoff.next_delay() <= 2.0 for _ in range(100))


# ---- redact_endpoint ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("wss://api.example.net/v3/fills?key=SECRET", "wss://api.example.net"),
        ("ws://127.0.0.1:8790/feed?token=SECRET", "ws://127.0.0.1:8790"),
        ("wss://user:SECRET@api.example.net:443/p", "wss://api.example.net:443"),
        ("wss://SECRET@api.example.net/", "wss://api.example.net"),
        ("ws://API.Example.NET/#SECRET", "ws://api.example.net"),
        ("ws://127.0.0.1:8790", "ws://127.0.0.1:8790"),
        ("wss://api.example.net/SECRET/path;params", "wss://api.example.net"),
    ],
)
def test_redact_endpoint_keeps_scheme_host_and_port_only(url: str, expected: str) -> None:
    redacted = redact_endpoint(url)
    assert redacted == expected
    assert "SECRET" not in redacted


@pytest.mark.parametrize(
    "url", ["SECRET", "", "ws://h:99999/SECRET?k=SECRET", "ws://h:port/SECRET", "ws://[::1/SECRET"]
)
def test_redact_endpoint_on_garbage_never_raises_or_shows_input(url: str) -> None:
    redacted = redact_endpoint(url)
    assert "SECRET" not in redacted
    assert "/" not in redacted.split("://", 1)[-1]


def test_redact_endpoint_keeps_ipv6_brackets() -> None:
    assert redact_endpoint("ws://[::1]:8080/feed?token=SECRET") == "ws://[::1]:8080"
