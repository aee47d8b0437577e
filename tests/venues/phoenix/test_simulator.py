"""Tests for the Phoenix perpetuals WebSocket simulator (protocols.md §5)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from riskmon.venues.phoenix.sim_frames import (
    base_lots_from_units,
    base_units,
    decimal_str,
    price_usd,
    quote_lots,
    quote_usd,
)
from riskmon.venues.phoenix.simulator import MalformedKind, PhoenixSimulator, SimMarket
from tests.venues.session_harness import started
from tests.venues.sim_client import recv_json

TIMEOUT = 5.0
ALICE = "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"
BOB = "HN7cABqLq46Es1jh92dQQisAq662SmxELLLsHHe4YWrH"
SOL = SimMarket("SOL", base_lots_decimals=2, tick_size=100)  # one tick is $0.01
ETH = SimMarket("ETH", base_lots_decimals=3, tick_size=100, taker_fee_micro=250)
BTC = SimMarket("BTC", base_lots_decimals=4, tick_size=100)
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkZXNrIn0.c2lnbmF0dXJl"
POSITION_KEYS = [
    "positionSequenceNumber",
    "basePositionLots",
    "entryPriceTicks",
    "entryPriceUsd",
    "virtualQuotePositionLots",
    "unsettledFundingQuoteLots",
    "accumulatedFundingQuoteLots",
]
DELTA_KEYS = [
    "subaccountIndex",
    "sequence",
    "collateral",
    "spotCollaterals",
    "positions",
    "orders",
    "splines",
    "triggers",
    "tradeHistory",
    "orderHistory",
]


def sub(channel: str, **fields: Any) -> dict[str, Any]:
    return {"channel": channel, **fields}


def trader_sub(authority: str = ALICE, pda: int = 0) -> dict[str, Any]:
    return sub("traderState", authority=authority, traderPdaIndex=pda)


EXCHANGE_SUB = sub("exchange", encoding="json")


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[PhoenixSimulator]:
    async with started(PhoenixSimulator(markets=[SOL, ETH, BTC], authorities=[ALICE, BOB])) as server:
        yield server


async def send(ws: ClientConnection, kind: str, subscription: object, *, binary: bool = True) -> None:
    text = json.dumps({"type": kind, "subscription": subscription})
    # The SDK sends control frames as binary (§5.1); text must work too.
    await ws.send(text.encode() if binary else text)


async def subscribe(ws: ClientConnection, subscription: dict[str, Any]) -> dict[str, Any] | None:
    """Subscribe and check the confirmation; return the snapshot for stateful channels."""
    await send(ws, "subscribe", subscription)
    assert await recv_json(ws) == {"type": "subscriptionConfirmed", "subscription": subscription}
    if subscription["channel"] in ("traderState", "exchange"):
        snapshot = await recv_json(ws)
        assert snapshot["messageType"] == "snapshot"
        return snapshot
    return None


def one_delta(frame: dict[str, Any]) -> dict[str, Any]:
    assert frame["channel"] == "traderState"
    assert frame["messageType"] == "delta"
    assert len(frame["deltas"]) == 1
    delta = frame["deltas"][0]
    assert isinstance(delta, dict)
    assert list(delta) == DELTA_KEYS
    return delta


# ---- §5.5 units ------------------------------------------------------------------------


def test_unit_conversions_match_protocol_examples() -> None:
    # ETH: baseLotsDecimals 3, tick 100 quote lots per base lot => one tick is $0.1.
    assert price_usd(1, 100, 3) == Decimal("0.1")
    assert price_usd(35_000, 100, 3) == Decimal("3500")
    # BTC-like 4/100: 0.1234 BTC = 1234 lots.
    assert base_lots_from_units("0.1234", 4) == 1234
    assert base_units(1234, 4) == Decimal("0.1234")
    with pytest.raises(ValueError, match="whole number of lots"):
        base_lots_from_units("0.12345", 4)
    # Negative decimals: one lot is 100 base units.
    assert base_units(5, -2) == Decimal("500")
    assert price_usd(3, 10, -2) == Decimal("0.0000003")
    assert quote_lots(1234, 650_000, 100) == 80_210_000_000
    assert quote_usd(80_210_000_000) == Decimal("80210")
    assert [decimal_str(Decimal(x)) for x in ("3.5E+3", "0.10", "-0", "-1.250")] == ["3500", "0.1", "0", "-1.25"]


def test_market_validation() -> None:
    with pytest.raises(ValueError, match="i8"):
        SimMarket("X", base_lots_decimals=200, tick_size=1)
    with pytest.raises(ValueError, match="tick size"):
        SimMarket("X", base_lots_decimals=0, tick_size=0)
    with pytest.raises(ValueError, match="duplicate"):
        PhoenixSimulator(markets=[SOL, SOL], authorities=[ALICE])
    with pytest.raises(ValueError, match="loopback"):
        PhoenixSimulator(markets=[SOL], authorities=[ALICE], host="0.0.0.0")


# ---- control frames ----------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.asyncio
async def test_subscribe_in_text_and_binary_frames(sim: PhoenixSimulator) -> None:
    assert sim.url.endswith("/v1/ws")
    async with connect(sim.url, compression=None) as ws:
        await sim.wait_for_connections(1)
        assert sim.connections == 1
        for binary, subscription in ((False, sub("allMids")), (True, sub("market", symbol="SOL"))):
            await send(ws, "subscribe", subscription, binary=binary)
            assert await recv_json(ws) == {"type": "subscriptionConfirmed", "subscription": subscription}
        await sim.wait_for_subscriptions(2)
        assert [m["subscription"] for m in sim.subscriptions] == [sub("allMids"), sub("market", symbol="SOL")]
        assert all(m["type"] == "subscribe" for m in sim.subscriptions)


@pytest.mark.integration
@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("subscription", "code"),
    [
        (sub("market", symbol="DOGE"), "invalid_subscription"),
        (sub("trades"), "invalid_subscription"),
        (sub("traderState", authority="Unknown1111", traderPdaIndex=0), "invalid_subscription"),
        (sub("traderState", authority=ALICE), "invalid_subscription"),
        (sub("traderState", authority=ALICE, traderPdaIndex=256), "invalid_subscription"),
        (sub("orderbook", symbol="SOL", bypassExecutionBand="yes"), "invalid_subscription"),
        (sub("exchange"), "unsupported_encoding"),
        (sub("exchange", encoding="base64+zstd"), "unsupported_encoding"),
        (sub("candles", symbol="SOL", timeframe="1m"), "unsupported_channel"),
    ],
)
async def test_invalid_subscriptions_get_subscription_error(
    sim: PhoenixSimulator, subscription: dict[str, Any], code: str
) -> None:
    async with connect(sim.url) as ws:
        await send(ws, "subscribe", subscription)
        reply = await recv_json(ws)
        assert list(reply) == ["type", "subscription", "code", "message"]
        assert reply["type"] == "subscriptionError"
        assert reply["subscription"] == subscription
        assert reply["code"] == code
        assert isinstance(reply["message"], str)
        assert reply["message"]
        await sim.wait_for_subscriptions(1)
        assert sim.subscriptions[0]["subscription"] == subscription


@pytest.mark.integration
@pytest.mark.asyncio
async def test_unknown_channel_and_garbage_get_channel_error(sim: PhoenixSimulator) -> None:
    async with connect(sim.url) as ws:
        await send(ws, "subscribe", sub("weather", symbol="SOL"))
        assert await recv_json(ws) == {"channel": "error", "code": 400, "error": "unknown channel"}
        await ws.send(b"{not json")
        assert await recv_json(ws) == {"channel": "error", "code": 400, "error": "invalid json"}
        await ws.send("still not json")
        assert await recv_json(ws) == {"channel": "error", "code": 400, "error": "invalid json"}
        await ws.send(b"\xff\xfe")
        assert (await recv_json(ws))["error"] == "invalid json"
        await ws.send(json.dumps({"type": "ping"}))
        assert await recv_json(ws) == {"channel": "error", "code": 400, "error": "invalid message"}
        await ws.send(json.dumps([1, 2]))
        assert (await recv_json(ws))["error"] == "invalid message"
        # The socket survives every bad frame.
        assert await subscribe(ws, sub("allMids")) is None


@pytest.mark.integration
@pytest.mark.asyncio
async def test_wrong_path_is_404(sim: PhoenixSimulator) -> None:
    with pytest.raises(InvalidStatus) as rejected:
        async with connect(sim.url.replace("/v1/ws", "/v2/ws")):
            pass
    assert rejected.value.response.status_code == 404


# ---- traderState -----------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.asyncio
async def test_trader_snapshot_shape(sim: PhoenixSimulator) -> None:
    await sim.set_collateral(ALICE, "5000000000")
    await sim.set_position(ALICE, "ETH", 1500, 35_000)
    osn = await sim.set_order(ALICE, "ETH", side="bid", price_ticks=34_000, size_lots=250)
    async with connect(sim.url) as ws:
        snap = await subscribe(ws, trader_sub())
    assert snap is not None
    assert list(snap)[:5] == ["channel", "authority", "traderPdaIndex", "slot", "messageType"]
    assert (snap["channel"], snap["authority"], snap["traderPdaIndex"]) == ("traderState", ALICE, 0)
    assert isinstance(snap["slot"], int)
    assert isinstance(snap["version"], int)
    caps = snap["capabilities"]
    assert (caps["flags"], caps["state"]) == (0, "active")
    assert caps["capabilities"]["withdrawCollateral"] == {"immediate": True, "viaColdActivation": True}
    assert len(caps["capabilities"]) == 6
    assert snap["makerFeeOverrideMultiplier"] == snap["takerFeeOverrideMultiplier"] == 1.0
    [primary] = snap["subaccounts"]
    assert list(primary) == [
        "subaccountIndex",
        "sequence",
        "collateral",
        "spotCollaterals",
        "positions",
        "orders",
        "splines",
        "triggers",
    ]
    assert primary["subaccountIndex"] == 0
    assert primary["sequence"] == 4  # one deposit before, then three deltas
    assert primary["collateral"] == "5000000000"
    [pos] = primary["positions"]
    assert pos["symbol"] == "ETH"
    assert list(pos["position"]) == POSITION_KEYS
    assert pos["position"]["basePositionLots"] == "1500"
    assert pos["position"]["entryPriceUsd"] == "3500"
    [orders] = primary["orders"]
    assert orders["symbol"] == "ETH"
    [order] = orders["orders"]
    assert "change" not in order
    assert order["orderSequenceNumber"] == str(osn)
    assert osn >= 2**63  # bids carry the top bit
    assert (order["side"], order["priceTicks"], order["priceUsd"], order["sizeRemainingLots"]) == (
        "bid",
        "34000",
        "3400",
        "250",
    )
    assert primary["splines"] == primary["triggers"] == primary["spotCollaterals"] == []


@pytest.mark.integration
@pytest.mark.asyncio
async def test_trader_deltas_are_contiguous_and_typed(sim: PhoenixSimulator) -> None:
    async with connect(sim.url) as ws:
        snap = await subscribe(ws, trader_sub())
        assert snap is not None
        seq = snap["subaccounts"][0]["sequence"]

        # BTC-like 4/100: one tick is $1; -1234 lots is a 0.1234 BTC short.
        await sim.set_position(ALICE, "BTC", -1234, 65_000, trade={"liquidity": "maker"})
        frame = await recv_json(ws)
        assert frame["slot"] > snap["slot"]
        assert list(frame) == ["channel", "authority", "traderPdaIndex", "slot", "messageType", "deltas"]
        delta = one_delta(frame)
        assert delta["sequence"] == seq + 1
        [row] = delta["positions"]
        assert (row["symbol"], row["change"]) == ("BTC", "updated")
        pos = row["position"]
        assert list(pos) == POSITION_KEYS
        assert all(isinstance(v, str) for v in pos.values())
        assert pos["basePositionLots"] == "-1234"
        assert pos["entryPriceUsd"] == "65000"
        # Short 0.1234 BTC at $65,000 received $8,021 = 8_021_000_000 quote lots.
        assert pos["virtualQuotePositionLots"] == "8021000000"
        [fill] = delta["tradeHistory"]
        assert fill["market"] == "BTC-PERP"
        assert fill["liquidity"] == "maker"  # override wins
        assert (fill["baseQtyBefore"], fill["baseQtyAfter"], fill["size"]) == ("0", "-0.1234", "0.1234")
        assert fill["price"] == pos["entryPriceUsd"]
        assert uuid.UUID(fill["fillId"]).version == 3
        assert isinstance(fill["timestamp"], int)
        assert abs(fill["timestamp"] - time.time()) < 60

        await sim.set_collateral(ALICE, "42")
        delta = one_delta(await recv_json(ws))
        assert (delta["sequence"], delta["collateral"], delta["positions"]) == (seq + 2, "42", [])

        osn = await sim.set_order(ALICE, "SOL", side="ask", price_ticks=15_025, size_lots=10, reduce_only=True)
        assert osn < 2**63
        delta = one_delta(await recv_json(ws))
        assert delta["sequence"] == seq + 3
        [group] = delta["orders"]
        [order] = group["orders"]
        assert (group["symbol"], order["change"], order["orderSequenceNumber"]) == ("SOL", "updated", str(osn))
        assert (order["priceUsd"], order["reduceOnly"], order["isStopLoss"]) == ("150.25", True, False)

        await sim.close_order(ALICE, "SOL", osn)
        delta = one_delta(await recv_json(ws))
        [order] = delta["orders"][0]["orders"]
        assert (delta["sequence"], order["change"], order["status"]) == (seq + 4, "closed", "cancelled")

        await sim.close_position(ALICE, "BTC")
        delta = one_delta(await recv_json(ws))
        assert delta["sequence"] == seq + 5
        assert delta["positions"] == [{"symbol": "BTC", "change": "closed"}]

        # An isolated subaccount numbers its own sequence from 1.
        await sim.set_position(ALICE, "SOL", 7, 15_000, subaccount=3)
        delta = one_delta(await recv_json(ws))
        assert (delta["subaccountIndex"], delta["sequence"]) == (3, 1)

    with pytest.raises(ValueError, match="no BTC position"):
        await sim.close_position(ALICE, "BTC")
    with pytest.raises(ValueError, match="unknown authority"):
        await sim.set_collateral("nobody", "1")
    with pytest.raises(ValueError, match="u64"):
        await sim.set_collateral(ALICE, "1.5")


@pytest.mark.integration
@pytest.mark.asyncio
async def test_trader_frames_reach_only_that_traders_subscribers(sim: PhoenixSimulator) -> None:
    async with connect(sim.url) as a, connect(sim.url) as b:
        await subscribe(a, trader_sub(ALICE))
        await subscribe(b, trader_sub(BOB))
        await sim.set_position(ALICE, "SOL", 5, 15_000)
        await sim.set_position(BOB, "SOL", -9, 15_000)
        assert (await recv_json(a))["authority"] == ALICE
        bob = await recv_json(b)
        assert bob["authority"] == BOB
        assert one_delta(bob)["positions"][0]["position"]["basePositionLots"] == "-9"


@pytest.mark.integration
@pytest.mark.asyncio
async def test_skip_trader_sequence_then_resubscribe_gives_fresh_snapshot(sim: PhoenixSimulator) -> None:
    async with connect(sim.url) as ws:
        snap = await subscribe(ws, trader_sub())
        assert snap is not None
        seq = snap["subaccounts"][0]["sequence"]
        await sim.skip_trader_sequence(ALICE, 3)
        await sim.set_position(ALICE, "SOL", 5, 15_000)
        assert one_delta(await recv_json(ws))["sequence"] == seq + 3
        await sim.set_position(ALICE, "SOL", 6, 15_000)
        assert one_delta(await recv_json(ws))["sequence"] == seq + 4  # back to +1

        # Recovery: subscribing again yields a snapshot of the current state.
        fresh = await subscribe(ws, trader_sub())
        assert fresh is not None
        assert fresh["subaccounts"][0]["sequence"] == seq + 4
        assert fresh["subaccounts"][0]["positions"][0]["position"]["basePositionLots"] == "6"
        assert fresh["slot"] > snap["slot"]
    with pytest.raises(ValueError, match="at least 2"):
        await sim.skip_trader_sequence(ALICE, 1)


@pytest.mark.integration
@pytest.mark.asyncio
async def test_stale_trader_delta_does_not_change_state(sim: PhoenixSimulator) -> None:
    await sim.set_collateral(ALICE, "1000")
    async with connect(sim.url) as ws:
        snap = await subscribe(ws, trader_sub())
        assert snap is not None
        seq = snap["subaccounts"][0]["sequence"]
        await sim.send_stale_trader_delta(ALICE)
        stale = one_delta(await recv_json(ws))
        assert stale["sequence"] == seq - 1
        assert stale["collateral"] == "0"
        assert stale["positions"][0]["position"]["basePositionLots"] == "-777"

        await sim.set_collateral(ALICE, "2000")
        assert one_delta(await recv_json(ws))["sequence"] == seq + 1  # the stale one consumed nothing
    after = sim.trader_snapshot(ALICE)["subaccounts"][0]
    assert (after["collateral"], after["positions"]) == ("2000", [])


@pytest.mark.integration
@pytest.mark.asyncio
async def test_unsubscribe_stops_delivery(sim: PhoenixSimulator) -> None:
    async with connect(sim.url) as ws:
        await subscribe(ws, trader_sub())
        await subscribe(ws, sub("allMids"))
        await send(ws, "unsubscribe", trader_sub(), binary=False)
        reply = await recv_json(ws)
        assert reply == {
            "channel": "subscriptionStatus",
            "status": "unsubscribed",
            "clientId": reply["clientId"],
            "subscription": trader_sub(),
        }
        assert reply["clientId"].startswith("client-")
        await sim.set_position(ALICE, "SOL", 5, 15_000)
        await sim.push_mids({"SOL": 150.0})
        assert (await recv_json(ws))["channel"] == "allMids"  # nothing from traderState before it


# ---- exchange ----------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.asyncio
async def test_exchange_snapshot_then_deltas_for_every_op(sim: PhoenixSimulator) -> None:
    async with connect(sim.url) as ws:
        snap = await subscribe(ws, EXCHANGE_SUB)
        assert snap is not None
        assert list(snap) == ["channel", "messageType", "sequenceNumber", "slot", "slotIndex", "exchange"]
        assert isinstance(snap["sequenceNumber"], str)
        assert isinstance(snap["slot"], int)
        assert snap["exchange"]["status"] == "active"
        assert snap["exchange"]["markets"][1] == {
            "symbol": "ETH",
            "marketStatus": "active",
            "baseLotsDecimals": 3,
            "tickSizeInQuoteLotsPerBaseLot": "100",
            "takerFeeMicro": 250,
            "makerFeeMicro": 0,
        }
        seq = int(snap["sequenceNumber"])
        doge = SimMarket("DOGE", base_lots_decimals=-2, tick_size=5, status="postOnly")
        calls: list[tuple[Callable[[], Awaitable[object]], dict[str, Any]]] = [
            (
                lambda: sim.set_market_status("SOL", "paused"),
                {"kind": "marketStatusChanged", "symbol": "SOL", "status": "paused"},
            ),
            (
                lambda: sim.close_market("SOL", "148.25"),
                {"kind": "marketClosed", "symbol": "SOL", "finalized_mark_price": "148.25"},
            ),
            (lambda: sim.tombstone_market("SOL"), {"kind": "marketTombstoned", "symbol": "SOL"}),
            (
                lambda: sim.add_market(doge),
                {
                    "kind": "marketAdded",
                    "market": {
                        "symbol": "DOGE",
                        "marketStatus": "postOnly",
                        "baseLotsDecimals": -2,
                        "tickSizeInQuoteLotsPerBaseLot": "5",
                        "takerFeeMicro": 200,
                        "makerFeeMicro": 0,
                    },
                },
            ),
            (
                lambda: sim.update_market_parameters("ETH", tick_size=50, taker_fee_micro=250),
                {"kind": "marketParameterUpdated", "symbol": "ETH", "tickSizeInQuoteLotsPerBaseLot": "50"},
            ),
            (lambda: sim.set_exchange_status("paused"), {"kind": "exchangeStatusChanged", "status": "paused"}),
        ]
        last_slot = snap["slot"]
        for n, (call, op) in enumerate(calls, start=1):
            await call()
            frame = await recv_json(ws)
            assert list(frame) == ["channel", "messageType", "sequenceNumber", "slot", "slotIndex", "ops"]
            assert (frame["channel"], frame["messageType"]) == ("exchange", "delta")
            assert frame["sequenceNumber"] == str(seq + n)
            assert frame["slot"] > last_slot
            last_slot = frame["slot"]
            assert frame["ops"] == [op]

        fresh = await subscribe(ws, EXCHANGE_SUB)
        assert fresh is not None
        assert fresh["sequenceNumber"] == str(seq + len(calls))
        assert fresh["exchange"]["status"] == "paused"
        statuses = {m["symbol"]: m["marketStatus"] for m in fresh["exchange"]["markets"]}
        assert statuses == {"SOL": "tombstoned", "ETH": "active", "BTC": "active", "DOGE": "postOnly"}

        # A tombstoned market refuses subscriptions; a newly added one accepts them.
        await send(ws, "subscribe", sub("market", symbol="SOL"))
        assert (await recv_json(ws))["code"] == "invalid_subscription"
        assert await subscribe(ws, sub("market", symbol="DOGE")) is None

    with pytest.raises(ValueError, match="status"):
        await sim.set_market_status("ETH", "sleepy")
    with pytest.raises(ValueError, match="already exists"):
        await sim.add_market(doge)


@pytest.mark.integration
@pytest.mark.asyncio
async def test_exchange_sequence_gap_and_recovery(sim: PhoenixSimulator) -> None:
    async with connect(sim.url) as ws:
        snap = await subscribe(ws, EXCHANGE_SUB)
        assert snap is not None
        seq = int(snap["sequenceNumber"])
        await sim.skip_exchange_sequence()
        await sim.set_market_status("BTC", "postOnly")
        assert (await recv_json(ws))["sequenceNumber"] == str(seq + 2)
        await sim.set_market_status("BTC", "active")
        assert (await recv_json(ws))["sequenceNumber"] == str(seq + 3)
        fresh = await subscribe(ws, EXCHANGE_SUB)
        assert fresh is not None
        assert fresh["sequenceNumber"] == str(seq + 3)


# ---- public channels -----------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.asyncio
async def test_public_channels_reach_only_their_subscribers(sim: PhoenixSimulator) -> None:
    async with connect(sim.url) as a, connect(sim.url) as b:
        for s in (
            sub("market", symbol="SOL"),
            sub("allMids"),
            sub("trades", symbol="ETH"),
            sub("orderbook", symbol="SOL"),
            sub("fundingRate", symbol="SOL"),
        ):
            await subscribe(a, s)
        await subscribe(b, sub("market", symbol="ETH"))
        await subscribe(b, sub("orderbook", symbol="SOL", bypassExecutionBand=True))

        await sim.push_market("SOL", 150.1, open_interest=1000.0, funding=0.0000125, prev_day_px=148.7)
        assert await recv_json(a) == {
            "channel": "market",
            "symbol": "SOL",
            "openInterest": 1000.0,
            "markPx": 150.1,
            "midPx": 150.1,
            "oraclePx": 150.1,
            "prevDayPx": 148.7,
            "dayNtlVlm": 0.0,
            "funding": 0.0000125,
        }
        mids = await sim.push_mids({"SOL": 150.25, "ETH": 3500.5})
        assert await recv_json(a) == mids
        assert list(mids) == ["channel", "mids", "slot", "slotIndex"]
        assert mids["mids"] == {"SOL": 150.25, "ETH": 3500.5}

        await sim.push_trade("SOL", side="bid", base_lots=1, price_ticks=1)  # nobody subscribed
        first = await sim.push_trade("ETH", side="ask", base_lots=1500, price_ticks=35_000, num_fills=2)
        second = await sim.push_trade("ETH", side="bid", base_lots=1, price_ticks=35_000, timestamp=1775578550)
        got = await recv_json(a)
        assert got == first
        [trade] = got["trades"]
        assert trade["quoteLotsFilled"] == str(1500 * 35_000 * 100)
        assert trade["feeInQuoteLots"] == str(1500 * 35_000 * 100 * 250 // 1_000_000)
        assert (trade["baseAmount"], trade["quoteAmount"]) == (1.5, 5250.0)
        assert (trade["side"], trade["numFills"], trade["symbol"]) == ("ask", 2, "ETH")
        for key in ("slot", "timestamp", "tradeSequenceNumber", "baseLotsFilled", "feeInQuoteLots"):
            assert isinstance(trade[key], str)
        later = (await recv_json(a))["trades"][0]
        assert later["timestamp"] == "1775578550"
        assert int(later["tradeSequenceNumber"]) == int(trade["tradeSequenceNumber"]) + 1
        assert second["trades"][0] == later

        book = await sim.push_orderbook("SOL", [(150.25, 100.0), (150.2, 5.0)], [(150.3, 150.0)])
        assert await recv_json(a) == book
        assert book["orderbook"] == {"bids": [[150.25, 100.0], [150.2, 5.0]], "asks": [[150.3, 150.0]], "mid": 150.275}
        assert book["bypassExecutionBand"] is False
        await sim.push_funding("SOL", -0.00002)
        assert await recv_json(a) == {"channel": "fundingRate", "symbol": "SOL", "funding": -0.00002}

        # b only ever got its own book variant, then the ETH market frame.
        bypassed = await recv_json(b)
        assert (bypassed["channel"], bypassed["bypassExecutionBand"]) == ("orderbook", True)
        await sim.push_market("ETH", 3500.0, cumulative_funding="123")
        eth = await recv_json(b)
        assert (eth["symbol"], eth["cumulativeFundingQuoteLotsPerBaseLot"]) == ("ETH", "123")
        empty = await sim.push_orderbook("ETH", [], [(3501.0, 1.0)])
        assert empty["orderbook"]["mid"] is None

        # a got nothing for ETH's market frame either: its next frame is this marker.
        await sim.push_funding("SOL", 0.0)
        assert (await recv_json(a))["channel"] == "fundingRate"
    with pytest.raises(ValueError, match="unknown market"):
        await sim.push_mids({"DOGE": 1.0})


# ---- auth ----------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def jwt_sim() -> AsyncIterator[PhoenixSimulator]:
    async with started(PhoenixSimulator(markets=[SOL], authorities=[ALICE], jwt=JWT)) as server:
        yield server


def auth(token: str, *, header: bool = True, protocol: bool = True) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if header:
        kwargs["additional_headers"] = {"Authorization": f"Bearer {token}"}
    if protocol:
        kwargs["subprotocols"] = [Subprotocol("phoenix-jwt"), Subprotocol(token)]
    return kwargs


@pytest.mark.integration
@pytest.mark.asyncio
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        auth(JWT, header=False),
        auth(JWT, protocol=False),
        auth("eyJ.wrong.token"),
        {**auth(JWT, protocol=False), "subprotocols": ["phoenix-jwt"]},
    ],
)
async def test_jwt_handshake_rejected_with_401(jwt_sim: PhoenixSimulator, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidStatus) as rejected:
        async with connect(jwt_sim.url, **kwargs):
            pass
    assert rejected.value.response.status_code == 401


@pytest.mark.integration
@pytest.mark.asyncio
async def test_jwt_accept_expire_and_refresh(jwt_sim: PhoenixSimulator) -> None:
    async with connect(jwt_sim.url, **auth(JWT)) as ws:
        assert ws.subprotocol == "phoenix-jwt"
        await subscribe(ws, trader_sub())
        await jwt_sim.expire_token()
        with pytest.raises(ConnectionClosed) as closed:
            await recv_json(ws)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "access_token_expired")
    assert jwt_sim.connections == 0

    with pytest.raises(InvalidStatus) as rejected:
        async with connect(jwt_sim.url, **auth(JWT)):
            pass
    assert rejected.value.response.status_code == 401

    fresh = JWT + "2"
    jwt_sim.set_jwt(fresh)
    async with connect(jwt_sim.url, **auth(fresh)) as ws:
        assert await subscribe(ws, trader_sub()) is not None


@pytest.mark.integration
@pytest.mark.asyncio
async def test_expire_token_spares_unauthenticated_sockets(sim: PhoenixSimulator) -> None:
    async with connect(sim.url, subprotocols=[Subprotocol("phoenix-jwt")]) as ws:
        assert ws.subprotocol == "phoenix-jwt"
        await sim.expire_token()
        assert await subscribe(ws, sub("allMids")) is None


# ---- faults --------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.asyncio
@pytest.mark.parametrize(
    "kind",
    ["not_json", "unknown_channel_message", "trader_missing_sequence", "position_bad_lots", "exchange_bad_sequence"],
)
async def test_send_malformed(sim: PhoenixSimulator, kind: MalformedKind) -> None:
    before = sim.trader_snapshot(ALICE)
    exchange_before = sim.exchange_snapshot()
    async with connect(sim.url) as ws:
        await sim.wait_for_connections(1)
        sent = await sim.send_malformed(kind)
        async with asyncio.timeout(TIMEOUT):
            text = await ws.recv()
    assert text == sent
    assert isinstance(text, str)
    assert sim.trader_snapshot(ALICE) == before
    assert sim.exchange_snapshot() == exchange_before
    if kind == "not_json":
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
        return
    frame = json.loads(text)
    if kind == "unknown_channel_message":
        assert frame["channel"] not in ("traderState", "exchange", "market", "trades", "orderbook", "allMids")
    elif kind == "trader_missing_sequence":
        delta = frame["deltas"][0]
        assert "sequence" not in delta
        assert delta["subaccountIndex"] == 0
    elif kind == "position_bad_lots":
        delta = frame["deltas"][0]
        assert delta["sequence"] == before["subaccounts"][0]["sequence"] + 1
        assert delta["positions"][0]["position"]["basePositionLots"] == "12x"
    else:
        assert frame["messageType"] == "delta"
        with pytest.raises(ValueError, match="invalid literal"):
            int(frame["sequenceNumber"])


@pytest.mark.integration
@pytest.mark.asyncio
async def test_send_raw_text_and_binary(sim: PhoenixSimulator) -> None:
    async with connect(sim.url) as ws:
        await sim.wait_for_connections(1)
        await sim.send_raw('{"hello":"world"}')
        await sim.send_raw(b'{"bin":1}')
        assert await recv_json(ws) == {"hello": "world"}
        async with asyncio.timeout(TIMEOUT):
            assert await ws.recv() == b'{"bin":1}'


@pytest.mark.integration
@pytest.mark.asyncio
@pytest.mark.parametrize("code", [1011, 4403])
async def test_disconnect_all(sim: PhoenixSimulator, code: int) -> None:
    async with connect(sim.url) as a, connect(sim.url) as b:
        await sim.wait_for_connections(2)
        await sim.disconnect_all(code)
        assert sim.connections == 0
        for ws in (a, b):
            with pytest.raises(ConnectionClosed) as closed:
                await recv_json(ws)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == code
    async with connect(sim.url) as ws:  # the server still accepts
        assert await subscribe(ws, sub("allMids")) is None


@pytest.mark.integration
@pytest.mark.asyncio
async def test_disconnect_all_1006_drops_tcp(sim: PhoenixSimulator) -> None:
    async with connect(sim.url) as ws:
        await sim.wait_for_connections(1)
        await sim.disconnect_all(1006)
        with pytest.raises(ConnectionClosed) as closed:
            await recv_json(ws)
        assert closed.value.rcvd is None  # no close frame: an abnormal closure


@pytest.mark.integration
@pytest.mark.asyncio
async def test_unanswered_pings_time_the_client_out(sim: PhoenixSimulator) -> None:
    async with connect(sim.url, ping_interval=None) as ws:
        await sim.wait_for_connections(1)
        assert await sim.ping_clients() == 1
        sim.set_answer_pings(False)
        pong = asyncio.ensure_future(await ws.ping())
        # Proving an absence needs a bounded wait; asyncio.wait does not cancel the pong.
        done, _ = await asyncio.wait({pong}, timeout=0.2)
        assert not done
        assert await sim.ping_clients(timeout=0.05) == 0  # nor are the client's pongs read
        sim.set_answer_pings(True)
        async with asyncio.timeout(TIMEOUT):
            await pong  # the ping was buffered, not lost
        assert await subscribe(ws, sub("allMids")) is None

    # The client's own keepalive gives up on a deaf server.
    sim.set_answer_pings(False)
    async with connect(sim.url, ping_interval=0.05, ping_timeout=0.1, close_timeout=0.1) as ws:
        async with asyncio.timeout(TIMEOUT):
            await ws.wait_closed()
        assert ws.protocol.close_sent is not None
        assert (ws.protocol.close_sent.code, ws.protocol.close_sent.reason) == (1011, "keepalive ping timeout")


@pytest.mark.integration
@pytest.mark.asyncio
async def test_stop_closes_connected_clients_promptly_and_is_idempotent() -> None:
    server = PhoenixSimulator(markets=[SOL], authorities=[ALICE])
    await server.start()
    async with connect(server.url) as a, connect(server.url) as deaf:
        await subscribe(a, trader_sub())
        await server.wait_for_connections(2)
        server.set_answer_pings(False)  # a paused reader must not delay stop()
        started = time.monotonic()
        await server.stop()
        assert time.monotonic() - started < 1.0
        for ws in (a, deaf):
            with pytest.raises(ConnectionClosed) as closed:
                await recv_json(ws)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1001
    await server.stop()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url
