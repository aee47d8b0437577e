"""The ProphetX codec's REST reads for reconciliation (protocols.md §3.4, §3.5): books from
get_multiple_markets / get_markets, and the activation watchdog's order read. Pure: text in, events out."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskmon.events import BookLevel, BookSide, BookSnapshot, Event, FrameMalformed, OrderStatus, OrderUpdate
from riskmon.venues.prophetx.codec import ProphetXCodec
from tests.venues.prophetx.conftest import CODEC_ACCOUNT as ACCOUNT
from tests.venues.prophetx.helpers import VENUE

EVENT_CHANNEL = "private-broadcast-service=3-device_type=5-event=10078829"
EXAMPLE_TS = 1717689526365275600

# Market objects in the §3.2 market_selections `info` shape, the market's id as `id` (the simulator's
# get_markets). Stakes and odds chosen so that only exact Decimals compare equal.
SPREAD = (
    '{"id":219,"name":"Spread","type":"spread","line":-3.5,"sequence_number":1234567890,"selections":['
    '[{"outcome_id":4,"name":"Lakers -3.5","competitor_id":100,"line":-3.5,"line_id":"abc123","odds":110,'
    '"display_odds":"-110","display_line":"-3.5","value":100.0,"stake":110.0,"updated_at":1234567890},'
    '{"outcome_id":4,"odds":115,"stake":20.05}],'
    '[{"outcome_id":5,"odds":-120,"stake":3.1}],[]]}'
)
MONEYLINE = (
    '{"id":220,"name":"Moneyline","type":"moneyline","line":0,"sequence_number":77,"selections":['
    '[{"outcome_id":8,"odds":-10000,"stake":0.01}],[{"outcome_id":9,"odds":10000,"stake":100000000}]]}'
)
OTHER_EVENT = '{"id":7,"sequence_number":3,"selections":[[{"outcome_id":1,"odds":-110,"stake":100.0}]]}'

SPREAD_BOOK = BookSnapshot(
    VENUE,
    "10078829/219",
    (
        BookSide("4", (BookLevel(Decimal(110), Decimal("110.0")), BookLevel(Decimal(115), Decimal("20.05")))),
        BookSide("5", (BookLevel(Decimal(-120), Decimal("3.1")),)),
        BookSide("", ()),
    ),
    1234567890,
)
MONEYLINE_BOOK = BookSnapshot(
    VENUE,
    "10078829/220",
    (
        BookSide("8", (BookLevel(Decimal(-10000), Decimal("0.01")),)),
        BookSide("9", (BookLevel(Decimal(10000), Decimal(100000000)),)),
    ),
    77,
)
OTHER_BOOK = BookSnapshot(VENUE, "42/7", (BookSide("1", (BookLevel(Decimal(-110), Decimal("100.0")),)),), 3)


def b64(payload: str) -> str:
    return base64.b64encode(payload.encode()).decode()


def market_selections(event_id: int, market_id: int, info: str) -> str:
    payload = f'{{"sport_event_id":{event_id},"market_id":{market_id},"info":{info}}}'
    envelope = json.dumps(
        {"timestamp": EXAMPLE_TS, "change_type": "market_selections", "op": "u", "payload": b64(payload)}
    )
    return json.dumps({"event": "market_selections", "channel": EVENT_CHANNEL, "data": envelope})


def streamed(codec: ProphetXCodec) -> list[Event]:
    """The same books as the venue's stream carries them."""
    return [
        *codec.receive_text(market_selections(10078829, 219, SPREAD)),
        *codec.receive_text(market_selections(10078829, 220, MONEYLINE)),
        *codec.receive_text(market_selections(42, 7, OTHER_EVENT)),
    ]


# ---- books --------------------------------------------------------------------------------------


def test_get_multiple_markets_gives_the_books_the_stream_gives(codec: ProphetXCodec) -> None:
    body = '{"data":{"10078829":[' + SPREAD + "," + MONEYLINE + '],"42":[' + OTHER_EVENT + '],"5":[]}}'
    books = codec.receive_rest("markets", body)
    assert books == [SPREAD_BOOK, MONEYLINE_BOOK, OTHER_BOOK]
    assert books == streamed(codec)
    assert codec.data_to_send() == []


