"""Tests for the Totalis parlay-RFQ simulator (protocols.md §4.2-§4.4), driven by real clients on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from riskmon.venues.totalis.simulator import AcceptOrder, MalformedKind, RestCall, TotalisRfqSimulator
from tests.venues.session_harness import started
from tests.venues.sim_client import recv_json

API_KEY = "tk_live_sim"
MM = "did:privy:mm-sim"
QUOTES = f"mm:quotes:{MM}"
TIMEOUT = 5.0
NOW = 1780339545.0  # 2026-06-01T18:45:45.000Z
NOW_ISO = "2026-06-01T18:45:45.000Z"
DEADLINE = NOW + 30
DEADLINE_ISO = "2026-06-01T18:46:15.000Z"
LEGS: list[dict[str, Any]] = [
    {"venue": "kalshi", "market_ticker": "KXBTC-26JUN01-T72500", "side": "yes"},
    {"venue": "polymarket", "market_ticker": "0x5f2a9c", "side": "no", "leg_id": "pm-1", "leg_odds": 2.5},
]
ORDERS: list[AcceptOrder] = ["quote_first", "mm_first", "quote_only", "mm_only"]
KEY_HEADERS = {"X-API-Key": API_KEY}


class FakeClock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


# One server for the module: uvicorn's shutdown alone takes ~0.2 s, too slow to pay per test.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def shared_sim(clock: FakeClock) -> AsyncIterator[TotalisRfqSimulator]:
    async with started(TotalisRfqSimulator(API_KEY, clock=clock)) as server:
        yield server


@pytest_asyncio.fixture(loop_scope="module")
async def sim(shared_sim: TotalisRfqSimulator, clock: FakeClock) -> AsyncIterator[TotalisRfqSimulator]:
    clock.now = NOW
    await shared_sim.reset()
    try:
        yield shared_sim
    finally:
        await shared_sim.reset()


@pytest_asyncio.fixture(loop_scope="module")
async def http(sim: TotalisRfqSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.rest_url, timeout=TIMEOUT) as client:
        yield client


async def send_json(ws: ClientConnection, frame: dict[str, Any]) -> None:
    await ws.send(json.dumps(frame))


async def authed(sim: TotalisRfqSimulator, *channels: str) -> ClientConnection:
    ws = await connect(sim.ws_url)
    await send_json(ws, {"type": "auth", "api_key": API_KEY})
    assert await recv_json(ws) == {"type": "auth:success", "user_id": MM, "user_type": "market_maker"}
    for channel in channels:
        await send_json(ws, {"type": "subscribe", "channel": channel})
        assert await recv_json(ws) == {"type": "subscribed", "channel": channel}
    return ws


async def assert_nothing_queued(ws: ClientConnection) -> None:
    """Frames on one socket are ordered: if the pong comes next, no event was delivered before it."""
    await send_json(ws, {"type": "ping"})
    frame = await recv_json(ws)
    assert frame["type"] == "pong", frame


async def accept(sim: TotalisRfqSimulator, quote_id: str, rfq_id: str, **kw: Any) -> dict[str, Any]:
    return await sim.accept_quote(
        quote_id=quote_id,
        rfq_id=rfq_id,
        user_cost=kw.pop("user_cost", 25),
        payout_odds=kw.pop("payout_odds", 4.25),
        legs=kw.pop("legs", LEGS),
        confirmation_deadline=kw.pop("confirmation_deadline", DEADLINE),
        **kw,
    )


def event(frame: dict[str, Any], key: str = "type") -> tuple[str, str, dict[str, Any]]:
    assert list(frame) == [key, "channel", "data"]
    return frame[key], frame["channel"], frame["data"]


# ---- socket: auth, subscriptions, ping ---------------------------------------------


@pytest.mark.integration
async def test_auth_error_closes_with_4001(sim: TotalisRfqSimulator) -> None:
    async with connect(sim.ws_url) as ws:
        await send_json(ws, {"type": "auth", "api_key": "wrong"})
        assert await recv_json(ws) == {"type": "auth:error", "message": "Invalid API key"}
        with pytest.raises(ConnectionClosed) as closed:
            await recv_json(ws)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4001
    ws2 = await authed(sim)  # a good key on a new socket still works
    assert sim.connection_count == 1
    await ws2.close()


@pytest.mark.integration
async def test_frames_before_auth_are_refused(sim: TotalisRfqSimulator) -> None:
    async with connect(sim.ws_url) as ws:
        for frame in ({"type": "subscribe", "channel": QUOTES}, {"type": "ping"}, {"type": "whatever"}):
            await send_json(ws, frame)
            assert await recv_json(ws) == {"type": "error", "message": "not authenticated"}
        await ws.send("not json")
        assert await recv_json(ws) == {"type": "error", "message": "invalid message"}
        await sim.accept_quote(
            quote_id="q1", rfq_id="r1", user_cost=10, payout_odds=3, legs=LEGS, confirmation_deadline=DEADLINE
        )
        assert sim.events[-1].delivered == 0  # an unauthenticated socket receives no events
        await send_json(ws, {"type": "auth", "api_key": API_KEY})
        assert (await recv_json(ws))["type"] == "auth:success"
        await sim.wait_for_authenticated(1)


@pytest.mark.integration
async def test_subscribe_acks_forbidden_unknown_and_unsubscribe(sim: TotalisRfqSimulator) -> None:
    async with await authed(sim, QUOTES, "rfq:r-9") as ws:
        await sim.wait_for_subscribed(1)
        await sim.wait_for_subscribed(1, channel="rfq:r-9")
        cases = [
            ({"type": "subscribe", "channel": "mm:quotes:did:privy:someone-else"}, "forbidden"),
            ({"type": "subscribe", "channel": "rfqs:open"}, "unknown channel"),
            ({"type": "subscribe", "channel": "rfq:"}, "unknown channel"),
            ({"type": "subscribe"}, "invalid channel"),
            ({"type": "teleport"}, "unknown message type"),
            ({"channel": QUOTES}, "invalid message"),
        ]
        for frame, message in cases:
            await send_json(ws, frame)
            assert await recv_json(ws) == {"type": "error", "message": message}
        await send_json(ws, {"type": "unsubscribe", "channel": QUOTES})
        assert await recv_json(ws) == {"type": "unsubscribed", "channel": QUOTES}
        await accept(sim, "q1", "r1")
        assert [e.delivered for e in sim.events] == [0, 0]
        await assert_nothing_queued(ws)


@pytest.mark.integration
async def test_ping_pong_and_unanswered_ping_fault(sim: TotalisRfqSimulator, clock: FakeClock) -> None:
    async with await authed(sim) as ws:
        clock.now = NOW + 0.25
        await send_json(ws, {"type": "ping"})
        assert await recv_json(ws) == {"type": "pong", "timestamp": "2026-06-01T18:45:45.250Z"}
        sim.set_answer_pings(False)
        await send_json(ws, {"type": "ping"})
        await send_json(ws, {"type": "subscribe", "channel": QUOTES})
        assert await recv_json(ws) == {"type": "subscribed", "channel": QUOTES}  # no pong came first
        sim.set_answer_pings(True)
        await send_json(ws, {"type": "ping"})
        assert (await recv_json(ws))["type"] == "pong"


@pytest.mark.integration
async def test_wrong_websocket_path_is_refused(sim: TotalisRfqSimulator) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect(sim.ws_url.replace("/ws", "/stream"))
    assert refused.value.response.status_code == 403


# ---- quote lifecycle ----------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("order", ORDERS)
async def test_quote_lifecycles_in_each_accept_order(sim: TotalisRfqSimulator, order: AcceptOrder) -> None:
    names = {
        "quote_first": ["quote:accepted", "mm_quote:accepted"],
        "mm_first": ["mm_quote:accepted", "quote:accepted"],
        "quote_only": ["quote:accepted"],
        "mm_only": ["mm_quote:accepted"],
    }[order]
    async with await authed(sim, QUOTES) as ws:
        # One quote per lifecycle: confirmed -> executed -> settled, expired, rejected, withdrawn.
        for n, rfq in enumerate(["r-a", "r-b", "r-c", "r-d"]):
            qid = f"q-{n}"
            await accept(sim, qid, rfq, order=order)
            frames = [await recv_json(ws) for _ in names]
            assert [event(f)[0] for f in frames] == names
            assert {event(f)[1] for f in frames} == {QUOTES}
            for f in frames:
                assert f["data"]["quote_id"] == qid
                assert f["data"]["rfq_id"] == rfq
                assert f["data"]["confirmation_deadline"] == DEADLINE_ISO
            assert sim.quote_row(qid)["status"] == "accepted"

        confirmed = await sim.confirm("q-0", "exec-77")
        assert confirmed == {"quote_id": "q-0", "rfq_id": "r-a", "execution_id": "exec-77"}
        assert event(await recv_json(ws)) == ("quote:confirmed", QUOTES, confirmed)
        await sim.execute("q-0")
        assert event(await recv_json(ws)) == ("quote:executed", QUOTES, {"quote_id": "q-0", "rfq_id": "r-a"})
        await sim.position_settled("r-a", "won", "5sigX")
        kind, channel, data = event(await recv_json(ws))  # copied to our channel: we quote on r-a
        assert (kind, channel, data["outcome"], data["tx_signature"]) == ("position:settled", QUOTES, "won", "5sigX")
        await sim.expire("q-1")
        assert event(await recv_json(ws)) == ("quote:expired", QUOTES, {"quote_id": "q-1", "rfq_id": "r-b"})
        await sim.reject("q-2", "insufficient_liquidity")
        assert event(await recv_json(ws)) == (
            "quote:rejected",
            QUOTES,
            {"quote_id": "q-2", "rfq_id": "r-c", "reason": "insufficient_liquidity"},
        )
        await sim.withdraw("q-3")
        assert event(await recv_json(ws)) == ("quote:withdrawn", QUOTES, {"quote_id": "q-3", "rfq_id": "r-d"})
        statuses = {qid: sim.quote_row(qid)["status"] for qid in ("q-0", "q-1", "q-2", "q-3")}
        assert statuses == {"q-0": "settled", "q-1": "expired", "q-2": "rejected", "q-3": "withdrawn"}
        assert sim.quote_row("q-0")["execution_id"] == "exec-77"
        await assert_nothing_queued(ws)


@pytest.mark.integration
async def test_mm_quote_accepted_shapes_and_economics(sim: TotalisRfqSimulator) -> None:
    async with await authed(sim, QUOTES) as ws:
        returned = await accept(sim, "q-1", "rfq-1", order="mm_only", user_id="did:privy:bettor")
        _, _, data = event(await recv_json(ws))
    assert data == returned
    assert list(data) == [
        "rfq_id",
        "quote_id",
        "user_id",
        "quote",
        "exposure_legs",
        "confirmation_deadline",
        "accepted_at",
    ]
    assert data["user_id"] == "did:privy:bettor"
    assert (data["confirmation_deadline"], data["accepted_at"]) == (DEADLINE_ISO, NOW_ISO)
    quote = data["quote"]
    hash_ = quote.pop("request_hash")
    assert hash_.startswith("sha256:")
    assert len(hash_) == len("sha256:") + 64
    # protocols.md §4.3: 25 x 4.25 = 106.25 payout, MM risk 81.25.
    assert quote == {
        "id": "q-1",
        "market_maker_id": MM,
        "request_version": 1,
        "payout_odds": 4.25,
        "user_cost": 25.0,
        "total_payout": 106.25,
        "mm_cost": 81.25,
        "valid_until": "2026-06-01T18:45:55.000Z",
        "leg_prices": [{"leg_id": "leg-1", "leg_odds": 2.0616}, {"leg_id": "pm-1", "leg_odds": 2.5}],
    }
    assert data["exposure_legs"] == [
        {
            "leg_id": "leg-1",
            "venue": "kalshi",
            "event_ticker": "KXBTC-26JUN01",
            "market_ticker": "KXBTC-26JUN01-T72500",
            "side": "yes",
            "exposure_usd": 40.625,
        },
        {
            "leg_id": "pm-1",
            "venue": "polymarket",
            "event_ticker": "0x5f2a9c",
            "market_ticker": "0x5f2a9c",
            "side": "no",
            "exposure_usd": 40.625,
        },
    ]


@pytest.mark.integration
async def test_exposure_shares_sum_exactly_to_mm_cost(sim: TotalisRfqSimulator) -> None:
    legs = [{"venue": "kalshi", "market_ticker": f"KXT-{i}", "side": "no"} for i in range(3)]
    data = await accept(sim, "q-1", "rfq-1", user_cost=10, payout_odds=2.01, legs=legs)
    shares = [Decimal(str(leg["exposure_usd"])) for leg in data["exposure_legs"]]
    assert shares[:2] == [Decimal("3.366666"), Decimal("3.366666")]
    assert sum(shares) == Decimal("10.1") == Decimal(str(data["quote"]["mm_cost"]))
    assert sim.events[0].delivered == 0  # nobody subscribed: the events are lost


@pytest.mark.integration
async def test_event_key_variant_and_switch() -> None:
    sim = TotalisRfqSimulator(API_KEY, event_key="event", clock=FakeClock())
    await sim.start()
    try:
        async with await authed(sim, QUOTES) as ws:
            await accept(sim, "q-1", "r-1", order="quote_only")
            assert event(await recv_json(ws), "event") == (
                "quote:accepted",
                QUOTES,
                {"quote_id": "q-1", "rfq_id": "r-1", "confirmation_deadline": DEADLINE_ISO},
            )
            sim.set_event_key("type")
            await sim.expire("q-1")
            assert event(await recv_json(ws), "type")[0] == "quote:expired"
            # Control replies keep "type" whatever the event key is.
            await send_json(ws, {"type": "ping"})
            assert (await recv_json(ws))["type"] == "pong"
    finally:
        await sim.stop()


@pytest.mark.integration
async def test_epoch_ms_timestamps(sim: TotalisRfqSimulator) -> None:
    deadline = datetime(2026, 6, 1, 18, 46, 15, 500000, tzinfo=UTC)
    async with await authed(sim, QUOTES) as ws:
        await accept(sim, "q-1", "r-1", confirmation_deadline=deadline, epoch_ms_timestamps=True)
        short, detail = [event(await recv_json(ws))[2] for _ in range(2)]
    assert short["confirmation_deadline"] == 1780339575500
    assert detail["confirmation_deadline"] == 1780339575500
    assert detail["accepted_at"] == 1780339545000
    assert detail["quote"]["valid_until"] == 1780339555000
    # REST keeps its documented ISO form.
    assert sim.quote_row("q-1")["confirmation_deadline"] == "2026-06-01T18:46:15.500Z"


# ---- RFQ channel ------------------------------------------------------------------------------


@pytest.mark.integration
async def test_rfq_channel_reaches_only_its_subscribers(sim: TotalisRfqSimulator, clock: FakeClock) -> None:
    async with (
        await authed(sim, "rfq:r-1") as on_rfq,
        await authed(sim, QUOTES) as on_quotes,
        await authed(sim, "rfq:r-2") as on_other,
    ):
        clock.now = NOW + 1
        ts = "2026-06-01T18:45:46.000Z"
        created = await sim.position_created("r-1", "PdA1")
        assert created == {"rfq_id": "r-1", "position_pda": "PdA1", "timestamp": ts}
        assert event(await recv_json(on_rfq)) == ("position:created", "rfq:r-1", created)
        await assert_nothing_queued(on_quotes)  # we have no quote on r-1: no copy

        await accept(sim, "q-1", "r-1", order="quote_only")
        assert event(await recv_json(on_quotes))[0] == "quote:accepted"
        await sim.confirm("q-1")
        assert event(await recv_json(on_quotes))[2]["execution_id"] == "exec-000001"
        expected = [
            (
                "position:settled",
                await sim.position_settled("r-1", "lost", "sig-1"),
                {"rfq_id": "r-1", "position_pda": "PdA1", "outcome": "lost", "tx_signature": "sig-1", "timestamp": ts},
            ),
            (
                "position:cancelled",
                await sim.position_cancelled("r-1", "market voided"),
                {"rfq_id": "r-1", "position_pda": "PdA1", "reason": "market voided", "timestamp": ts},
            ),
            (
                "position:error",
                await sim.position_error("r-1", "settlement tx failed"),
                {"rfq_id": "r-1", "error": "settlement tx failed", "timestamp": ts},
            ),
        ]
        for name, returned, data in expected:
            assert returned == data
            assert event(await recv_json(on_rfq)) == (name, "rfq:r-1", data)
            assert event(await recv_json(on_quotes)) == (name, QUOTES, data)
        await assert_nothing_queued(on_other)
        assert sim.quote_row("q-1")["status"] == "settled"  # cancel after settle changes nothing

        # A position never scripted as created still carries a stable address.
        first = await sim.position_cancelled("r-2", "expired")
        assert event(await recv_json(on_other)) == ("position:cancelled", "rfq:r-2", first)
        again = await sim.position_settled("r-2", "won", "sig-2")
        assert event(await recv_json(on_other)) == ("position:settled", "rfq:r-2", again)
        assert again["position_pda"] == first["position_pda"]
        assert len(first["position_pda"]) >= 32


@pytest.mark.integration
async def test_cancelled_position_cancels_open_quotes(sim: TotalisRfqSimulator) -> None:
    await accept(sim, "q-1", "r-1")
    await accept(sim, "q-2", "r-1")
    await sim.withdraw("q-2")
    await sim.position_cancelled("r-1", "user cancelled")
    assert (sim.quote_row("q-1")["status"], sim.quote_row("q-2")["status"]) == ("cancelled", "withdrawn")


# ---- reliability: lost events, REST reconciliation ------------------------------------


@pytest.mark.integration
async def test_events_while_disconnected_are_lost_but_rest_shows_them(
    sim: TotalisRfqSimulator, http: httpx.AsyncClient
) -> None:
    async with await authed(sim, QUOTES) as ws:
        await accept(sim, "q-1", "r-1", order="quote_only")
        assert event(await recv_json(ws))[0] == "quote:accepted"
        await sim.disconnect_all()
        with pytest.raises(ConnectionClosed) as closed:
            await recv_json(ws)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1001
    assert sim.connection_count == 0
    await sim.confirm("q-1")
    await accept(sim, "q-2", "r-2")
    assert [e.delivered for e in list(sim.events)[-3:]] == [0, 0, 0]

    async with await authed(sim, QUOTES) as ws:
        await assert_nothing_queued(ws)  # no replay on reconnect
    response = await http.get("/mm/quotes", headers=KEY_HEADERS)
    assert response.status_code == 200
    rows = response.json()["data"]["quotes"]
    assert [(r["id"], r["status"], r.get("execution_id")) for r in rows] == [
        ("q-1", "confirmed", "exec-000001"),
        ("q-2", "accepted", None),
    ]
    assert rows[1] == {
        "id": "q-2",
        "rfq_id": "r-2",
        "status": "accepted",
        "mm_cost": 81.25,
        "user_cost": 25.0,
        "payout_odds": 4.25,
        "confirmation_deadline": DEADLINE_ISO,
        "accepted_at": NOW_ISO,
        "exposure_legs": rows[0]["exposure_legs"],
    }
    assert [leg["exposure_usd"] for leg in rows[1]["exposure_legs"]] == [40.625, 40.625]
    filtered = await http.get("/mm/quotes", params={"status": "accepted"}, headers=KEY_HEADERS)
    assert [r["id"] for r in filtered.json()["data"]["quotes"]] == ["q-2"]
    bad = await http.get("/mm/quotes", params={"status": "open"}, headers=KEY_HEADERS)
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_request"


# ---- REST ------------------------------------------------------------------------------------


@pytest.mark.integration
async def test_rest_confirm(sim: TotalisRfqSimulator, http: httpx.AsyncClient, clock: FakeClock) -> None:
    await accept(sim, "q-1", "r-1")
    await accept(sim, "q-late", "r-2")
    sim.add_foreign_quote("q-theirs")
    async with await authed(sim, QUOTES) as ws:
        response = await http.post("/mm/quotes/q-1/confirm", headers=KEY_HEADERS)
        assert response.status_code == 200
        assert response.json() == {"data": {"status": "confirmed", "quote_id": "q-1", "execution_id": "exec-000001"}}
        assert event(await recv_json(ws)) == (
            "quote:confirmed",
            QUOTES,
            {"quote_id": "q-1", "rfq_id": "r-1", "execution_id": "exec-000001"},
        )
        sim.set_insufficient_balance(True)
        errors = [
            ("/mm/quotes/q-1/confirm", 409, "invalid_status"),
            ("/mm/quotes/q-late/confirm", 409, "insufficient_balance"),
            ("/mm/quotes/nope/confirm", 404, "not_found"),
            ("/mm/quotes/q-theirs/confirm", 403, "forbidden"),
        ]
        for path, status, code in errors:
            r = await http.post(path, headers=KEY_HEADERS)
            assert (r.status_code, r.json()["error"]["code"]) == (status, code), path
        sim.set_insufficient_balance(False)
        clock.now = DEADLINE + 0.001
        late = await http.post("/mm/quotes/q-late/confirm", headers=KEY_HEADERS)
        assert (late.status_code, late.json()["error"]["code"]) == (409, "deadline_passed")
        assert sim.quote_row("q-late")["status"] == "accepted"
        await assert_nothing_queued(ws)  # failed confirms emit nothing


@pytest.mark.integration
async def test_rest_withdraw(sim: TotalisRfqSimulator, http: httpx.AsyncClient) -> None:
    await accept(sim, "q-1", "r-1")
    sim.add_foreign_quote("q-theirs", owner_mm_id="did:privy:mm-2")
    async with await authed(sim, QUOTES) as ws:
        response = await http.post("/mm/quotes/q-1/withdraw", headers=KEY_HEADERS)
        assert response.json() == {"data": {"status": "withdrawn", "quote_id": "q-1"}}
        assert event(await recv_json(ws)) == ("quote:withdrawn", QUOTES, {"quote_id": "q-1", "rfq_id": "r-1"})
        again = await http.post("/mm/quotes/q-1/withdraw", headers=KEY_HEADERS)
        assert (again.status_code, again.json()["error"]["code"]) == (409, "invalid_status")
        theirs = await http.post("/mm/quotes/q-theirs/withdraw", headers=KEY_HEADERS)
        assert theirs.status_code == 403
        await assert_nothing_queued(ws)


@pytest.mark.integration
async def test_rest_auth_routes_and_heartbeat(
    sim: TotalisRfqSimulator, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    for headers in ({}, {"X-API-Key": "wrong"}):
        r = await http.get("/mm/quotes", headers=headers)
        assert r.status_code == 401
        assert r.json() == {"error": {"code": "unauthorized", "message": "missing or invalid API key"}}
    clock.now = NOW + 5
    beat = await http.post("/v1/mm/heartbeat", headers=KEY_HEADERS)
    assert beat.json() == {"data": {"status": "ok", "mm_id": MM, "ttl_ms": 60000}}
    assert sim.heartbeats == 1
    wrong_method = await http.get("/v1/mm/heartbeat", headers=KEY_HEADERS)
    assert (wrong_method.status_code, wrong_method.json()["error"]["code"]) == (405, "method_not_allowed")
    missing = await http.post("/mm/quotes/q-1/teleport", headers=KEY_HEADERS)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    assert sim.heartbeats == 1
    assert sim.rest_calls[2] == RestCall("POST", "/v1/mm/heartbeat", "", 200)
    assert [c.status for c in sim.rest_calls] == [401, 401, 200, 405, 404]


@pytest.mark.integration
async def test_fail_rest_for_n_calls_and_until_healed(sim: TotalisRfqSimulator, http: httpx.AsyncClient) -> None:
    await accept(sim, "q-1", "r-1")
    sim.fail_rest(times=2)
    for _ in range(2):
        r = await http.post("/mm/quotes/q-1/confirm", headers=KEY_HEADERS)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        assert r.json()["error"]["code"] == "service_unavailable"
    assert sim.quote_row("q-1")["status"] == "accepted"  # a failed call changed nothing
    assert (await http.get("/mm/quotes", headers=KEY_HEADERS)).status_code == 200

    sim.fail_rest(500)
    for _ in range(3):
        r = await http.post("/v1/mm/heartbeat", headers=KEY_HEADERS)
        assert (r.status_code, r.json()["error"]["code"]) == (500, "internal_error")
    sim.heal_rest()
    assert (await http.post("/v1/mm/heartbeat", headers=KEY_HEADERS)).status_code == 200
    assert sim.heartbeats == 1
    assert [c.status for c in sim.rest_calls] == [503, 503, 200, 500, 500, 500, 200]
    with pytest.raises(ValueError, match="HTTP error"):
        sim.fail_rest(200)


# ---- faults on the socket ---------------------------------------------------------------------


@pytest.mark.integration
async def test_malformed_frames(sim: TotalisRfqSimulator) -> None:
    kinds: list[MalformedKind] = ["not_json", "no_event_key", "unknown_event", "missing_quote_id", "bad_deadline"]
    async with await authed(sim, QUOTES) as ws, await authed(sim) as unsubscribed:
        for kind in kinds:
            assert await sim.send_malformed(kind) == 1
        async with asyncio.timeout(TIMEOUT):
            texts = [await ws.recv() for _ in kinds]
        assert all(isinstance(t, str) for t in texts)
        with pytest.raises(json.JSONDecodeError):
            json.loads(texts[0])
        no_key, unknown, no_id, bad_deadline = (json.loads(t) for t in texts[1:])
        assert "type" not in no_key
        assert "event" not in no_key
        assert no_key["channel"] == QUOTES
        assert no_key["data"]["quote_id"] == "q-malformed"
        assert unknown["type"] == "quote:teleported"
        assert unknown["data"]["quote_id"] == "q-malformed"
        assert no_id["type"] == "quote:accepted"
        assert "quote_id" not in no_id["data"]
        assert no_id["data"]["rfq_id"] == "rfq-malformed"
        assert bad_deadline["type"] == "quote:accepted"
        assert bad_deadline["data"]["confirmation_deadline"] == "not-a-date"
        assert bad_deadline["data"]["quote_id"] == "q-malformed"
        await assert_nothing_queued(unsubscribed)
        assert not sim.events  # faults are not venue events
    with pytest.raises(ValueError, match="unknown malformed kind"):
        await sim.send_malformed("garbage")  # type: ignore[arg-type]


@pytest.mark.integration
async def test_send_raw_reaches_every_socket(sim: TotalisRfqSimulator) -> None:
    async with connect(sim.ws_url) as fresh, await authed(sim, QUOTES) as ws:
        await sim.wait_for_connections(2)
        assert await sim.send_raw('{"type":"system:maintenance"}') == 2
        assert await recv_json(fresh) == {"type": "system:maintenance"}
        assert await recv_json(ws) == {"type": "system:maintenance"}


@pytest.mark.integration
async def test_stop_with_clients_connected() -> None:
    sim = TotalisRfqSimulator(API_KEY, clock=FakeClock())
    await sim.start()
    url = sim.ws_url
    clients = [await authed(sim, QUOTES), await connect(url)]
    await sim.wait_for_connections(2)
    async with asyncio.timeout(TIMEOUT):
        await sim.stop()
    for ws in clients:
        with pytest.raises(ConnectionClosed) as closed:
            await recv_json(ws)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1001
    assert sim.connection_count == 0
    await sim.stop()  # idempotent
    with pytest.raises(ConnectionRefusedError):
        await connect(url, open_timeout=TIMEOUT)
    with pytest.raises(RuntimeError, match="not started"):
        _ = sim.ws_url


# ---- driver validation (no server) -------------------------------------------------------


async def test_driver_rejects_impossible_input() -> None:
    sim = TotalisRfqSimulator(API_KEY)
    bad: list[tuple[dict[str, Any], str]] = [
        ({"legs": LEGS[:1]}, "2-5 legs"),
        ({"legs": [{**LEGS[0], "venue": "betfair"}, LEGS[1]]}, "venue"),
        ({"legs": [{**LEGS[0], "side": "up"}, LEGS[1]]}, "side"),
        ({"legs": [{**LEGS[0], "tickr": "x"}, LEGS[1]]}, "unknown keys"),
        ({"legs": [{"venue": "kalshi", "side": "yes"}, LEGS[1]]}, "market_ticker"),
        ({"legs": [{**LEGS[0], "leg_id": "pm-1"}, LEGS[1]]}, "duplicate leg_id"),
        ({"user_cost": 150}, "user_cost"),
        ({"payout_odds": 1.0}, "payout_odds"),
        ({"confirmation_deadline": datetime(2026, 6, 1)}, "timezone-aware"),
        ({"order": "sideways"}, "order"),
    ]
    for kwargs, match in bad:
        with pytest.raises(ValueError, match=match):
            await accept(sim, "q-x", "r-x", **kwargs)
    assert not sim.events
    await accept(sim, "q-1", "r-1")
    with pytest.raises(ValueError, match="already exists"):
        await accept(sim, "q-1", "r-1")
    with pytest.raises(ValueError, match="is ours"):
        sim.add_foreign_quote("q-1")
    with pytest.raises(KeyError, match="unknown quote"):
        await sim.confirm("q-404")
    with pytest.raises(ValueError, match="event_key"):
        sim.set_event_key("kind")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="api_key"):
        TotalisRfqSimulator("")
