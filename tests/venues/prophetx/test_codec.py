"""The ProphetX codec against frames in the shapes of protocols.md §3: text in, events and frames out."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskmon.events import (
    BookLevel,
    BookSide,
    BookSnapshot,
    FrameMalformed,
    Heartbeat,
    OrderStatus,
    OrderUpdate,
    Subscribed,
    SubscriptionFailed,
    TradeExecuted,
)
from riskmon.venues.base import PingingCodec
from riskmon.venues.prophetx.codec import ProphetXCodec
from tests.venues.prophetx.conftest import CODEC_ACCOUNT as ACCOUNT
from tests.venues.prophetx.helpers import VENUE

BROADCAST = "private-broadcast-service=3-device_type=5"
PRIVATE = "private-service=3-device_type=5-user=<account_id>"
EVENT_CHANNEL = "private-broadcast-service=3-device_type=5-event=10078829"

CONNECTION_ESTABLISHED = (
    r'{"event":"pusher:connection_established","data":"{\"socket_id\":\"123.456\",\"activity_timeout\":120}"}'
)

# protocols.md §3.1, verbatim.
REGISTER_RESPONSE = r"""{"auth":"<key>:<hmac>","data":{"success":true,"status":"CONNECTED","updated_at":1784813285,"subscriptions":[{"type":"tournament","ids":["109"]}],"authorized_channel":[{"channel_name":"private-broadcast-service=3-device_type=5","auth":"<key>:<hmac1>","binding_events":[{"name":"tournament_109","type":"tournament"},{"name":"general","type":"general"}]},{"channel_name":"private-service=3-device_type=5-user=<account_id>","auth":"<key>:<hmac2>","binding_events":[{"name":"wagers","type":"wagers"},{"name":"health_check","type":"private_system_signal"}]},{"channel_name":"private-broadcast-service=3-device_type=5-event=10078829","auth":"...","binding_events":[{"name":"market_selections","type":"market_selections"}],"scope":{"event_id":10078829}}],"channel_count":4,"channel_limit":400,"authenticated":{"auth":"<key>:<hmac5>","user_data":"{\"id\":\"<account_id>\"}"}}}"""  # noqa: E501

EXAMPLE_TS = 1717689526365275600  # the §3.2 example envelope

WAGER = (
    '{"info":{"id":99001,"user_id":7782,"external_id":"desk-a-0001","sport_event_id":10078829,"market_id":219,'
    '"outcome_id":4,"line_id":"cffa7d","line":-3.5,"odds":-110,"stake":250.75,"profit":227.95,"matched_stake":45.3,'
    '"matched_odds":-110,"totally_matched_stake":100.25,"unmatched_stake":150.5,"matching_status":"partially_matched",'
    '"winning_status":"tbd","status":"open","update_type":"matching","sequence_number":1709130007835319000}}'
)


def b64(payload: str) -> str:
    return base64.b64encode(payload.encode()).decode()


def channel_frame(
    event: str,
    change_type: str,
    payload: str,
    *,
    channel: str = PRIVATE,
    timestamp: int = EXAMPLE_TS,
    op: str = "u",
) -> str:
    envelope = json.dumps({"timestamp": timestamp, "change_type": change_type, "op": op, "payload": b64(payload)})
    return json.dumps({"event": event, "channel": channel, "data": envelope})


def wager(**changes: object) -> str:
    data = json.loads(WAGER)  # floats are fine here: re-dumped as the same short text
    data["info"].update(changes)
    for key in [k for k, v in data["info"].items() if v is None]:
        del data["info"][key]
    return json.dumps(data)


def only(events: Sequence[object]) -> object:
    assert len(events) == 1
    return events[0]


@pytest.fixture
def registered(codec: ProphetXCodec) -> ProphetXCodec:
    codec.receive_text(CONNECTION_ESTABLISHED)
    codec.receive_rest("register", REGISTER_RESPONSE)
    codec.data_to_send()
    return codec


# ---- handshake ----------------------------------------------------------------------------------


def test_full_handshake_signs_in_and_subscribes_with_the_registration_auths(codec: ProphetXCodec) -> None:
    assert codec.data_to_send() == []  # the server speaks first
    assert not codec.needs_registration
    assert codec.receive_text(CONNECTION_ESTABLISHED) == []
    assert codec.socket_id == "123.456"
    assert codec.activity_timeout == 120.0
    assert codec.needs_registration
    assert codec.data_to_send() == []

    assert codec.receive_rest("register", REGISTER_RESPONSE) == []
    assert not codec.needs_registration
    assert codec.channels == (BROADCAST, PRIVATE, EVENT_CHANNEL)
    assert codec.data_to_send() == [
        r'{"event":"pusher:signin","data":{"auth":"<key>:<hmac5>","user_data":"{\"id\":\"<account_id>\"}"}}',
        '{"event":"pusher:subscribe","data":{"auth":"<key>:<hmac1>","channel":"' + BROADCAST + '"}}',
        '{"event":"pusher:subscribe","data":{"auth":"<key>:<hmac2>","channel":"' + PRIVATE + '"}}',
        '{"event":"pusher:subscribe","data":{"auth":"...","channel":"' + EVENT_CHANNEL + '"}}',
    ]
    binding = codec.channel_bindings[EVENT_CHANNEL]
    assert binding.binding_events == (("market_selections", "market_selections"),)
    assert dict(binding.scope) == {"event_id": 10078829}
    assert codec.channel_bindings[PRIVATE].binding_events == (
        ("wagers", "wagers"),
        ("health_check", "private_system_signal"),
    )
    assert codec.subscribed_channels == frozenset()

    signin = codec.receive_text('{"event":"pusher:signin_success","data":"{\\"user_data\\":\\"{}\\"}"}')
    assert signin == [Subscribed(VENUE, "user signin")]
    for channel in (BROADCAST, PRIVATE, EVENT_CHANNEL):
        frame = json.dumps({"event": "pusher_internal:subscription_succeeded", "channel": channel, "data": "{}"})
        assert codec.receive_text(frame) == [Subscribed(VENUE, channel)]
    assert codec.subscribed_channels == frozenset({BROADCAST, PRIVATE, EVENT_CHANNEL})
    assert codec.data_to_send() == []


def test_a_new_connection_forgets_socket_registration_and_subscriptions(registered: ProphetXCodec) -> None:
    registered.receive_text(json.dumps({"event": "pusher_internal:subscription_succeeded", "channel": PRIVATE}))
    registered.send_ping()
    registered.connection_opened()
    assert registered.socket_id is None
    assert registered.activity_timeout is None
    assert not registered.needs_registration
    assert registered.channels == ()
    assert registered.subscribed_channels == frozenset()
    assert not registered.pong_outstanding
    assert registered.data_to_send() == []
    # The next socket gets the signin and every subscribe again, with its own signatures.
    registered.receive_text(r'{"event":"pusher:connection_established","data":"{\"socket_id\":\"9.9\"}"}')
    assert registered.activity_timeout is None
    registered.receive_rest("register", REGISTER_RESPONSE)
    assert len(registered.data_to_send()) == 4


def test_a_registration_answer_without_a_socket_is_dropped(codec: ProphetXCodec) -> None:
    event = only(codec.receive_rest("register", REGISTER_RESPONSE))
    assert isinstance(event, FrameMalformed)
    assert codec.data_to_send() == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"data":{"success":false,"status":"FAILED","authorized_channel":[]}}', "'FAILED'"),
        ('{"data":{"success":true,"authorized_channel":[]}}', "no channels authorized"),
        ('{"error":"exceed_subscription_count","message":"over channel_limit"}', "'exceed_subscription_count'"),
        ('{"code":"wildcard_not_allowed"}', "'wildcard_not_allowed'"),
    ],
)
def test_a_refused_registration_is_a_failed_subscription(codec: ProphetXCodec, body: str, reason: str) -> None:
    codec.receive_text(CONNECTION_ESTABLISHED)
    event = only(codec.receive_rest("register", body))
    assert isinstance(event, SubscriptionFailed)
    assert (event.subscription, event.misconfigured) == ("channel registration", False)
    assert reason in event.reason
    assert codec.needs_registration  # still needed: the session retries on its backoff
    assert codec.data_to_send() == []


def test_a_new_registration_on_the_same_socket_replaces_the_channel_set(registered: ProphetXCodec) -> None:
    response = json.loads(REGISTER_RESPONSE)
    channels = response["data"]["authorized_channel"]
    channels[2] = {"channel_name": EVENT_CHANNEL.replace("10078829", "555"), "auth": "<key>:<hmac7>"}
    del response["data"]["authenticated"]
    assert registered.receive_rest("register", json.dumps(response)) == []
    assert registered.data_to_send() == [
        '{"event":"pusher:unsubscribe","data":{"channel":"' + EVENT_CHANNEL + '"}}',
        '{"event":"pusher:subscribe","data":{"auth":"<key>:<hmac7>","channel":"'
        + EVENT_CHANNEL.replace("10078829", "555")
        + '"}}',
    ]


def test_ping_pong_both_ways(registered: ProphetXCodec) -> None:
    pinging: PingingCodec = registered  # mypy checks the protocol is met
    assert pinging.venue == VENUE
    assert registered.receive_text('{"event":"pusher:ping","data":"{}"}') == []
    assert registered.data_to_send() == ['{"event":"pusher:pong","data":{}}']
    assert not registered.pong_outstanding
    registered.send_ping()
    assert registered.pong_outstanding
    assert registered.data_to_send() == ['{"event":"pusher:ping","data":{}}']
    assert registered.receive_text('{"event":"pusher:pong","data":"{}"}') == []
    assert not registered.pong_outstanding


def test_pusher_error_names_the_channel_and_never_echoes_a_signature(registered: ProphetXCodec) -> None:
    message = f"Invalid signature: Expected HMAC SHA256 hex digest of 123.456:{PRIVATE}, but got <hmac2>"
    frame = json.dumps({"event": "pusher:error", "channel": PRIVATE, "data": {"message": message, "code": None}})
    event = only(registered.receive_text(frame))
    assert isinstance(event, SubscriptionFailed)
    assert event.subscription == PRIVATE
    assert event.reason.startswith("code ?: Invalid signature")
    assert "<hmac2>" not in event.reason
    assert not event.misconfigured

    frame = json.dumps({"event": "pusher:error", "data": json.dumps({"message": "App disabled", "code": 4003})})
    assert registered.receive_text(frame) == [SubscriptionFailed(VENUE, "pusher", "code 4003: App disabled", True)]
    frame = '{"event":"pusher:error","data":{"message":"Over capacity","code":4100}}'
    assert registered.receive_text(frame) == [SubscriptionFailed(VENUE, "pusher", "code 4100: Over capacity", False)]


def test_other_protocol_chatter_is_ignored(registered: ProphetXCodec) -> None:
    frame = '{"event":"pusher_internal:subscription_count","channel":"x","data":"{\\"subscription_count\\":2}"}'
    assert registered.receive_text(frame) == []


# ---- orders ---------------------------------------------------------------------------------------


def test_partially_matched_open_wager_is_an_exact_order_update(registered: ProphetXCodec) -> None:
    event = only(registered.receive_text(channel_frame("wagers", "wager", WAGER)))
    assert event == OrderUpdate(
        venue=VENUE,
        desk="alpha",
        account=ACCOUNT,
        order_id="99001",
        market="10078829/219/4",
        status=OrderStatus.OPEN,
        venue_status="open",
        sequence=1709130007835319000,
        venue_ts=EXAMPLE_TS / 10**9,
        reason=None,
        external_id="desk-a-0001",
        price=Decimal(-110),
        quantity=Decimal("250.75"),
        filled_quantity=Decimal("100.25"),
        fill_price=Decimal(-110),
        worst_case_loss_usd=Decimal("100.25"),
    )


@pytest.mark.parametrize(
    ("venue_status", "status", "at_risk"),
    [
        ("inactive", OrderStatus.PENDING, True),
        ("open", OrderStatus.OPEN, True),
        ("invalid", OrderStatus.REJECTED, False),
        ("canceled", OrderStatus.CANCELED, True),  # the matched part of a canceled order still stands
        ("void", OrderStatus.VOID, False),
        ("wiped", OrderStatus.VOID, False),
        ("settled", OrderStatus.SETTLED, False),
        ("manually_settled", OrderStatus.SETTLED, False),
        ("closed", OrderStatus.SETTLED, False),
    ],
)
def test_every_status_maps_with_its_worst_case_loss(
    registered: ProphetXCodec, venue_status: str, status: OrderStatus, at_risk: bool
) -> None:
    event = only(registered.receive_text(channel_frame("wagers", "wager", wager(status=venue_status))))
    assert isinstance(event, OrderUpdate)
    assert (event.status, event.venue_status) == (status, venue_status)
    assert event.worst_case_loss_usd == (Decimal("100.25") if at_risk else Decimal(0))


def test_matched_stake_stands_in_when_the_cumulative_total_is_absent(registered: ProphetXCodec) -> None:
    event = only(registered.receive_text(channel_frame("wagers", "wager", wager(totally_matched_stake=None))))
    assert isinstance(event, OrderUpdate)
    assert event.filled_quantity == event.worst_case_loss_usd == Decimal("45.3")
    bare = wager(totally_matched_stake=None, matched_stake=None, matched_odds=None, status="inactive")
    event = only(registered.receive_text(channel_frame("wagers", "wager", bare)))
    assert isinstance(event, OrderUpdate)
    assert (event.filled_quantity, event.worst_case_loss_usd, event.fill_price) == (None, None, None)


def test_v4_orders_event_with_price_and_quantity(registered: ProphetXCodec) -> None:
    payload = (
        '{"info":{"id":"ord-1","user_id":"7782","external_id":"x1","sport_event_id":5,"market_id":6,"outcome_id":7,'
        '"price":-122,"quantity":1.0,"matched_stake":0,"status":"inactive","sequence_number":3}}'
    )
    event = only(registered.receive_text(channel_frame("orders", "order", payload)))
    assert isinstance(event, OrderUpdate)
    assert (event.order_id, event.market, event.status) == ("ord-1", "5/6/7", OrderStatus.PENDING)
    assert (event.price, event.quantity, event.filled_quantity) == (Decimal(-122), Decimal("1.0"), Decimal(0))
    assert event.worst_case_loss_usd == Decimal(0)
    # The event name alone says it is an order, whatever the change_type.
    assert isinstance(only(registered.receive_text(channel_frame("orders", "orders", payload))), OrderUpdate)


def test_auxiliary_fields_of_unexpected_type_do_not_cost_the_update(registered: ProphetXCodec) -> None:
    payload = wager(external_id=123, reason={"code": 7}, line_id=5, matching_status=None)
    event = only(registered.receive_text(channel_frame("wagers", "wager", payload)))
    assert isinstance(event, OrderUpdate)
    assert (event.external_id, event.reason) == ("123", None)


@pytest.mark.parametrize("field", ["reason", "failure_reason", "invalid_reason"])
def test_the_rejection_reason_is_kept(registered: ProphetXCodec, field: str) -> None:
    payload = wager(status="invalid", **{field: "insufficient_balance"})
    event = only(registered.receive_text(channel_frame("wagers", "wager", payload)))
    assert isinstance(event, OrderUpdate)
    assert (event.status, event.reason) == (OrderStatus.REJECTED, "insufficient_balance")


def test_orders_of_unlisted_accounts_go_to_the_default_desk_or_are_dropped() -> None:
    solo = ProphetXCodec(VENUE, {ACCOUNT: "alpha"}, "alpha")
    event = only(solo.receive_text(channel_frame("wagers", "wager", wager(user_id=1))))
    assert isinstance(event, OrderUpdate)
    assert (event.desk, event.account) == ("alpha", "1")
    event = only(solo.receive_text(channel_frame("wagers", "wager", wager(user_id=None))))
    assert isinstance(event, OrderUpdate)
    assert (event.desk, event.account) == ("alpha", ACCOUNT)

    shared = ProphetXCodec(VENUE, {ACCOUNT: "alpha", "8000": "beta"}, None)
    event = only(shared.receive_text(channel_frame("wagers", "wager", wager(user_id=8000))))
    assert isinstance(event, OrderUpdate)
    assert event.desk == "beta"
    assert shared.receive_text(channel_frame("wagers", "wager", wager(user_id=1))) == [
        FrameMalformed(VENUE, "order for an account no desk lists")
    ]


def test_a_replayed_update_gives_identical_events(registered: ProphetXCodec) -> None:
    frame = channel_frame("wagers", "wager", WAGER)
    assert registered.receive_text(frame) == registered.receive_text(frame)


# ---- broadcasts and heartbeats ---------------------------------------------------------------------


def test_health_check_is_a_heartbeat_on_whatever_channel_binds_it(codec: ProphetXCodec) -> None:
    envelope = (
        r"{\"change_type\":\"private_system_signal\",\"op\":\"u\",\"payload\":\"e30=\","
        r"\"timestamp\":1717689531000000000}"
    )
    frame = '{"event":"health_check","channel":"%s","data":"' + envelope + '"}'
    assert codec.receive_text(frame % PRIVATE) == [Heartbeat(VENUE, "", 1717689531.0)]  # before the socket_id
    codec.receive_text(CONNECTION_ESTABLISHED)
    assert codec.receive_text(frame % BROADCAST) == [Heartbeat(VENUE, "123.456", 1717689531.0)]


def test_market_selections_become_a_book_snapshot(registered: ProphetXCodec) -> None:
    payload = (
        '{"sport_event_id":10078829,"market_id":219,"info":{"id":456,"name":"Spread","type":"spread","line":-3.5,'
        '"sequence_number":1234567890,"selections":[[{"outcome_id":4,"name":"Lakers -3.5","competitor_id":100,'
        '"line":-3.5,"line_id":"abc123","odds":110,"display_odds":"-110","display_line":"-3.5","value":100.0,'
        '"stake":110.0,"updated_at":1234567890},{"outcome_id":4,"odds":115,"stake":20.05}],'
        '[{"outcome_id":5,"odds":-120,"stake":3.1}],[]]}}'
    )
    frame = channel_frame("market_selections", "market_selections", payload, channel=EVENT_CHANNEL)
    assert registered.receive_text(frame) == [
        BookSnapshot(
            VENUE,
            "10078829/219",
            (
                BookSide("4", (BookLevel(Decimal(110), Decimal("110.0")), BookLevel(Decimal(115), Decimal("20.05")))),
                BookSide("5", (BookLevel(Decimal(-120), Decimal("3.1")),)),
                BookSide("", ()),
            ),
            1234567890,
        )
    ]
    singular = channel_frame("market_selection", "market_selection", payload, channel=EVENT_CHANNEL)
    assert registered.receive_text(singular) == registered.receive_text(frame)


def test_the_spec_example_matched_bet_keeps_its_nanosecond_timestamp(registered: ProphetXCodec) -> None:
    payload = (
        '{"info":{"sport_event_id":44285780,"market_id":219,"line_id":"cffa7d...","outcome_id":4,"line":0,"odds":124,'
        '"matched_odds":124,"matched_stake":45.3,"origin_market_line":0,"sequence_number":1709130007835319000}}'
    )
    envelope = json.dumps(
        {"timestamp": EXAMPLE_TS, "change_type": "matched_bet", "op": "c", "payload": b64(payload)},
        separators=(",", ":"),
    )
    frame = json.dumps({"event": "tournament_109", "channel": BROADCAST, "data": envelope})
    event = only(registered.receive_text(frame))
    assert event == TradeExecuted(
        VENUE, "44285780/219/4", Decimal(124), Decimal("45.3"), 1709130007835319000, 1717689526.3652756
    )
    assert isinstance(event, TradeExecuted)
    assert event.venue_ts is not None
    assert abs(Decimal(event.venue_ts) - Decimal("1717689526.3652756")) < Decimal("0.000001")


def test_trade_execution_is_the_same_trade_and_falls_back_to_odds(registered: ProphetXCodec) -> None:
    payload = '{"info":{"sport_event_id":1,"market_id":2,"outcome_id":3,"odds":-150,"matched_stake":10}}'
    event = only(registered.receive_text(channel_frame("t", "trade_execution", payload, channel=BROADCAST)))
    assert event == TradeExecuted(VENUE, "1/2/3", Decimal(-150), Decimal(10), None, EXAMPLE_TS / 10**9)


@pytest.mark.parametrize("change_type", ["tournament", "sport_event", "market", "market_line"])
def test_catalogue_changes_carry_no_events(registered: ProphetXCodec, change_type: str) -> None:
    payload = '{"id":10078829,"tournament_id":109}'
    assert registered.receive_text(channel_frame("tournament_109", change_type, payload, op="d")) == []


# ---- REST ----------------------------------------------------------------------------------------


INFO = WAGER[len('{"info":') : -1]


@pytest.mark.parametrize(
    "body",
    [
        '{"data":' + INFO + "}",
        INFO,
        '{"data":{"info":' + INFO + "}}",
        '{"data":{"wager":' + INFO + "}}",
        '{"data":{"order":' + INFO + ',"last_synced_at":1}}',
    ],
)
def test_get_order_gives_the_same_update_without_a_timestamp(registered: ProphetXCodec, body: str) -> None:
    event = only(registered.receive_rest("get_order", body))
    streamed = only(registered.receive_text(channel_frame("wagers", "wager", WAGER)))
    assert isinstance(event, OrderUpdate)
    assert isinstance(streamed, OrderUpdate)
    assert event.venue_ts == 0.0
    assert event == OrderUpdate(**{**{f: getattr(streamed, f) for f in streamed.__struct_fields__}, "venue_ts": 0.0})


def test_get_order_timestamps_and_failures(registered: ProphetXCodec) -> None:
    event = only(registered.receive_rest("get_order", '{"timestamp":1717689526000,"data":' + INFO + "}"))
    assert isinstance(event, OrderUpdate)
    assert event.venue_ts == 1717689526.0  # milliseconds, told apart by magnitude
    event = only(registered.receive_rest("get_order", '{"timestamp":"2024-06-06T16:25:26Z","data":' + INFO + "}"))
    assert isinstance(event, OrderUpdate)
    assert event.venue_ts == 0.0  # a timestamp of unknown form costs nothing but the time
    for body in ('{"error":"wager_not_found"}', '{"data":[]}', "nope", '{"data":{"id":1}}'):
        assert isinstance(only(registered.receive_rest("get_order", body)), FrameMalformed)
    assert registered.receive_rest("get_balance", "{}") == [FrameMalformed(VENUE, "no REST call 'get_balance'")]


# ---- malformed -------------------------------------------------------------------------------------


def _envelope_frame(data: object) -> str:
    return json.dumps({"event": "wagers", "channel": PRIVATE, "data": data})


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{not json", "pusher frame: not JSON"),
        ('{"channel":"x"}', "pusher frame: unexpected shape"),
        ('{"event":7}', "pusher frame: unexpected shape"),
        ('{"event":"pusher:connection_established","data":"{}"}', "connection_established: unexpected shape"),
        ('{"event":"pusher_internal:subscription_succeeded","data":"{}"}', "without a channel"),
        (_envelope_frame("{not json"), "envelope: not JSON"),
        (_envelope_frame(None), "envelope: missing data"),
        (_envelope_frame(json.dumps({"timestamp": 1, "change_type": "wager"})), "envelope: unexpected shape"),
        (_envelope_frame(json.dumps({"timestamp": "x", "change_type": "w", "payload": ""})), "envelope: unexpected"),
        (_envelope_frame(json.dumps({"timestamp": 1, "change_type": "wager", "payload": "@@"})), "not valid base64"),
        (channel_frame("wagers", "wager", "{not json"), "wager payload: not JSON"),
        (channel_frame("wagers", "wager", wager(id=None)), "`id`"),
        (channel_frame("wagers", "wager", wager(status=None)), "`status`"),
        (channel_frame("wagers", "wager", wager(sequence_number=None)), "`sequence_number`"),
        (channel_frame("wagers", "wager", wager(sequence_number="12")), "$.info.sequence_number"),
        (channel_frame("wagers", "wager", wager(status="pending_review")), "unknown status 'pending_review'"),
        (channel_frame("wagers", "wager", wager(stake="NaN")), "`stake` is not a finite number"),
        (channel_frame("x", "market_selections", '{"sport_event_id":1,"market_id":2,"info":{}}'), "selections"),
        (
            channel_frame("x", "market_selections", '{"sport_event_id":1,"market_id":2,"info":{"selections":[[{}]]}}'),
            "a level without odds or stake",
        ),
        (channel_frame("x", "matched_bet", '{"info":{"sport_event_id":1,"market_id":2,"outcome_id":3}}'), "matched"),
        (
            channel_frame(
                "x", "matched_bet", '{"info":{"sport_event_id":1,"market_id":2,"outcome_id":3,"matched_stake":1}}'
            ),
            "no odds",
        ),
        (channel_frame("health_check", "private_system_signal", "{"), "payload: not JSON"),
        (channel_frame("x", "sport_event", "{"), "payload: not JSON"),
        (channel_frame("x", "jackpot", "{}"), "unknown change_type 'jackpot'"),
    ],
)
def test_malformed_frames_become_one_counted_drop(registered: ProphetXCodec, frame: str, reason: str) -> None:
    event = only(registered.receive_text(frame))
    assert isinstance(event, FrameMalformed)
    assert reason in event.reason


def test_malformed_reasons_never_echo_frame_content(registered: ProphetXCodec) -> None:
    secret = "sk_live_DO_NOT_LOG"
    frames = [
        f"{secret} not json",
        channel_frame("wagers", "wager", wager(status=f"{secret} !")),
        channel_frame("wagers", "wager", wager(stake=secret)),
        channel_frame("x", f"{secret}!", "{}"),
        _envelope_frame(json.dumps({"timestamp": 1, "change_type": "wager", "payload": secret + "!"})),
        json.dumps({"event": "pusher:connection_established", "data": json.dumps({"socket_id": 1, "k": secret})}),
    ]
    for frame in frames:
        event = only(registered.receive_text(frame))
        assert isinstance(event, FrameMalformed)
        assert secret not in event.reason
    for body in (f'{{"error":"{secret} x"}}', f'{{"data":{{"success":false,"status":"{secret}!"}}}}'):
        failed = only(registered.receive_rest("register", body))
        assert isinstance(failed, SubscriptionFailed)
        assert secret not in failed.reason


def test_binary_frames_are_dropped(registered: ProphetXCodec) -> None:
    assert registered.receive_bytes(b"\x00\x01") == [FrameMalformed(VENUE, "binary frame on a text-only feed")]
    assert registered.data_to_send() == []


# ---- fuzz ------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(text=st.text(), data=st.binary(), source=st.sampled_from(["register", "get_order", "other"]))
def test_random_input_never_raises(text: str, data: bytes, source: str) -> None:
    codec = ProphetXCodec(VENUE, {ACCOUNT: "alpha"}, None)
    codec.receive_text(CONNECTION_ESTABLISHED)
    for events in (codec.receive_text(text), codec.receive_bytes(data), codec.receive_rest(source, text)):
        assert isinstance(events, list)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=60, deadline=None)
@given(
    change_type=st.sampled_from(["wager", "order", "market_selections", "matched_bet", "sport_event", "health", "?"]),
    info=st.dictionaries(
        st.sampled_from(["id", "status", "sequence_number", "odds", "stake", "user_id", "selections", "matched_stake"]),
        json_values,
    ),
    raw=st.binary(max_size=40),
)
def test_random_payloads_never_raise(change_type: str, info: dict[str, object], raw: bytes) -> None:
    codec = ProphetXCodec(VENUE, {ACCOUNT: "alpha"}, "alpha")
    for payload in (json.dumps({"info": info, "sport_event_id": 1, "market_id": 2}), raw.decode("latin-1")):
        events = codec.receive_text(channel_frame("wagers", change_type, payload))
        assert len(events) <= 1


def test_base64_only_binascii_takes_still_decodes_as_before(codec: ProphetXCodec) -> None:
    # "e30g" is `{} ` complete; the stray "=" after it is taken by binascii's strict mode and refused
    # by msgspec, so the envelope falls back to the strict decode: still a heartbeat, not a drop.
    envelope = json.dumps(
        {"change_type": "private_system_signal", "op": "u", "payload": "e30g=", "timestamp": 1717689531000000000}
    )
    frame = json.dumps({"event": "health_check", "channel": PRIVATE, "data": envelope})
    assert codec.receive_text(frame) == [Heartbeat(VENUE, "", 1717689531.0)]


def test_a_non_finite_book_level_is_named_in_declaration_order(registered: ProphetXCodec) -> None:
    level = '{"outcome_id":1,"odds":"NaN","stake":"Infinity"}'
    payload = f'{{"sport_event_id":1,"market_id":2,"info":{{"selections":[[{level}]]}}}}'
    event = only(registered.receive_text(channel_frame("market_selections", "market_selections", payload)))
    assert isinstance(event, FrameMalformed)
    assert "`odds` is not a finite number" in event.reason
