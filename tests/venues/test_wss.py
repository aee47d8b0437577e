"""A venue websocket over TLS (wss://): the session trusts the process's one TLS context (riskmon.tls).

The Mobula simulator serves wss:// on loopback with a certificate for 127.0.0.1 signed by a CA made
for the test. Trusted the way an operator trusts an internal CA (SSL_CERT_FILE naming its PEM), the
session connects, subscribes and hands on a desk's fill; with the CA not trusted, or a certificate for
another host, it never sends the subscribe (it carries the API key) and reports the feed down with the
verification failure, then keeps retrying without leaking sockets or tasks.

`default_ssl_context` is built once per process: every test here clears it before and after, so this
test's SSL_CERT_FILE is read and no other test inherits the test CA.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import ssl
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import pytest_asyncio
import trustme

from riskmon.clock import VirtualClock
from riskmon.config.schema import Backoff, MobulaPerpEventsVenue
from riskmon.config.types import Duration, Secret
from riskmon.events import (
    DisconnectCause,
    FeedDown,
    FeedUp,
    FillReceived,
    Liquidity,
    MarkKind,
    MarkPrice,
    Side,
    Subscribed,
)
from riskmon.tls import default_ssl_context
from riskmon.venues.mobula.codec import MobulaPerpEventsCodec
from riskmon.venues.mobula.session import MobulaPerpEventsSession
from riskmon.venues.mobula.simulator import MobulaPerpEventsSimulator, gains_trade, raw_amount
from tests.venues.session_harness import TIMEOUT, SessionHarness, reference_delays, session_pool

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

VENUE = "mobula"
DESK = "perp-desk"
START = 1_750_000_000.0
SEED = 20260611
API_KEY = "mk_live_WSS_TEST_KEY_51c0de"
DESK_WALLET = "0xAbC0000000000000000000000000000000dEaD01"
DESK_WIRE = DESK_WALLET.lower()
TX = "0x" + "5e" * 32
DATE = "2026-06-08T00:18:34.613Z"
DATE_TS = 1780877914.613
BLOCK = 312_456_789  # sim_frames.DEFAULT_BLOCK
BTC = "gains-btc-usd-usdc"

SimFactory = Callable[[str], Awaitable[MobulaPerpEventsSimulator]]
SessionFactory = Callable[[str], SessionHarness]


@pytest.fixture
def venue_ca() -> trustme.CA:
    """The CA that signs the simulator's certificate: trusted only where a test says so."""
    return trustme.CA()


@pytest.fixture
def fresh_tls_context(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No CA override in the environment, and a TLS context built afresh on first use (as in a new process)."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    default_ssl_context.cache_clear()
    yield
    # Before monkeypatch restores the environment: the next user rebuilds from the restored one.
    default_ssl_context.cache_clear()


@pytest.fixture
def trust_venue_ca(
    fresh_tls_context: None, venue_ca: trustme.CA, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Trust the venue CA as an operator would: SSL_CERT_FILE names its PEM."""
    pem = tmp_path / "venue-ca.pem"
    venue_ca.cert_pem.write_to_path(str(pem))
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))


@pytest_asyncio.fixture
async def wss_sim(venue_ca: trustme.CA) -> AsyncIterator[SimFactory]:
    """Start the simulator over TLS, its certificate naming `host` and signed by the venue CA."""
    started: list[MobulaPerpEventsSimulator] = []

    async def start(host: str) -> MobulaPerpEventsSimulator:
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        venue_ca.issue_cert(host).configure_cert(server_tls)
        sim = MobulaPerpEventsSimulator(API_KEY)
        await sim.start(server_tls)
        started.append(sim)
        return sim

    try:
        yield start
    finally:
        for sim in started:
            await sim.stop()


@pytest_asyncio.fixture
async def start_session() -> AsyncIterator[SessionFactory]:
    async with session_pool() as pool:

        def start(url: str) -> SessionHarness:
            config = MobulaPerpEventsVenue(
                url=url,
                api_key=Secret(API_KEY),
                chain_ids=["evm:42161"],
                subscription_name="riskmon-wss-test",
                reconnect=Backoff(initial=Duration(1.0), max=Duration(8.0)),
                open_timeout=Duration(TIMEOUT),
            )
            h = SessionHarness(VirtualClock(START))
            codec = MobulaPerpEventsCodec(VENUE, {DESK_WALLET: DESK}, config)
            session = MobulaPerpEventsSession(
                VENUE, config, codec, h.sink, h.clock, rng=random.Random(SEED), sleep=h.sleep
            )
            return pool.start(h, session, "mobula-wss-session")

        yield start


def endpoint(url: str) -> str:
    """How the session reports an endpoint: scheme://host:port, no path."""
    return url.rstrip("/")


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].rstrip("/"))


