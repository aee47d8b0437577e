"""StreamResynced: the Phoenix codec says when a stream that gapped is rebuilt from a fresh snapshot.

The pure codec tests feed literal frames in the shapes of protocols.md §5 and assert the exact
events; the session tests drive the real PhoenixSession against the real loopback simulator and
show SequenceGap -> resubscribe sent -> snapshot -> StreamResynced in the session's inbound items.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from riskmon.clock import VirtualClock
from riskmon.config.schema import Backoff, PhoenixVenue
from riskmon.config.types import Duration
from riskmon.events import (
    Event,
    FeedDown,
    FeedUp,
    FrameMalformed,
    MarketStatusChanged,
    PositionsReported,
    ReportedPosition,
    SequenceGap,
    StreamResynced,
    Subscribed,
)
from riskmon.venues.phoenix.codec import PhoenixCodec
from riskmon.venues.phoenix.session import PhoenixSession
from riskmon.venues.phoenix.sim_server import _Client
from riskmon.venues.phoenix.simulator import PhoenixSimulator, SimMarket
from tests.venues.phoenix.helpers import (
    AUTHORITY,
    OTHER,
    SUBSCRIBE_EXCHANGE,
    SUBSCRIBE_TRADER,
    UNSUBSCRIBE_EXCHANGE,
    UNSUBSCRIBE_TRADER,
)
from tests.venues.session_harness import TIMEOUT, SessionHarness, session_pool, started

V = "phoenix"
EXCHANGE_SNAPSHOT = """{"channel":"exchange","messageType":"snapshot","sequenceNumber":"100","slot":5000,"slotIndex":0,
 "exchange":{"status":"active","markets":[
  {"symbol":"ETH","marketStatus":"active","baseLotsDecimals":3,"tickSizeInQuoteLotsPerBaseLot":"100",
   "takerFeeMicro":200,"makerFeeMicro":0},
  {"symbol":"BTC","marketStatus":"active","baseLotsDecimals":4,"tickSizeInQuoteLotsPerBaseLot":"100",
   "takerFeeMicro":200,"makerFeeMicro":0}]}}"""

# The fresh snapshot after an exchange gap: BTC went paused while we were blind.
EXCHANGE_SNAPSHOT_BTC_PAUSED = """{"channel":"exchange","messageType":"snapshot","sequenceNumber":"230","slot":5100,
 "slotIndex":0,"exchange":{"status":"active","markets":[
  {"symbol":"ETH","marketStatus":"active","baseLotsDecimals":3,"tickSizeInQuoteLotsPerBaseLot":"100",
   "takerFeeMicro":200,"makerFeeMicro":0},
  {"symbol":"BTC","marketStatus":"paused","baseLotsDecimals":4,"tickSizeInQuoteLotsPerBaseLot":"100",
   "takerFeeMicro":200,"makerFeeMicro":0}]}}"""

# A fresh exchange snapshot that also lists SOL, a market new to the codec.
EXCHANGE_SNAPSHOT_WITH_SOL = """{"channel":"exchange","messageType":"snapshot","sequenceNumber":"300","slot":5200,
 "slotIndex":0,"exchange":{"status":"active","markets":[
  {"symbol":"ETH","marketStatus":"active","baseLotsDecimals":3,"tickSizeInQuoteLotsPerBaseLot":"100",
   "takerFeeMicro":200,"makerFeeMicro":0},
  {"symbol":"BTC","marketStatus":"active","baseLotsDecimals":4,"tickSizeInQuoteLotsPerBaseLot":"100",
   "takerFeeMicro":200,"makerFeeMicro":0},
  {"symbol":"SOL","marketStatus":"active","baseLotsDecimals":2,"tickSizeInQuoteLotsPerBaseLot":"100",
   "takerFeeMicro":200,"makerFeeMicro":0}]}}"""

TRADER_SNAPSHOT = """{"channel":"traderState","authority":"7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU",
 "traderPdaIndex":0,"slot":5001,"messageType":"snapshot","version":1,"subaccounts":[
  {"subaccountIndex":0,"sequence":41,"collateral":"1000000000","spotCollaterals":[],"positions":[
    {"symbol":"ETH","positionSequenceNumber":"3","basePositionLots":"1500","entryPriceTicks":"30005",
     "entryPriceUsd":"3000.5","virtualQuotePositionLots":"-4500750000","unsettledFundingQuoteLots":"0",
     "accumulatedFundingQuoteLots":"12"}],"orders":[],"splines":[],"triggers":[]},
  {"subaccountIndex":1,"sequence":7,"collateral":"50000000","spotCollaterals":[],"positions":[
    {"symbol":"BTC","positionSequenceNumber":"1","basePositionLots":"1234","entryPriceTicks":"650000",
     "entryPriceUsd":"65000","virtualQuotePositionLots":"-8021000000","unsettledFundingQuoteLots":"0",
     "accumulatedFundingQuoteLots":"0"}],"orders":[],"splines":[],"triggers":[]}]}"""
OTHER_SNAPSHOT = TRADER_SNAPSHOT.replace(AUTHORITY, OTHER)

# The same trader, now also long 5.00 SOL on the primary subaccount.
TRADER_SNAPSHOT_WITH_SOL = TRADER_SNAPSHOT.replace(
    '"positions":[\n',
    '"positions":[{"symbol":"SOL","positionSequenceNumber":"9","basePositionLots":"500","entryPriceTicks":"15000",'
    '"entryPriceUsd":"150","virtualQuotePositionLots":"0","unsettledFundingQuoteLots":"0",'
    '"accumulatedFundingQuoteLots":"0"},\n',
    1,
)

ETH = ReportedPosition("ETH", Decimal("1.5"), Decimal("3000.5"))
BTC = ReportedPosition("BTC", Decimal("0.1234"), None)  # only in isolated subaccount 1: no primary entry
SOL = ReportedPosition("SOL", Decimal("5"), Decimal("150"))


def trader_delta(subaccount: int, sequence: int, authority: str = AUTHORITY) -> str:
    return (
        '{"channel":"traderState","authority":"' + authority + '","traderPdaIndex":0,"slot":5002,'
        '"messageType":"delta","deltas":[{"subaccountIndex":' + str(subaccount) + ',"sequence":' + str(sequence) + ","
        '"collateral":"999000000","spotCollaterals":[],"positions":[],"orders":[],"tradeHistory":[]}]}'
    )


def two_subaccount_delta(sequence_0: int, sequence_1: int) -> str:
    return (
        '{"channel":"traderState","authority":"' + AUTHORITY + '","traderPdaIndex":0,"slot":5002,'
        '"messageType":"delta","deltas":['
        '{"subaccountIndex":0,"sequence":' + str(sequence_0) + ',"collateral":"1","positions":[]},'
        '{"subaccountIndex":1,"sequence":' + str(sequence_1) + ',"collateral":"1","positions":[]}]}'
    )


def exchange_delta(sequence: int, *ops: str) -> str:
    return (
        '{"channel":"exchange","messageType":"delta","sequenceNumber":"' + str(sequence) + '","slot":5003,'
        '"slotIndex":1,"ops":[' + ",".join(ops) + "]}"
    )


def report(positions: tuple[ReportedPosition, ...], complete: bool = True, account: str = AUTHORITY) -> Event:
    desk = "alpha" if account == AUTHORITY else "beta"
    return PositionsReported(V, desk, account, positions, complete, None, None)


def new_codec() -> PhoenixCodec:
    codec = PhoenixCodec(V, {AUTHORITY: "alpha", OTHER: "beta"}, PhoenixVenue(authority=AUTHORITY))
    codec.connection_opened()
    codec.data_to_send()
    return codec


@pytest.fixture
def live() -> PhoenixCodec:
    """Connected, both snapshots applied: exchange at sequence 100, subaccounts 0 at 41 and 1 at 7."""
    codec = new_codec()
    assert codec.receive_text(EXCHANGE_SNAPSHOT) == []
    assert codec.receive_text(TRADER_SNAPSHOT) == [report((BTC, ETH))]
    return codec


# --- no gap, no resync ------------------------------------------------------------------------------


def test_first_connect_and_an_ordinary_reconnect_do_not_resync() -> None:
    codec = new_codec()
    assert codec.receive_text(EXCHANGE_SNAPSHOT) == []
    assert codec.receive_text(TRADER_SNAPSHOT) == [report((BTC, ETH))]
    codec.connection_opened()
    assert len(codec.data_to_send()) == 3  # traderState, exchange, allMids
    assert codec.receive_text(TRADER_SNAPSHOT) == [report((BTC, ETH))]
    assert codec.receive_text(EXCHANGE_SNAPSHOT_BTC_PAUSED) == [MarketStatusChanged(V, "BTC", "paused", False)]
    # A snapshot sent again on the same subscription is a replay, not the end of a gap.
    assert codec.receive_text(TRADER_SNAPSHOT) == [report((BTC, ETH))]
    assert codec.receive_text(EXCHANGE_SNAPSHOT_BTC_PAUSED) == []


# --- traderState ----------------------------------------------------------------------------------


def test_trader_snapshot_after_a_gap_resyncs_the_gapped_subaccount_once(live: PhoenixCodec) -> None:
    assert live.receive_text(trader_delta(0, 44)) == [SequenceGap(V, "traderState:0", 42, 44)]
    assert live.data_to_send() == [UNSUBSCRIBE_TRADER, SUBSCRIBE_TRADER]
    # Deltas before the snapshot are ignored: no second gap, nothing more to end.
    assert live.receive_text(trader_delta(0, 46)) == []
    assert live.receive_text(trader_delta(1, 10)) == []
    assert live.receive_text(TRADER_SNAPSHOT) == [report((BTC, ETH)), StreamResynced(V, "traderState:0")]
    # The gap is ended: the same snapshot again, and deltas after it, bring no resync.
    assert live.receive_text(TRADER_SNAPSHOT) == [report((BTC, ETH))]
    assert live.receive_text(trader_delta(0, 42)) == []
    assert live.data_to_send() == []


def test_gap_in_an_isolated_subaccount_names_that_subaccount(live: PhoenixCodec) -> None:
    assert live.receive_text(trader_delta(1, 9)) == [SequenceGap(V, "traderState:1", 8, 9)]
    assert live.receive_text(TRADER_SNAPSHOT) == [report((BTC, ETH)), StreamResynced(V, "traderState:1")]


def test_several_subaccounts_gapped_in_one_frame_each_resync(live: PhoenixCodec) -> None:
    assert live.receive_text(two_subaccount_delta(43, 9)) == [
        SequenceGap(V, "traderState:0", 42, 43),
        SequenceGap(V, "traderState:1", 8, 9),
    ]
    assert live.data_to_send() == [UNSUBSCRIBE_TRADER, SUBSCRIBE_TRADER]  # one resubscribe for both
    assert live.receive_text(TRADER_SNAPSHOT) == [
        report((BTC, ETH)),
        StreamResynced(V, "traderState:0"),
        StreamResynced(V, "traderState:1"),
    ]


def test_a_contiguous_subaccount_beside_a_gapped_one_is_not_a_gap(live: PhoenixCodec) -> None:
    assert live.receive_text(two_subaccount_delta(42, 9)) == [SequenceGap(V, "traderState:1", 8, 9)]
    assert live.receive_text(TRADER_SNAPSHOT) == [report((BTC, ETH)), StreamResynced(V, "traderState:1")]


def test_a_snapshot_ends_only_its_own_authoritys_gap(live: PhoenixCodec) -> None:
    assert live.receive_text(OTHER_SNAPSHOT) == [report((BTC, ETH), account=OTHER)]
    assert live.receive_text(trader_delta(0, 43, OTHER)) == [SequenceGap(V, "traderState:0", 42, 43)]
    assert live.receive_text(trader_delta(0, 50)) == [SequenceGap(V, "traderState:0", 42, 50)]
    assert live.receive_text(OTHER_SNAPSHOT) == [
        report((BTC, ETH), account=OTHER),
        StreamResynced(V, "traderState:0"),
    ]
    assert live.receive_text(TRADER_SNAPSHOT) == [report((BTC, ETH)), StreamResynced(V, "traderState:0")]


def test_a_reconnect_during_a_trader_gap_still_ends_it_with_the_next_snapshot(live: PhoenixCodec) -> None:
    assert live.receive_text(trader_delta(0, 45)) == [SequenceGap(V, "traderState:0", 42, 45)]
    live.connection_opened()
    assert live.data_to_send()[:2] == [SUBSCRIBE_TRADER, SUBSCRIBE_EXCHANGE]  # the resubscribe is replaced
    assert live.receive_text(trader_delta(0, 46)) == []  # no snapshot on the new connection yet
    assert live.receive_text(TRADER_SNAPSHOT) == [report((BTC, ETH)), StreamResynced(V, "traderState:0")]
    live.connection_opened()
    live.data_to_send()
    assert live.receive_text(TRADER_SNAPSHOT) == [report((BTC, ETH))]


def test_a_malformed_snapshot_does_not_end_the_gap(live: PhoenixCodec) -> None:
    assert live.receive_text(trader_delta(0, 45)) == [SequenceGap(V, "traderState:0", 42, 45)]
    bad = TRADER_SNAPSHOT.replace('"basePositionLots":"1500"', '"basePositionLots":"15x0"')
    assert live.receive_text(bad) == [
        FrameMalformed(V, "traderState: subaccount 0 basePositionLots is not a signed integer")
    ]
    assert live.receive_text(TRADER_SNAPSHOT) == [report((BTC, ETH)), StreamResynced(V, "traderState:0")]


def test_a_snapshot_waiting_for_units_still_resyncs_the_stream(live: PhoenixCodec) -> None:
    assert live.receive_text(trader_delta(0, 43)) == [SequenceGap(V, "traderState:0", 42, 43)]
    # SOL's units are unknown: the known markets are reported partially, the stream is whole again.
    assert live.receive_text(TRADER_SNAPSHOT_WITH_SOL) == [
        report((BTC, ETH), complete=False),
        StreamResynced(V, "traderState:0"),
    ]
    # The units arrive with an exchange snapshot that ends no gap: the complete report, no resync.
    assert live.receive_text(EXCHANGE_SNAPSHOT_WITH_SOL) == [report((BTC, ETH, SOL))]


# --- exchange -------------------------------------------------------------------------------------


def test_exchange_snapshot_after_a_gap_resyncs_after_its_status_changes(live: PhoenixCodec) -> None:
    assert live.receive_text(exchange_delta(101)) == []
    assert live.receive_text(exchange_delta(103)) == [SequenceGap(V, "exchange", 102, 103)]
    assert live.data_to_send() == [UNSUBSCRIBE_EXCHANGE, SUBSCRIBE_EXCHANGE]
    assert live.receive_text(exchange_delta(104)) == []  # ignored until the snapshot: no second gap
    assert live.receive_text(EXCHANGE_SNAPSHOT_BTC_PAUSED) == [
        MarketStatusChanged(V, "BTC", "paused", False),
        StreamResynced(V, "exchange"),
    ]
    assert live.receive_text(exchange_delta(231)) == []
    assert live.receive_text(EXCHANGE_SNAPSHOT_BTC_PAUSED) == []  # ended: a replayed snapshot says nothing
    assert live.data_to_send() == []


def test_exchange_resync_comes_after_the_positions_the_snapshot_released() -> None:
    codec = new_codec()
    codec.receive_text(EXCHANGE_SNAPSHOT)
    assert codec.receive_text(TRADER_SNAPSHOT_WITH_SOL) == [report((BTC, ETH), complete=False)]
    assert codec.receive_text(exchange_delta(102)) == [SequenceGap(V, "exchange", 101, 102)]
    assert codec.receive_text(EXCHANGE_SNAPSHOT_WITH_SOL) == [report((BTC, ETH, SOL)), StreamResynced(V, "exchange")]


def test_a_reconnect_during_an_exchange_gap_still_ends_it_with_the_next_snapshot(live: PhoenixCodec) -> None:
    assert live.receive_text(exchange_delta(105)) == [SequenceGap(V, "exchange", 101, 105)]
    live.connection_opened()
    live.data_to_send()
    assert live.receive_text(EXCHANGE_SNAPSHOT) == [StreamResynced(V, "exchange")]


def test_a_malformed_exchange_snapshot_does_not_end_the_gap(live: PhoenixCodec) -> None:
    assert live.receive_text(exchange_delta(105)) == [SequenceGap(V, "exchange", 101, 105)]
    bad = EXCHANGE_SNAPSHOT.replace('"sequenceNumber":"100"', '"sequenceNumber":"-1"')
    assert live.receive_text(bad) == [FrameMalformed(V, "exchange: sequenceNumber is not an unsigned integer")]
    assert live.receive_text(EXCHANGE_SNAPSHOT) == [StreamResynced(V, "exchange")]


def test_trader_and_exchange_gaps_end_independently(live: PhoenixCodec) -> None:
    assert live.receive_text(trader_delta(1, 20)) == [SequenceGap(V, "traderState:1", 8, 20)]
    assert live.receive_text(exchange_delta(110)) == [SequenceGap(V, "exchange", 101, 110)]
    assert live.receive_text(EXCHANGE_SNAPSHOT) == [StreamResynced(V, "exchange")]
    assert live.receive_text(TRADER_SNAPSHOT) == [report((BTC, ETH)), StreamResynced(V, "traderState:1")]


# --- every sequence of gaps, snapshots and reconnects -----------------------------------------------

Step = tuple[str, int]
steps = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["trader_next", "trader_skip"]), st.sampled_from([0, 1])),
        st.tuples(
            st.sampled_from(["exchange_next", "exchange_skip", "trader_snapshot", "exchange_snapshot", "reconnect"]),
            st.just(0),
        ),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_each_gap_is_resynced_once_by_the_next_snapshot_of_its_channel(script: list[Step]) -> None:
    """A model of the rule: every SequenceGap stream is ended by exactly one StreamResynced, the
    first snapshot of its channel after it (reconnects or not), and no other snapshot resyncs."""
    codec = new_codec()
    codec.receive_text(EXCHANGE_SNAPSHOT)
    codec.receive_text(TRADER_SNAPSHOT)
    trader: dict[int, int] | None = {0: 41, 1: 7}  # None: waiting for a snapshot
    exchange: int | None = 100
    trader_gaps: list[str] = []
    exchange_gap = False
    for kind, subaccount in script:
        sent: list[bytes] = []
        if kind == "trader_next" or kind == "trader_skip":
            step = 1 if kind == "trader_next" else 3
            sequence = (trader[subaccount] if trader is not None else 41) + step
            events = codec.receive_text(trader_delta(subaccount, sequence))
            expected: list[Event] = []
            if trader is not None and step == 1:
                trader[subaccount] = sequence
            elif trader is not None:
                stream = f"traderState:{subaccount}"
                expected = [SequenceGap(V, stream, sequence - 2, sequence)]
                trader_gaps.append(stream)
                trader = None
                sent = [UNSUBSCRIBE_TRADER, SUBSCRIBE_TRADER]
        elif kind == "exchange_next" or kind == "exchange_skip":
            step = 1 if kind == "exchange_next" else 2
            number = (exchange if exchange is not None else 100) + step
            events = codec.receive_text(exchange_delta(number))
            expected = []
            if exchange is not None and step == 1:
                exchange = number
            elif exchange is not None:
                expected = [SequenceGap(V, "exchange", number - 1, number)]
                exchange_gap, exchange = True, None
                sent = [UNSUBSCRIBE_EXCHANGE, SUBSCRIBE_EXCHANGE]
        elif kind == "trader_snapshot":
            events = codec.receive_text(TRADER_SNAPSHOT)
            expected = [report((BTC, ETH)), *(StreamResynced(V, stream) for stream in trader_gaps)]
            trader, trader_gaps = {0: 41, 1: 7}, []
        elif kind == "exchange_snapshot":
            events = codec.receive_text(EXCHANGE_SNAPSHOT)
            expected = [StreamResynced(V, "exchange")] if exchange_gap else []
            exchange, exchange_gap = 100, False
        else:
            codec.connection_opened()
            events, expected = [], []
            sent = [SUBSCRIBE_TRADER, SUBSCRIBE_EXCHANGE, b'{"type":"subscribe","subscription":{"channel":"allMids"}}']
            trader, exchange = None, None
        assert events == expected, kind
        assert codec.data_to_send() == sent, kind


# --- the session against the simulator --------------------------------------------------------------

START = 1_750_000_000.0
SEED = 20260608
ALICE = AUTHORITY
SIM_SOL = SimMarket("SOL", base_lots_decimals=2, tick_size=100)  # a lot is 0.01 SOL, a tick $0.01
SIM_ETH = SimMarket("ETH", base_lots_decimals=3, tick_size=100)
EXCHANGE_SEQUENCE = 58_211  # the simulator's first exchange sequenceNumber
TRADER_SUB = {"channel": "traderState", "authority": ALICE, "traderPdaIndex": 0}
EXCHANGE_SUB = {"channel": "exchange", "encoding": "json"}
CONNECT_SUBS = [TRADER_SUB, EXCHANGE_SUB, {"channel": "allMids"}, {"channel": "market", "symbol": "SOL"}]


def sim_report(positions: tuple[ReportedPosition, ...], *, complete: bool, sequence: int | None = None) -> Event:
    return PositionsReported(V, "perp-desk", ALICE, positions, complete, sequence)


class RecordingSimulator(PhoenixSimulator):
    """The real simulator, also noting every control message it reads, in order."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.received: list[dict[str, Any]] = []

    def _on_message(self, client: _Client, message: str | bytes) -> bool:
        self.received.append(json.loads(message))
        return super()._on_message(client, message)


