"""Tests for the Mobula Perp Events stream simulator (protocols.md §2)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from riskmon.venues.mobula.sim_filters import filter_matches, filter_problem
from riskmon.venues.mobula.sim_frames import GAINS_USDC, iso_ms
from riskmon.venues.mobula.simulator import (
    MAX_FRAME,
    MalformedKind,
    MobulaPerpEventsSimulator,
    gains_trade,
    leverage_update,
    lighter_liquidation,
    market_cancel,
    position_size,
    raw_amount,
    tp_sl_update,
    trade_stored,
)
from tests.venues.session_harness import started
from tests.venues.sim_client import recv_json, recv_text

API_KEY = "test-key-123"
TIMEOUT = 5.0
ALL_CHAINS = ["evm:42161", "evm:421614", "evm:8453", "lighter:304"]
TRADER_MIXED = "0xAbCdEf0123456789aBcDeF0123456789AbCdEf01"
TRADER = TRADER_MIXED.lower()
TX = "0x" + "12" * 32
DATE = "2026-06-08T00:18:34.613Z"
ONE = "1000000000000000000"
LIQ_FILTER = {"or": [{"eq": ["type", "LIQUIDATION_LONG"]}, {"eq": ["type", "LIQUIDATION_SHORT"]}]}


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[MobulaPerpEventsSimulator]:
    async with started(MobulaPerpEventsSimulator(API_KEY)) as server:
        yield server


def envelope(chain_ids: list[str] | None = None, key: str = API_KEY, **payload: Any) -> dict[str, Any]:
    return {
        "type": "stream",
        "authorization": key,
        "payload": {
            "name": "perp-events-3f0c2a8e",
            "chainIds": ALL_CHAINS if chain_ids is None else chain_ids,
            "events": ["order"],
            "subscriptionTracking": "true",
            **payload,
        },
    }


async def subscribe(ws: ClientConnection, chain_ids: list[str] | None = None, **payload: Any) -> str:
    await ws.send(json.dumps(envelope(chain_ids, **payload)))
    ack = await recv_json(ws)
    assert list(ack) == ["event", "subscriptionId"]
    assert ack["event"] == "subscribed"
    sub_id = ack["subscriptionId"]
    assert isinstance(sub_id, str)
    return sub_id


async def expect_close(ws: ClientConnection, code: int, reason: str | None = None) -> None:
    with pytest.raises(ConnectionClosed) as closed:
        await recv_text(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == code
    if reason is not None:
        assert closed.value.rcvd.reason == reason


# ---- builders: every frame reaches the subscriber exactly as specified ---------------------


def builder_cases() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    common = {"traderAddress": TRADER, "tradeId": "12345", "transactionHash": TX}
    gains = {"exchange": "gains", "market": "gains-btc-usd-usdc", "chainId": "evm:42161"}
    return [
        (
            gains_trade(
                "MARKET_BUY",
                TRADER_MIXED,
                trade_id="12345",
                tx_hash=TX,
                base_amount_raw=ONE,
                price_usd=65000.5,
                long=True,
                block=123,
                date=DATE,
                take_profit_usd=70000,
                stop_loss_usd=60000,
                index=3,
            ),
            {
                "type": "MARKET_BUY",
                **gains,
                **common,
                "priceQuote": 65000.5,
                "priceUSD": 65000.5,
                "blockNumber": 123,
                "baseAmountRaw": ONE,
                "collateralAmountRaw": "6500050000000000000000",  # 65000.5 USD notional / 10x
                "collateralAsset": GAINS_USDC,
                "leverage": 10,
                "takeProfitUSD": 70000,
                "stopLossUSD": 60000,
                "date": DATE,
                "extra": {
                    "open": True,
                    "amountSentToTrader": "0",
                    "trade": {
                        "long": True,
                        "index": 3,
                        "tradeType": 0,
                        "openPrice": "650005000000000",
                        "collateralIndex": 3,
                    },
                },
            },
        ),
        (
            lighter_liquidation(
                "LIQUIDATION_LONG",
                TRADER_MIXED,
                size="2.5",
                price=3120.25,
                tx_hash="0xfeed",
                trade_id="98",
                block=7,
                date=DATE,
            ),
            {
                "type": "LIQUIDATION_LONG",
                "exchange": "lighter",
                "market": "lighter-eth-usd",
                "chainId": "lighter:304",
                "account": TRADER,
                "tradeId": "98",
                "transactionHash": "0xfeed",
                "price": 3120.25,
                "size": "2.5",
                "blockNumber": 7,
                "date": DATE,
            },
        ),
        (
            trade_stored(
                TRADER_MIXED,
                trade_id="12345",
                tx_hash=TX,
                long=False,
                collateral="500000000000000000000",
                leverage=25,
                open_price=65000.5,
                tp=60000,
                sl=66000.25,
                index=4,
                block=123,
                date=DATE,
            ),
            {
                "type": "TRADE_STORED",
                **gains,
                **common,
                "blockNumber": 123,
                "date": DATE,
                "extra": {
                    "tradeType": 0,
                    "leverage": 25,
                    "long": False,
                    "collateralAmount": "500000000000000000000",
                    "index": 4,
                    "openPrice": "650005000000000",
                    "tp": "600000000000000",
                    "sl": "660002500000000",
                },
            },
        ),
        (
            tp_sl_update(
                "UPDATE_SL",
                TRADER_MIXED,
                trade_id="12345",
                tx_hash=TX,
                new_price_quote=61000.5,
                quantity_percentage=50,
                block=124,
                date=DATE,
            ),
            {
                "type": "UPDATE_SL",
                **gains,
                **common,
                "newPriceQuote": 61000.5,
                "quantityPercentage": 50,
                "blockNumber": 124,
                "date": DATE,
            },
        ),
        (
            position_size(
                "POSITION_SIZE_INCREASE_EXECUTED",
                TRADER_MIXED,
                trade_id="12345",
                tx_hash=TX,
                base_amount_raw="250000000000000000",
                price_usd=65100.0,
                collateral_amount_raw="1000000000000000000000",
                leverage=12,
                block=125,
                date=DATE,
            ),
            {
                "type": "POSITION_SIZE_INCREASE_EXECUTED",
                **gains,
                **common,
                "priceQuote": 65100.0,
                "priceUSD": 65100.0,
                "blockNumber": 125,
                "baseAmountRaw": "250000000000000000",
                "collateralAmountRaw": "1000000000000000000000",
                "leverage": 12,
                "date": DATE,
            },
        ),
        (
            position_size(
                "POSITION_SIZE_DECREASE_EXECUTED",
                TRADER_MIXED,
                trade_id="12345",
                tx_hash=TX,
                base_amount_raw="5",
                block=126,
                date=DATE,
            ),
            {
                "type": "POSITION_SIZE_DECREASE_EXECUTED",
                **gains,
                **common,
                "blockNumber": 126,
                "baseAmountRaw": "5",
                "date": DATE,
            },
        ),
        (
            leverage_update(TRADER_MIXED, trade_id="12345", tx_hash=TX, leverage=5, block=127, date=DATE),
            {"type": "LEVERAGE_UPDATE_EXECUTED", **gains, **common, "leverage": 5, "blockNumber": 127, "date": DATE},
        ),
        (
            market_cancel(
                "MARKET_OPEN_CANCELED",
                TRADER_MIXED,
                trade_id="12345",
                tx_hash=TX,
                cancel_reason=2,
                block=128,
                date=DATE,
            ),
            {
                "type": "MARKET_OPEN_CANCELED",
                **gains,
                **common,
                "blockNumber": 128,
                "date": DATE,
                "extra": {"cancelReason": 2},
            },
        ),
    ]


@pytest.mark.integration
@pytest.mark.asyncio
async def test_every_builder_frame_reaches_the_subscriber_exactly(sim: MobulaPerpEventsSimulator) -> None:
    cases = builder_cases()
    async with connect(sim.url) as ws:
        sub_id = await subscribe(ws)
        assert re.fullmatch(r"sub_[0-9a-f]{32}", sub_id)
        for data, expected in cases:
            assert await sim.push(data) == 1
            text = await recv_text(ws)
            frame = json.loads(text)
            assert list(frame) == ["data", "chainId", "duplicateCount", "subscriptionId"]
            assert frame == {
                "data": expected,
                "chainId": expected["chainId"],
                "duplicateCount": 1,
                "subscriptionId": sub_id,
            }
            assert list(frame["data"]) == list(expected)  # field order as in §2.2
            assert text == json.dumps(frame, separators=(",", ":"))  # compact JSON


@pytest.mark.parametrize(
    ("type_", "long", "open_", "trade_type"),
    [
        ("MARKET_BUY", True, True, 0),
        ("MARKET_SELL", True, False, 0),
        ("MARKET_SELL", False, True, 0),
        ("MARKET_BUY", False, False, 0),
        ("LIMIT_BUY", True, True, 1),
        ("LIMIT_SELL", False, True, 1),
        ("TAKE_PROFIT", True, False, 0),
        ("STOP_LOSS", False, False, 0),
    ],
)
def test_gains_trade_kinds(type_: str, long: bool, open_: bool, trade_type: int) -> None:
    data = gains_trade(
        type_, TRADER, trade_id="1", tx_hash=TX, base_amount_raw=ONE, price_usd=100.0, long=long, leverage=4
    )
    assert data["type"] == type_
    assert data["extra"]["open"] is open_
    assert data["extra"]["trade"]["tradeType"] == trade_type
    assert data["extra"]["trade"]["long"] is long
    assert data["collateralAmountRaw"] == "25000000000000000000"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", data["date"])


def test_builders_reject_what_the_venue_never_sends() -> None:
    kw: dict[str, Any] = {"trade_id": "1", "tx_hash": TX}
    with pytest.raises(ValueError, match="type must be one of"):
        gains_trade("LIQUIDATION_LONG", TRADER, **kw, base_amount_raw=ONE, price_usd=1.0, long=True)
    with pytest.raises(ValueError, match="raw integer"):
        gains_trade("MARKET_BUY", TRADER, **kw, base_amount_raw="1.5", price_usd=1.0, long=True)
    with pytest.raises(ValueError, match="address"):
        leverage_update("0x1234", **kw, leverage=2)
    with pytest.raises(ValueError, match="type must be one of"):
        lighter_liquidation("LIQUIDATION", TRADER, size=ONE, price=1.0, tx_hash=TX, trade_id="1")
    with pytest.raises(ValueError, match="type must be one of"):
        tp_sl_update("UPDATE_TRAILING", TRADER, **kw, new_price_quote=1.0, quantity_percentage=100)
    with pytest.raises(ValueError, match="type must be one of"):
        position_size("POSITION_SIZE_INCREASE", TRADER, **kw, base_amount_raw=ONE)
    with pytest.raises(ValueError, match="cancel_reason"):
        market_cancel("MARKET_CLOSE_CANCELED", TRADER, **kw, cancel_reason=True)


def test_value_helpers() -> None:
    assert raw_amount("1.5") == "15" + "0" * 17
    assert raw_amount(2) == "2" + "0" * 18
    with pytest.raises(ValueError, match="18 decimals"):
        raw_amount("0.0000000000000000001")
    with pytest.raises(ValueError, match="non-negative"):
        raw_amount("-1")
    east = timezone(timedelta(hours=2))
    assert iso_ms(datetime(2026, 6, 8, 2, 18, 34, 613999, tzinfo=east)) == DATE
    assert iso_ms(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000Z"


@pytest.mark.integration
@pytest.mark.asyncio
async def test_trade_stored_and_market_trade_share_a_tx(sim: MobulaPerpEventsSimulator) -> None:
    market = gains_trade("MARKET_BUY", TRADER, trade_id="7", tx_hash=TX, base_amount_raw=ONE, price_usd=1.0, long=True)
    stored = trade_stored(
        TRADER, trade_id="7", tx_hash=TX, long=True, collateral=ONE, leverage=10, open_price=1.0, tp=0, sl=0
    )
    async with connect(sim.url) as ws:
        await subscribe(ws)
        await sim.push(stored)
        await sim.push(market)
        first, second = (await recv_json(ws))["data"], (await recv_json(ws))["data"]
    assert (first["type"], second["type"]) == ("TRADE_STORED", "MARKET_BUY")
    assert first["transactionHash"] == second["transactionHash"] == TX
    assert "baseAmountRaw" not in first
    assert "collateralAmount" in first["extra"]
    assert "trade" in second["extra"]


# ---- subscribe handshake -----------------------------------------------------------


@pytest.mark.integration
@pytest.mark.asyncio
async def test_client_subscription_id_is_echoed_and_envelopes_recorded(sim: MobulaPerpEventsSimulator) -> None:
    async with connect(sim.url) as ws:
        sent = envelope(["evm:42161"], subscriptionId="my-sub-1", filters=LIQ_FILTER, tag="x")
        await ws.send(json.dumps(sent))
        assert await recv_json(ws) == {"event": "subscribed", "subscriptionId": "my-sub-1"}
        await sim.wait_for_subscribed(1)
        assert sim.connections == 1
        assert sim.subscribed_count == 1
    assert sim.subscriptions == [sent]


@pytest.mark.integration
@pytest.mark.asyncio
async def test_idle_timeout_closes_4001() -> None:
    server = MobulaPerpEventsSimulator(API_KEY, idle_timeout=0.2)
    await server.start()
    try:
        async with connect(server.url) as ws:
            # A ping is answered but does not count as a subscription.
            await ws.send('{"event":"ping"}')
            assert await recv_json(ws) == {"event": "pong"}
            await expect_close(ws, 4001, "Idle timeout - no subscription received")
        assert server.subscriptions == []
        assert server.pings_received == 1
    finally:
        await server.stop()


@pytest.mark.integration
@pytest.mark.asyncio
async def test_wrong_api_key_closes_4003(sim: MobulaPerpEventsSimulator) -> None:
    async with connect(sim.url) as ws:
        await ws.send(json.dumps(envelope(key="not-the-key")))
        await expect_close(ws, 4003, "Invalid API key")  # no error frame comes first
    assert sim.subscribed_count == 0
    assert sim.subscriptions[0]["authorization"] == "not-the-key"


def _without(field: str) -> dict[str, Any]:
    env = envelope()
    del env["payload"][field]
    return env


@pytest.mark.integration
@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (json.dumps(envelope(subscriptionTracking=True)), "subscriptionTracking must be a string"),
        (json.dumps(envelope(subscriptionTracking="false")), 'subscriptionTracking must be "true"'),
        (json.dumps({**envelope(), "type": "subscribe"}), 'type must be "stream"'),
        (json.dumps(_without("name")), "payload.name must be a string"),
        (json.dumps(envelope(chainIds="evm:42161")), "payload.chainIds must be a non-empty list of strings"),
        (json.dumps(envelope(chainIds=[42161])), "payload.chainIds must be a non-empty list of strings"),
        (json.dumps(envelope(events=["trade"])), 'payload.events must be ["order"]'),
        (json.dumps(envelope(filters={"not": []})), "payload.filters: unknown filter operator 'not'"),
        (json.dumps(envelope(subscriptionId=7)), "payload.subscriptionId must be a non-empty string"),
        (json.dumps({"type": "stream", "authorization": API_KEY, "payload": []}), "payload must be an object"),
        ('{"type":"stream"', "Invalid JSON"),
        ('["stream"]', "Message must be a JSON object"),
    ],
)
async def test_invalid_subscribe_gets_error_then_4002(sim: MobulaPerpEventsSimulator, frame: str, message: str) -> None:
    async with connect(sim.url) as ws:
        await ws.send(frame)
        assert await recv_json(ws) == {"event": "error", "message": message}
        await expect_close(ws, 4002, "Invalid subscription")
    assert sim.subscribed_count == 0


@pytest.mark.integration
@pytest.mark.asyncio
async def test_subscription_tracking_may_be_omitted(sim: MobulaPerpEventsSimulator) -> None:
    env = envelope()
    del env["payload"]["subscriptionTracking"]
    async with connect(sim.url) as ws:
        await ws.send(json.dumps(env))
        assert (await recv_json(ws))["event"] == "subscribed"


@pytest.mark.integration
@pytest.mark.asyncio
async def test_second_subscription_on_one_socket_gets_its_own_copy(sim: MobulaPerpEventsSimulator) -> None:
    async with connect(sim.url) as ws:
        a = await subscribe(ws, ["lighter:304"])
        b = await subscribe(ws, ["lighter:304"], subscriptionId="second")
        await ws.send('{"hello":"ignored once subscribed"}')
        await sim.wait_for_subscribed(2)
        liq = lighter_liquidation("LIQUIDATION_SHORT", TRADER, size=ONE, price=2.5, tx_hash="0x1", trade_id="1")
        assert await sim.push(liq) == 2
        ids = {(await recv_json(ws))["subscriptionId"] for _ in range(2)}
        assert ids == {a, "second"}
        assert a != b
        assert sim.subscriptions[-1] == {"hello": "ignored once subscribed"}


# ---- keepalive -----------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.asyncio
async def test_ping_pong_and_the_dead_server_fault(sim: MobulaPerpEventsSimulator) -> None:
    async with connect(sim.url) as ws:
        await subscribe(ws)
        await ws.send('{"event":"ping"}')
        assert await recv_text(ws) == '{"event":"pong"}'
        assert sim.pings_received == 1

        sim.set_answer_pings(False)
        await ws.send('{"event":"ping"}')
        await sim.wait_for_pings(2)
        marker = leverage_update(TRADER, trade_id="1", tx_hash=TX, leverage=3)
        await sim.push(marker)
        # The next frame is the event: the ping got no pong, and the socket is still open.
        assert (await recv_json(ws))["data"] == marker

        sim.set_answer_pings(True)
        await ws.send('{"event":"ping"}')
        assert await recv_json(ws) == {"event": "pong"}
        assert sim.pings_received == 3
        assert sim.subscriptions == [envelope()]  # pings are not recorded


# ---- delivery rules ------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.asyncio
async def test_chain_filter_lighter_301_gets_nothing(sim: MobulaPerpEventsSimulator) -> None:
    async with connect(sim.url) as old, connect(sim.url) as new:
        await subscribe(old, ["lighter:301", "evm:42161"])
        await subscribe(new, ["lighter:304", "evm:42161"])
        liq = lighter_liquidation("LIQUIDATION_LONG", TRADER, size=ONE, price=3000.0, tx_hash="0x2", trade_id="2")
        assert liq["chainId"] == "lighter:304"
        assert await sim.push(liq) == 1
        got = await recv_json(new)
        assert (got["chainId"], got["data"]) == ("lighter:304", liq)

        trade = gains_trade(
            "MARKET_SELL", TRADER, trade_id="3", tx_hash=TX, base_amount_raw=ONE, price_usd=1.0, long=False
        )
        assert await sim.push(trade) == 2
        assert (await recv_json(old))["data"] == trade  # the liquidation never reached it
        assert (await recv_json(new))["data"] == trade
        base = gains_trade(
            "MARKET_BUY",
            TRADER,
            trade_id="4",
            tx_hash=TX,
            base_amount_raw=ONE,
            price_usd=1.0,
            long=True,
            chain_id="evm:8453",
        )
        assert await sim.push(base) == 0


@pytest.mark.integration
@pytest.mark.asyncio
async def test_filters_select_events(sim: MobulaPerpEventsSimulator) -> None:
    cancels = {"and": [{"eq": ["exchange", "gains"]}, {"eq": ["extra.cancelReason", 3]}]}
    kw: dict[str, Any] = {"trader": TRADER, "trade_id": "9", "tx_hash": TX}
    trade = gains_trade("MARKET_BUY", **kw, base_amount_raw=ONE, price_usd=1.0, long=True)
    liq = lighter_liquidation("LIQUIDATION_SHORT", TRADER, size=ONE, price=1.0, tx_hash="0x3", trade_id="9")
    cancel3 = market_cancel("MARKET_CLOSE_CANCELED", **kw, cancel_reason=3)
    cancel1 = market_cancel("MARKET_CLOSE_CANCELED", **kw, cancel_reason=1)
    async with connect(sim.url) as liqs, connect(sim.url) as canc:
        await subscribe(liqs, filters=LIQ_FILTER)
        await subscribe(canc, filters=cancels)
        assert [await sim.push(d) for d in (trade, liq, cancel3, cancel1)] == [0, 1, 1, 0]
        assert await sim.send_raw('{"marker":true}') == 2
        assert (await recv_json(liqs))["data"] == liq
        assert await recv_json(liqs) == {"marker": True}
        assert (await recv_json(canc))["data"] == cancel3
        assert await recv_json(canc) == {"marker": True}


def test_filter_tree_validation_and_matching() -> None:
    assert filter_problem(LIQ_FILTER) is None
    assert filter_problem({"or": []}) == "'or' needs a non-empty list"
    assert filter_problem({"eq": ["type"]}) == "'eq' needs [field, value]"
    assert filter_problem({"eq": ["type", ["a"]]}) is not None
    assert filter_problem({"eq": ["a", 1], "or": []}) is not None
    deep: dict[str, Any] = {"eq": ["type", "X"]}
    for _ in range(40):
        deep = {"and": [deep]}
    assert filter_problem(deep) == "filters nest deeper than 32"

    data = {"type": "MARKET_BUY", "leverage": 1, "extra": {"open": True}}
    assert filter_matches({"eq": ["extra.open", True]}, data)
    assert not filter_matches({"eq": ["extra.open", 1]}, data)  # true is not 1 on the wire
    assert not filter_matches({"eq": ["leverage", True]}, data)
    assert not filter_matches({"eq": ["extra.missing", None]}, data)
    assert not filter_matches({"eq": ["type.sub", "x"]}, data)
    assert filter_matches(
        {"and": [{"eq": ["type", "MARKET_BUY"]}, {"or": [{"eq": ["leverage", 2]}, {"eq": ["leverage", 1]}]}]}, data
    )


@pytest.mark.integration
@pytest.mark.asyncio
async def test_repeat_last_is_byte_identical_even_after_reconnect(sim: MobulaPerpEventsSimulator) -> None:
    a = tp_sl_update("UPDATE_TP", TRADER, trade_id="1", tx_hash=TX, new_price_quote=70000.0, quantity_percentage=100)
    b = leverage_update(TRADER, trade_id="1", tx_hash=TX, leverage=20)
    async with connect(sim.url) as ws:
        await subscribe(ws, subscriptionId="my-sub-1")
        await sim.push(a, duplicate_count=3)
        await sim.push(b)
        originals = [await recv_text(ws) for _ in range(2)]
        assert json.loads(originals[0])["duplicateCount"] == 3
        assert await sim.repeat_last(2) == 2
        assert [await recv_text(ws) for _ in range(2)] == originals
        await sim.disconnect_all()
    async with connect(sim.url) as ws:
        await subscribe(ws, subscriptionId="my-sub-1")
        assert await sim.repeat_last() == 1
        assert await recv_text(ws) == originals[1]
    with pytest.raises(ValueError, match="cannot repeat"):
        await sim.repeat_last(3)
    with pytest.raises(ValueError, match="chainId"):
        await sim.push({"type": "MARKET_BUY"})


# ---- faults --------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["not_json", "not_object", "missing_data", "bad_amount", "unknown_type", "oversized"])
async def test_send_malformed(sim: MobulaPerpEventsSimulator, kind: MalformedKind) -> None:
    async with connect(sim.url, max_size=None) as ws:
        sub_id = await subscribe(ws, ["lighter:304"], filters=LIQ_FILTER)  # malformed frames ignore both
        assert await sim.send_malformed(kind) == 1
        text = await recv_text(ws)
    if kind == "not_json":
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
        return
    frame = json.loads(text)
    if kind == "not_object":
        assert not isinstance(frame, dict)
        return
    assert frame["subscriptionId"] == sub_id
    if kind == "missing_data":
        assert "data" not in frame
        assert frame["chainId"] == "evm:42161"
        return
    data = frame["data"]
    assert data["traderAddress"] == data["traderAddress"].lower()
    if kind == "bad_amount":
        assert data["baseAmountRaw"] == "12.5x"
        assert data["type"] == "MARKET_BUY"
    elif kind == "unknown_type":
        assert data["type"] == "SOMETHING_NEW"
        assert data["baseAmountRaw"] == ONE
    else:
        assert len(text.encode()) > MAX_FRAME
        assert data["type"] == "MARKET_BUY"
        assert data["baseAmountRaw"] == ONE


@pytest.mark.integration
@pytest.mark.asyncio
async def test_oversized_frame_trips_a_default_client(sim: MobulaPerpEventsSimulator) -> None:
    async with connect(sim.url) as ws:
        await subscribe(ws)
        await sim.send_malformed("oversized")
        with pytest.raises(ConnectionClosed) as closed:
            await recv_text(ws)
    assert closed.value.sent is not None
    assert closed.value.sent.code == 1009  # message too big


@pytest.mark.integration
@pytest.mark.asyncio
async def test_disconnect_all(sim: MobulaPerpEventsSimulator) -> None:
    async with connect(sim.url) as a, connect(sim.url) as b, connect(sim.url) as idle:
        await subscribe(a)
        await subscribe(b)
        await sim.wait_for_connections(3)
        await sim.disconnect_all()
        assert (sim.connections, sim.subscribed_count) == (0, 0)
        for ws in (a, b, idle):
            await expect_close(ws, 1011)
    async with connect(sim.url) as ws:
        await subscribe(ws)
        await sim.disconnect_all(code=1012, reason="restart")
        await expect_close(ws, 1012, "restart")
    assert await sim.push(leverage_update(TRADER, trade_id="1", tx_hash=TX, leverage=2)) == 0


@pytest.mark.integration
@pytest.mark.asyncio
async def test_send_raw_reaches_every_connection(sim: MobulaPerpEventsSimulator) -> None:
    async with connect(sim.url) as subscribed, connect(sim.url) as fresh:
        await subscribe(subscribed)
        await sim.wait_for_connections(2)
        assert await sim.send_raw("hello") == 2
        assert await recv_text(subscribed) == "hello"
        assert await recv_text(fresh) == "hello"


@pytest.mark.integration
@pytest.mark.asyncio
async def test_wait_helpers_time_out(sim: MobulaPerpEventsSimulator) -> None:
    with pytest.raises(TimeoutError):
        await sim.wait_for_subscribed(1, timeout=0.05)
    with pytest.raises(TimeoutError):
        await sim.wait_for_pings(1, timeout=0.05)


@pytest.mark.integration
@pytest.mark.asyncio
async def test_stop_closes_connected_clients_and_is_idempotent() -> None:
    server = MobulaPerpEventsSimulator(API_KEY)
    await server.start()
    assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/", server.url)
    try:
        async with connect(server.url) as subscribed, connect(server.url) as idle:
            await subscribe(subscribed)
            await server.wait_for_connections(2)
            await server.stop()
            await expect_close(subscribed, 1001)
            await expect_close(idle, 1001)
        assert server.connections == 0
    finally:
        await server.stop()
    with pytest.raises(RuntimeError):
        _ = server.url


def test_constructor_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="loopback"):
        MobulaPerpEventsSimulator(API_KEY, host="0.0.0.0")
    with pytest.raises(ValueError, match="api_key"):
        MobulaPerpEventsSimulator("")
    with pytest.raises(ValueError, match="idle_timeout"):
        MobulaPerpEventsSimulator(API_KEY, idle_timeout=0)