@pytest.mark.parametrize(
    ("source", "body"),
    [
        # The simulator's get_markets: the event is the one asked about, named by the source.
        ("markets:10078829", '{"data":{"markets":[' + SPREAD + "," + MONEYLINE + "]}}"),
        ("markets", '{"data":{"sport_event_id":10078829,"markets":[' + SPREAD + "," + MONEYLINE + "]}}"),
        ("markets", '{"data":{"event_id":"10078829","markets":[' + SPREAD + "," + MONEYLINE + "]}}"),
        # Market Data docs: `data` may be the bare list, each market naming its event.
        ("markets", '{"data":[' + SPREAD[:-1] + ',"event_id":10078829},' + MONEYLINE[:-1] + ',"event_id":10078829}]}'),
        ("markets:10078829", '{"data":[' + SPREAD + "," + MONEYLINE + "]}"),
        # get_multiple_markets with each event's markets as an object, beside v4 sync metadata.
        ("markets", '{"data":{"last_synced_at":1784813285,"10078829":{"markets":[' + SPREAD + "," + MONEYLINE + "]}}}"),
    ],
)
def test_get_markets_for_one_event_gives_the_stream_books(codec: ProphetXCodec, source: str, body: str) -> None:
    assert codec.receive_rest(source, body) == [SPREAD_BOOK, MONEYLINE_BOOK]
    assert codec.receive_rest(source, body) == streamed(codec)[:2]


def test_the_answer_names_win_over_the_asked_event_and_market_id_over_id(codec: ProphetXCodec) -> None:
    # A key of get_multiple_markets, or an event named in the answer, says whose market it is.
    body = '{"data":[' + OTHER_EVENT[:-1] + ',"sport_event_id":42}]}'
    assert codec.receive_rest("markets:10078829", body) == [OTHER_BOOK]
    # The stream's info.id need not be the market id (§3.2: 456 for market 219); `market_id` is.
    info = SPREAD.replace('"id":219', '"id":456,"market_id":219')
    assert codec.receive_rest("markets", '{"data":{"10078829":[' + info + "]}}") == [SPREAD_BOOK]
    assert codec.receive_text(market_selections(10078829, 219, info)) == [SPREAD_BOOK]


def test_a_market_without_a_sequence_number_has_none(codec: ProphetXCodec) -> None:
    body = '{"data":{"42":[{"id":7,"selections":[[{"outcome_id":1,"price":-110,"quantity":100.0}]]}]}}'
    assert codec.receive_rest("markets", body) == [
        BookSnapshot(VENUE, "42/7", (BookSide("1", (BookLevel(Decimal(-110), Decimal("100.0")),)),), None)
    ]


@pytest.mark.parametrize("body", ['{"data":{}}', '{"data":[]}', '{"data":{"5":[]}}', '{"data":{"markets":[]}}'])
def test_no_markets_is_no_books(codec: ProphetXCodec, body: str) -> None:
    assert codec.receive_rest("markets", body) == []


@pytest.mark.parametrize(
    ("source", "body", "reason"),
    [
        ("markets", "not json", "markets: body: not JSON"),
        ("markets", "[]", "markets: body: unexpected shape"),
        ("markets", '{"error":"not_found"}', "markets: body: no data"),
        ("markets", '{"data":3}', "markets: data: unexpected shape: Expected `object | array`, got `int`"),
        ("markets", '{"data":{"10078829":[{"id":219}]}}', "markets: event 10078829: unexpected shape"),
        ("markets", '{"data":{"10078829":[{"id":219,"selections":[{}]}]}}', "$[0].selections[0]"),
        ("markets", '{"data":{"1 2":[]}}', "markets: data: a key that is not an event id"),
        ("markets", '{"data":{"5":3}}', "markets: event 5: unexpected shape: Expected `object | array`, got `int`"),
        ("markets", '{"data":{"5":[{"selections":[]}]}}', "markets: event 5: market 0 has no id"),
        ("markets", '{"data":{"markets":[' + SPREAD + "]}}", "markets: data: market 0 names no event"),
        ("markets", '{"data":[' + SPREAD + "]}", "markets: data: market 0 names no event"),
        ("markets", '{"data":{"markets":{}}}', "markets: data: unexpected shape"),
        (
            "markets",
            '{"data":{"5":[{"id":1,"selections":[[{"outcome_id":1,"odds":110}]]}]}}',
            "markets: book '5'/'1': a level without odds or stake",
        ),
        (
            "markets",
            '{"data":{"5":[{"id":1,"selections":[[{"odds":110,"stake":"NaN"}]]}]}}',
            "`stake` is not a finite number",
        ),
        ("markets", '{"data":{"5":[{"id":1,"sequence_number":"9","selections":[]}]}}', "$[0].sequence_number"),
        ("markets:", '{"data":[]}', "no REST call 'markets:'"),
        ("markets:1 2", '{"data":[]}', "no REST call <unprintable>"),
        ("get_markets", '{"data":[]}', "no REST call 'get_markets'"),
    ],
)
def test_malformed_market_answers_are_one_frame_malformed(
    codec: ProphetXCodec, source: str, body: str, reason: str
) -> None:
    (event,) = codec.receive_rest(source, body)
    assert isinstance(event, FrameMalformed)
    assert event.venue == VENUE
    assert reason in event.reason