class ResyncHarness(SessionHarness):
    async def connected(self, url: str, trader: list[Event], exchange: list[Event]) -> None:
        """The traderState confirmation, FeedUp, the other confirmations; the two snapshots carry the
        given events."""
        assert await self.frame_events() == [Subscribed(V, "traderState")]
        assert await self.next_report() == FeedUp(V, url.removesuffix("/v1/ws"))
        assert await self.snapshot() == trader
        assert await self.frame_events() == [Subscribed(V, "exchange")]
        assert await self.snapshot() == exchange
        assert await self.frame_events() == [Subscribed(V, "allMids")]
        assert await self.frame_events() == [Subscribed(V, "market:SOL")]

    async def snapshot(self) -> list[Event]:
        item = await self.next_frame()
        assert isinstance(item.frame, str)
        assert json.loads(item.frame)["messageType"] == "snapshot"
        return item.events

    def resynced(self) -> list[str]:
        return [e.stream for e in self.events() if isinstance(e, StreamResynced)]


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[RecordingSimulator]:
    async with started(RecordingSimulator(markets=[SIM_SOL, SIM_ETH], authorities=[ALICE])) as server:
        yield server


@pytest_asyncio.fixture
async def start_session() -> AsyncIterator[Callable[[str], Awaitable[ResyncHarness]]]:
    async with session_pool() as pool:

        async def start(url: str) -> ResyncHarness:
            config = PhoenixVenue(
                url=url,
                authority=ALICE,
                symbols=["SOL"],
                reconnect=Backoff(initial=Duration(1.0), max=Duration(8.0)),
                open_timeout=Duration(TIMEOUT),
            )
            h = ResyncHarness(VirtualClock(START))
            codec = PhoenixCodec(V, {ALICE: "perp-desk"}, config)
            session = PhoenixSession(V, config, codec, h.sink, h.clock, rng=random.Random(SEED), sleep=h.sleep)
            pool.start(h, session, "phoenix-resync-session")
            return h

        yield start


