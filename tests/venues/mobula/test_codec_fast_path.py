"""The Mobula codec's first pass: another trader's frame is read only as far as its mark needs.

A desk's frame, a control frame and anything the first pass cannot place are decoded whole and
checked as before. The mark of a frame must not depend on whose it is, and the first pass must
never refuse a frame the whole decode takes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskmon.config.schema import MobulaPerpEventsVenue
from riskmon.config.types import Secret
from riskmon.events import Event, FillReceived, FrameMalformed, Liquidation, MarkPrice, PositionAmended
from riskmon.venues.mobula import sim_frames
from riskmon.venues.mobula.codec import MobulaPerpEventsCodec

DESK = "0xabc0000000000000000000000000000000dead01"
STRANGER = "0x2222222222222222222222222222222222222222"
DATE = datetime(2026, 6, 8, 0, 18, 34, 613_000, tzinfo=UTC)


def _codec() -> MobulaPerpEventsCodec:
    config = MobulaPerpEventsVenue(api_key=Secret("k"), chain_ids=["evm:42161", "lighter:304"])
    return MobulaPerpEventsCodec("mobula", {DESK: "alpha"}, config)


def _push(data: dict[str, Any], chain: str = "evm:42161") -> str:
    return json.dumps({"data": data, "chainId": chain, "duplicateCount": 1, "subscriptionId": "sub_1"})


def _as(trader: str, data: dict[str, Any]) -> dict[str, Any]:
    key = "account" if "account" in data else "traderAddress"
    return {**data, key: trader}


def _malformed(events: list[Event]) -> bool:
    return len(events) == 1 and isinstance(events[0], FrameMalformed)


def _gains(kind: str, trade_id: str, raw: str, price: float, long: bool) -> dict[str, Any]:
    return sim_frames.gains_trade(
        kind,
        DESK,
        trade_id=trade_id,
        tx_hash=f"0x{trade_id}",
        base_amount_raw=raw,
        price_usd=price,
        long=long,
        date=DATE,
    )


def _lighter(kind: str, trade_id: str, size: str, price: float) -> dict[str, Any]:
    return sim_frames.lighter_liquidation(
        kind, DESK, size=size, price=price, tx_hash=f"0x{trade_id}", trade_id=trade_id, date=DATE
    )


# The simulator's frames, as the desk's: Gains trades (baseAmountRaw, priceUSD) and Lighter
# liquidations (account, size, price).
SIMULATED = [
    _gains("MARKET_BUY", "1", "250000000000000000", 3500.5, long=True),
    _gains("MARKET_SELL", "2", "1", 0.25, long=False),
    _gains("LIMIT_BUY", "3", "10", 64000, long=True),
    _lighter("LIQUIDATION_LONG", "4", "0.75", 3120.5),
    _lighter("LIQUIDATION_SHORT", "5", "2", 99.5),
]


@pytest.mark.parametrize("data", SIMULATED, ids=lambda d: str(d["type"]))
def test_a_strangers_execution_is_exactly_the_mark_the_desks_own_would_move(data: dict[str, Any]) -> None:
    codec = _codec()
    ours = codec.receive_text(_push(data))
    mark = ours[0]
    assert isinstance(mark, MarkPrice)
    assert any(isinstance(e, FillReceived | Liquidation) for e in ours[1:])
    assert codec.receive_text(_push(_as(STRANGER, data))) == [mark]
    assert mark.venue_ts == DATE.timestamp()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"extra": {"open": True, "trade": {"long": "yes"}}}, "unexpected event shape"),
        ({"extra": "opened"}, "unexpected event shape"),
        ({"tradeId": [1]}, "unexpected event shape"),
        ({"transactionHash": 12}, "unexpected event shape"),
        ({"blockNumber": "12a"}, "MARKET_BUY: blockNumber is not an integer"),
        ({"blockNumber": -1}, "MARKET_BUY: blockNumber is negative"),
        ({"priceQuote": True}, "unexpected event shape: Expected `decimal | null`, got `bool` - at `$.priceQuote`"),
        ({"long": "yes"}, "unexpected event shape"),
    ],
)
def test_a_bad_field_the_mark_does_not_read_drops_a_desks_frame_but_not_a_strangers_mark(
    change: dict[str, Any], reason: str
) -> None:
    codec = _codec()
    data = {**SIMULATED[0], **change}
    (drop,) = codec.receive_text(_push(data))
    assert isinstance(drop, FrameMalformed)
    assert drop.reason.startswith(reason)
    (mark,) = codec.receive_text(_push(_as(STRANGER, data)))
    assert mark == MarkPrice("mobula", "gains-btc-usd-usdc", Decimal("3500.5"), DATE.timestamp())


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"priceUSD": None, "priceQuote": "7x"}, "unexpected event shape: Invalid decimal string - at `$.priceQuote`"),
        ({"priceUSD": None, "priceQuote": {"v": 1}}, "unexpected event shape: Expected `decimal | null`, got `object`"),
        ({"priceUSD": "Infinity"}, "MARKET_BUY: priceUSD is not a finite number"),
        ({"priceUSD": 0}, "MARKET_BUY: priceUSD is not positive"),
        ({"priceUSD": "3500.5x"}, "unexpected event shape"),
        ({"date": "yesterday"}, "MARKET_BUY: date is not ISO-8601"),
        ({"baseAmountRaw": "1" * 79}, "MARKET_BUY: baseAmountRaw is not a non-negative integer"),
        ({"baseAmountRaw": "0"}, "MARKET_BUY: baseAmountRaw is not positive"),
        ({"baseAmountRaw": None, "size": "NaN"}, "MARKET_BUY: size is not a finite number"),
        ({"type": "MARKET_HOLD"}, "unknown event type MARKET_HOLD"),
        ({"market": ""}, "MARKET_BUY without a market"),
    ],
)
def test_a_bad_field_the_mark_reads_drops_the_frame_whoever_traded(change: dict[str, Any], reason: str) -> None:
    codec = _codec()
    data = {**SIMULATED[0], **change}
    for trader in (DESK, STRANGER):
        (drop,) = codec.receive_text(_push(_as(trader, data)))
        assert isinstance(drop, FrameMalformed)
        assert drop.reason.startswith(reason)


def test_price_quote_is_the_price_when_price_usd_is_missing() -> None:
    codec = _codec()
    data = {**SIMULATED[0], "priceUSD": None, "priceQuote": "3499.75"}
    (mark,) = codec.receive_text(_push(_as(STRANGER, data)))
    assert isinstance(mark, MarkPrice)
    assert mark.price == Decimal("3499.75")
    assert codec.receive_text(_push(data))[0] == mark


def test_a_strangers_amendment_or_cancel_is_nothing_and_is_not_parsed() -> None:
    codec = _codec()
    stored = sim_frames.trade_stored(
        DESK,
        trade_id="9",
        tx_hash="0x09",
        long=True,
        collateral="1000",
        leverage=10,
        open_price=3500,
        tp=0,
        sl=0,
        date=DATE,
    )
    cancel = sim_frames.market_cancel(
        "MARKET_OPEN_CANCELED", DESK, trade_id="10", tx_hash="0x10", cancel_reason=3, date=DATE
    )
    for data in (stored, cancel):
        (desk_event,) = codec.receive_text(_push(data))
        assert not isinstance(desk_event, FrameMalformed)
        # Another trader's: nothing riskmon keeps, so a value it never reads cannot drop it either.
        broken = {**data, "date": "yesterday", "blockNumber": "x", "extra": {"trade": {"long": "yes"}}}
        assert codec.receive_text(_push(_as(STRANGER, broken))) == []
        # The desk's own is still checked whole.
        assert _malformed(codec.receive_text(_push(broken)))
    (amended,) = codec.receive_text(_push(stored))
    assert isinstance(amended, PositionAmended)
    assert amended.key == f"0x09:TRADE_STORED:{DESK}:9"


def test_unknown_and_oversize_fields_are_skipped() -> None:
    codec = _codec()
    data = {**SIMULATED[0], "padding": "x" * 1_000_000, "nested": {"a": [1, {"b": None}]}, "activePosition": {}}
    mark, fill = codec.receive_text(_push(data))
    assert isinstance(fill, FillReceived)
    assert codec.receive_text(_push(_as(STRANGER, data))) == [mark]


def test_control_frames_and_envelope_errors_still_take_the_checked_route() -> None:
    codec = _codec()
    assert codec.receive_text('{"event":"pong"}') != []
    assert codec.receive_text('{"data":null}')[0] == FrameMalformed(
        "mobula", "unexpected event shape: Expected `object`, got `null`"
    )
    assert _malformed(codec.receive_text('{"data":{"type":"MARKET_BUY"},"chainId":[1]}'))
    # A stranger's frame with a broken envelope is refused whole: the frame itself is not readable.
    assert _malformed(codec.receive_text(_push(_as(STRANGER, SIMULATED[0]))[:-3]))


# -- the first pass is never stricter than the whole decode, and the mark is the same ---------------

_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.sampled_from(["", "0", "1", "-1", "12.5x", "NaN", "3500.5", "2026-06-08T00:18:34.613Z", "yesterday"]),
    st.lists(st.integers(), max_size=2),
)
_fields = st.sampled_from(
    [
        "type",
        "market",
        "priceUSD",
        "priceQuote",
        "price",
        "baseAmountRaw",
        "size",
        "date",
        "blockNumber",
        "tradeId",
        "transactionHash",
        "exchange",
        "chainId",
        "long",
        "extra",
    ]
)


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SIMULATED), st.dictionaries(_fields, _values, max_size=3))
def test_a_strangers_frame_is_refused_only_when_the_same_frame_of_a_desk_is(
    base: dict[str, Any], changes: dict[str, Any]
) -> None:
    codec = _codec()
    data = {**base, **changes}
    ours = codec.receive_text(_push(data))
    theirs = codec.receive_text(_push(_as(STRANGER, data)))
    if not _malformed(ours):
        marks = [e for e in ours if isinstance(e, MarkPrice)]
        assert theirs == marks
    if _malformed(theirs):
        assert _malformed(ours)