def test_malformed_market_reasons_never_echo_the_answer(codec: ProphetXCodec) -> None:
    secret = "sk_live_DO_NOT_LOG"
    for body in (
        f"{secret} not json",
        f'{{"data":"{secret}"}}',
        f'{{"data":{{"{secret} x":[]}}}}',
        f'{{"data":{{"5":[{{"id":"{secret} x","selections":[[{{"odds":1}}]]}}]}}}}',
        f'{{"data":{{"5":[{{"id":1,"selections":[[{{"odds":1,"stake":"{secret}"}}]]}}]}}}}',
    ):
        (event,) = codec.receive_rest("markets", body)
        assert isinstance(event, FrameMalformed)
        assert secret not in event.reason
    (event,) = codec.receive_rest(f"markets:{secret} !", '{"data":[]}')
    assert event == FrameMalformed(VENUE, "no REST call <unprintable>")


# ---- the activation watchdog's order read --------------------------------------------------------

INFO = (
    '{"id":99001,"user_id":7782,"external_id":"desk-a-0001","sport_event_id":10078829,"market_id":219,'
    '"outcome_id":4,"line_id":"cffa7d","line":-3.5,"odds":-110,"stake":250.75,"profit":227.95,"matched_stake":45.3,'
    '"matched_odds":-110,"totally_matched_stake":100.25,"unmatched_stake":150.5,"matching_status":"partially_matched",'
    '"winning_status":"tbd","status":"open","update_type":"matching","sequence_number":1709130007835319000}'
)


@pytest.mark.parametrize(
    "body",
    [
        '{"data":' + INFO + "}",
        '{"timestamp":1717689526000,"data":{"order":' + INFO + "}}",
        '{"error":"order_not_found"}',
        "nope",
    ],
)
def test_reconcile_order_decodes_as_get_order(codec: ProphetXCodec, body: str) -> None:
    def named(events: list[Event], source: str) -> list[Event]:
        # A drop names the read it came from; everything else is the same.
        return [
            FrameMalformed(e.venue, e.reason.replace(source, "<read>", 1)) if isinstance(e, FrameMalformed) else e
            for e in events
        ]

    reconciled = codec.receive_rest("reconcile_order", body)
    assert len(reconciled) == 1
    assert named(reconciled, "reconcile_order") == named(codec.receive_rest("get_order", body), "get_order")


def test_reconcile_order_is_an_exact_order_update(codec: ProphetXCodec) -> None:
    assert codec.receive_rest("reconcile_order", '{"data":' + INFO + "}") == [
        OrderUpdate(
            venue=VENUE,
            desk="alpha",
            account=ACCOUNT,
            order_id="99001",
            market="10078829/219/4",
            status=OrderStatus.OPEN,
            venue_status="open",
            sequence=1709130007835319000,
            venue_ts=0.0,
            reason=None,
            external_id="desk-a-0001",
            price=Decimal(-110),
            quantity=Decimal("250.75"),
            filled_quantity=Decimal("100.25"),
            fill_price=Decimal(-110),
            worst_case_loss_usd=Decimal("100.25"),
        )
    ]
    (event,) = codec.receive_rest("reconcile_order", '{"data":{"id":1}}')
    assert isinstance(event, FrameMalformed)
    assert event.reason.startswith("reconcile_order: order info: unexpected shape")


# ---- fuzz -------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=12,
)
market_fields = st.dictionaries(
    st.sampled_from(["id", "market_id", "event_id", "sport_event_id", "sequence_number", "selections", "markets"]),
    json_values,
)


@settings(max_examples=80, deadline=None)
@given(
    text=st.text(),
    data=st.one_of(json_values, st.lists(market_fields, max_size=3), st.dictionaries(st.text(max_size=4), json_values)),
    source=st.sampled_from(["markets", "markets:5", "reconcile_order", "markets:"]),
)
def test_random_answers_never_raise(text: str, data: object, source: str) -> None:
    codec = ProphetXCodec(VENUE, {ACCOUNT: "alpha"}, "alpha")
    for body in (text, json.dumps({"data": data}), json.dumps({"data": {"5": data}})):
        events = codec.receive_rest(source, body)
        assert all(isinstance(event, BookSnapshot | OrderUpdate | FrameMalformed) for event in events)
        malformed = [event for event in events if isinstance(event, FrameMalformed)]
        assert malformed == [] or events == malformed == malformed[:1]