async def seed(sim: PhoenixSimulator) -> None:
    await sim.set_position(ALICE, "SOL", 1234, 15_025)  # primary subaccount: sequence 1 -> 2
    await sim.set_position(ALICE, "ETH", -5000, 31_005)  # 2 -> 3


SEEDED = (
    ReportedPosition("ETH", Decimal("-5.000"), Decimal("3100.5")),
    ReportedPosition("SOL", Decimal("12.34"), Decimal("150.25")),
)


@pytest.mark.integration
@pytest.mark.asyncio
async def test_session_trader_gap_resubscribes_and_the_fresh_snapshot_resyncs(
    sim: RecordingSimulator, start_session: Callable[[str], Awaitable[ResyncHarness]]
) -> None:
    await seed(sim)
    h = await start_session(sim.url)
    # First connect: the trader snapshot waits for the exchange's units; no resync anywhere.
    await h.connected(sim.url, [], [sim_report(SEEDED, complete=True)])
    assert sim.received == [{"type": "subscribe", "subscription": s} for s in CONNECT_SUBS]

    await sim.skip_trader_sequence(ALICE)  # the next delta jumps 3 -> 5
    await sim.set_position(ALICE, "SOL", 1500, 15_050)
    gap_at = len(h.seen)
    assert await h.frame_events() == [SequenceGap(V, "traderState:0", 4, 5)]
    unsubscribed = await h.next_frame()  # the simulator answered the resubscribe the codec queued
    assert isinstance(unsubscribed.frame, str)
    assert json.loads(unsubscribed.frame)["status"] == "unsubscribed"
    assert sim.received[len(CONNECT_SUBS) :] == [
        {"type": "unsubscribe", "subscription": TRADER_SUB},
        {"type": "subscribe", "subscription": TRADER_SUB},
    ]
    assert await h.frame_events() == [Subscribed(V, "traderState")]
    fresh = (SEEDED[0], ReportedPosition("SOL", Decimal("15.00"), Decimal("150.5")))
    assert await h.snapshot() == [sim_report(fresh, complete=True), StreamResynced(V, "traderState:0")]
    assert [item.events for item in h.seen[gap_at:]] == [
        [SequenceGap(V, "traderState:0", 4, 5)],
        [],
        [Subscribed(V, "traderState")],
        [sim_report(fresh, complete=True), StreamResynced(V, "traderState:0")],
    ]

    # Deltas apply again on the snapshot's sequence; nothing more resyncs.
    await sim.set_position(ALICE, "SOL", 100, 15_050)
    assert await h.frame_events() == [
        sim_report((ReportedPosition("SOL", Decimal("1.00"), Decimal("150.5")),), complete=False, sequence=6)
    ]
    assert h.resynced() == ["traderState:0"]
    assert h.sleep.delays == []  # a resubscribe, not a reconnect
    assert sim.connections == 1


