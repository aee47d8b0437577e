"""The ProphetX codec's per-frame fast paths: finiteness checked where payloads are used (not in a
`__post_init__` per decoded struct), the book path first, remembered market names, payloads only
checked as JSON, and frames nested too deeply for the decoder.

The simulator's own frames (as the pipeline benchmark builds them) are checked against a reference
read with the standard library, so the fast paths change no value.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
from decimal import Decimal
from typing import Any

import pytest

from riskmon.bench.venue_frames import PROPHETX_ACCOUNT, ProphetXSource
from riskmon.events import (
    BookLevel,
    BookSide,
    BookSnapshot,
    Heartbeat,
    OrderStatus,
    OrderUpdate,
    TradeExecuted,
)
from riskmon.venues.prophetx.codec import ProphetXCodec
from tests.venues.codec_support import only_malformed
from tests.venues.prophetx.helpers import VENUE

CHANNEL = "private-service=3-device_type=5-user=7782"
TS = 1717689526365275600


def frame(event: str, change_type: str, payload: str | bytes, *, timestamp: int = TS) -> str:
    raw = payload.encode() if isinstance(payload, str) else payload
    envelope = {
        "timestamp": timestamp,
        "change_type": change_type,
        "op": "u",
        "payload": base64.b64encode(raw).decode(),
    }
    return json.dumps({"event": event, "channel": CHANNEL, "data": json.dumps(envelope)})


def book(*levels: str) -> str:
    return '{"sport_event_id":1,"market_id":2,"info":{"sequence_number":9,"selections":[[' + ",".join(levels) + "]]}}"


def order(**fields: object) -> str:
    info: dict[str, object] = {"id": 5, "user_id": 7782, "status": "open", "sequence_number": 3, "odds": -110}
    info.update(fields)
    return json.dumps({"info": info})


# --- finiteness, checked where the payload is used ----------------------------------------------------


@pytest.mark.parametrize(
    ("level", "named"),
    [
        ('{"outcome_id":1,"odds":110,"stake":5,"price":"NaN"}', "price"),  # an unused v4 name still counts
        ('{"outcome_id":1,"odds":110,"stake":5,"quantity":"-Infinity"}', "quantity"),
        ('{"outcome_id":1,"odds":110,"stake":"sNaN"}', "stake"),
        ('{"outcome_id":1,"price":"NaN","quantity":"NaN"}', "price"),
    ],
)
def test_a_non_finite_amount_anywhere_in_a_level_drops_the_book(codec: ProphetXCodec, level: str, named: str) -> None:
    reason = only_malformed(codec.receive_text(frame("x", "market_selections", book(level))))
    assert reason == f"market_selections payload: `{named}` is not a finite number"


def test_levels_in_the_v4_names_and_mixed_with_the_legacy_ones(codec: ProphetXCodec) -> None:
    levels = ('{"outcome_id":"a","price":-120,"quantity":"7.50"}', '{"outcome_id":"a","odds":130,"quantity":2}')
    (snapshot,) = codec.receive_text(frame("x", "market_selection", book(*levels)))
    side = BookSide("a", (BookLevel(Decimal(-120), Decimal("7.50")), BookLevel(Decimal(130), Decimal(2))))
    assert snapshot == BookSnapshot(VENUE, "1/2", (side,), 9)


@pytest.mark.parametrize("field", ["odds", "stake", "price", "quantity", "matched_stake", "matched_odds"])
def test_a_non_finite_amount_drops_the_order_update(codec: ProphetXCodec, field: str) -> None:
    reason = only_malformed(codec.receive_text(frame("wagers", "wager", order(**{field: "Infinity"}))))
    assert reason == f"order '5': `{field}` is not a finite number"
    body = json.dumps({"data": json.loads(order(**{field: "NaN"}))["info"]})
    assert only_malformed(codec.receive_rest("get_order", body)) == f"order '5': `{field}` is not a finite number"


def test_a_non_finite_trade_is_dropped(codec: ProphetXCodec) -> None:
    trade = '{"info":{"sport_event_id":1,"market_id":2,"outcome_id":3,"matched_stake":"NaN","odds":120}}'
    reason = only_malformed(codec.receive_text(frame("x", "matched_bet", trade)))
    assert reason == "matched_bet payload: `matched_stake` is not a finite number"


# --- routing: the book path first, without changing who wins -----------------------------------------


def test_the_event_name_still_outranks_a_book_change_type(codec: ProphetXCodec) -> None:
    payload = book('{"outcome_id":1,"odds":110,"stake":5}')
    assert codec.receive_text(frame("health_check", "market_selections", "{}")) == [Heartbeat(VENUE, "", TS / 1e9)]
    # A private `wagers` event is read as an order whatever its change_type says: this one is not one.
    assert "`id`" in only_malformed(codec.receive_text(frame("wagers", "market_selections", payload)))
    (snapshot,) = codec.receive_text(frame("anything", "market_selections", payload))
    assert isinstance(snapshot, BookSnapshot)


def test_market_names_are_remembered_per_event_market_and_outcome(codec: ProphetXCodec) -> None:
    names = []
    for ids in ({"sport_event_id": 1, "market_id": 2, "outcome_id": 3}, {"sport_event_id": "1", "market_id": 2}):
        for _ in range(2):
            (update,) = codec.receive_text(frame("orders", "order", order(**ids)))
            assert isinstance(update, OrderUpdate)
            names.append(update.market)
    assert names == ["1/2/3", "1/2/3", "1/2/?", "1/2/?"]


@pytest.mark.parametrize("change_type", ["sport_event", "tournament", "market", "market_line"])
def test_catalogue_payloads_are_checked_as_json_and_carry_nothing(codec: ProphetXCodec, change_type: str) -> None:
    assert codec.receive_text(frame("x", change_type, '{"info":{"id":1,"competitors":[{"name":"a"}]}}')) == []
    assert only_malformed(codec.receive_text(frame("x", change_type, '{"info":'))) == f"{change_type} payload: not JSON"
    assert only_malformed(codec.receive_text(frame("x", change_type, b"{}\xff"))).startswith(f"{change_type} payload")


def test_unknown_fields_at_every_layer_are_ignored(codec: ProphetXCodec) -> None:
    payload = json.loads(order(matched_stake=10, totally_matched_stake=12.5, extra={"deep": [1, {"x": None}]}))
    payload["also"] = "ignored"
    encoded = base64.b64encode(json.dumps(payload).encode()).decode()
    envelope = {"timestamp": TS, "change_type": "wager", "payload": encoded, "v": 2}
    text = json.dumps({"event": "wagers", "channel": CHANNEL, "data": json.dumps(envelope), "meta": [1]})
    (update,) = codec.receive_text(text)
    assert isinstance(update, OrderUpdate)
    assert (update.status, update.filled_quantity, update.worst_case_loss_usd) == (
        OrderStatus.OPEN,
        Decimal("12.5"),
        Decimal("12.5"),
    )


# --- nesting ------------------------------------------------------------------------------------------

DEEP = "[" * 3000 + "]" * 3000


@pytest.mark.parametrize(
    ("text", "layer"),
    [
        (json.dumps({"event": "x", "data": '{"timestamp":1,"change_type":"wager","z":' + DEEP + "}"}), "envelope"),
        (frame("wagers", "wager", '{"info":{"z":' + DEEP + "}}"), "wager payload"),
        (frame("x", "sport_event", DEEP), "sport_event payload"),
        (frame("health_check", "private_system_signal", DEEP), "private_system_signal payload"),
        (frame("x", "market_selections", '{"z":' + DEEP + "}"), "market_selections payload"),
    ],
)
def test_a_frame_nested_too_deeply_is_one_counted_drop(codec: ProphetXCodec, text: str, layer: str) -> None:
    # msgspec stops at Python's recursion limit with RecursionError, which used to escape the codec.
    assert only_malformed(codec.receive_text(text)) == f"{layer}: JSON nested too deeply"


@pytest.mark.parametrize("source", ["get_order", "markets", "markets:10078829"])
def test_a_rest_body_nested_too_deeply_is_one_counted_drop(codec: ProphetXCodec, source: str) -> None:
    assert only_malformed(codec.receive_rest(source, '{"data":{"info":' + DEEP + "}}")).endswith("nested too deeply")


# --- the simulator's frames against a standard-library reading ---------------------------------------


def _payload(text: str) -> tuple[str, int, dict[str, Any]]:
    outer = json.loads(text)
    envelope = json.loads(outer["data"])
    return outer["event"], envelope["timestamp"], json.loads(base64.b64decode(envelope["payload"]), parse_float=Decimal)


def _expected(text: str) -> object:
    event, timestamp, payload = _payload(text)
    if event == "health_check":
        return Heartbeat(VENUE, "", timestamp / 1_000_000_000)
    info = payload["info"]
    if event == "market_selections":
        sides = tuple(
            BookSide(str(side[0]["outcome_id"]), tuple(BookLevel(Decimal(lv["odds"]), lv["stake"]) for lv in side))
            for side in info["selections"]
        )
        return BookSnapshot(
            VENUE, f"{payload['sport_event_id']}/{payload['market_id']}", sides, info["sequence_number"]
        )
    return (info["id"], info["status"], info["sequence_number"], info["totally_matched_stake"], Decimal(info["odds"]))


def test_simulator_frames_match_a_standard_library_reading() -> None:
    source = ProphetXSource(random.Random(3))
    codec = ProphetXCodec(VENUE, {PROPHETX_ACCOUNT: "bets"}, "bets")
    codec.connection_opened()
    frames = asyncio.run(source.frames(300))
    kinds = set()
    for text in frames:
        (event,) = codec.receive_text(text)
        expected = _expected(text)
        kinds.add(type(event).__name__)
        if isinstance(event, OrderUpdate):
            assert isinstance(expected, tuple)
            got = (event.order_id, event.venue_status, event.sequence, event.filled_quantity, event.price)
            assert got == expected
            assert event.worst_case_loss_usd == event.filled_quantity
        else:
            assert event == expected
    assert kinds == {"BookSnapshot", "OrderUpdate", "Heartbeat"}


def test_trades_keep_the_matched_odds_first(codec: ProphetXCodec) -> None:
    trade = (
        '{"info":{"sport_event_id":1,"market_id":2,"outcome_id":3,"matched_stake":45.3,"odds":124,"matched_odds":120}}'
    )
    assert codec.receive_text(frame("x", "trade_execution", trade)) == [
        TradeExecuted(VENUE, "1/2/3", Decimal(120), Decimal("45.3"), None, TS / 1_000_000_000)
    ]
