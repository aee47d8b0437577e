"""The Phoenix codec's per-frame fast paths: inlined plausibility checks, memoized trade stamps and
entry prices, strict u64 parsing without a regex, and frames nested too deeply for the decoder.

The simulator's own frames (as the pipeline benchmark builds them) are checked against a reference
read with the standard library (`json` with exact Decimals), so the fast paths change no value.
"""

from __future__ import annotations

import asyncio
import json
import random
from decimal import Decimal

import pytest

from riskmon.bench.venue_frames import PHOENIX_AUTHORITY, PhoenixSource
from riskmon.config.schema import PhoenixVenue
from riskmon.events import MarkKind, MarkPrice, PositionsReported, TradeExecuted
from riskmon.venues.phoenix.codec import PhoenixCodec
from tests.venues.codec_support import only_malformed

AUTHORITY = "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"
V = "phoenix"

EXCHANGE_SNAPSHOT = (
    '{"channel":"exchange","messageType":"snapshot","sequenceNumber":"100","exchange":{"status":"active","markets":['
    '{"symbol":"ETH","marketStatus":"active","baseLotsDecimals":3,"tickSizeInQuoteLotsPerBaseLot":"100"}]}}'
)


def trader_snapshot(entry: str = "3000.5", lots: str = "1500") -> str:
    return (
        '{"channel":"traderState","authority":"' + AUTHORITY + '","traderPdaIndex":0,"messageType":"snapshot",'
        '"subaccounts":[{"subaccountIndex":0,"sequence":41,"positions":[{"symbol":"ETH","basePositionLots":"'
        + lots
        + '","entryPriceUsd":"'
        + entry
        + '"}]}]}'
    )


def trade_frame(sequence: str, timestamp: str = "1775578550", base: str = "10.0", quote: str = "1500.0") -> str:
    return (
        '{"channel":"trades","symbol":"SOL","trades":[{"timestamp":"'
        + timestamp
        + '","tradeSequenceNumber":"'
        + sequence
        + '","baseAmount":'
        + base
        + ',"quoteAmount":'
        + quote
        + "}]}"
    )


@pytest.fixture
def codec() -> PhoenixCodec:
    codec = PhoenixCodec(V, {AUTHORITY: "alpha"}, PhoenixVenue(authority=AUTHORITY, symbols=["SOL", "ETH"]))
    codec.connection_opened()
    codec.data_to_send()
    codec.receive_text(EXCHANGE_SNAPSHOT)
    return codec


# --- plausibility, inlined: the same bounds as frames.plausible -------------------------------------


@pytest.mark.parametrize(
    ("number", "usable"),
    [("1e40", True), ("-1e40", True), ("1e-40", True), ("0", True), ("0.0", True), ("1e41", False), ("1e-41", False)],
)
def test_mid_mark_and_trade_amount_bounds_are_those_of_plausible(
    codec: PhoenixCodec, number: str, usable: bool
) -> None:
    mids = codec.receive_text('{"channel":"allMids","mids":{"SOL":150.5,"ETH":' + number + "}}")
    mark = codec.receive_text('{"channel":"market","symbol":"SOL","markPx":' + number + "}")
    quote = codec.receive_text(trade_frame("7", quote=number))
    if usable:
        assert mids == [
            MarkPrice(V, "SOL", Decimal("150.5"), 0.0, MarkKind.MID),
            MarkPrice(V, "ETH", Decimal(number), 0.0, MarkKind.MID),
        ]
        assert mark == [MarkPrice(V, "SOL", Decimal(number), 0.0, MarkKind.MARK)]
        (trade,) = quote
        assert isinstance(trade, TradeExecuted)
        assert trade.price == Decimal(number) / Decimal("10.0")
    else:
        # One bad mid drops the whole frame: no mark of it is half-applied.
        assert only_malformed(mids) == "allMids: mid is not a finite number"
        assert only_malformed(mark) == "market: markPx is not a finite number"
        assert only_malformed(quote) == "trades: quoteAmount is not a finite number"


@pytest.mark.parametrize("base", ['"NaN"', '"Infinity"', "1e41", "0", "-1.5"])
def test_a_trade_base_amount_must_be_a_plausible_positive_number(codec: PhoenixCodec, base: str) -> None:
    reason = only_malformed(codec.receive_text(trade_frame("7", base=base)))
    assert reason in ("trades: baseAmount is not a finite number", "trades: trade has no positive base amount")


def test_mids_given_as_strings_are_exact(codec: PhoenixCodec) -> None:
    assert codec.receive_text('{"channel":"allMids","mids":{"SOL":"150.10"},"extra":{"x":[1]}}') == [
        MarkPrice(V, "SOL", Decimal("150.10"), 0.0, MarkKind.MID)
    ]


# --- u64 strings, parsed without a regex -------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["", "+7", " 7", "7 ", "1_0", "\u0661\u0662", "\uff17", "7.0", "-7", "18446744073709551616", "9" * 21]
)
def test_u64_strings_take_ascii_digits_only_within_range(codec: PhoenixCodec, text: str) -> None:
    assert only_malformed(codec.receive_text(trade_frame(text))).startswith("trades: tradeSequenceNumber is ")
    assert only_malformed(codec.receive_text(trade_frame("8", timestamp=text))).startswith("trades: timestamp is ")


def test_the_largest_u64_is_a_sequence(codec: PhoenixCodec) -> None:
    (trade,) = codec.receive_text(trade_frame("18446744073709551615"))
    assert isinstance(trade, TradeExecuted)
    assert trade.sequence == 2**64 - 1


# --- memos --------------------------------------------------------------------------------------------