@pytest.mark.integration
@pytest.mark.asyncio
async def test_session_exchange_gap_resyncs_after_the_snapshots_status_change(
    sim: RecordingSimulator, start_session: Callable[[str], Awaitable[ResyncHarness]]
) -> None:
    h = await start_session(sim.url)
    await h.connected(sim.url, [sim_report((), complete=True)], [])

    await sim.skip_exchange_sequence()
    await sim.set_market_status("SOL", "paused")  # EXCHANGE_SEQUENCE + 1 is missing
    assert await h.frame_events() == [SequenceGap(V, "exchange", EXCHANGE_SEQUENCE + 1, EXCHANGE_SEQUENCE + 2)]
    assert await h.frame_events() == []  # subscriptionStatus: unsubscribed
    assert sim.received[len(CONNECT_SUBS) :] == [
        {"type": "unsubscribe", "subscription": EXCHANGE_SUB},
        {"type": "subscribe", "subscription": EXCHANGE_SUB},
    ]
    assert await h.frame_events() == [Subscribed(V, "exchange")]
    # The status change the gap hid comes with the snapshot, then the stream is declared rebuilt.
    assert await h.snapshot() == [MarketStatusChanged(V, "SOL", "paused", False), StreamResynced(V, "exchange")]

    await sim.set_market_status("SOL", "active")
    assert await h.frame_events() == [MarketStatusChanged(V, "SOL", "active", True)]
    assert h.resynced() == ["exchange"]
    assert h.sleep.delays == []


