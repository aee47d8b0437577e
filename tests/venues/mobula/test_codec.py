"""The Mobula Perp Events codec against frames in the shapes of protocols.md §2: text in, events out."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskmon.config.schema import MobulaPerpEventsVenue
from riskmon.config.types import Secret
from riskmon.events import (
    FillReceived,
    FrameMalformed,
    Heartbeat,
    Liquidation,
    Liquidity,
    MarkKind,
    MarkPrice,
    OrderStatus,
    OrderUpdate,
    PositionAmended,
    Side,
    Subscribed,
    SubscriptionFailed,
)
from riskmon.venues.mobula.codec import MobulaPerpEventsCodec

API_KEY = "mk_live_9f8e7d6c5b4a_DO_NOT_LOG"
DESK_WALLET = "0xAbC0000000000000000000000000000000dEaD01"  # checksummed-style case, as configs hold it
DESK_WIRE = DESK_WALLET.lower()
LIGHTER_ACCOUNT = "0x1111111111111111111111111111111111111111"
STRANGER = "0x2222222222222222222222222222222222222222"
DATE_TS = 1780877914.613  # 2026-06-08T00:18:34.613Z

# protocols.md §2.2, verbatim: the trader is the literal "0xabc...".
EXAMPLE = (
    '{"data":{"type":"MARKET_BUY","exchange":"gains","market":"gains-btc-usd-usdc","chainId":"evm:42161",'
    '"traderAddress":"0xabc...","tradeId":"12345","transactionHash":"0x...","priceQuote":65000.5,"priceUSD":65000.5,'
    '"blockNumber":123,"baseAmountRaw":"1000000000000000000","collateralAmountRaw":"500000000000000000000",'
    '"collateralAsset":"0x...","leverage":10,"takeProfitUSD":70000,"stopLossUSD":60000,'
    '"date":"2026-06-08T00:18:34.613Z","extra":{"open":true,"amountSentToTrader":"0","trade":{"long":true,'
    '"index":3,"tradeType":0,"openPrice":"...","collateralIndex":3}}},"chainId":"evm:42161","duplicateCount":1,'
    '"subscriptionId":"sub_..."}'
)

# Gains opens a long: TRADE_STORED and MARKET_BUY of one transaction (§2.4), two frames, one fill.
TX = "0x5e1f00000000000000000000000000000000000000000000000000000000aa01"
TRADE_STORED = (
    '{"data":{"type":"TRADE_STORED","exchange":"gains","market":"gains-eth-usd-usdc","chainId":"evm:42161",'
    f'"traderAddress":"{DESK_WIRE}","tradeId":"77","transactionHash":"{TX}","blockNumber":9001,'
    '"date":"2026-06-08T00:18:35Z","extra":{"tradeType":0,"leverage":25,"long":true,"collateralAmount":"1000",'
    '"index":4,"openPrice":"3500.25","tp":"4000","sl":"3000"}},"chainId":"evm:42161","duplicateCount":1,'
    '"subscriptionId":"sub_1"}'
)
MARKET_BUY = (
    '{"data":{"type":"MARKET_BUY","exchange":"gains","market":"gains-eth-usd-usdc","chainId":"evm:42161",'
    f'"traderAddress":"{DESK_WIRE}","tradeId":"77","transactionHash":"{TX}","priceQuote":3500.25,'
    '"priceUSD":3500.25,"blockNumber":9001,"baseAmountRaw":"2500000000000000000","leverage":25,'
    '"date":"2026-06-08T00:18:35Z","extra":{"open":true,"trade":{"long":true,"index":4}}},'
    '"chainId":"evm:42161","duplicateCount":1,"subscriptionId":"sub_1"}'
)

# The multi-events page's Lighter naming: account, price, size; no transaction hash or tradeId.
LIGHTER_LIQUIDATION = (
    '{"data":{"type":"LIQUIDATION_LONG","exchange":"lighter","market":"lighter-eth-usd","chainId":"lighter:304",'
    f'"account":"{LIGHTER_ACCOUNT}","price":"3120.5","size":"0.75","date":"2026-06-08T00:18:34.613Z"}},'
    '"chainId":"lighter:304","duplicateCount":1,"subscriptionId":"sub_1"}'
)


def _config(**overrides: Any) -> MobulaPerpEventsVenue:
    fields: dict[str, Any] = {
        "api_key": Secret(API_KEY),
        "chain_ids": ["evm:42161", "lighter:304"],
        "subscription_name": "riskmon-test",
    }
    fields.update(overrides)
    return MobulaPerpEventsVenue(**fields)


@pytest.fixture
def codec() -> MobulaPerpEventsCodec:
    accounts = {DESK_WALLET: "alpha", LIGHTER_ACCOUNT: "beta", "0xabc...": "gamma"}
    return MobulaPerpEventsCodec("mobula", accounts, _config())


def _event(fields: str, envelope: str = '"chainId":"evm:42161","duplicateCount":1,"subscriptionId":"sub_1"') -> str:
    """A push frame around `fields`, the body of a data object written as JSON text."""
    return f'{{"data":{{{fields}}},{envelope}}}'


def _only(events: list[Any], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


# -- handshake, ack, keepalive --------------------------------------------------------------------


def test_subscribe_envelope_is_the_first_frame_byte_for_byte(codec: MobulaPerpEventsCodec) -> None:
    assert codec.data_to_send() == []
    codec.connection_opened()
    (frame,) = codec.data_to_send()
    assert frame == (
        '{"type":"stream","authorization":"mk_live_9f8e7d6c5b4a_DO_NOT_LOG","payload":{"name":"riskmon-test",'
        '"chainIds":["evm:42161","lighter:304"],"events":["order"],"subscriptionTracking":"true"}}'
    )
    decoded = json.loads(frame)
    assert decoded["payload"]["subscriptionTracking"] == "true"  # the string, not the boolean
    assert "filters" not in decoded["payload"]
    assert codec.data_to_send() == []


def test_api_key_is_only_in_the_subscribe_frame(codec: MobulaPerpEventsCodec) -> None:
    codec.connection_opened()
    codec.data_to_send()
    codec.send_ping()
    assert all(API_KEY not in str(frame) for frame in codec.data_to_send())
    events = codec.receive_text('{"event":"subscribed","subscriptionId":"sub_5cbd"}')
    events += codec.receive_text(EXAMPLE)
    assert all(API_KEY not in repr(e) for e in events)
    assert API_KEY not in repr(codec)


def test_subscribed_ack_keeps_the_id_until_the_next_connection(codec: MobulaPerpEventsCodec) -> None:
    codec.connection_opened()
    assert codec.subscription_id is None
    events = codec.receive_text('{"event":"subscribed","subscriptionId":"sub_5cbd..."}')
    assert events == [Subscribed("mobula", "perp-events")]
    assert codec.subscription_id == "sub_5cbd..."
    codec.connection_opened()
    assert codec.subscription_id is None


def test_ping_pong_and_a_reconnect_drops_stale_frames(codec: MobulaPerpEventsCodec) -> None:
    codec.connection_opened()
    codec.data_to_send()
    assert codec.pong_outstanding is False
    codec.send_ping()
    assert codec.pong_outstanding is True
    assert codec.data_to_send() == ['{"event":"ping"}']
    # A pong is the venue's liveness signal: the engine's heartbeat gap covers Mobula too.
    assert codec.receive_text('{"event":"pong"}') == [Heartbeat("mobula", "")]
    assert codec.pong_outstanding is False
    codec.send_ping()
    codec.connection_opened()  # the unsent ping belonged to the dead socket
    assert codec.pong_outstanding is False
    (frame,) = codec.data_to_send()
    assert json.loads(frame)["type"] == "stream"


def test_a_pong_after_the_ack_names_the_subscription_as_its_connection(codec: MobulaPerpEventsCodec) -> None:
    codec.connection_opened()
    codec.receive_text('{"event":"subscribed","subscriptionId":"sub_42"}')
    codec.send_ping()
    assert codec.receive_text('{"event":"pong"}') == [Heartbeat("mobula", "sub_42")]
    # An unasked pong is still proof of life; a server ping is not ours to count.
    assert codec.receive_text('{"event":"pong"}') == [Heartbeat("mobula", "sub_42")]
    assert codec.receive_text('{"event":"ping"}') == []


def test_error_frames_fail_the_subscription_without_echoing_the_key(codec: MobulaPerpEventsCodec) -> None:
    (event,) = codec.receive_text(f'{{"event":"error","message":"Invalid API key {API_KEY}"}}')
    assert event == SubscriptionFailed("mobula", "perp-events", "Invalid API key ***", misconfigured=True)
    (event,) = codec.receive_text('{"event":"error","message":"too many subscriptions"}')
    assert event == SubscriptionFailed("mobula", "perp-events", "too many subscriptions")
    (event,) = codec.receive_text('{"error":"chainIds: lighter:301 is not supported"}')
    assert event == SubscriptionFailed("mobula", "perp-events", "chainIds: lighter:301 is not supported")
    (event,) = codec.receive_text('{"type":"error"}')
    assert event == SubscriptionFailed("mobula", "perp-events", "the venue refused the subscription")


# -- executed orders -------------------------------------------------------------------------------


def test_protocol_example_as_a_desk_wallet_is_a_fill_and_a_mark(codec: MobulaPerpEventsCodec) -> None:
    mark, fill = codec.receive_text(EXAMPLE)
    assert mark == MarkPrice("mobula", "gains-btc-usd-usdc", Decimal("65000.5"), DATE_TS, MarkKind.TRADE)
    assert fill == FillReceived(
        venue="mobula",
        desk="gamma",
        account="0xabc...",
        market="gains-btc-usd-usdc",
        side=Side.BUY,
        quantity=Decimal("1"),
        price=Decimal("65000.5"),
        fill_key="0x...:MARKET_BUY:0xabc...:12345",
        stream="gains",
        sequence=123,
        liquidity=Liquidity.TAKER,
        fee_rate=Decimal(0),
        venue_ts=DATE_TS,
    )


def test_protocol_example_for_a_stranger_is_only_a_mark() -> None:
    codec = MobulaPerpEventsCodec("mobula", {STRANGER: "alpha"}, _config())
    assert codec.receive_text(EXAMPLE) == [
        MarkPrice("mobula", "gains-btc-usd-usdc", Decimal("65000.5"), DATE_TS, MarkKind.TRADE)
    ]


def test_checksummed_config_wallet_matches_the_lowercase_wire(codec: MobulaPerpEventsCodec) -> None:
    (fill,) = _only(codec.receive_text(MARKET_BUY), FillReceived)
    assert (fill.desk, fill.account) == ("alpha", DESK_WIRE)
    # And a wire address in another case is still the same wallet.
    (fill,) = _only(codec.receive_text(MARKET_BUY.replace(DESK_WIRE, DESK_WALLET.upper())), FillReceived)
    assert (fill.desk, fill.account) == ("alpha", DESK_WIRE)


def test_trade_stored_and_market_buy_of_one_tx_are_one_fill(codec: MobulaPerpEventsCodec) -> None:
    stored = codec.receive_text(TRADE_STORED)
    bought = codec.receive_text(MARKET_BUY)
    assert stored == [
        PositionAmended(
            venue="mobula",
            desk="alpha",
            account=DESK_WIRE,
            market="gains-eth-usd-usdc",
            change="TRADE_STORED",
            key=f"{TX}:TRADE_STORED:{DESK_WIRE}:77",
            details=(
                ("blockNumber", "9001"),
                ("collateralAmount", "1000"),
                ("index", "4"),
                ("leverage", "25"),
                ("long", "True"),
                ("openPrice", "3500.25"),
                ("sl", "3000"),
                ("tp", "4000"),
                ("tradeType", "0"),
            ),
            venue_ts=1780877915.0,
        )
    ]
    fills = _only(stored + bought, FillReceived)
    assert len(fills) == 1
    assert (fills[0].side, fills[0].quantity, fills[0].price) == (Side.BUY, Decimal("2.5"), Decimal("3500.25"))
    assert fills[0].fill_key == f"{TX}:MARKET_BUY:{DESK_WIRE}:77"


def test_a_byte_identical_repeat_carries_the_same_fill_key(codec: MobulaPerpEventsCodec) -> None:
    first = codec.receive_text(MARKET_BUY)
    assert codec.receive_text(MARKET_BUY) == first  # the engine's fill ledger drops the repeat
    # duplicateCount and subscriptionId are the envelope's, not the fill's identity.
    resent = MARKET_BUY.replace(
        '"duplicateCount":1,"subscriptionId":"sub_1"', '"duplicateCount":2,"subscriptionId":"x"'
    )
    assert codec.receive_text(resent) == first


@pytest.mark.parametrize(
    ("kind", "extra", "side", "liquidity"),
    [
        ("MARKET_BUY", '"open":true,"trade":{"long":true}', Side.BUY, Liquidity.TAKER),  # open a long
        ("MARKET_SELL", '"open":false,"trade":{"long":true}', Side.SELL, Liquidity.TAKER),  # close a long
        ("MARKET_SELL", '"open":true,"trade":{"long":false}', Side.SELL, Liquidity.TAKER),  # open a short
        ("MARKET_BUY", '"open":false,"trade":{"long":false}', Side.BUY, Liquidity.TAKER),  # close a short
        # The long/open pair is the position change itself and outranks the type's word.
        ("MARKET_BUY", '"open":false,"trade":{"long":true}', Side.SELL, Liquidity.TAKER),
        ("MARKET_BUY", '"trade":{"long":false}', Side.BUY, Liquidity.TAKER),  # no `open`: the type says
        ("MARKET_SELL", "", Side.SELL, Liquidity.TAKER),
        ("LIMIT_BUY", "", Side.BUY, Liquidity.MAKER),
        ("LIMIT_SELL", '"open":true', Side.SELL, Liquidity.MAKER),
        ("TAKE_PROFIT", '"trade":{"long":true}', Side.SELL, Liquidity.TAKER),
        ("STOP_LOSS", '"trade":{"long":false}', Side.BUY, Liquidity.TAKER),
        ("STOP_LOSS", '"open":false,"trade":{"long":true}', Side.SELL, Liquidity.TAKER),
        ("TAKE_PROFIT", '"long":false', Side.BUY, Liquidity.TAKER),  # TRADE_STORED's place for it
    ],
)
def test_fill_direction_is_the_sign_of_the_position_change(
    codec: MobulaPerpEventsCodec, kind: str, extra: str, side: Side, liquidity: Liquidity
) -> None:
    frame = _event(
        f'"type":"{kind}","exchange":"gains","market":"gains-btc-usd-usdc","traderAddress":"{DESK_WIRE}",'
        f'"tradeId":"5","transactionHash":"0xfeed","priceUSD":64000,"baseAmountRaw":"500000000000000000",'
        f'"date":"2026-06-08T00:18:34.613Z","extra":{{{extra}}}'
    )
    mark, fill = codec.receive_text(frame)
    assert mark == MarkPrice("mobula", "gains-btc-usd-usdc", Decimal(64000), DATE_TS, MarkKind.TRADE)
    assert isinstance(fill, FillReceived)
    assert (fill.side, fill.liquidity, fill.quantity) == (side, liquidity, Decimal("0.5"))
    assert fill.fill_key == f"0xfeed:{kind}:{DESK_WIRE}:5"


def test_tp_sl_with_a_top_level_long_flag(codec: MobulaPerpEventsCodec) -> None:
    frame = _event(
        f'"type":"TAKE_PROFIT","exchange":"gains","market":"gains-btc-usd-usdc","traderAddress":"{DESK_WIRE}",'
        '"tradeId":"5","transactionHash":"0xfeed","priceUSD":64000,"baseAmountRaw":"1","long":true'
    )
    (fill,) = _only(codec.receive_text(frame), FillReceived)
    assert fill.side is Side.SELL
    assert fill.venue_ts == 0.0  # no date on the frame


@pytest.mark.parametrize("kind", ["TAKE_PROFIT", "STOP_LOSS"])
def test_tp_sl_without_a_direction_is_never_guessed(codec: MobulaPerpEventsCodec, kind: str) -> None:
    frame = _event(
        f'"type":"{kind}","exchange":"gains","market":"gains-btc-usd-usdc","traderAddress":"{DESK_WIRE}",'
        '"tradeId":"5","transactionHash":"0xfeed","priceUSD":64000,"baseAmountRaw":"1","extra":{"open":false}'
    )
    (event,) = codec.receive_text(frame)
    assert event == FrameMalformed("mobula", f"{kind}: direction unknown (no long flag)")


def test_18_decimal_amounts_are_exact(codec: MobulaPerpEventsCodec) -> None:
    def quantity(raw: str) -> Decimal:
        frame = _event(
            f'"type":"LIMIT_BUY","exchange":"gains","market":"m","traderAddress":"{DESK_WIRE}",'
            f'"transactionHash":"0x1","tradeId":1,"priceUSD":"1","baseAmountRaw":"{raw}"'
        )
        (fill,) = _only(codec.receive_text(frame), FillReceived)
        assert isinstance(fill.quantity, Decimal)
        return fill.quantity

    assert quantity("1000000000000000001") == Decimal("1.000000000000000001")
    assert quantity("1") == Decimal("0.000000000000000001")
    # More digits than the default decimal context holds (28): still not rounded.
    assert quantity("123456789012345678901234567890123") == Decimal("123456789012345.678901234567890123")


def test_price_and_amount_fall_back_to_the_other_exchange_names(codec: MobulaPerpEventsCodec) -> None:
    frame = _event(
        f'"type":"MARKET_SELL","exchange":"gains","market":"m","traderAddress":"{DESK_WIRE}","tradeId":"9",'
        '"transactionHash":"0x2","priceQuote":0.1,"size":0.3,"date":"2026-06-08T00:18:35"'
    )
    mark, fill = codec.receive_text(frame)
    assert mark == MarkPrice("mobula", "m", Decimal("0.1"), 1780877915.0)  # a date without offset is UTC
    assert isinstance(fill, FillReceived)
    assert (fill.price, fill.quantity, fill.side) == (Decimal("0.1"), Decimal("0.3"), Side.SELL)


def test_stream_falls_back_to_the_chain_and_the_sequence_to_zero(codec: MobulaPerpEventsCodec) -> None:
    frame = _event(
        f'"type":"MARKET_BUY","market":"m","traderAddress":"{DESK_WIRE}","tradeId":"9",'
        '"transactionHash":"0x2","priceUSD":"7","baseAmountRaw":"1000000000000000000"',
        '"chainId":"evm:8453","duplicateCount":1',
    )
    (fill,) = _only(codec.receive_text(frame), FillReceived)
    assert (fill.stream, fill.sequence) == ("evm:8453", 0)


# -- liquidations -----------------------------------------------------------------------------------


def test_lighter_liquidation_with_account_price_size(codec: MobulaPerpEventsCodec) -> None:
    mark, liquidation, fill = codec.receive_text(LIGHTER_LIQUIDATION)
    assert mark == MarkPrice("mobula", "lighter-eth-usd", Decimal("3120.5"), DATE_TS, MarkKind.TRADE)
    assert isinstance(liquidation, Liquidation)
    assert (liquidation.desk, liquidation.account, liquidation.market) == ("beta", LIGHTER_ACCOUNT, "lighter-eth-usd")
    assert (liquidation.side, liquidation.quantity, liquidation.price) == (
        Side.SELL,
        Decimal("0.75"),
        Decimal("3120.5"),
    )
    assert liquidation.venue_ts == DATE_TS
    # No transaction hash on this shape: a digest of the trade's facts stands in, stable on replay.
    assert liquidation.key.startswith("~")
    assert liquidation.key.endswith(f":LIQUIDATION_LONG:{LIGHTER_ACCOUNT}:")
    assert isinstance(fill, FillReceived)
    assert (fill.side, fill.quantity, fill.price) == (Side.SELL, Decimal("0.75"), Decimal("3120.5"))
    assert (fill.fill_key, fill.stream, fill.liquidity) == (liquidation.key, "lighter", Liquidity.TAKER)
    assert codec.receive_text(LIGHTER_LIQUIDATION) == [mark, liquidation, fill]
    other = codec.receive_text(LIGHTER_LIQUIDATION.replace('"size":"0.75"', '"size":"0.5"'))
    assert _only(other, Liquidation)[0].key != liquidation.key  # a second liquidation is not a repeat


@pytest.mark.parametrize(
    ("kind", "extra", "side"),
    [
        ("LIQUIDATION_LONG", "", Side.SELL),
        ("LIQUIDATION_SHORT", "", Side.BUY),
        ("LIQUIDATION", ',"extra":{"trade":{"long":true}}', Side.SELL),
        ("LIQUIDATION", ',"extra":{"trade":{"long":false}}', Side.BUY),
    ],
)
def test_liquidation_sides(codec: MobulaPerpEventsCodec, kind: str, extra: str, side: Side) -> None:
    frame = _event(
        f'"type":"{kind}","exchange":"gains","market":"gains-btc-usd-usdc","traderAddress":"{DESK_WIRE}",'
        f'"tradeId":"8","transactionHash":"0xdead","priceUSD":60000,"baseAmountRaw":"2000000000000000000"{extra}'
    )
    _mark, liquidation, fill = codec.receive_text(frame)
    assert liquidation == Liquidation(
        "mobula",
        "alpha",
        DESK_WIRE,
        "gains-btc-usd-usdc",
        side,
        Decimal(2),
        Decimal(60000),
        f"0xdead:{kind}:{DESK_WIRE}:8",
        0.0,
    )
    assert isinstance(fill, FillReceived)
    assert (fill.side, fill.quantity, fill.fill_key) == (side, Decimal(2), liquidation.key)


def test_liquidation_without_size_alerts_but_moves_no_position(codec: MobulaPerpEventsCodec) -> None:
    frame = _event(
        f'"type":"LIQUIDATION_SHORT","exchange":"lighter","market":"lighter-eth-usd","account":"{LIGHTER_ACCOUNT}",'
        '"price":"3100"'
    )
    mark, liquidation = codec.receive_text(frame)
    assert isinstance(mark, MarkPrice)
    assert isinstance(liquidation, Liquidation)
    assert (liquidation.side, liquidation.quantity, liquidation.price) == (Side.BUY, None, Decimal(3100))


def test_old_liquidation_without_direction_is_malformed(codec: MobulaPerpEventsCodec) -> None:
    frame = _event(f'"type":"LIQUIDATION","market":"m","traderAddress":"{DESK_WIRE}","priceUSD":1,"size":1')
    assert codec.receive_text(frame) == [FrameMalformed("mobula", "LIQUIDATION: direction unknown (no long flag)")]


def test_a_strangers_liquidation_is_only_a_mark(codec: MobulaPerpEventsCodec) -> None:
    frame = LIGHTER_LIQUIDATION.replace(LIGHTER_ACCOUNT, STRANGER)
    assert codec.receive_text(frame) == [MarkPrice("mobula", "lighter-eth-usd", Decimal("3120.5"), DATE_TS)]


# -- amendments and cancels --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "fields", "details"),
    [
        (
            "UPDATE_TP",
            '"newPriceQuote":71000.5,"quantityPercentage":50',
            (("newPriceQuote", "71000.5"), ("quantityPercentage", "50")),
        ),
        ("UPDATE_SL", '"newPriceQuote":"59000"', (("newPriceQuote", "59000"),)),
        (
            "POSITION_SIZE_INCREASE_EXECUTED",
            '"baseAmountRaw":"500000000000000000","collateralAmountRaw":"100"',
            (("baseAmountRaw", "500000000000000000"), ("collateralAmountRaw", "100")),
        ),
        (
            "POSITION_SIZE_DECREASE_EXECUTED",
            '"baseAmountRaw":"0","extra":{"trade":{"long":true}}',
            (("baseAmountRaw", "0"), ("long", "True")),
        ),
        ("LEVERAGE_UPDATE_EXECUTED", '"leverage":50,"extra":{"leverage":25}', (("leverage", "50"),)),
        ("LEVRAGE_UPDATE_EXECUTED", '"extra":{"leverage":20,"activePosition":{"size":"1"}}', (("leverage", "20"),)),
        ("TRADE_STORED", '"extra":{"long":false,"tp":"0","sl":null}', (("long", "False"), ("tp", "0"))),
    ],
)
def test_tracked_amendments_never_move_exposure(
    codec: MobulaPerpEventsCodec, kind: str, fields: str, details: tuple[tuple[str, str], ...]
) -> None:
    frame = _event(
        f'"type":"{kind}","exchange":"gains","market":"gains-btc-usd-usdc","traderAddress":"{DESK_WIRE}",'
        f'"tradeId":"3","transactionHash":"0xabab","date":"2026-06-08T00:18:34.613Z",{fields}'
    )
    key = f"0xabab:{kind}:{DESK_WIRE}:3"
    assert codec.receive_text(frame) == [
        PositionAmended("mobula", "alpha", DESK_WIRE, "gains-btc-usd-usdc", kind, key, details, DATE_TS)
    ]
    assert codec.receive_text(frame.replace(DESK_WIRE, STRANGER)) == []


@pytest.mark.parametrize(
    ("kind", "ids", "order_id", "reason"),
    [
        ("MARKET_OPEN_CANCELED", '"tradeId":"41","extra":{"cancelReason":3}', "41", "cancelReason=3"),
        ("MARKET_CLOSE_CANCELED", '"transactionHash":"0xc2","extra":{"cancelReason":"7"}', "0xc2", "cancelReason=7"),
        ("MARKET_OPEN_CANCELED", '"tradeId":12,"transactionHash":"0xc3"', "12", None),
    ],
)
def test_cancels_are_order_updates_with_the_reason(
    codec: MobulaPerpEventsCodec, kind: str, ids: str, order_id: str, reason: str | None
) -> None:
    frame = _event(
        f'"type":"{kind}","exchange":"gains","market":"gains-btc-usd-usdc","traderAddress":"{DESK_WIRE}",'
        f'"date":"2026-06-08T00:18:34.613Z",{ids}'
    )
    (update,) = codec.receive_text(frame)
    assert update == OrderUpdate(
        venue="mobula",
        desk="alpha",
        account=DESK_WIRE,
        order_id=order_id,
        market="gains-btc-usd-usdc",
        status=OrderStatus.CANCELED,
        venue_status=kind,
        sequence=None,
        venue_ts=DATE_TS,
        reason=reason,
    )
    assert codec.receive_text(frame.replace(DESK_WIRE, STRANGER)) == []


def test_cancel_without_any_order_id_is_malformed(codec: MobulaPerpEventsCodec) -> None:
    frame = _event(f'"type":"MARKET_OPEN_CANCELED","market":"m","traderAddress":"{DESK_WIRE}"')
    (event,) = codec.receive_text(frame)
    assert isinstance(event, FrameMalformed)
    assert "without a tradeId" in event.reason


# -- malformed input -----------------------------------------------------------------------------


_DESK_FILL = (
    f'"type":"MARKET_BUY","exchange":"gains","market":"m","traderAddress":"{DESK_WIRE}","tradeId":"1",'
    '"transactionHash":"0x9","priceUSD":100,"baseAmountRaw":"1000000000000000000"'
)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (EXAMPLE[:-9], "not JSON"),
        ("[1, 2]", "unexpected frame shape"),
        ("{}", "neither a perp event nor a control frame"),
        ('{"chainId":"evm:42161","duplicateCount":1}', "neither a perp event nor a control frame"),
        ('{"data":null}', "unexpected event shape"),
        ('{"data":[1]}', "unexpected event shape"),
        ('{"event":"welcome"}', "unknown control event welcome"),
        (_event(_DESK_FILL.replace('"MARKET_BUY"', '"MARKET_HOLD"')), "unknown event type MARKET_HOLD"),
        (_event(_DESK_FILL.replace('"type":"MARKET_BUY",', "")), "event without a type"),
        (_event(_DESK_FILL.replace('"market":"m",', "")), "MARKET_BUY without a market"),
        (_event(_DESK_FILL.replace(f'"traderAddress":"{DESK_WIRE}",', "")), "MARKET_BUY without a trader"),
        (_event(_DESK_FILL.replace(f'"{DESK_WIRE}"', '""')), "MARKET_BUY without a trader"),
        (_event(_DESK_FILL.replace('"1000000000000000000"', '"12.5x"')), "baseAmountRaw is not a non-negative integer"),
        (_event(_DESK_FILL.replace('"1000000000000000000"', '"-1"')), "baseAmountRaw is not a non-negative integer"),
        (_event(_DESK_FILL.replace('"1000000000000000000"', '"0"')), "MARKET_BUY: baseAmountRaw is not positive"),
        (
            _event(_DESK_FILL.replace('"baseAmountRaw":"1000000000000000000"', '"size":"12.5x"')),
            "unexpected event shape",
        ),
        (_event(_DESK_FILL.replace('"baseAmountRaw":"1000000000000000000"', '"size":"NaN"')), "size is not a finite"),
        (_event(_DESK_FILL.replace('"baseAmountRaw":"1000000000000000000"', '"size":1')), ""),
        (_event(_DESK_FILL.replace(',"baseAmountRaw":"1000000000000000000"', "")), "MARKET_BUY: no amount"),
        (_event(_DESK_FILL.replace('"priceUSD":100,', "")), "MARKET_BUY: no price"),
        (_event(_DESK_FILL.replace('"priceUSD":100', '"priceUSD":0')), "priceUSD is not positive"),
        (_event(_DESK_FILL.replace('"priceUSD":100', '"priceUSD":"Infinity"')), "priceUSD is not a finite"),
        (_event(_DESK_FILL + ',"date":"yesterday"'), "MARKET_BUY: date is not ISO-8601"),
        (_event(_DESK_FILL + ',"date":1780877914'), "unexpected event shape"),
        (_event(_DESK_FILL + ',"blockNumber":"12a"'), "blockNumber is not an integer"),
        (_event(_DESK_FILL + ',"extra":{"trade":{"long":"yes"}}'), "unexpected event shape"),
    ],
)
def test_malformed_frames_become_one_counted_drop(codec: MobulaPerpEventsCodec, frame: str, reason: str) -> None:
    events = codec.receive_text(frame)
    if not reason:  # the control case: the same frame with a good amount is a fill
        assert len(_only(events, FillReceived)) == 1
        return
    assert len(events) == 1
    assert isinstance(events[0], FrameMalformed)
    assert reason in events[0].reason


def test_a_strangers_bad_amount_is_still_counted(codec: MobulaPerpEventsCodec) -> None:
    frame = _event(_DESK_FILL.replace(DESK_WIRE, STRANGER).replace('"1000000000000000000"', '"12.5x"'))
    (event,) = codec.receive_text(frame)
    assert isinstance(event, FrameMalformed)


def test_binary_frames_and_rest_bodies_are_dropped(codec: MobulaPerpEventsCodec) -> None:
    (event,) = codec.receive_bytes(EXAMPLE.encode())
    assert event == FrameMalformed("mobula", "binary frame on a text-only stream")
    (event,) = codec.receive_rest("positions", "{}")
    assert isinstance(event, FrameMalformed)
    assert codec.data_to_send() == []


def test_malformed_reason_never_echoes_frame_content(codec: MobulaPerpEventsCodec) -> None:
    secret = "sk_live_DO_NOT_LOG"
    frames = (
        f"{secret} not json",
        f'{{"event":"{secret}-but-much-longer-than-any-event-name-is"}}',
        _event(f'"type":"{secret}!","market":"m","traderAddress":"{DESK_WIRE}"'),
        _event(_DESK_FILL + f',"date":"{secret}"'),
        _event(_DESK_FILL.replace('"1000000000000000000"', f'"{secret}"')),
        _event(_DESK_FILL.replace('"priceUSD":100', f'"priceUSD":"{secret}"')),
    )
    for frame in frames:
        (event,) = codec.receive_text(frame)
        assert isinstance(event, FrameMalformed)
        assert secret not in event.reason


# -- fuzz ------------------------------------------------------------------------------------------

_FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "0", "1", "-1", "12.5x", "NaN", "1e400", "2026-06-08T00:18:34Z", DESK_WIRE, "lighter"]),
    st.text(max_size=12),
)


def _mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Plausible values most of the time, so the fuzz reaches past the shape check into the logic."""
    return st.integers(0, 15).flatmap(lambda n: _scalars if n == 0 else good)