def test_trade_stamps_are_remembered_but_a_bad_one_never_is(codec: PhoenixCodec) -> None:
    first, second = (codec.receive_text(trade_frame(str(n), timestamp="1775578551")) for n in (1, 2))
    assert [e.venue_ts for e in first + second if isinstance(e, TradeExecuted)] == [1775578551.0, 1775578551.0]
    for n in (3, 4):  # the second bad stamp is refused again, not served from the memo
        assert only_malformed(codec.receive_text(trade_frame(str(n), timestamp="17x"))) == (
            "trades: timestamp is not an unsigned integer"
        )
    (later,) = codec.receive_text(trade_frame("5", timestamp="0017"))
    assert isinstance(later, TradeExecuted)
    assert later.venue_ts == 17.0


def test_entry_prices_are_remembered_but_a_bad_one_never_is(codec: PhoenixCodec) -> None:
    for _ in range(2):
        reason = only_malformed(codec.receive_text(trader_snapshot(entry="3,000")))
        assert reason == "traderState: subaccount 0 entryPriceUsd is not a decimal number"
    for lots, quantity in (("1500", "1.5"), ("-250", "-0.25")):
        (report,) = codec.receive_text(trader_snapshot(lots=lots))
        assert isinstance(report, PositionsReported)
        (position,) = report.positions
        assert (position.quantity, position.entry_price) == (Decimal(quantity), Decimal("3000.5"))


# --- nesting ------------------------------------------------------------------------------------------

DEEP = "[" * 3000 + "]" * 3000


@pytest.mark.parametrize(
    "frame",
    [
        '{"channel":"allMids","mids":{"SOL":' + DEEP + "}}",
        '{"channel":"trades","symbol":"SOL","trades":' + DEEP + "}",
        '{"channel":"candle","x":' + DEEP + "}",
        '{"type":"subscriptionConfirmed","subscription":' + DEEP + "}",
        '{"channel":"exchange","messageType":"delta","sequenceNumber":"101","ops":' + DEEP + "}",
        '{"slot":' + DEEP + "}",
    ],
)
def test_a_frame_nested_too_deeply_is_one_counted_drop(codec: PhoenixCodec, frame: str) -> None:
    # msgspec stops at Python's recursion limit with RecursionError, which used to escape the codec.
    assert "JSON nested too deeply" in only_malformed(codec.receive_text(frame))
    assert "JSON nested too deeply" in only_malformed(codec.receive_bytes(frame.encode()))


def test_a_large_all_mids_frame_is_read_whole(codec: PhoenixCodec) -> None:
    mids = {f"S{i}": f"{i}.25" for i in range(20_000)}
    frame = '{"channel":"allMids","mids":{' + ",".join(f'"{s}":{m}' for s, m in mids.items()) + "}}"
    events = codec.receive_text(frame)
    assert len(events) == 20_000
    assert events[-1] == MarkPrice(V, "S19999", Decimal("19999.25"), 0.0, MarkKind.MID)


# --- the simulator's frames against a standard-library reading ---------------------------------------


def _reference(frames: list[str], units: dict[str, int]) -> list[tuple[str, object]]:
    """What each frame must yield, read with json (exact Decimals) and the apply rules of §5.3-§5.4."""
    expected: list[tuple[str, object]] = []
    last_trade: dict[str, int] = {}
    lots: dict[str, int] = {}
    for frame in frames:
        message = json.loads(frame, parse_float=Decimal)
        channel = message["channel"]
        if channel == "allMids":
            expected += [("mid", (s, Decimal(str(p)))) for s, p in message["mids"].items()]
        elif channel == "market":
            expected.append(("mark", (message["symbol"], message["markPx"])))
        elif channel == "trades":
            for trade in message["trades"]:
                sequence = int(trade["tradeSequenceNumber"])
                if sequence > last_trade.get(message["symbol"], -1):
                    last_trade[message["symbol"]] = sequence
                    price = trade["quoteAmount"] / trade["baseAmount"]
                    expected.append(("trade", (message["symbol"], price, trade["baseAmount"], sequence)))
        else:
            (delta,) = message["deltas"]
            for row in delta["positions"]:
                lots[row["symbol"]] = int(row["position"]["basePositionLots"])
                symbol = row["symbol"]
                expected.append(("position", (symbol, Decimal(lots[symbol]).scaleb(-units[symbol]))))
    return expected


def _read(codec: PhoenixCodec, frames: list[str]) -> list[tuple[str, object]]:
    got: list[tuple[str, object]] = []
    for frame in frames:
        for event in codec.receive_text(frame):
            if isinstance(event, MarkPrice):
                got.append(("mid" if event.kind is MarkKind.MID else "mark", (event.market, event.price)))
            elif isinstance(event, TradeExecuted):
                got.append(("trade", (event.market, event.price, event.quantity, event.sequence)))
            elif isinstance(event, PositionsReported):
                got += [("position", (p.market, p.quantity)) for p in event.positions]
            else:
                raise AssertionError(f"unexpected {event!r}")
    return got


def test_simulator_frames_match_a_standard_library_reading() -> None:
    source = PhoenixSource(random.Random(7))
    codec = PhoenixCodec(V, {PHOENIX_AUTHORITY: "perp"}, PhoenixVenue(authority=PHOENIX_AUTHORITY, symbols=["SOL"]))
    for frame in source.handshake(codec):
        codec.receive_text(frame)
    codec.data_to_send()
    frames = asyncio.run(source.frames(600))
    expected = _reference(frames, {"SOL": 2, "ETH": 3})
    assert {kind for kind, _ in expected} == {"mid", "mark", "trade", "position"}
    assert _read(codec, frames) == expected