@pytest.mark.integration
@pytest.mark.asyncio
async def test_session_reconnect_during_gaps_resyncs_with_the_reconnect_snapshots(
    sim: RecordingSimulator, start_session: Callable[[str], Awaitable[ResyncHarness]]
) -> None:
    await seed(sim)
    h = await start_session(sim.url)
    await h.connected(sim.url, [], [sim_report(SEEDED, complete=True)])

    # The simulator stops reading: the resubscribes the gaps trigger are never answered.
    sim.set_answer_pings(False)
    await sim.skip_trader_sequence(ALICE)
    await sim.close_position(ALICE, "ETH")  # 3 -> 5
    assert await h.frame_events() == [SequenceGap(V, "traderState:0", 4, 5)]
    await sim.skip_exchange_sequence(3)
    await sim.set_market_status("ETH", "paused")
    assert await h.frame_events() == [SequenceGap(V, "exchange", EXCHANGE_SEQUENCE + 1, EXCHANGE_SEQUENCE + 3)]

    h.sleep.hold()
    await sim.disconnect_all(1006)  # drops the link with the resubscribes still unread
    assert await h.next_report() == FeedDown(V, sim.url.removesuffix("/v1/ws"), "connection closed (code 1006)")
    await h.sleep.wait_for_sleeps(1)
    sim.set_answer_pings(True)
    h.sleep.release()

    # The reconnect's snapshots end both gaps, each after its own events.
    await h.connected(
        sim.url,
        [sim_report((SEEDED[1],), complete=True), StreamResynced(V, "traderState:0")],
        [MarketStatusChanged(V, "ETH", "paused", False), StreamResynced(V, "exchange")],
    )
    assert [m["subscription"] for m in sim.subscriptions] == CONNECT_SUBS * 2  # no resubscribe was answered
    assert h.resynced() == ["traderState:0", "exchange"]

    # A later ordinary reconnect, with no gap outstanding, resyncs nothing.
    h.sleep.hold()
    await sim.disconnect_all(1011)
    assert isinstance(await h.next_report(), FeedDown)
    await h.sleep.wait_for_sleeps(2)
    h.sleep.release()
    await h.connected(sim.url, [sim_report((SEEDED[1],), complete=True)], [])
    assert h.resynced() == ["traderState:0", "exchange"]