_decimal_text = st.decimals(min_value=-10, max_value=10**9, places=6, allow_nan=False).map(str)
_types = st.sampled_from(
    [
        "MARKET_BUY",
        "MARKET_SELL",
        "LIMIT_BUY",
        "LIMIT_SELL",
        "TAKE_PROFIT",
        "STOP_LOSS",
        "LIQUIDATION_LONG",
        "LIQUIDATION_SHORT",
        "LIQUIDATION",
        "TRADE_STORED",
        "UPDATE_TP",
        "UPDATE_SL",
        "POSITION_SIZE_INCREASE_EXECUTED",
        "LEVRAGE_UPDATE_EXECUTED",
        "MARKET_OPEN_CANCELED",
        "MARKET_CLOSE_CANCELED",
        "UNKNOWN",
    ]
)
_extra = st.fixed_dictionaries(
    {},
    optional={
        "open": _mostly(st.booleans()),
        "long": _mostly(st.booleans()),
        "cancelReason": _mostly(st.integers(0, 30)),
        "trade": _mostly(st.fixed_dictionaries({}, optional={"long": _mostly(st.booleans())})),
    },
)
_data = st.fixed_dictionaries(
    {"type": _types, "market": st.sampled_from(["m", "m", ""])},
    optional={
        "traderAddress": _mostly(st.sampled_from([DESK_WIRE, DESK_WALLET, STRANGER])),
        "account": _mostly(st.sampled_from([DESK_WIRE, 42])),
        "exchange": _mostly(st.sampled_from(["gains", "lighter"])),
        "chainId": _mostly(st.sampled_from(["evm:42161", "lighter:304"])),
        "tradeId": _mostly(st.one_of(st.integers(0, 1000), st.text(max_size=4))),
        "transactionHash": _mostly(st.sampled_from(["0x1", "0x2"])),
        "blockNumber": _mostly(st.integers(0, 2**40)),
        "priceUSD": _mostly(st.one_of(_decimal_text, st.integers(-1, 10**6))),
        "priceQuote": _mostly(_decimal_text),
        "price": _mostly(_decimal_text),
        "baseAmountRaw": _mostly(st.integers(0, 10**30).map(str)),
        "size": _mostly(_decimal_text),
        "date": _mostly(st.datetimes().map(lambda d: d.isoformat() + "Z")),
        "long": _mostly(st.booleans()),
        "leverage": _scalars,
        "extra": _mostly(_extra),
    },
)


