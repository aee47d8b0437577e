"""The Totalis RFQ codec against frames in the shapes of protocols.md §4: text in, events and frames out."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskmon.config.schema import TotalisRfqVenue
from riskmon.config.types import Secret
from riskmon.events import (
    Event,
    FrameMalformed,
    Heartbeat,
    QuoteLeg,
    QuoteStatus,
    QuoteUpdate,
    RfqPositionStatus,
    RfqPositionUpdate,
    Subscribed,
    SubscriptionFailed,
)
from riskmon.venues.totalis.codec import TotalisRfqCodec

API_KEY = "tk_live_DO_NOT_LOG_7f3a"
MM = "did:privy:mm-alpha"
DESK = "parlays"
DEADLINE = 1780339545.0  # 2026-06-01T18:45:45Z
ACCEPTED_AT = 1780339530.0  # 2026-06-01T18:45:30Z

AUTH_OK = '{"type":"auth:success","user_id":"did:privy:mm-alpha","user_type":"user"}'
QUOTE_ACCEPTED = (
    '{"type":"quote:accepted","channel":"mm:quotes:did:privy:mm-alpha",'
    '"data":{"quote_id":"q-1","rfq_id":"rfq-9","confirmation_deadline":"2026-06-01T18:45:45.000Z"}}'
)
MM_QUOTE_ACCEPTED = (
    '{"type":"mm_quote:accepted","channel":"mm:quotes:did:privy:mm-alpha","data":{'
    '"rfq_id":"rfq-9","quote_id":"q-1","user_id":"did:privy:bettor",'
    '"quote":{"id":"q-1","payout_odds":4.25,"user_cost":25,"total_payout":106.25,"mm_cost":81.25,'
    '"valid_until":"2026-06-01T18:46:00.000Z","leg_prices":[{"leg_id":"l1","leg_odds":2.1}]},'
    '"exposure_legs":['
    '{"leg_id":"l1","venue":"kalshi","event_ticker":"KXBTC-26JUN01","market_ticker":"KXBTC-26JUN01-T72500",'
    '"side":"yes","exposure_usd":"40.50"},'
    '{"leg_id":"l2","venue":"polymarket","market_ticker":"0xabc123","side":"no","exposure_usd":40.75}],'
    '"confirmation_deadline":"2026-06-01T18:45:45.000Z","accepted_at":"2026-06-01T18:45:30.000Z"}}'
)
LEGS = (
    QuoteLeg("kalshi", "KXBTC-26JUN01-T72500", "yes", Decimal("40.50")),
    QuoteLeg("polymarket", "0xabc123", "no", Decimal("40.75")),
)
FROM_QUOTE_ACCEPTED = QuoteUpdate(
    venue="totalis",
    desk=DESK,
    account=MM,
    quote_id="q-1",
    rfq_id="rfq-9",
    status=QuoteStatus.ACCEPTED,
    confirmation_deadline=DEADLINE,
)
FROM_MM_QUOTE_ACCEPTED = QuoteUpdate(
    venue="totalis",
    desk=DESK,
    account=MM,
    quote_id="q-1",
    rfq_id="rfq-9",
    status=QuoteStatus.ACCEPTED,
    venue_ts=ACCEPTED_AT,
    worst_case_loss_usd=Decimal("81.25"),
    confirmation_deadline=DEADLINE,
    legs=LEGS,
)


def _config(rfq_ids: list[str] | None = None) -> TotalisRfqVenue:
    return TotalisRfqVenue(api_key=Secret(API_KEY), rfq_ids=rfq_ids or [])


def _codec(
    rfq_ids: list[str] | None = None, accounts: dict[str, str] | None = None, default_desk: str | None = None
) -> TotalisRfqCodec:
    return TotalisRfqCodec("totalis", {MM: DESK} if accounts is None else accounts, default_desk, _config(rfq_ids))


def _authed(rfq_ids: list[str] | None = None) -> TotalisRfqCodec:
    codec = _codec(rfq_ids)
    codec.connection_opened()
    codec.receive_text(AUTH_OK)
    codec.data_to_send()
    return codec


def _sub(channel: str) -> str:
    return json.dumps({"type": "subscribe", "channel": channel}, separators=(",", ":"))


def _accepted_with_deadline(deadline: str) -> str:
    return '{"type":"quote:accepted","data":{"quote_id":"q","rfq_id":"r","confirmation_deadline":' + deadline + "}}"


def _event(name: str, data: Mapping[str, object], channel: str = f"mm:quotes:{MM}", key: str = "type") -> str:
    return json.dumps({key: name, "channel": channel, "data": data})


# Handshake


def test_auth_goes_first_then_our_channel_then_configured_rfqs_in_order() -> None:
    codec = _codec(["rfq-a", "rfq-b"])
    codec.connection_opened()
    assert codec.data_to_send() == ['{"type":"auth","api_key":"tk_live_DO_NOT_LOG_7f3a"}']
    assert (codec.mm_id, codec.authenticated) == (None, False)
    assert codec.receive_text(AUTH_OK) == [Subscribed("totalis", "auth")]
    assert (codec.mm_id, codec.authenticated) == (MM, True)
    assert codec.data_to_send() == [_sub(f"mm:quotes:{MM}"), _sub("rfq:rfq-a"), _sub("rfq:rfq-b")]
    assert codec.data_to_send() == []


def test_auth_error_is_a_misconfiguration() -> None:
    codec = _codec()
    codec.connection_opened()
    codec.data_to_send()
    (event,) = codec.receive_text('{"type":"auth:error","message":"Invalid API key"}')
    assert event == SubscriptionFailed("totalis", "auth", "Invalid API key", misconfigured=True)
    assert not codec.authenticated
    assert codec.data_to_send() == []


def test_auth_for_a_market_maker_no_desk_lists_is_reported_at_once() -> None:
    codec = _codec(accounts={"did:privy:other": DESK})
    codec.connection_opened()
    events = codec.receive_text(AUTH_OK)
    assert events == [
        Subscribed("totalis", "auth"),
        SubscriptionFailed("totalis", f"mm:quotes:{MM}", "no desk lists this market maker", misconfigured=True),
    ]
    (event,) = codec.receive_text(QUOTE_ACCEPTED)
    assert event == FrameMalformed("totalis", "quotes for a market maker no desk lists")


def test_unmapped_market_maker_belongs_to_the_default_desk() -> None:
    codec = _codec(accounts={}, default_desk="solo")
    codec.connection_opened()
    assert codec.receive_text(AUTH_OK) == [Subscribed("totalis", "auth")]
    (update,) = codec.receive_text(QUOTE_ACCEPTED)
    assert isinstance(update, QuoteUpdate)
    assert (update.desk, update.account) == ("solo", MM)


@pytest.mark.parametrize(
    ("frame", "channel"),
    [
        ('{"type":"subscribed","channel":"mm:quotes:did:privy:mm-alpha"}', f"mm:quotes:{MM}"),
        ('{"event":"subscribed","channel":"rfq:rfq-9"}', "rfq:rfq-9"),
        ('{"event":"subscribed","data":{"channel":"rfq:rfq-9"}}', "rfq:rfq-9"),
    ],
)
def test_subscribe_ack_in_either_shape(frame: str, channel: str) -> None:
    assert _authed().receive_text(frame) == [Subscribed("totalis", channel)]


def test_error_frame_fails_the_named_channel_or_the_socket() -> None:
    codec = _authed()
    assert codec.receive_text('{"type":"error","channel":"rfq:nope","message":"RFQ not found"}') == [
        SubscriptionFailed("totalis", "rfq:nope", "RFQ not found")
    ]
    assert codec.receive_text('{"type":"error","message":"Not authenticated"}') == [
        SubscriptionFailed("totalis", "ws", "Not authenticated")
    ]


def test_ping_is_outstanding_until_the_pong() -> None:
    codec = _authed()
    assert not codec.pong_outstanding
    codec.send_ping()
    assert codec.pong_outstanding
    assert codec.data_to_send() == ['{"type":"ping"}']
    # A pong is the venue's liveness signal (the engine's heartbeat gap), stamped with its own clock.
    assert codec.receive_text('{"type":"pong","timestamp":"2025-02-07T12:00:00.000Z"}') == [
        Heartbeat("totalis", "", 1738929600.0)
    ]
    assert not codec.pong_outstanding
    codec.send_ping()
    # An odd extra key does not lose the pong; an unreadable timestamp does not lose the heartbeat.
    assert codec.receive_text('{"type":"pong","quote":7}') == [Heartbeat("totalis", "")]
    assert not codec.pong_outstanding
    assert codec.receive_text('{"event":"pong","timestamp":"yesterday"}') == [Heartbeat("totalis", "")]
    assert codec.receive_text('{"type":"pong","timestamp":1738929600500}') == [Heartbeat("totalis", "", 1738929600.5)]
    codec.send_ping()
    codec.connection_opened()  # a new socket owes no pong for the old one
    assert not codec.pong_outstanding
    assert codec.data_to_send() == ['{"type":"auth","api_key":"tk_live_DO_NOT_LOG_7f3a"}']


# The two accepted events, in every order


def test_quote_accepted_then_mm_quote_accepted() -> None:
    codec = _authed()
    assert codec.receive_text(QUOTE_ACCEPTED) == [FROM_QUOTE_ACCEPTED]
    assert codec.data_to_send() == [_sub("rfq:rfq-9")]
    assert codec.receive_text(MM_QUOTE_ACCEPTED) == [FROM_MM_QUOTE_ACCEPTED]
    assert codec.data_to_send() == []


def test_mm_quote_accepted_then_quote_accepted() -> None:
    codec = _authed()
    assert codec.receive_text(MM_QUOTE_ACCEPTED) == [FROM_MM_QUOTE_ACCEPTED]
    assert codec.data_to_send() == [_sub("rfq:rfq-9")]
    assert codec.receive_text(QUOTE_ACCEPTED) == [FROM_QUOTE_ACCEPTED]
    assert codec.data_to_send() == []


@pytest.mark.parametrize(
    ("frame", "expected"), [(QUOTE_ACCEPTED, FROM_QUOTE_ACCEPTED), (MM_QUOTE_ACCEPTED, FROM_MM_QUOTE_ACCEPTED)]
)
def test_only_one_accepted_event_still_reserves_and_follows_the_rfq(frame: str, expected: QuoteUpdate) -> None:
    codec = _authed()
    assert codec.receive_text(frame) == [expected]
    assert codec.data_to_send() == [_sub("rfq:rfq-9")]


@pytest.mark.parametrize(
    "quote",
    [
        {"user_cost": 25, "payout_odds": 4.25, "total_payout": 106.25},
        {"user_cost": "25", "payout_odds": "4.25"},
        {"mm_cost": 81.25},
        {"mm_cost": "81.25", "user_cost": 1, "total_payout": 2},  # the venue's own mm_cost wins
    ],
)
def test_worst_case_loss_follows_the_economics_of_4_3(quote: dict[str, object]) -> None:
    frame = _event("mm_quote:accepted", {"quote_id": "q-2", "rfq_id": "rfq-2", "quote": quote})
    (update,) = _authed().receive_text(frame)
    assert isinstance(update, QuoteUpdate)
    assert update.worst_case_loss_usd == Decimal("81.25")
    assert str(update.worst_case_loss_usd) == "81.25"  # exact: no float ever touched it


def test_worst_case_loss_falls_back_to_the_legs_only_when_every_leg_states_it() -> None:
    legs = [{"venue": "kalshi", "market_ticker": "K1", "side": "yes", "exposure_usd": "30.5"}]
    both = [*legs, {"venue": "kalshi", "market_ticker": "K2", "side": "no", "exposure_usd": 50.75}]
    (update,) = _authed().receive_text(_event("mm_quote:accepted", {"quote_id": "q", "exposure_legs": both}))
    assert isinstance(update, QuoteUpdate)
    assert update.worst_case_loss_usd == Decimal("81.25")
    partial = [*legs, {"venue": "kalshi", "market_ticker": "K2", "side": "no"}]
    (update,) = _authed().receive_text(_event("mm_quote:accepted", {"quote_id": "q", "exposure_legs": partial}))
    assert isinstance(update, QuoteUpdate)
    assert update.worst_case_loss_usd is None
    assert update.legs == (QuoteLeg("kalshi", "K1", "yes", Decimal("30.5")), QuoteLeg("kalshi", "K2", "no", None))


# The rest of the quote lifecycle


@pytest.mark.parametrize(
    ("name", "extra", "status", "reason", "execution_id"),
    [
        ("quote:confirmed", {"execution_id": "exec-77"}, QuoteStatus.CONFIRMED, None, "exec-77"),
        ("quote:executed", {}, QuoteStatus.EXECUTED, None, None),
        ("quote:expired", {}, QuoteStatus.EXPIRED, None, None),
        ("quote:rejected", {"reason": "insufficient_balance"}, QuoteStatus.REJECTED, "insufficient_balance", None),
        ("quote:withdrawn", {}, QuoteStatus.WITHDRAWN, None, None),
    ],
)
def test_lifecycle_events(
    name: str, extra: dict[str, str], status: QuoteStatus, reason: str | None, execution_id: str | None
) -> None:
    codec = _authed()
    (update,) = codec.receive_text(_event(name, {"quote_id": "q-1", "rfq_id": "rfq-9", **extra}))
    assert update == QuoteUpdate(
        venue="totalis",
        desk=DESK,
        account=MM,
        quote_id="q-1",
        rfq_id="rfq-9",
        status=status,
        reason=reason,
        execution_id=execution_id,
    )


def test_event_key_and_top_level_fields_are_accepted() -> None:
    codec = _authed()
    frame = (
        '{"event":"quote:confirmed","channel":"mm:quotes:did:privy:mm-alpha",'
        '"quote_id":"q-1","rfq_id":"rfq-9","execution_id":"exec-1","timestamp":1780339545000}'
    )
    (update,) = codec.receive_text(frame)
    assert update == QuoteUpdate(
        "totalis", DESK, MM, "q-1", "rfq-9", QuoteStatus.CONFIRMED, venue_ts=DEADLINE, execution_id="exec-1"
    )
    assert codec.receive_text('{"type":"event","event":"quote:expired","data":{"quote_id":"q-1"}}')[0] == QuoteUpdate(
        "totalis",
        DESK,
        MM,
        "q-1",
        "rfq-9",
        QuoteStatus.EXPIRED,  # the rfq is remembered from the confirm
    )


@pytest.mark.parametrize(
    ("deadline", "expected"),
    [
        ('"2026-06-01T18:45:45.000Z"', DEADLINE),
        ('"2026-06-01T18:45:45Z"', DEADLINE),
        ('"2026-06-01T18:45:45.250Z"', DEADLINE + 0.25),
        ('"2026-06-01T20:45:45+02:00"', DEADLINE),
        ('"2026-06-01T18:45:45"', DEADLINE),  # naive: the venue speaks UTC
        ("1780339545000", DEADLINE),
        ("1780339545250", DEADLINE + 0.25),
        ("1780339545", DEADLINE),
        ('"1780339545000"', DEADLINE),
    ],
)
def test_deadline_formats(deadline: str, expected: float) -> None:
    frame = _accepted_with_deadline(deadline)
    (update,) = _authed().receive_text(frame)
    assert isinstance(update, QuoteUpdate)
    assert update.confirmation_deadline == expected


@pytest.mark.parametrize("deadline", ['"tomorrow"', '"2026-13-01T00:00:00Z"', "true", "-5", "[1]", '"²"', "1e300"])
def test_an_unreadable_deadline_drops_the_frame_loudly(deadline: str) -> None:
    codec = _authed()
    frame = _accepted_with_deadline(deadline)
    (event,) = codec.receive_text(frame)
    assert isinstance(event, FrameMalformed)
    assert "confirmation_deadline" in event.reason
    assert codec.data_to_send() == []  # nothing followed on the strength of a dropped frame


def test_an_unreadable_event_timestamp_does_not_lose_the_confirmation() -> None:
    (update,) = _authed().receive_text(_event("quote:confirmed", {"quote_id": "q", "timestamp": "soon"}))
    assert isinstance(update, QuoteUpdate)
    assert (update.status, update.venue_ts) == (QuoteStatus.CONFIRMED, None)


# Following RFQs across connections


def test_each_rfq_is_followed_once_per_connection_and_again_after_a_reconnect() -> None:
    codec = _authed(["rfq-cfg"])
    codec.receive_text(QUOTE_ACCEPTED)
    codec.receive_text(MM_QUOTE_ACCEPTED)
    codec.receive_text(_event("quote:confirmed", {"quote_id": "q-1", "rfq_id": "rfq-9"}))
    codec.receive_text(_event("quote:accepted", {"quote_id": "q-5", "rfq_id": "rfq-5"}))
    codec.receive_text(_event("quote:accepted", {"quote_id": "q-6", "rfq_id": "rfq-6"}))
    assert codec.data_to_send() == [_sub("rfq:rfq-9"), _sub("rfq:rfq-5"), _sub("rfq:rfq-6")]
    codec.receive_text(_event("quote:withdrawn", {"quote_id": "q-5", "rfq_id": "rfq-5"}))
    codec.receive_text(_event("position:settled", {"rfq_id": "rfq-6", "outcome": "lost"}, channel="rfq:rfq-6"))

    codec.connection_opened()
    assert not codec.authenticated
    codec.receive_text(QUOTE_ACCEPTED)  # before auth the socket cannot subscribe
    assert codec.data_to_send() == ['{"type":"auth","api_key":"tk_live_DO_NOT_LOG_7f3a"}']
    codec.receive_text(AUTH_OK)
    # Withdrawn (rfq-5) and settled (rfq-6) RFQs are not followed again; the live one is.
    assert codec.data_to_send() == [_sub(f"mm:quotes:{MM}"), _sub("rfq:rfq-cfg"), _sub("rfq:rfq-9")]
    codec.receive_text(_event("quote:executed", {"quote_id": "q-1", "rfq_id": "rfq-9"}))
    codec.receive_text(_event("quote:executed", {"quote_id": "q-6", "rfq_id": "rfq-6"}))  # a late copy
    assert codec.data_to_send() == []


def test_an_open_position_is_followed_after_a_reconnect_until_it_closes() -> None:
    codec = _authed()
    codec.receive_text(_event("position:created", {"rfq_id": "rfq-3", "position_pda": "Pda3"}))
    assert codec.data_to_send() == [_sub("rfq:rfq-3")]
    codec.connection_opened()
    codec.receive_text(AUTH_OK)
    assert codec.data_to_send()[-1] == _sub("rfq:rfq-3")
    codec.receive_text(_event("position:cancelled", {"rfq_id": "rfq-3", "reason": "void"}))
    codec.connection_opened()
    codec.receive_text(AUTH_OK)
    assert codec.data_to_send() == [
        '{"type":"auth","api_key":"tk_live_DO_NOT_LOG_7f3a"}',
        _sub(f"mm:quotes:{MM}"),
    ]


# Position events


@pytest.mark.parametrize(
    ("name", "extra", "status", "detail"),
    [
        ("position:created", {}, RfqPositionStatus.CREATED, None),
        ("position:settled", {"outcome": "won", "tx_signature": "5sig"}, RfqPositionStatus.SETTLED, "won"),
        ("position:cancelled", {"reason": "leg_voided"}, RfqPositionStatus.CANCELLED, "leg_voided"),
        ("position:error", {"error": "vault transfer failed"}, RfqPositionStatus.ERROR, "vault transfer failed"),
    ],
)
@pytest.mark.parametrize("channel", ["rfq:rfq-9", f"mm:quotes:{MM}"])
def test_position_events(
    name: str, extra: dict[str, str], status: RfqPositionStatus, detail: str | None, channel: str
) -> None:
    data = {"rfq_id": "rfq-9", "position_pda": "7xPda", "timestamp": "2026-06-01T18:45:45.000Z", **extra}
    (update,) = _authed().receive_text(_event(name, data, channel=channel))
    assert update == RfqPositionUpdate(
        venue="totalis",
        desk=DESK,
        account=MM,
        rfq_id="rfq-9",
        status=status,
        venue_ts=DEADLINE,
        position_pda="7xPda",
        detail=detail,
    )


def test_position_event_details_in_other_shapes() -> None:
    codec = _authed()
    (error,) = codec.receive_text('{"type":"position:error","channel":"rfq:rfq-4","data":{"error":{"code":"E1"}}}')
    assert error == RfqPositionUpdate("totalis", DESK, MM, "rfq-4", RfqPositionStatus.ERROR, detail="E1")
    (settled,) = codec.receive_text(_event("position:settled", {"rfq_id": "rfq-4", "outcome": True}))
    assert isinstance(settled, RfqPositionUpdate)
    assert settled.detail == "true"


def test_position_before_auth_belongs_to_the_only_mapped_market_maker() -> None:
    codec = _codec()
    (update,) = codec.receive_text(_event("position:created", {"rfq_id": "rfq-1"}, channel="rfq:rfq-1"))
    assert isinstance(update, RfqPositionUpdate)
    assert (update.desk, update.account) == (DESK, MM)
    codec = _codec(accounts={"a": "x", "b": "y"}, default_desk="solo")
    (update,) = codec.receive_text(_event("position:created", {"rfq_id": "rfq-1"}, channel="rfq:rfq-1"))
    assert isinstance(update, RfqPositionUpdate)
    assert (update.desk, update.account) == ("solo", "")
    codec = _codec(accounts={"a": "x", "b": "y"})
    (event,) = codec.receive_text(_event("position:created", {"rfq_id": "rfq-1"}, channel="rfq:rfq-1"))
    assert event == FrameMalformed("totalis", "positions for a market maker no desk lists")


# REST reconciliation

RECONCILE = """{"data":{"quotes":[
 {"id":"q-1","rfq_id":"rfq-9","status":"accepted","mm_cost":81.25,"user_cost":25,"payout_odds":4.25,
  "confirmation_deadline":"2026-06-01T18:45:45.000Z","accepted_at":"2026-06-01T18:45:30.000Z",
  "exposure_legs":[{"venue":"kalshi","market_ticker":"KXBTC-26JUN01-T72500","side":"yes"}]},
 {"id":"q-2","rfq_id":"rfq-2","status":"confirmed","mm_cost":"10","execution_id":"exec-2"},
 {"id":"q-3","rfq_id":"rfq-3","status":"settled","mm_cost":5,"outcome":"won"},
 {"id":"q-4","rfq_id":"rfq-4","status":"cancelled","reason":"leg_voided"},
 {"id":"q-5","rfq_id":"rfq-5","status":"withdrawn"},
 {"id":"q-6","rfq_id":"rfq-6","status":"active","payout_odds":3.0}
]}}"""


def test_rest_reconcile_maps_every_status() -> None:
    codec = _authed()
    events = codec.receive_rest("quotes", RECONCILE)
    assert events == [
        QuoteUpdate(
            "totalis",
            DESK,
            MM,
            "q-1",
            "rfq-9",
            QuoteStatus.ACCEPTED,
            venue_ts=ACCEPTED_AT,
            worst_case_loss_usd=Decimal("81.25"),
            confirmation_deadline=DEADLINE,
            legs=(QuoteLeg("kalshi", "KXBTC-26JUN01-T72500", "yes"),),
        ),
        QuoteUpdate(
            "totalis",
            DESK,
            MM,
            "q-2",
            "rfq-2",
            QuoteStatus.CONFIRMED,
            worst_case_loss_usd=Decimal("10"),
            execution_id="exec-2",
        ),
        QuoteUpdate("totalis", DESK, MM, "q-3", "rfq-3", QuoteStatus.EXECUTED, worst_case_loss_usd=Decimal("5")),
        RfqPositionUpdate("totalis", DESK, MM, "rfq-3", RfqPositionStatus.SETTLED, detail="won"),
        QuoteUpdate("totalis", DESK, MM, "q-4", "rfq-4", QuoteStatus.EXECUTED, reason="leg_voided"),
        RfqPositionUpdate("totalis", DESK, MM, "rfq-4", RfqPositionStatus.CANCELLED, detail="leg_voided"),
        QuoteUpdate("totalis", DESK, MM, "q-5", "rfq-5", QuoteStatus.WITHDRAWN),
    ]
    # Only the live ones are followed; closed and released RFQs are not.
    assert codec.data_to_send() == [_sub("rfq:rfq-9"), _sub("rfq:rfq-2")]


@pytest.mark.parametrize(
    "body",
    [
        '{"data":[{"id":"q-1","rfq_id":"rfq-9","status":"confirmed"}]}',
        '{"quotes":[{"quote_id":"q-1","rfq_id":"rfq-9","status":"CONFIRMED"}]}',
    ],
)
def test_rest_reconcile_other_body_shapes(body: str) -> None:
    assert _codec().receive_rest("quotes", body) == [
        QuoteUpdate("totalis", DESK, MM, "q-1", "rfq-9", QuoteStatus.CONFIRMED)
    ]


def test_rest_reconcile_before_auth_follows_later() -> None:
    codec = _codec()
    codec.connection_opened()
    codec.receive_rest("quotes", '{"data":{"quotes":[{"id":"q-1","rfq_id":"rfq-9","status":"executed"}]}}')
    assert codec.data_to_send() == ['{"type":"auth","api_key":"tk_live_DO_NOT_LOG_7f3a"}']
    codec.receive_text(AUTH_OK)
    assert codec.data_to_send() == [_sub(f"mm:quotes:{MM}"), _sub("rfq:rfq-9")]


def test_rest_reconcile_keeps_the_usable_quotes_and_counts_the_rest_once() -> None:
    body = (
        '{"data":{"quotes":[{"id":"q-1","rfq_id":"r","status":"accepted","confirmation_deadline":"later"},'
        '{"id":"q-2","rfq_id":"r2","status":"expired"},{"rfq_id":"r3","status":"expired"},'
        '{"id":"q-4","status":"haunted"}]}}'
    )
    events = _authed().receive_rest("quotes", body)
    assert events[0] == QuoteUpdate("totalis", DESK, MM, "q-2", "r2", QuoteStatus.EXPIRED)
    (malformed,) = events[1:]
    assert malformed == FrameMalformed(
        "totalis", "3 of 4 quotes unusable: confirmation_deadline not an ISO-8601 or epoch timestamp"
    )


def test_rest_error_envelope_and_unknown_sources() -> None:
    codec = _authed()
    assert codec.receive_rest("quotes", '{"error":{"code":"unauthorized","message":"Invalid API key"}}') == [
        SubscriptionFailed("totalis", "rest:quotes", "unauthorized: Invalid API key", misconfigured=True)
    ]
    (event,) = codec.receive_rest("positions", "{}")
    assert event == FrameMalformed("totalis", "the Totalis codec has no REST call 'positions'")
    for body in ("{}", '{"data":{}}', "nope", '{"data":{"quotes":7}}'):
        (event,) = codec.receive_rest("quotes", body)
        assert isinstance(event, FrameMalformed)


# Malformed frames


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("not json", "not JSON"),
        ('{"type":"quote:accepted"', "not JSON"),
        ("[1,2]", "unexpected frame shape"),
        ('{"type":5}', "unexpected frame shape"),
        ("{}", "frame without a type or event key"),
        ('{"type":"quote:teleported","data":{}}', "unknown event 'quote:teleported'"),
        ('{"type":"quote:accepted","data":{"rfq_id":"r"}}', "quote:accepted: without quote_id"),
        ('{"type":"quote:confirmed","data":{"quote_id":7}}', "quote:confirmed: unexpected payload shape"),
        ('{"type":"position:created","data":{"position_pda":"p"}}', "position:created: without rfq_id"),
        ('{"type":"auth:success","user_type":"user"}', "auth:success: without user_id"),
        ('{"type":"subscribed"}', "subscribed: ack without a channel"),
        ('{"type":"mm_quote:accepted","data":{"quote_id":"q","quote":{"mm_cost":"NaN"}}}', "not a finite amount"),
        ('{"type":"mm_quote:accepted","data":{"quote_id":"q","quote":{"mm_cost":"x"}}}', "unexpected payload"),
    ],
)
def test_malformed_frames_become_one_counted_drop(frame: str, reason: str) -> None:
    codec = _authed()
    events = codec.receive_text(frame)
    assert len(events) == 1
    assert isinstance(events[0], FrameMalformed)
    assert reason in events[0].reason
    assert codec.data_to_send() == []


def test_binary_frames_are_dropped() -> None:
    codec = _authed()
    assert codec.receive_bytes(b"\x00\x01") == [FrameMalformed("totalis", "binary frame on a text-only feed")]


def test_malformed_reason_never_echoes_frame_content() -> None:
    codec = _authed()
    secret = "sk_other_DO_NOT_LOG"
    for frame in (f'{{"type":"{secret}"}}', f"{secret} not json", f'{{"type":"x y {secret}"}}'):
        (event,) = codec.receive_text(frame)
        assert isinstance(event, FrameMalformed)
        assert "DO_NOT_LOG" not in event.reason


# The API key


def _every_event_and_frame(codec: TotalisRfqCodec, frames: list[str]) -> tuple[list[Event], list[str | bytes]]:
    events: list[Event] = []
    sent: list[str | bytes] = []
    codec.connection_opened()
    for frame in frames:
        events.extend(codec.receive_text(frame))
    sent.extend(codec.data_to_send())
    events.extend(codec.receive_rest("quotes", RECONCILE))
    return events, sent


def test_the_api_key_appears_only_in_the_auth_frame() -> None:
    codec = _codec(["rfq-a"])
    echo = f'{{"type":"{API_KEY}"}}'
    frames = [
        AUTH_OK,
        QUOTE_ACCEPTED,
        MM_QUOTE_ACCEPTED,
        f'{{"type":"auth:error","message":"bad key {API_KEY}"}}',
        f'{{"type":"error","channel":"rfq:{API_KEY}","message":"{API_KEY}"}}',
        echo,
        f'{{"type":"quote:{API_KEY}"}}',
        _event("quote:rejected", {"quote_id": "q-7", "reason": f"key {API_KEY} over limit"}),
    ]
    events, sent = _every_event_and_frame(codec, frames)
    assert [frame for frame in sent if API_KEY in str(frame)] == [sent[0]]
    assert sent[0] == '{"type":"auth","api_key":"tk_live_DO_NOT_LOG_7f3a"}'
    assert all(API_KEY not in repr(event) for event in events)
    assert any(isinstance(e, QuoteUpdate) and e.reason == "key *** over limit" for e in events)
    assert API_KEY not in repr(codec)
    assert API_KEY not in repr(_config())


# Fuzz


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_random_text_never_raises(text: str) -> None:
    codec = _authed()
    for event in codec.receive_text(text):
        assert isinstance(event, FrameMalformed | Subscribed | SubscriptionFailed | QuoteUpdate | RfqPositionUpdate)
    assert codec.receive_rest("quotes", text) is not None


@settings(max_examples=100, deadline=None)
@given(st.binary())
def test_random_bytes_never_raise(data: bytes) -> None:
    (event,) = _authed().receive_bytes(data)
    assert isinstance(event, FrameMalformed)


_scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
_inner = st.dictionaries(
    st.sampled_from(["id", "mm_cost", "user_cost", "exposure_usd", "market_ticker", "code"]), _scalar
)
_json = _scalar | _inner | st.lists(_scalar | _inner, max_size=3)
_names = st.sampled_from(
    [
        *("quote:accepted", "mm_quote:accepted", "quote:confirmed", "quote:rejected", "position:settled"),
        *("position:error", "auth:success", "auth:error", "subscribed", "error", "pong", "quote:unknown"),
    ]
)
_fields = st.sampled_from(
    [
        *("quote_id", "rfq_id", "confirmation_deadline", "accepted_at", "timestamp", "quote", "exposure_legs"),
        *("reason", "outcome", "error", "user_id", "channel", "message", "mm_cost", "user_cost", "payout_odds"),
        *("id", "status"),
    ]
)


@settings(max_examples=150, deadline=None)
@given(_names, st.sampled_from(["type", "event"]), st.dictionaries(_fields, _json, max_size=6), st.booleans())
def test_structured_fuzz_never_raises(name: str, key: str, data: dict[str, object], nested: bool) -> None:
    codec = _authed()
    frame = {key: name, "data": data} if nested else {key: name, **data}
    events = codec.receive_text(json.dumps(frame))
    assert events is not None
    rest = codec.receive_rest("quotes", json.dumps({"data": {"quotes": [data]}}))
    assert rest is not None
    for sent in codec.data_to_send():
        assert API_KEY not in str(sent)
