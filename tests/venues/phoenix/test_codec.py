"""The Phoenix codec against frames in the shapes of protocols.md §5: frames in, events out."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskmon.config.schema import PhoenixMarketUnits, PhoenixVenue
from riskmon.events import (
    BookLevel,
    BookSide,
    BookSnapshot,
    FrameMalformed,
    MarketStatusChanged,
    MarkKind,
    MarkPrice,
    PositionsReported,
    ReportedPosition,
    SequenceGap,
    StreamResynced,
    Subscribed,
    SubscriptionFailed,
    TradeExecuted,
)
from riskmon.venues.phoenix.codec import PhoenixCodec
from tests.venues.phoenix.helpers import (
    AUTHORITY,
    OTHER,
    SUBSCRIBE_EXCHANGE,
    SUBSCRIBE_TRADER,
    UNSUBSCRIBE_EXCHANGE,
    UNSUBSCRIBE_TRADER,
)

V = "phoenix"

# ETH baseLotsDecimals 3 and BTC 4 are the §5.5 docs examples; DOGE has negative decimals (1 lot = 10).
EXCHANGE_SNAPSHOT = """{"channel":"exchange","messageType":"snapshot","sequenceNumber":"100","slot":5000,"slotIndex":0,
 "exchange":{"status":"active","markets":[
  {"symbol":"ETH","marketStatus":"active","baseLotsDecimals":3,"tickSizeInQuoteLotsPerBaseLot":"100",
   "takerFeeMicro":200,"makerFeeMicro":0},
  {"symbol":"BTC","marketStatus":"active","baseLotsDecimals":4,"tickSizeInQuoteLotsPerBaseLot":"100",
   "takerFeeMicro":200,"makerFeeMicro":0},
  {"symbol":"DOGE","marketStatus":"active","baseLotsDecimals":-1,"tickSizeInQuoteLotsPerBaseLot":"1",
   "takerFeeMicro":500,"makerFeeMicro":100}]}}"""

TRADER_SNAPSHOT = """{"channel":"traderState","authority":"7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU",
 "traderPdaIndex":0,"slot":5001,"messageType":"snapshot","version":1,"capabilities":{"flags":0,"state":"active"},
 "makerFeeOverrideMultiplier":1.0,"takerFeeOverrideMultiplier":1.0,"subaccounts":[
  {"subaccountIndex":0,"sequence":41,"collateral":"1000000000","spotCollaterals":[],"positions":[
    {"symbol":"ETH","positionSequenceNumber":"3","basePositionLots":"1500","entryPriceTicks":"30005",
     "entryPriceUsd":"3000.5","virtualQuotePositionLots":"-4500750000","unsettledFundingQuoteLots":"0",
     "accumulatedFundingQuoteLots":"12"},
    {"symbol":"BTC","positionSequenceNumber":"1","basePositionLots":"1234","entryPriceTicks":"650000",
     "entryPriceUsd":"65000","virtualQuotePositionLots":"-8021000000","unsettledFundingQuoteLots":"0",
     "accumulatedFundingQuoteLots":"0"}],"orders":[],"splines":[],"triggers":[]},
  {"subaccountIndex":1,"sequence":7,"collateral":"50000000","spotCollaterals":[],"positions":[
    {"symbol":"ETH","positionSequenceNumber":"1","basePositionLots":"-500","entryPriceTicks":"31000",
     "entryPriceUsd":"3100","virtualQuotePositionLots":"1550000000","unsettledFundingQuoteLots":"0",
     "accumulatedFundingQuoteLots":"0"},
    {"symbol":"DOGE","positionSequenceNumber":"1","basePositionLots":"-15","entryPriceTicks":"12",
     "entryPriceUsd":"0.12","virtualQuotePositionLots":"18000000","unsettledFundingQuoteLots":"0",
     "accumulatedFundingQuoteLots":"0"}]}]}"""

SNAPSHOT_POSITIONS = (
    ReportedPosition("BTC", Decimal("0.1234"), Decimal("65000")),
    ReportedPosition("DOGE", Decimal("-150"), None),  # only in isolated subaccount 1: no primary entry
    ReportedPosition("ETH", Decimal("1.0"), Decimal("3000.5")),  # 1500 - 500 lots over two subaccounts
)


def trader_delta(subaccount: int, sequence: int, positions: str = "[]", authority: str = AUTHORITY) -> str:
    return (
        '{"channel":"traderState","authority":"' + authority + '","traderPdaIndex":0,"slot":5002,'
        '"messageType":"delta","deltas":[{"subaccountIndex":' + str(subaccount) + ',"sequence":' + str(sequence) + ","
        '"collateral":"999000000","spotCollaterals":[],"positions":' + positions + ',"orders":[],"tradeHistory":[]}]}'
    )


def eth_updated(lots: str, entry: str = "2990") -> str:
    return (
        '[{"symbol":"ETH","change":"updated","position":{"positionSequenceNumber":"4",'
        '"basePositionLots":"' + lots + '","entryPriceTicks":"29900","entryPriceUsd":"' + entry + '",'
        '"virtualQuotePositionLots":"0","unsettledFundingQuoteLots":"0","accumulatedFundingQuoteLots":"0"}}]'
    )


def exchange_delta(sequence: int, *ops: str) -> str:
    return (
        '{"channel":"exchange","messageType":"delta","sequenceNumber":"' + str(sequence) + '","slot":5003,'
        '"slotIndex":1,"ops":[' + ",".join(ops) + "]}"
    )


def config(**overrides: Any) -> PhoenixVenue:
    return PhoenixVenue(authority=AUTHORITY, **overrides)


@pytest.fixture
def codec() -> PhoenixCodec:
    codec = PhoenixCodec(V, {AUTHORITY: "alpha"}, config(symbols=["SOL", "ETH"]))
    codec.connection_opened()
    codec.data_to_send()
    return codec


@pytest.fixture
def live(codec: PhoenixCodec) -> PhoenixCodec:
    """Units known from the exchange snapshot, then the traderState snapshot applied."""
    assert codec.receive_text(EXCHANGE_SNAPSHOT) == []
    codec.receive_text(TRADER_SNAPSHOT)
    return codec


def report(positions: tuple[ReportedPosition, ...], complete: bool, sequence: int | None = None) -> PositionsReported:
    return PositionsReported(V, "alpha", AUTHORITY, positions, complete, sequence, None)


# --- subscribing ---------------------------------------------------------------------------------


def test_connection_opened_queues_binary_subscribes() -> None:
    codec = PhoenixCodec(V, {AUTHORITY: "alpha"}, config(symbols=["SOL", "ETH"], trader_pda_index=2))
    assert codec.data_to_send() == []
    codec.connection_opened()
    frames = codec.data_to_send()
    assert frames == [
        SUBSCRIBE_TRADER.replace(b'"traderPdaIndex":0', b'"traderPdaIndex":2'),
        SUBSCRIBE_EXCHANGE,
        b'{"type":"subscribe","subscription":{"channel":"allMids"}}',
        b'{"type":"subscribe","subscription":{"channel":"market","symbol":"SOL"}}',
        b'{"type":"subscribe","subscription":{"channel":"market","symbol":"ETH"}}',
    ]
    assert all(isinstance(frame, bytes) for frame in frames)
    assert codec.data_to_send() == []


def test_a_new_connection_drops_frames_queued_for_the_old_one(live: PhoenixCodec) -> None:
    live.receive_text(trader_delta(0, 45))  # a gap: a resubscribe is queued
    live.connection_opened()
    assert live.data_to_send()[:2] == [SUBSCRIBE_TRADER, SUBSCRIBE_EXCHANGE]


# --- traderState -----------------------------------------------------------------------------------


def test_snapshot_reports_every_position_in_base_units(codec: PhoenixCodec) -> None:
    codec.receive_text(EXCHANGE_SNAPSHOT)
    assert codec.receive_text(TRADER_SNAPSHOT) == [report(SNAPSHOT_POSITIONS, complete=True)]


def test_an_empty_snapshot_is_a_complete_report_of_no_positions(codec: PhoenixCodec) -> None:
    frame = (
        '{"channel":"traderState","authority":"7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU","traderPdaIndex":0,'
        '"slot":1,"messageType":"snapshot","subaccounts":[{"subaccountIndex":0,"sequence":3,"collateral":"0"}]}'
    )
    assert codec.receive_text(frame) == [report((), complete=True)]


def test_delta_reports_only_the_changed_symbol_summed_over_subaccounts(live: PhoenixCodec) -> None:
    events = live.receive_text(trader_delta(0, 42, eth_updated("-2000")))
    # -2000 lots in the primary plus -500 in subaccount 1; the entry price is the primary's.
    assert events == [report((ReportedPosition("ETH", Decimal("-2.5"), Decimal("2990")),), False, 42)]


def test_closed_position_is_reported_flat(live: PhoenixCodec) -> None:
    events = live.receive_text(trader_delta(0, 42, '[{"symbol":"BTC","change":"closed"}]'))
    assert events == [report((ReportedPosition("BTC", Decimal(0), None),), False, 42)]
    events = live.receive_text(trader_delta(1, 8, '[{"symbol":"ETH","change":"closed"}]'))
    assert events == [report((ReportedPosition("ETH", Decimal("1.5"), Decimal("3000.5")),), False, 8)]


def test_stale_and_repeated_deltas_are_ignored(live: PhoenixCodec) -> None:
    assert live.receive_text(trader_delta(0, 42, eth_updated("100"))) != []
    assert live.receive_text(trader_delta(0, 42, eth_updated("999"))) == []  # same sequence: a replay
    assert live.receive_text(trader_delta(0, 30, eth_updated("999"))) == []  # older than the snapshot
    assert live.data_to_send() == []
    # The ignored deltas changed nothing: the next one sums from 100 lots.
    events = live.receive_text(trader_delta(1, 8, eth_updated("0")))
    assert events == [report((ReportedPosition("ETH", Decimal("0.1"), Decimal("2990")),), False, 8)]


def test_delta_without_position_changes_reports_nothing(live: PhoenixCodec) -> None:
    assert live.receive_text(trader_delta(0, 42)) == []
    assert live.receive_text(trader_delta(0, 43, eth_updated("1"))) != []  # 42 was applied


def test_sequence_jump_is_a_gap_that_resubscribes_and_ignores_deltas_until_a_snapshot(live: PhoenixCodec) -> None:
    assert live.receive_text(trader_delta(0, 43, eth_updated("9"))) == [SequenceGap(V, "traderState:0", 42, 43)]
    assert live.data_to_send() == [UNSUBSCRIBE_TRADER, SUBSCRIBE_TRADER]
    assert live.receive_text(trader_delta(0, 44, eth_updated("9"))) == []
    assert live.receive_text(trader_delta(1, 8, eth_updated("9"))) == []
    assert live.data_to_send() == []  # one resubscribe per gap
    assert live.receive_text(TRADER_SNAPSHOT) == [
        report(SNAPSHOT_POSITIONS, complete=True),
        StreamResynced(V, "traderState:0"),
    ]
    assert live.receive_text(trader_delta(1, 8, eth_updated("0"))) == [
        report((ReportedPosition("ETH", Decimal("1.5"), Decimal("3000.5")),), False, 8)
    ]


def test_gap_in_one_subaccount_applies_nothing_of_the_frame(live: PhoenixCodec) -> None:
    frame = json.loads(trader_delta(0, 42, eth_updated("1")))
    frame["deltas"].append({"subaccountIndex": 1, "sequence": 9, "collateral": "0", "positions": []})
    assert live.receive_text(json.dumps(frame)) == [SequenceGap(V, "traderState:1", 8, 9)]
    assert live.receive_text(TRADER_SNAPSHOT) == [
        report(SNAPSHOT_POSITIONS, complete=True),
        StreamResynced(V, "traderState:1"),
    ]


def test_a_new_isolated_subaccount_may_start_at_any_sequence(live: PhoenixCodec) -> None:
    events = live.receive_text(trader_delta(5, 900, eth_updated("250", "3050")))
    assert events == [report((ReportedPosition("ETH", Decimal("1.25"), Decimal("3000.5")),), False, 900)]


def test_deltas_before_the_first_snapshot_are_ignored(codec: PhoenixCodec) -> None:
    codec.receive_text(EXCHANGE_SNAPSHOT)
    assert codec.receive_text(trader_delta(0, 42, eth_updated("1"))) == []
    assert codec.data_to_send() == []


def test_reconnect_waits_for_a_fresh_snapshot_but_keeps_market_units(live: PhoenixCodec) -> None:
    live.connection_opened()
    live.data_to_send()
    assert live.receive_text(trader_delta(0, 42, eth_updated("1"))) == []
    assert (
        live.receive_text(exchange_delta(101, '{"kind":"marketStatusChanged","symbol":"ETH","status":"paused"}')) == []
    )
    assert live.data_to_send() == []  # waiting for the snapshots is not a gap
    assert live.receive_text(TRADER_SNAPSHOT) == [report(SNAPSHOT_POSITIONS, complete=True)]


def test_positions_wait_for_their_units_and_are_never_guessed() -> None:
    units = {"ETH": PhoenixMarketUnits(base_lots_decimals=3, tick_size=100)}
    codec = PhoenixCodec(V, {AUTHORITY: "alpha"}, config(markets=units))
    codec.connection_opened()
    # ETH units come from config; BTC and DOGE wait: a complete report now would call them flat.
    eth = ReportedPosition("ETH", Decimal("1.0"), Decimal("3000.5"))
    assert codec.receive_text(TRADER_SNAPSHOT) == [report((eth,), complete=False)]
    doge_delta = '[{"symbol":"DOGE","change":"updated","position":{"basePositionLots":"-16","entryPriceUsd":"0.1"}}]'
    assert codec.receive_text(trader_delta(1, 8, doge_delta)) == []
    # The exchange snapshot brings the units: the owed complete report, with DOGE at its latest size.
    events = codec.receive_text(EXCHANGE_SNAPSHOT)
    positions = (SNAPSHOT_POSITIONS[0], ReportedPosition("DOGE", Decimal("-160"), None), eth)
    assert events == [report(positions, complete=True)]
    assert codec.receive_text(exchange_delta(101)) == []  # nothing left to release


def test_a_held_delta_symbol_is_released_when_its_market_is_added(live: PhoenixCodec) -> None:
    sol = '[{"symbol":"SOL","change":"updated","position":{"basePositionLots":"-2500","entryPriceUsd":"150.25"}}]'
    assert live.receive_text(trader_delta(0, 42, sol)) == []
    added = (
        '{"kind":"marketAdded","market":{"symbol":"SOL","marketStatus":"active","baseLotsDecimals":2,'
        '"tickSizeInQuoteLotsPerBaseLot":"1000","takerFeeMicro":200,"makerFeeMicro":0}}'
    )
    assert live.receive_text(exchange_delta(101, added)) == [
        report((ReportedPosition("SOL", Decimal("-25"), Decimal("150.25")),), complete=False)
    ]


def test_a_flat_position_needs_no_units() -> None:
    codec = PhoenixCodec(V, {AUTHORITY: "alpha"}, config())
    codec.connection_opened()
    assert codec.receive_text(TRADER_SNAPSHOT) == []  # every symbol waits for units
    # BTC is flat everywhere now; ETH still has -500 lots in subaccount 1, which need units.
    closes = '[{"symbol":"BTC","change":"closed"},{"symbol":"ETH","change":"closed"}]'
    assert codec.receive_text(trader_delta(0, 42, closes)) == [
        report((ReportedPosition("BTC", Decimal(0), None),), False, 42)
    ]


def test_config_units_override_the_exchange_channel() -> None:
    units = {"BTC": PhoenixMarketUnits(base_lots_decimals=2, tick_size=1)}
    codec = PhoenixCodec(V, {AUTHORITY: "alpha"}, config(markets=units))
    codec.connection_opened()
    codec.receive_text(EXCHANGE_SNAPSHOT)
    (event,) = codec.receive_text(TRADER_SNAPSHOT)
    assert isinstance(event, PositionsReported)
    assert event.positions[0] == ReportedPosition("BTC", Decimal("12.34"), Decimal("65000"))


def test_positions_of_an_authority_no_desk_lists_are_malformed(codec: PhoenixCodec) -> None:
    for frame in (TRADER_SNAPSHOT.replace(AUTHORITY, OTHER), trader_delta(0, 42, authority=OTHER)):
        assert codec.receive_text(frame) == [FrameMalformed(V, "positions for an authority no desk lists")]


@pytest.mark.parametrize("lots", ["1.5", "abc", "", "+5", "1e3", "٣", "99999999999999999999"])
def test_bad_lots_drop_the_whole_delta(live: PhoenixCodec, lots: str) -> None:
    frame = json.loads(trader_delta(0, 42, eth_updated("7")))
    frame["deltas"][0]["positions"].append(
        {"symbol": "BTC", "change": "updated", "position": {"basePositionLots": lots, "entryPriceUsd": "1"}}
    )
    (event,) = live.receive_text(json.dumps(frame))
    assert isinstance(event, FrameMalformed)
    assert "basePositionLots" in event.reason
    assert lots not in event.reason or lots == ""
    # Nothing of it applied: sequence 42 is still next, and ETH is still 1500 in the primary.
    assert live.receive_text(trader_delta(1, 8, eth_updated("0"))) == [
        report((ReportedPosition("ETH", Decimal("1.5"), Decimal("3000.5")),), False, 8)
    ]


# --- exchange --------------------------------------------------------------------------------------


def test_first_snapshot_reports_only_markets_not_trading() -> None:
    codec = PhoenixCodec(V, {AUTHORITY: "alpha"}, config())
    frame = (
        '{"channel":"exchange","messageType":"snapshot","sequenceNumber":"7","slot":1,"slotIndex":0,'
        '"exchange":{"status":"active","markets":['
        '{"symbol":"SOL","marketStatus":"active","baseLotsDecimals":2,"tickSizeInQuoteLotsPerBaseLot":"10"},'
        '{"symbol":"XAU","marketStatus":"postOnly","baseLotsDecimals":3,"tickSizeInQuoteLotsPerBaseLot":"10"},'
        '{"symbol":"OLD","marketStatus":"closed","baseLotsDecimals":0,"tickSizeInQuoteLotsPerBaseLot":"10"}]}}'
    )
    assert codec.receive_text(frame) == [
        MarketStatusChanged(V, "XAU", "postOnly", tradable=False),
        MarketStatusChanged(V, "OLD", "closed", tradable=False),
    ]
    assert codec.receive_text(frame) == []  # the same snapshot again changes nothing


def test_status_deltas_in_order(live: PhoenixCodec) -> None:
    ops = [
        '{"kind":"marketStatusChanged","symbol":"ETH","status":"paused"}',
        '{"kind":"marketStatusChanged","symbol":"ETH","status":"postOnly"}',
        '{"kind":"marketStatusChanged","symbol":"ETH","status":"active"}',
        '{"kind":"marketStatusChanged","symbol":"ETH","status":"active"}',
    ]
    assert live.receive_text(exchange_delta(101, *ops)) == [
        MarketStatusChanged(V, "ETH", "paused", tradable=False),
        MarketStatusChanged(V, "ETH", "postOnly", tradable=False),
        MarketStatusChanged(V, "ETH", "active", tradable=True),
    ]


def test_closed_with_final_price_then_tombstoned_then_deleted(live: PhoenixCodec) -> None:
    closed = '{"kind":"marketClosed","symbol":"BTC","finalized_mark_price":"64123.45"}'
    assert live.receive_text(exchange_delta(101, closed)) == [
        MarketStatusChanged(V, "BTC", "closed", tradable=False, final_price=Decimal("64123.45"))
    ]
    assert live.receive_text(exchange_delta(102, '{"kind":"marketTombstoned","symbol":"BTC"}')) == [
        MarketStatusChanged(V, "BTC", "tombstoned", tradable=False)
    ]
    assert live.receive_text(exchange_delta(103, '{"kind":"marketDeleted","symbol":"BTC"}')) == [
        MarketStatusChanged(V, "BTC", "deleted", tradable=False)
    ]


def test_exchange_wide_status(live: PhoenixCodec) -> None:
    assert live.receive_text(exchange_delta(101, '{"kind":"exchangeStatusChanged","status":"paused"}')) == [
        MarketStatusChanged(V, "*", "paused", tradable=False)
    ]
    assert live.receive_text(exchange_delta(102, '{"kind":"exchangeStatusChanged","status":"active"}')) == [
        MarketStatusChanged(V, "*", "active", tradable=True)
    ]


def test_ops_that_change_nothing_we_track(live: PhoenixCodec) -> None:
    ops = [
        '{"kind":"exchangeKeysUpdated","exchange":{"programId":"p"}}',
        '{"kind":"marketMetadataUpdated","symbol":"ETH","metadata":null}',
        '{"kind":"marketParameterUpdated","symbol":"ETH","update":{"kind":"marketFeesUpdated"}}',
    ]
    assert live.receive_text(exchange_delta(101, *ops)) == []
    assert live.receive_text(exchange_delta(102)) == []


def test_parameter_update_changes_units(live: PhoenixCodec) -> None:
    op = '{"kind":"marketParameterUpdated","symbol":"ETH","baseLotsDecimals":2,"tickSizeInQuoteLotsPerBaseLot":"10"}'
    assert live.receive_text(exchange_delta(101, op)) == []
    assert live.receive_text(trader_delta(1, 8, eth_updated("0"))) == [
        report((ReportedPosition("ETH", Decimal("15"), Decimal("3000.5")),), False, 8)
    ]


def test_duplicate_delta_is_ignored(live: PhoenixCodec) -> None:
    paused = exchange_delta(101, '{"kind":"marketStatusChanged","symbol":"ETH","status":"paused"}')
    assert len(live.receive_text(paused)) == 1
    assert live.receive_text(paused) == []
    assert live.receive_text(exchange_delta(100, '{"kind":"marketStatusChanged","symbol":"ETH","status":"x"}')) == []
    assert live.data_to_send() == []


def test_exchange_gap_resubscribes_and_the_next_snapshot_emits_only_real_changes(live: PhoenixCodec) -> None:
    live.receive_text(exchange_delta(101, '{"kind":"marketStatusChanged","symbol":"ETH","status":"paused"}'))
    assert live.receive_text(exchange_delta(104)) == [SequenceGap(V, "exchange", 102, 104)]
    assert live.data_to_send() == [UNSUBSCRIBE_EXCHANGE, SUBSCRIBE_EXCHANGE]
    assert live.receive_text(exchange_delta(102, '{"kind":"marketStatusChanged","symbol":"BTC","status":"x"}')) == []
    assert live.receive_text(exchange_delta(105, '{"kind":"marketStatusChanged","symbol":"BTC","status":"x"}')) == []
    assert live.data_to_send() == []
    # ETH is still paused, BTC went postOnly while we were blind, DOGE was deleted.
    snapshot = json.loads(EXCHANGE_SNAPSHOT)
    snapshot["sequenceNumber"] = "230"
    markets = snapshot["exchange"]["markets"]
    markets[0]["marketStatus"] = "paused"
    markets[1]["marketStatus"] = "postOnly"
    del markets[2]
    assert live.receive_text(json.dumps(snapshot)) == [
        MarketStatusChanged(V, "BTC", "postOnly", tradable=False),
        MarketStatusChanged(V, "DOGE", "deleted", tradable=False),
        StreamResynced(V, "exchange"),
    ]
    assert live.receive_text(
        exchange_delta(231, '{"kind":"marketStatusChanged","symbol":"ETH","status":"active"}')
    ) == [MarketStatusChanged(V, "ETH", "active", tradable=True)]


def test_sdk_shaped_exchange_frames_are_accepted(codec: PhoenixCodec) -> None:
    # exchange_ws.rs: markets beside `exchange`, `tickSize`, snake_case variant fields.
    snapshot = (
        '{"channel":"exchange","messageType":"snapshot","version":1,"sequenceNumber":"10","slot":42,"slotIndex":7,'
        '"reason":"snapshot","exchange":{"active":true,"gated":false},"markets":[{"symbol":"SOL","assetId":1,'
        '"marketStatus":"active","tickSize":1000,"baseLotsDecimals":2,"takerFee":0.0002,"makerFee":0.0}]}'
    )
    assert codec.receive_text(snapshot) == []
    op = '{"kind":"marketStatusChanged","symbol":"SOL","previous_market_status":"active","new_market_status":"paused"}'
    assert codec.receive_text(exchange_delta(11, op)) == [MarketStatusChanged(V, "SOL", "paused", tradable=False)]


def test_compressed_snapshot_is_malformed(codec: PhoenixCodec) -> None:
    frame = (
        '{"channel":"exchange","messageType":"snapshot","sequenceNumber":"10","slot":42,"slotIndex":7,'
        '"reason":"snapshot","encoding":"base64+zstd","payload":"KLUv/QBYAQAA"}'
    )
    assert codec.receive_text(frame) == [FrameMalformed(V, "exchange: snapshot is not JSON-encoded")]


def test_bad_op_drops_the_whole_delta(live: PhoenixCodec) -> None:
    ops = (
        '{"kind":"marketStatusChanged","symbol":"ETH","status":"paused"}',
        '{"kind":"marketAdded","market":{"symbol":"SOL","marketStatus":"active","baseLotsDecimals":"two"}}',
    )
    (event,) = live.receive_text(exchange_delta(101, *ops))
    assert isinstance(event, FrameMalformed)
    assert event.reason.startswith("exchange: Expected `int`")
    assert live.receive_text(exchange_delta(101, ops[0])) == [MarketStatusChanged(V, "ETH", "paused", tradable=False)]


# --- market data -----------------------------------------------------------------------------------


def test_market_mark_price_is_exact(codec: PhoenixCodec) -> None:
    frame = (
        '{"channel":"market","symbol":"SOL","openInterest":1000.0,"markPx":150.1,"midPx":150.12,"oraclePx":150.0,'
        '"prevDayPx":148.7,"dayNtlVlm":2500000.0,"funding":0.0000125}'
    )
    assert codec.receive_text(frame) == [MarkPrice(V, "SOL", Decimal("150.1"), 0.0, MarkKind.MARK)]
    assert codec.receive_text('{"channel":"market","symbol":"SOL","openInterest":1.0}') == []


def test_all_mids(codec: PhoenixCodec) -> None:
    frame = '{"channel":"allMids","mids":{"SOL":150.25,"BTC":65000.5},"slot":123,"slotIndex":0}'
    assert codec.receive_text(frame) == [
        MarkPrice(V, "SOL", Decimal("150.25"), 0.0, MarkKind.MID),
        MarkPrice(V, "BTC", Decimal("65000.5"), 0.0, MarkKind.MID),
    ]


TRADES = (
    '{"channel":"trades","symbol":"SOL","trades":[{"slot":"123456789","slotIndex":5,"timestamp":"1775578550",'
    '"symbol":"SOL","taker":"9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM","tradeSequenceNumber":"100","side":"bid",'
    '"baseLotsFilled":"1000","quoteLotsFilled":"1500000000","feeInQuoteLots":"30","baseAmount":10.0,'
    '"quoteAmount":1500.0,"numFills":2}]}'
)


def test_trades_are_deduplicated_by_sequence(codec: PhoenixCodec) -> None:
    trade = TradeExecuted(V, "SOL", Decimal("150"), Decimal("10.0"), 100, 1775578550.0)
    assert codec.receive_text(TRADES) == [trade]
    assert codec.receive_text(TRADES) == []
    later = TRADES.replace('"100"', '"101"').replace("1500.0", "1502.5")
    assert codec.receive_text(later) == [TradeExecuted(V, "SOL", Decimal("150.25"), Decimal("10.0"), 101, 1775578550.0)]


def test_trade_price_from_lots_when_amounts_are_absent(live: PhoenixCodec) -> None:
    frame = (
        '{"channel":"trades","symbol":"ETH","trades":[{"timestamp":"1775578551","tradeSequenceNumber":"7",'
        '"side":"ask","baseLotsFilled":"2500","quoteLotsFilled":"7501250000"}]}'
    )
    assert live.receive_text(frame) == [TradeExecuted(V, "ETH", Decimal("3000.5"), Decimal("2.5"), 7, 1775578551.0)]


def test_orderbook_snapshot(codec: PhoenixCodec) -> None:
    frame = (
        '{"channel":"orderbook","symbol":"SOL","orderbook":{"bids":[[150.25,100.0],[150.2,200.0]],'
        '"asks":[[150.3,150.0]],"mid":150.275},"bypassExecutionBand":false}'
    )
    bids = BookSide("bid", (BookLevel(Decimal("150.25"), Decimal("100.0")), BookLevel(Decimal("150.2"), Decimal(200))))
    asks = BookSide("ask", (BookLevel(Decimal("150.3"), Decimal(150)),))
    assert codec.receive_text(frame) == [BookSnapshot(V, "SOL", (bids, asks))]


def test_funding_and_candles_are_known_but_unused(codec: PhoenixCodec) -> None:
    assert codec.receive_text('{"channel":"fundingRate","symbol":"SOL","funding":0.0125}') == []
    candle = '{"channel":"candle","symbol":"SOL","timeframe":"1m","open":1.0,"high":2.0,"low":0.5,"close":1.5}'
    assert codec.receive_text(candle) == []


# --- control ---------------------------------------------------------------------------------------


def test_control_messages(codec: PhoenixCodec) -> None:
    confirmed = (
        '{"type":"subscriptionConfirmed","subscription":{"channel":"traderState",'
        '"authority":"7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU","traderPdaIndex":0}}'
    )
    assert codec.receive_text(confirmed) == [Subscribed(V, "traderState")]
    market = '{"type":"subscriptionConfirmed","subscription":{"channel":"market","symbol":"SOL"}}'
    assert codec.receive_text(market) == [Subscribed(V, "market:SOL")]
    error = (
        '{"type":"subscriptionError","subscription":{"channel":"trades","symbol":"SOL"},'
        '"code":"invalid_subscription","message":"invalid subscription"}'
    )
    assert codec.receive_text(error) == [
        SubscriptionFailed(V, "trades:SOL", "invalid_subscription: invalid subscription", misconfigured=True)
    ]
    channel_error = '{"channel":"error","code":400,"error":"unknown channel"}'
    assert codec.receive_text(channel_error) == [SubscriptionFailed(V, "error channel", "400: unknown channel")]
    status = (
        '{"channel":"subscriptionStatus","status":"subscribed","clientId":"client-1",'
        '"subscription":{"channel":"exchange","encoding":"json"}}'
    )
    assert codec.receive_text(status) == [Subscribed(V, "exchange")]
    assert codec.receive_text(status.replace('"subscribed"', '"unsubscribed"')) == []


# --- one decode for the busy channels -------------------------------------------------------------


def test_busy_channels_are_decoded_once_and_the_rest_by_envelope(live: PhoenixCodec, monkeypatch: Any) -> None:
    import riskmon.venues.phoenix.codec as codec_module

    enveloped: list[str | bytes] = []
    real = codec_module._envelope

    class CountingDecoder:
        def decode(self, frame: str | bytes) -> Any:
            enveloped.append(frame)
            return real.decode(frame)

    monkeypatch.setattr(codec_module, "_envelope", CountingDecoder())
    busy = [
        '{"channel":"allMids","mids":{"SOL":"150.5"}}',
        '{"channel":"market","symbol":"SOL","markPx":150.25}',
        TRADES,
        '{"channel":"orderbook","symbol":"SOL","orderbook":{"bids":[[1,2]],"asks":[]}}',
        trader_delta(0, 42, eth_updated("-2000")),
    ]
    for frame in busy:
        assert live.receive_text(frame)
    assert enveloped == []
    rare = exchange_delta(101)
    live.receive_text(rare)
    assert enveloped == [rare]


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        # A control reply's `type` decides, even on a frame that names a busy channel.
        (
            '{"channel":"market","type":"subscriptionConfirmed","subscription":{"channel":"market","symbol":"SOL"}}',
            Subscribed(V, "market:SOL"),
        ),
        # A handler's name in `type` routes a frame whose channel is unknown.
        (
            '{"type":"market","channel":"x","symbol":"SOL","markPx":1.5}',
            MarkPrice(V, "SOL", Decimal("1.5"), 0.0, MarkKind.MARK),
        ),
        # messageType and body disagreeing: named as the snapshot/delta union names it.
        (
            trader_delta(0, 42).replace('"messageType":"delta"', '"messageType":"snapshot"'),
            FrameMalformed(V, "traderState: Object missing required field `subaccounts`"),
        ),
        (
            '{"channel":"market","symbol":"SOL","markPx":"NaN"}',
            FrameMalformed(V, "market: markPx is not a finite number"),
        ),
        (
            '{"channel":"trades","symbol":"SOL","trades":[{}]}',
            FrameMalformed(V, "trades: Object missing required field `timestamp` at `$.trades[0]`"),
        ),
    ],
)
def test_the_one_decode_keeps_the_envelope_paths_routing_and_reasons(
    live: PhoenixCodec, frame: str, expected: object
) -> None:
    assert live.receive_text(frame) == [expected]


# --- malformed and transport ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ('{"channel":"traderState"', "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"channel":"positions","data":[]}', "unknown channel"),
        ('{"slot":1}', "unknown channel"),
        (trader_delta(0, 42).replace('"sequence":42,', ""), "traderState: Object missing required field `sequence`"),
        (TRADER_SNAPSHOT.replace('"sequence":41', '"sequence":"4x1"'), "traderState: subaccount 0 sequence"),
        (TRADER_SNAPSHOT.replace('"messageType":"snapshot"', '"messageType":"full"'), "traderState: invalid value"),
        (TRADER_SNAPSHOT.replace('"entryPriceUsd":"3000.5"', '"entryPriceUsd":"NaN"'), "entryPriceUsd"),
        (exchange_delta(101).replace('"101"', '"1o1"'), "exchange: sequenceNumber is not an unsigned integer"),
        (exchange_delta(101).replace('"101"', "null"), "exchange: Expected `int | str`, got `null`"),
        (EXCHANGE_SNAPSHOT.replace('"baseLotsDecimals":4', '"baseLotsDecimals":400'), "baseLotsDecimals"),
        ('{"channel":"exchange","messageType":"snapshot","sequenceNumber":"1"}', "snapshot has no markets"),
        ('{"channel":"market","symbol":"SOL","markPx":"NaN"}', "markPx is not a finite number"),
        ('{"channel":"allMids","mids":{"SOL":"1e999999"}}', "mid is not a finite number"),
        (TRADES.replace("10.0", "0.0"), "trade has no positive base amount"),
        ('{"channel":"orderbook","symbol":"SOL","orderbook":{"bids":[[1]]}}', "orderbook: Expected `array` of"),
        ('{"type":"subscriptionError","subscription":{"channel":7}}', "subscriptionError: Expected `str`"),
    ],
)
def test_malformed_frames_are_one_counted_drop(codec: PhoenixCodec, frame: str, reason: str) -> None:
    codec.receive_text(EXCHANGE_SNAPSHOT)
    codec.receive_text(TRADER_SNAPSHOT)
    (event,) = codec.receive_text(frame)
    assert isinstance(event, FrameMalformed)
    assert reason in event.reason


def test_malformed_reason_never_echoes_frame_content(live: PhoenixCodec) -> None:
    secret = "sk_live_DO_NOT_LOG"
    frames = [
        f"{secret} not json",
        f'{{"channel":"{secret}"}}',
        TRADER_SNAPSHOT.replace('"messageType":"snapshot"', f'"messageType":"{secret}"'),
        trader_delta(0, 42, eth_updated(secret)),
        exchange_delta(101).replace('"101"', f'"{secret}"'),
        exchange_delta(101, f'{{"kind":"marketStatusChanged","symbol":"ETH","status":["{secret}"]}}'),
        f'{{"channel":"allMids","mids":{{"SOL":"{secret}"}}}}',
    ]
    for frame in frames:
        (event,) = live.receive_text(frame)
        assert isinstance(event, FrameMalformed)
        assert secret not in event.reason


def test_binary_frames_decode_like_text(live: PhoenixCodec) -> None:
    assert live.receive_bytes(trader_delta(0, 42, eth_updated("-2000")).encode()) == [
        report((ReportedPosition("ETH", Decimal("-2.5"), Decimal("2990")),), False, 42)
    ]
    assert live.receive_bytes(b"\xff\xfe{}") == [FrameMalformed(V, "not JSON")]


def test_rest_is_not_part_of_this_venue(codec: PhoenixCodec) -> None:
    (event,) = codec.receive_rest("get_order", "{}")
    assert isinstance(event, FrameMalformed)


# --- fuzz -----------------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
_templates = [
    json.loads(f)
    for f in (
        EXCHANGE_SNAPSHOT,
        TRADER_SNAPSHOT,
        trader_delta(0, 42, eth_updated("5")),
        exchange_delta(101, '{"kind":"marketClosed","symbol":"BTC","finalized_mark_price":"1.5"}'),
        TRADES,
        '{"channel":"orderbook","symbol":"SOL","orderbook":{"bids":[[1.5,2.0]],"asks":[]}}',
        '{"type":"subscriptionError","subscription":{"channel":"trades"},"code":"x","message":"y"}',
    )
]


def _check(events: list[Any]) -> None:
    assert isinstance(events, list)
    if any(isinstance(event, FrameMalformed) for event in events):
        assert len(events) == 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200), data=st.binary(max_size=200))
def test_random_text_and_bytes_never_raise(live: PhoenixCodec, text: str, data: bytes) -> None:
    _check(live.receive_text(text))
    _check(live.receive_bytes(data))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_valid_frames_never_raise(live: PhoenixCodec, data: st.DataObject) -> None:
    frame = json.loads(json.dumps(data.draw(st.sampled_from(_templates))))
    path = data.draw(st.sampled_from(_paths(frame)))
    parent = frame
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = data.draw(_json)
    _check(live.receive_text(json.dumps(frame)))