def _well_formed(events: list[Any]) -> None:
    assert isinstance(events, list)
    if any(isinstance(e, FrameMalformed) for e in events):
        assert len(events) == 1  # never a partial event beside the drop
    assert all(API_KEY not in repr(e) for e in events)


@_FUZZ
@given(st.text())
def test_random_text_never_raises(text: str) -> None:
    codec = MobulaPerpEventsCodec("mobula", {DESK_WALLET: "alpha"}, _config())
    _well_formed(codec.receive_text(text))


@_FUZZ
@given(st.binary())
def test_random_bytes_never_raise(data: bytes) -> None:
    codec = MobulaPerpEventsCodec("mobula", {DESK_WALLET: "alpha"}, _config())
    _well_formed(codec.receive_bytes(data))
    _well_formed(codec.receive_text(data.decode("utf-8", "replace")))


@settings(_FUZZ, max_examples=80)
@given(_data)
def test_random_perp_events_never_raise(data: dict[str, Any]) -> None:
    codec = MobulaPerpEventsCodec("mobula", {DESK_WALLET: "alpha"}, _config())
    events = codec.receive_text(json.dumps({"data": data, "chainId": "evm:42161", "duplicateCount": 1}))
    _well_formed(events)
    for fill in _only(events, FillReceived):
        assert fill.quantity > 0
        assert fill.price > 0


def test_a_repeated_amount_is_the_same_exact_value_and_a_bad_one_still_fails(codec: MobulaPerpEventsCodec) -> None:
    def frame(trader: str, raw: str, trade_id: int) -> str:
        return _event(
            f'"type":"LIMIT_BUY","exchange":"gains","market":"m","traderAddress":"{trader}",'
            f'"transactionHash":"0x{trade_id}","tradeId":{trade_id},"priceUSD":"2","baseAmountRaw":"{raw}"'
        )

    (stranger_mark,) = codec.receive_text(frame(STRANGER, "2500000000000000000", 1))
    assert isinstance(stranger_mark, MarkPrice)
    (fill,) = _only(codec.receive_text(frame(DESK_WIRE, "2500000000000000000", 2)), FillReceived)
    assert fill.quantity == Decimal("2.5")
    assert fill.fill_key == f"0x2:LIMIT_BUY:{DESK_WIRE}:2"
    assert fill.stream == "gains"
    (bad,) = codec.receive_text(frame(STRANGER, "25e17", 3))
    assert isinstance(bad, FrameMalformed)
    assert bad.reason == "LIMIT_BUY: baseAmountRaw is not a non-negative integer"