def client_sockets_to(port: int) -> int:
    """How many sockets this process holds open to 127.0.0.1:`port` as a client (Linux /proc)."""
    inodes: set[str] = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the directory's own fd, closed once listed
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].split(":")[1], 16)
        if remote_port == port and fields[9] in inodes:
            count += 1
    return count


# ---- trusted ------------------------------------------------------------------------------------


async def test_trusted_venue_ca_connects_subscribes_and_delivers_a_fill_over_wss(
    trust_venue_ca: None, wss_sim: SimFactory, start_session: SessionFactory
) -> None:
    sim = await wss_sim("127.0.0.1")
    assert sim.url.startswith("wss://127.0.0.1:")
    h = start_session(sim.url)

    ack = await h.next_frame()
    assert isinstance(ack.frame, str)
    assert '"event":"subscribed"' in ack.frame
    assert ack.events == [Subscribed(VENUE, "perp-events")]
    assert await h.next_report() == FeedUp(VENUE, endpoint(sim.url))
    # The subscribe went out encrypted and arrived whole.
    assert sim.subscriptions == [
        {
            "type": "stream",
            "authorization": API_KEY,
            "payload": {
                "name": "riskmon-wss-test",
                "chainIds": ["evm:42161"],
                "events": ["order"],
                "subscriptionTracking": "true",
            },
        }
    ]
    assert client_sockets_to(port_of(sim.url)) == 1

    h.clock.advance(2.0)
    buy = gains_trade(
        "MARKET_BUY",
        DESK_WIRE,
        trade_id="7",
        tx_hash=TX,
        base_amount_raw=raw_amount("0.5"),
        price_usd=64000.25,
        long=True,
        date=DATE,
    )
    assert await sim.push(buy) == 1
    item = await h.next_frame()
    assert item.received_at == START + 2.0
    assert item.events == [
        MarkPrice(VENUE, BTC, Decimal("64000.25"), DATE_TS, MarkKind.TRADE),
        FillReceived(
            venue=VENUE,
            desk=DESK,
            account=DESK_WIRE,
            market=BTC,
            side=Side.BUY,
            quantity=Decimal("0.5"),
            price=Decimal("64000.25"),
            fill_key=f"{TX}:MARKET_BUY:{DESK_WIRE}:7",
            stream="gains",
            sequence=BLOCK,
            liquidity=Liquidity.TAKER,
            fee_rate=Decimal(0),
            venue_ts=DATE_TS,
        ),
    ]

    # The handshake was the shared context's: a session with its own context would not count here.
    stats = default_ssl_context().session_stats()
    assert (stats["connect"], stats["connect_good"]) == (1, 1)
    assert default_ssl_context().verify_mode is ssl.CERT_REQUIRED
    assert h.sleep.delays == []


# ---- not trusted --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trusted", "cert_host", "found"),
    [
        pytest.param(False, "127.0.0.1", "unable to get local issuer certificate", id="ca_not_trusted"),
        pytest.param(True, "feed.venue.example", "IP address mismatch", id="certificate_for_another_host"),
    ],
)
async def test_unverified_certificate_never_subscribes_and_reports_feed_down_each_attempt(
    trusted: bool,
    cert_host: str,
    found: str,
    request: pytest.FixtureRequest,
    fresh_tls_context: None,
    wss_sim: SimFactory,
    start_session: SessionFactory,
) -> None:
    if trusted:
        request.getfixturevalue("trust_venue_ca")
    sim = await wss_sim(cert_host)
    port = port_of(sim.url)
    tasks_before = asyncio.all_tasks()
    h = start_session(sim.url)
    h.sleep.hold()  # every backoff parks until the test lets it go

    for attempt in (1, 2, 3):
        if attempt > 1:
            h.sleep.release()  # on to the next attempt, whose backoff parks again
            h.sleep.hold()
        down = await h.next_report()
        assert isinstance(down, FeedDown)
        # OpenSSL's own words for what it found, so an operator can tell the two cases apart.
        assert down.reason.startswith("TLS certificate not verified (")
        assert found in down.reason
        assert (down.venue, down.endpoint, down.cause) == (VENUE, endpoint(sim.url), DisconnectCause.TLS)
        await h.sleep.wait_sleeping()
        # Parked in backoff, alive: nothing open to the venue, no task left behind.
        assert h.task is not None
        assert not h.task.done()
        assert client_sockets_to(port) == 0
        assert asyncio.all_tasks() - tasks_before == {h.task}
        assert h.sleep.delays == reference_delays(SEED, attempt)
        stats = default_ssl_context().session_stats()
        assert (stats["connect"], stats["connect_good"]) == (attempt, 0)

    # The subscribe carries the API key: it must never reach an unverified peer.
    assert sim.subscriptions == []
    assert sim.connections == 0
    assert [type(item.events[0]) for item in h.seen] == [FeedDown] * 3
    assert all(API_KEY not in repr(item) for item in h.seen)

    await h.stop()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()  # an unclosed socket or transport warns when collected
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
