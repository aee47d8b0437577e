"""Tests for the ProphetX REST + Pusher simulator (protocols.md §3), driven by real clients."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from riskmon.venues.prophetx.sim_frames import MALFORMED_KINDS
from riskmon.venues.prophetx.simulator import ProphetXSimulator, selection_level
from tests.venues.session_harness import started
from tests.venues.sim_client import recv_json as recv

TIMEOUT = 5.0
ACCESS, SECRET = "ak-123", "sk-456"
APP_KEY, APP_SECRET = "sim-key", "sim-secret"
ACCOUNT = "acct-1"
BROADCAST = "private-broadcast-service=3-device_type=5"
PRIVATE = f"private-service=3-device_type=5-user={ACCOUNT}"
EVENT = 10078829
EVENT_CH = f"{BROADCAST}-event={EVENT}"
SUBTYPE_CH = f"{BROADCAST}-event={EVENT}-subtype=props"
WAGER_KEYS = [
    "id",
    "user_id",
    "external_id",
    "sport_event_id",
    "market_id",
    "outcome_id",
    "line_id",
    "line",
    "odds",
    "stake",
    "profit",
    "matched_stake",
    "matched_odds",
    "totally_matched_stake",
    "unmatched_stake",
    "matching_status",
    "winning_status",
    "status",
    "update_type",
    "sequence_number",
]
V4_SUBS = [
    {"type": "tournament", "ids": ["109"]},
    {"type": "event", "ids": [EVENT]},
    {"type": "event_subtype", "ids": [f"{EVENT}:props"]},
]


class FakeClock:
    def __init__(self, now: float = 1_784_813_285.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def hmac_auth(key: str, message: str, secret: str = APP_SECRET) -> str:
    return f"{key}:{hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()}"


def tampered(auth: str) -> str:
    """The auth string with its signature's last hex digit changed: always a different signature.
    (Overwriting the digit with a fixed one is a no-op when the signature already ends in it,
    1 time in 16, since socket ids are random.)"""
    return auth[:-1] + f"{int(auth[-1], 16) ^ 1:x}"


def triple_decode(frame: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Pusher frame -> data JSON string -> envelope -> base64 payload -> JSON."""
    assert isinstance(frame["data"], str)
    env = json.loads(frame["data"])
    assert list(env) == ["timestamp", "change_type", "op", "payload"]
    assert isinstance(env["timestamp"], int)
    return env, json.loads(base64.b64decode(env["payload"], validate=True))


class Client:
    """A minimal Pusher client: connect, read socket_id, send/receive JSON frames."""

    def __init__(self, ws: ClientConnection, socket_id: str) -> None:
        self.ws = ws
        self.socket_id = socket_id

    @classmethod
    async def open(cls, url: str) -> Client:
        ws = await connect(url, open_timeout=TIMEOUT)
        first = await recv(ws)
        assert first["event"] == "pusher:connection_established"
        data = json.loads(first["data"])  # data is a JSON string
        assert list(data) == ["socket_id", "activity_timeout"]
        assert data["activity_timeout"] == 120
        return cls(ws, data["socket_id"])

    async def send(self, event: str, data: dict[str, Any]) -> None:
        await self.ws.send(json.dumps({"event": event, "data": data}))

    async def recv(self) -> dict[str, Any]:
        return await recv(self.ws)

    async def expect(self, event: str, channel: str | None = None) -> dict[str, Any]:
        frame = await self.recv()
        assert frame["event"] == event, frame
        if channel is not None:
            assert frame["channel"] == channel
        return frame

    async def assert_idle(self) -> None:
        """Nothing was queued for us: our ping's pong is the very next frame."""
        await self.send("pusher:ping", {})
        assert await self.recv() == {"event": "pusher:pong", "data": "{}"}

    async def subscribe_all(self, register: dict[str, Any]) -> None:
        auth = register["data"]["authenticated"]
        await self.send("pusher:signin", {"auth": auth["auth"], "user_data": auth["user_data"]})
        signed = await self.expect("pusher:signin_success")
        assert json.loads(signed["data"]) == {"user_data": auth["user_data"]}
        for ch in register["data"]["authorized_channel"]:
            await self.send("pusher:subscribe", {"auth": ch["auth"], "channel": ch["channel_name"]})
            ok = await self.expect("pusher_internal:subscription_succeeded", ch["channel_name"])
            assert ok["data"] == "{}"


@pytest_asyncio.fixture
async def clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture
async def sim(clock: FakeClock) -> AsyncIterator[ProphetXSimulator]:
    async with started(ProphetXSimulator(ACCESS, SECRET, health_check_interval=None, clock=clock)) as server:
        yield server


@pytest_asyncio.fixture
async def http(sim: ProphetXSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.rest_url, timeout=TIMEOUT) as client:
        yield client


async def login(http: httpx.AsyncClient) -> dict[str, str]:
    r = await http.post("/auth/login", json={"access_key": ACCESS, "secret_key": SECRET})
    assert r.status_code == 200
    return {"Authorization": f"Bearer {r.json()['data']['access_token']}"}


async def register(http: httpx.AsyncClient, auth: dict[str, str], socket_id: str, subs: object) -> httpx.Response:
    body = {"socket_id": socket_id, "service": "pusher", "subscriptions": subs}
    return await http.post("/v4/mm/websocket", json=body, headers=auth)


async def ready_client(sim: ProphetXSimulator, http: httpx.AsyncClient, subs: list[dict[str, Any]]) -> Client:
    auth = await login(http)
    client = await Client.open(sim.ws_url)
    r = await register(http, auth, client.socket_id, subs)
    assert r.status_code == 200, r.text
    await client.subscribe_all(r.json())
    return client


# ---- REST auth --------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.asyncio
async def test_login_refresh_and_token_expiry(
    sim: ProphetXSimulator, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    bad = await http.post("/auth/login", json={"access_key": ACCESS, "secret_key": "nope"})
    assert (bad.status_code, bad.json()) == (401, {"error": "unauthorized"})

    r = await http.post("/auth/login", json={"access_key": ACCESS, "secret_key": SECRET})
    data = r.json()["data"]
    assert list(data) == ["access_token", "refresh_token", "access_expire_time", "refresh_expire_time"]
    assert data["access_expire_time"] == int(clock.now + 1200)
    assert data["refresh_expire_time"] > data["access_expire_time"]
    assert data["access_token"].count(".") == 2  # JWT-shaped
    auth = {"Authorization": f"Bearer {data['access_token']}"}

    assert (await http.get("/websocket/connection-config")).status_code == 401
    bogus = await http.get("/websocket/connection-config", headers={"Authorization": "Bearer nope"})
    assert (bogus.status_code, bogus.json()) == (401, {"error": "unauthorized"})
    cfg = await http.get("/websocket/connection-config", headers=auth)
    assert cfg.json() == {
        "data": {"app_id": "sim", "key": APP_KEY, "cluster": "sim1", "ws_host": sim.ws_host, "service": "pusher"}
    }
    assert sim.ws_host == f"ws://127.0.0.1:{sim.port}"
    assert sim.rest_url == f"http://127.0.0.1:{sim.port}/partner"

    clock.now += 1199
    assert (await http.get("/websocket/connection-config", headers=auth)).status_code == 200
    clock.now += 1
    expired = await http.get("/websocket/connection-config", headers=auth)
    assert (expired.status_code, expired.json()) == (401, {"error": "unauthorized"})

    refreshed = await http.post("/auth/refresh", json={"refresh_token": data["refresh_token"]})
    new = refreshed.json()["data"]
    assert new["access_token"] != data["access_token"]
    assert new["access_expire_time"] == int(clock.now + 1200)
    new_auth = {"Authorization": f"Bearer {new['access_token']}"}
    assert (await http.get("/websocket/connection-config", headers=new_auth)).status_code == 200
    assert (await http.post("/auth/refresh", json={"refresh_token": "nope"})).status_code == 401

    clock.now += 3 * 24 * 3600
    assert (await http.post("/auth/refresh", json={"refresh_token": new["refresh_token"]})).status_code == 401

    fresh = await login(http)
    sim.revoke_tokens()
    assert (await http.get("/websocket/connection-config", headers=fresh)).status_code == 401
    assert (await http.get("/nope", headers=await login(http))).status_code == 404


# ---- the full flow ------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.asyncio
async def test_full_flow_v4_register_signin_subscribe_and_every_frame_kind(
    sim: ProphetXSimulator, http: httpx.AsyncClient
) -> None:
    auth = await login(http)
    cfg = (await http.get("/websocket/connection-config", headers=auth)).json()["data"]
    client = await Client.open(f"{cfg['ws_host']}/app/{cfg['key']}?protocol=7")
    sid = client.socket_id
    r = await register(http, auth, sid, V4_SUBS)
    assert r.status_code == 200
    user_data = json.dumps({"id": ACCOUNT}, separators=(",", ":"))
    assert r.json() == {
        "auth": hmac_auth(APP_KEY, f"{sid}:{PRIVATE}"),
        "data": {
            "success": True,
            "status": "CONNECTED",
            "updated_at": 1784813285,
            "subscriptions": [
                {"type": "tournament", "ids": ["109"]},
                {"type": "event", "ids": [str(EVENT)]},
                {"type": "event_subtype", "ids": [f"{EVENT}:props"]},
            ],
            "authorized_channel": [
                {
                    "channel_name": BROADCAST,
                    "auth": hmac_auth(APP_KEY, f"{sid}:{BROADCAST}"),
                    "binding_events": [
                        {"name": "tournament_109", "type": "tournament"},
                        {"name": "general", "type": "general"},
                    ],
                },
                {
                    "channel_name": PRIVATE,
                    "auth": hmac_auth(APP_KEY, f"{sid}:{PRIVATE}"),
                    "binding_events": [
                        {"name": "wagers", "type": "wagers"},
                        {"name": "health_check", "type": "private_system_signal"},
                    ],
                },
                {
                    "channel_name": EVENT_CH,
                    "auth": hmac_auth(APP_KEY, f"{sid}:{EVENT_CH}"),
                    "binding_events": [{"name": "market_selections", "type": "market_selections"}],
                    "scope": {"event_id": EVENT},
                },
                {
                    "channel_name": SUBTYPE_CH,
                    "auth": hmac_auth(APP_KEY, f"{sid}:{SUBTYPE_CH}"),
                    "binding_events": [{"name": "market_selections", "type": "market_selections"}],
                    "scope": {"event_id": EVENT, "sub_type": "props"},
                },
            ],
            "channel_count": 4,
            "channel_limit": 400,
            "authenticated": {"auth": hmac_auth(APP_KEY, f"{sid}::user::{user_data}"), "user_data": user_data},
        },
    }
    await client.subscribe_all(r.json())
    await sim.wait_for_signed_in(1)
    await sim.wait_for_subscribed(4)
    assert sim.subscribed_channels(sid) == {BROADCAST, PRIVATE, EVENT_CH, SUBTYPE_CH}

    assert await sim.emit_health_check() == 1
    hc = await client.expect("health_check", PRIVATE)
    env, payload = triple_decode(hc)
    assert (env["change_type"], env["op"], env["payload"], payload) == ("private_system_signal", "u", "e30=", {})
    assert env["timestamp"] == 1784813285 * 10**9

    oid = sim.place_order(event_id=EVENT, market_id=219, outcome_id=4, odds=124, stake=50.0, external_id="x-1")
    await client.assert_idle()  # placement alone sends nothing
    await sim.activate(oid)
    env, payload = triple_decode(await client.expect("wagers", PRIVATE))
    assert (env["change_type"], env["op"]) == ("wager", "u")
    assert list(payload) == ["info"]
    assert list(payload["info"]) == WAGER_KEYS
    assert payload["info"]["status"] == "open"

    level = selection_level(outcome_id=4, odds=110, stake=110.0, name="Lakers -3.5", line=-3.5)
    n = await sim.push_market_selections(
        EVENT, 219, [[level], []], sequence_number=7, name="Spread", market_type="spread"
    )
    assert n == 1
    env, payload = triple_decode(await client.expect("market_selections", EVENT_CH))
    assert (env["change_type"], env["op"]) == ("market_selections", "u")
    assert payload == {
        "sport_event_id": EVENT,
        "market_id": 219,
        "info": {
            "id": 219,
            "name": "Spread",
            "type": "spread",
            "line": 0.0,
            "sequence_number": 7,
            "selections": [[level], []],
        },
    }
    assert level["display_odds"] == "-110"
    assert (level["display_line"], level["value"]) == ("-3.5", 100.0)

    info = {"sport_event_id": EVENT, "market_id": 219, "outcome_id": 4, "odds": 124, "matched_stake": 45.3}
    assert await sim.push_matched_bet(109, info) == 1
    env, payload = triple_decode(await client.expect("tournament_109", BROADCAST))
    assert (env["change_type"], env["op"], payload) == ("matched_bet", "c", {"info": info})

    await sim.push_broadcast("general", "sport_event", "d", {"id": EVENT, "tournament_id": 109})
    env, payload = triple_decode(await client.expect("general", BROADCAST))
    assert (env["change_type"], env["op"], payload) == ("sport_event", "d", {"id": EVENT, "tournament_id": 109})

    # Keepalive both ways.
    await client.send("pusher:ping", {})
    assert await client.recv() == {"event": "pusher:pong", "data": "{}"}
    assert await sim.server_ping() == 1
    assert await client.recv() == {"event": "pusher:ping", "data": "{}"}
    assert sim.pongs == []
    await client.send("pusher:pong", {})
    await sim.wait_for_pongs(1)
    assert sim.pongs == [sid]
    with pytest.raises(TimeoutError):
        await sim.wait_for_pongs(2, timeout=0.02)
    await client.ws.close()


@pytest.mark.integration
@pytest.mark.asyncio
async def test_legacy_register_with_header_subscriptions_and_form_body(
    sim: ProphetXSimulator, http: httpx.AsyncClient
) -> None:
    auth = await login(http)
    async with connect(sim.ws_url) as ws:
        sid = json.loads((await recv(ws))["data"])["socket_id"]
        headers = {**auth, "header-subscriptions": json.dumps([{"type": "tournament", "ids": [7, 8]}])}
        r = await http.post("/mm/pusher", data={"socket_id": sid}, headers=headers)
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        assert [c["channel_name"] for c in data["authorized_channel"]] == [BROADCAST, PRIVATE]
        assert [b["name"] for b in data["authorized_channel"][0]["binding_events"]] == [
            "tournament_7",
            "tournament_8",
            "general",
        ]
        assert data["subscriptions"] == [{"type": "tournament", "ids": ["7", "8"]}]
        # JSON body and no header: only the always-on channels.
        r = await http.post("/mm/pusher", json={"socket_id": sid}, headers=auth)
        assert [c["channel_name"] for c in r.json()["data"]["authorized_channel"]] == [BROADCAST, PRIVATE]
        bad = await http.post("/mm/pusher", json={"socket_id": sid}, headers={**auth, "header-subscriptions": "[{"})
        assert (bad.status_code, bad.json()) == (400, {"error": "malformed_subscriptions"})


@pytest.mark.integration
@pytest.mark.asyncio
async def test_register_rejections(clock: FakeClock) -> None:
    sim = ProphetXSimulator(ACCESS, SECRET, health_check_interval=None, clock=clock, channel_limit=5)
    await sim.start()
    try:
        async with httpx.AsyncClient(base_url=sim.rest_url, timeout=TIMEOUT) as http:
            auth = await login(http)
            client = await Client.open(sim.ws_url)
            sid = client.socket_id
            cases: list[tuple[Any, str]] = [
                ([{"type": "league", "ids": ["1"]}], "unknown_type"),
                ([{"type": "event", "ids": ["*"]}], "wildcard_not_allowed"),
                ([{"type": "event", "ids": ["abc"]}], "malformed_id"),
                ([{"type": "event_subtype", "ids": ["123"]}], "malformed_id"),
                ("all", "malformed_subscriptions"),
                ([{"type": "event", "ids": [1, 2, 3, 4]}], "exceed_subscription_count"),
            ]
            for subs, code in cases:
                r = await register(http, auth, sid, subs)
                assert (r.status_code, r.json()) == (400, {"error": code}), subs
            unknown = await register(http, auth, "999.999", [])
            assert (unknown.status_code, unknown.json()) == (400, {"error": "invalid_socket_id"})
            assert (await register(http, {}, sid, [])).status_code == 401

            # The limit counts every channel ever granted to the socket (the rejected call above
            # granted none): after events 1-3, even event 4 alone is one too many.
            ok = await register(http, auth, sid, [{"type": "event", "ids": [1, 2, 3]}])
            assert ok.json()["data"]["channel_count"] == 5
            over = await register(http, auth, sid, [{"type": "event", "ids": [4]}])
            assert over.json() == {"error": "exceed_subscription_count"}
            # A new socket starts from zero.
            other = await Client.open(sim.ws_url)
            assert (await register(http, auth, other.socket_id, [{"type": "event", "ids": [4]}])).status_code == 200
            await other.ws.close()
            await client.ws.close()
    finally:
        await sim.stop()


@pytest.mark.integration
@pytest.mark.asyncio
async def test_channel_access_signatures_and_fan_out(sim: ProphetXSimulator, http: httpx.AsyncClient) -> None:
    auth = await login(http)
    a = await Client.open(sim.ws_url)
    b = await Client.open(sim.ws_url)
    assert a.socket_id != b.socket_id
    ra = (await register(http, auth, a.socket_id, [{"type": "event", "ids": [EVENT]}])).json()["data"]
    private_auth = ra["authorized_channel"][1]["auth"]

    async def expect_4009(client: Client) -> str:
        err = await client.expect("pusher:error")
        assert err["data"]["code"] == 4009
        message: str = err["data"]["message"]
        return message

    # Right channel, signature for another socket.
    await b.send("pusher:subscribe", {"auth": private_auth, "channel": PRIVATE})
    assert "Invalid signature" in await expect_4009(b)
    # Tampered signature.
    assert tampered(private_auth) != private_auth
    await a.send("pusher:subscribe", {"auth": tampered(private_auth), "channel": PRIVATE})
    assert "Invalid signature" in await expect_4009(a)
    # Valid HMAC, but the channel was not registered for this socket.
    other = f"{BROADCAST}-event=1"
    await a.send("pusher:subscribe", {"auth": hmac_auth(APP_KEY, f"{a.socket_id}:{other}"), "channel": other})
    assert "not registered" in await expect_4009(a)
    # Bad signin.
    user = ra["authenticated"]["user_data"]
    await a.send("pusher:signin", {"auth": hmac_auth(APP_KEY, f"{b.socket_id}::user::{user}"), "user_data": user})
    assert "signin" in await expect_4009(a)
    await a.send("pusher:subscribe", {"channel": PRIVATE})
    await expect_4009(a)
    # Garbage from the client is answered, not fatal.
    await a.ws.send("not json")
    assert (await a.expect("pusher:error"))["data"]["code"] is None
    # Nothing was subscribed: a health check reaches nobody.
    assert await sim.emit_health_check() == 0
    # And a correct subscribe with double-encoded data still works afterwards.
    await a.ws.send(
        json.dumps({"event": "pusher:subscribe", "data": json.dumps({"auth": private_auth, "channel": PRIVATE})})
    )
    await a.expect("pusher_internal:subscription_succeeded", PRIVATE)

    # Frames reach only the sockets subscribed to their channel.
    assert await sim.emit_health_check() == 1
    await a.expect("health_check", PRIVATE)
    assert await sim.push_market_selections(EVENT, 1, [[]], sequence_number=1) == 0  # registered, not subscribed
    await a.send("pusher:subscribe", {"auth": ra["authorized_channel"][0]["auth"], "channel": BROADCAST})
    await a.expect("pusher_internal:subscription_succeeded", BROADCAST)
    assert await sim.push_matched_bet(5, {"market_id": 1}) == 1
    await a.expect("tournament_5", BROADCAST)  # channel-level fan-out, whatever tournaments were registered
    await b.assert_idle()
    await a.send("pusher:unsubscribe", {"channel": BROADCAST})
    await a.assert_idle()
    assert await sim.push_matched_bet(5, {"market_id": 1}) == 0
    await a.ws.close()
    await b.ws.close()


# ---- trading --------------------------------------------------------------------------


async def next_wager(client: Client) -> dict[str, Any]:
    env, payload = triple_decode(await client.expect("wagers", PRIVATE))
    assert (env["change_type"], env["op"]) == ("wager", "u")
    info: dict[str, Any] = payload["info"]
    return info


@pytest.mark.integration
@pytest.mark.asyncio
async def test_wager_lifecycle_every_status_on_ws_and_rest(sim: ProphetXSimulator, http: httpx.AsyncClient) -> None:
    client = await ready_client(sim, http, [])
    auth = await login(http)
    level = selection_level(outcome_id=4, odds=-120, stake=60.0, line=-3.5, line_id="abc123")
    await sim.push_market_selections(EVENT, 219, [[level]], sequence_number=1)
    oid = sim.place_order(event_id=EVENT, market_id=219, outcome_id=4, odds=-120, stake=60.0, external_id="e1")
    for path in (f"/mm/get_order/{oid}", f"/mm/get_wager/{oid}", f"/v4/mm/get_order/{oid}"):
        r = await http.get(path, headers=auth)
        assert r.status_code == 200
        placed = r.json()["data"]
        assert list(placed) == WAGER_KEYS
        assert (placed["status"], placed["sequence_number"], placed["unmatched_stake"]) == ("inactive", 1, 60.0)
    assert placed["id"] == oid
    assert (placed["user_id"], placed["external_id"], placed["line_id"], placed["line"]) == (
        ACCOUNT,
        "e1",
        "abc123",
        -3.5,
    )
    assert (placed["profit"], placed["winning_status"], placed["matching_status"]) == (50.0, "tbd", "unmatched")
    missing = await http.get("/mm/get_order/nope", headers=auth)
    assert (missing.status_code, missing.json()) == (404, {"error": "order_not_found"})
    await client.assert_idle()

    await sim.activate(oid)
    w = await next_wager(client)
    assert (w["status"], w["update_type"], w["sequence_number"]) == ("open", "status", 2)
    await sim.match(oid, 20.0, odds=-115)
    w = await next_wager(client)
    assert (w["update_type"], w["matching_status"], w["matched_stake"], w["matched_odds"]) == (
        "matching",
        "partially_matched",
        20.0,
        -115,
    )
    assert (w["totally_matched_stake"], w["unmatched_stake"], w["sequence_number"]) == (20.0, 40.0, 3)
    await sim.match(oid, 40.0)
    w = await next_wager(client)
    assert (w["matching_status"], w["matched_stake"], w["matched_odds"]) == ("fully_matched", 40.0, -120)
    assert (w["totally_matched_stake"], w["unmatched_stake"], w["status"]) == (60.0, 0.0, "open")
    await sim.settle(oid, "won")
    w = await next_wager(client)
    assert (w["status"], w["winning_status"], w["update_type"], w["sequence_number"]) == ("settled", "won", "status", 5)
    assert (await http.get(f"/mm/get_order/{oid}", headers=auth)).json()["data"] == w

    bad = sim.place_order(event_id=EVENT, market_id=219, outcome_id=5, odds=150, stake=10.0)
    await sim.reject(bad)
    w = await next_wager(client)
    assert (w["id"], w["status"], w["reason"]) == (bad, "invalid", "insufficient_balance")
    assert w["external_id"] == f"sim-{bad}"

    gone = sim.place_order(event_id=EVENT, market_id=219, outcome_id=5, odds=150, stake=10.0, order_id="w-9")
    assert gone == "w-9"
    await sim.activate(gone)
    await next_wager(client)
    await sim.cancel(gone)
    w = await next_wager(client)
    assert (w["status"], w["unmatched_stake"], w["matching_status"]) == ("canceled", 0.0, "unmatched")
    with pytest.raises(ValueError, match="nothing to cancel"):
        await sim.cancel(gone)

    part = sim.place_order(event_id=EVENT, market_id=219, outcome_id=5, odds=150, stake=10.0)
    await sim.activate(part)
    await sim.match(part, 4.0)
    await sim.cancel(part)
    w = [await next_wager(client) for _ in range(3)][-1]
    # §3.3: cancelling a partial fill leaves the matched part open and fully matched.
    assert (w["status"], w["matching_status"], w["unmatched_stake"], w["totally_matched_stake"]) == (
        "open",
        "fully_matched",
        0.0,
        4.0,
    )
    for status in ("void", "wiped", "manually_settled", "closed"):
        await sim.set_status(part, status)
        assert (await next_wager(client))["status"] == status
    await sim.settle(part, "push", status="manually_settled")
    w = await next_wager(client)
    assert (w["status"], w["winning_status"]) == ("manually_settled", "push")
    await client.ws.close()


@pytest.mark.asyncio
async def test_place_order_and_transitions_validate() -> None:
    sim = ProphetXSimulator(ACCESS, SECRET, health_check_interval=None)
    with pytest.raises(ValueError, match="ladder"):
        sim.place_order(event_id=1, market_id=1, outcome_id=1, odds=-100, stake=1.0)
    with pytest.raises(ValueError, match="stake"):
        sim.place_order(event_id=1, market_id=1, outcome_id=1, odds=100, stake=0.0)
    oid = sim.place_order(event_id=1, market_id=1, outcome_id=1, odds=100, stake=5.0, external_id="dup")
    with pytest.raises(ValueError, match="wager_external_id_existed"):
        sim.place_order(event_id=1, market_id=1, outcome_id=1, odds=100, stake=5.0, external_id="dup")
    with pytest.raises(ValueError, match="not open"):
        await sim.match(oid, 1.0)
    await sim.activate(oid)
    with pytest.raises(ValueError, match="not inactive"):
        await sim.reject(oid)
    with pytest.raises(ValueError, match="unmatched"):
        await sim.match(oid, 6.0)
    with pytest.raises(ValueError, match="unknown status"):
        await sim.set_status(oid, "pending")
    with pytest.raises(ValueError, match="winning_status"):
        await sim.settle(oid, "maybe")
    with pytest.raises(KeyError):
        sim.order_info("nope")
    with pytest.raises(ValueError, match="health_check_interval"):
        ProphetXSimulator(ACCESS, SECRET, health_check_interval=0)
    with pytest.raises(RuntimeError):
        _ = sim.rest_url
    with pytest.raises(TimeoutError):
        await sim.wait_for_connections(1, timeout=0.02)
    with pytest.raises(TimeoutError):
        await sim.wait_for_subscribed(1, PRIVATE, timeout=0.02)
    with pytest.raises(TimeoutError):
        await sim.wait_for_signed_in(1, timeout=0.02)
    with pytest.raises(TimeoutError):
        await sim.wait_for_health_ticks(1, timeout=0.02)


# ---- books -----------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.asyncio
async def test_rest_books_follow_the_stream_until_drift(sim: ProphetXSimulator, http: httpx.AsyncClient) -> None:
    client = await ready_client(sim, http, [{"type": "event", "ids": [EVENT, 42]}])
    auth = await login(http)
    a = [[selection_level(outcome_id=1, odds=-110, stake=100.0)], [selection_level(outcome_id=2, odds=105, stake=50.0)]]
    await sim.push_market_selections(EVENT, 219, a, sequence_number=10, name="Moneyline", market_type="moneyline")
    _, stream = triple_decode(await client.expect("market_selections", EVENT_CH))
    await sim.push_market_selections(42, 7, a, sequence_number=3)
    await client.expect("market_selections", f"{BROADCAST}-event=42")

    rest = (await http.get("/mm/get_markets", params={"event_id": EVENT}, headers=auth)).json()
    assert rest == {"data": {"markets": [stream["info"]]}}
    assert rest["data"]["markets"][0]["selections"] == a
    multi = (await http.get("/mm/get_multiple_markets", params={"event_ids": f"{EVENT},42,5"}, headers=auth)).json()
    assert list(multi["data"]) == [str(EVENT), "42", "5"]
    assert multi["data"][str(EVENT)] == [stream["info"]]
    assert [m["id"] for m in multi["data"]["42"]] == [7]
    assert multi["data"]["5"] == []
    assert (await http.get("/mm/get_markets", params={"event_id": "x"}, headers=auth)).status_code == 400

    b = [[selection_level(outcome_id=1, odds=-125, stake=80.0)], []]
    sim.set_rest_book_only(EVENT, 219, b)
    await client.assert_idle()  # the drift is silent on the stream
    drifted = (await http.get("/mm/get_markets", params={"event_id": EVENT}, headers=auth)).json()["data"]["markets"][0]
    assert (drifted["selections"], drifted["sequence_number"]) == (b, 11)
    assert drifted["selections"] != stream["info"]["selections"]

    # The next stream update brings both sides together again.
    await sim.push_market_selections(EVENT, 219, b, sequence_number=12)
    _, stream2 = triple_decode(await client.expect("market_selections", EVENT_CH))
    rest2 = (await http.get("/mm/get_markets", params={"event_id": EVENT}, headers=auth)).json()["data"]["markets"]
    assert rest2 == [stream2["info"]]
    await client.ws.close()


# ---- keepalive and faults ------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.asyncio
async def test_background_health_check_and_stop_resume(clock: FakeClock) -> None:
    sim = ProphetXSimulator(ACCESS, SECRET, health_check_interval=0.01, clock=clock)
    await sim.start()
    try:
        async with httpx.AsyncClient(base_url=sim.rest_url, timeout=TIMEOUT) as http:
            client = await ready_client(sim, http, [])
            _, payload = triple_decode(await client.expect("health_check", PRIVATE))
            assert payload == {}
            sim.stop_health_check()
            assert await sim.emit_health_check() == 0
            # Drain what the loop queued before the stop, up to the pong of our ping.
            await client.send("pusher:ping", {})
            while (frame := await client.recv())["event"] == "health_check":
                pass
            assert frame["event"] == "pusher:pong"
            ticks = sim.health_ticks
            await sim.wait_for_health_ticks(ticks + 3)
            await client.assert_idle()  # three loop ticks while stopped sent nothing
            sim.resume_health_check()
            await client.expect("health_check", PRIVATE)
            await client.ws.close()
    finally:
        await sim.stop()


@pytest.mark.integration
@pytest.mark.asyncio
async def test_wager_fault_modes_drop_duplicate_and_stale(sim: ProphetXSimulator, http: httpx.AsyncClient) -> None:
    client = await ready_client(sim, http, [])
    auth = await login(http)
    first = sim.place_order(event_id=EVENT, market_id=1, outcome_id=1, odds=100, stake=10.0)
    second = sim.place_order(event_id=EVENT, market_id=1, outcome_id=1, odds=100, stake=10.0)
    sim.drop_next_activation()
    await sim.activate(first)
    await client.assert_idle()
    rest = (await http.get(f"/mm/get_order/{first}", headers=auth)).json()["data"]
    assert (rest["status"], rest["sequence_number"]) == ("open", 2)
    await sim.activate(second)  # only the next one is dropped
    w = await next_wager(client)
    assert (w["id"], w["status"]) == (second, "open")
    # The dropped activation's later fill still arrives, with the next sequence number.
    await sim.match(first, 10.0)
    w = await next_wager(client)
    assert (w["id"], w["sequence_number"], w["matching_status"]) == (first, 3, "fully_matched")

    oid = sim.place_order(event_id=EVENT, market_id=1, outcome_id=1, odds=200, stake=10.0)
    with pytest.raises(ValueError, match="no update"):
        await sim.repeat_last_update(oid)
    await sim.activate(oid)
    await sim.match(oid, 3.0)
    await client.recv()
    original = await client.ws.recv()
    await sim.repeat_last_update(oid)
    duplicate = await client.ws.recv()
    assert duplicate == original  # byte-identical
    assert json.loads(original)["event"] == "wagers"
    await sim.send_stale_update(oid)
    stale = await next_wager(client)
    assert (stale["sequence_number"], stale["status"], stale["update_type"]) == (2, "open", "status")
    assert sim.order_info(oid)["sequence_number"] == 3
    fresh = sim.place_order(event_id=EVENT, market_id=1, outcome_id=1, odds=200, stake=10.0)
    with pytest.raises(ValueError, match="older version"):
        await sim.send_stale_update(fresh)
    await client.ws.close()


@pytest.mark.integration
@pytest.mark.asyncio
async def test_disconnect_all_then_reconnect_needs_a_new_register(
    sim: ProphetXSimulator, http: httpx.AsyncClient
) -> None:
    client = await ready_client(sim, http, [])
    old_id = client.socket_id
    await sim.disconnect_all()
    with pytest.raises(ConnectionClosed) as closed:
        await client.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4200, "reconnect")
    assert sim.connection_count == 0
    auth = await login(http)
    stale = await register(http, auth, old_id, [])
    assert (stale.status_code, stale.json()) == (400, {"error": "invalid_socket_id"})
    again = await ready_client(sim, http, [])
    assert again.socket_id != old_id
    assert sim.socket_ids() == [again.socket_id]
    await again.ws.close()


@pytest.mark.integration
@pytest.mark.asyncio
async def test_send_malformed_breaks_exactly_one_layer(sim: ProphetXSimulator, http: httpx.AsyncClient) -> None:
    client = await ready_client(sim, http, [])
    for kind in MALFORMED_KINDS:
        assert await sim.send_malformed(kind) == 1
        async with asyncio.timeout(TIMEOUT):
            text = await client.ws.recv()
        assert isinstance(text, str)
        if kind == "not_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(text)
            continue
        frame = json.loads(text)
        assert (frame["event"], frame["channel"]) == ("wagers", PRIVATE)
        if kind == "data_not_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(frame["data"])
            continue
        env = json.loads(frame["data"])
        assert env["change_type"] == "wager"
        if kind == "payload_not_base64":
            with pytest.raises(binascii.Error):
                base64.b64decode(env["payload"], validate=True)
            continue
        raw = base64.b64decode(env["payload"], validate=True)
        if kind == "payload_not_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(raw)
            continue
        assert kind == "missing_info"
        decoded = json.loads(raw)
        assert isinstance(decoded, dict)
        assert "info" not in decoded
    await client.assert_idle()
    await client.ws.close()


@pytest.mark.integration
@pytest.mark.asyncio
async def test_fail_rest_by_count_and_path_then_heal(sim: ProphetXSimulator, http: httpx.AsyncClient) -> None:
    auth = await login(http)
    sim.fail_rest(503, times=2, paths="/partner/mm/get_order")
    for _ in range(2):
        r = await http.get("/mm/get_order/x", headers=auth)
        assert (r.status_code, r.json()) == (503, {"error": "simulated_503"})
    assert (await http.get("/mm/get_order/x", headers=auth)).status_code == 404  # healed after 2
    sim.fail_rest(429, paths=("/partner/auth", "/partner/websocket"))
    assert (await http.get("/mm/get_markets", params={"event_id": 1}, headers=auth)).status_code == 200
    for _ in range(3):
        r = await http.get("/websocket/connection-config", headers=auth)
        assert (r.status_code, r.json()) == (429, {"error": "rate_limit_reached"})
    assert (await http.post("/auth/login", json={})).status_code == 429
    sim.heal_rest()
    assert (await http.get("/websocket/connection-config", headers=auth)).status_code == 200
    sim.fail_rest()
    assert (await http.get("/mm/get_markets", params={"event_id": 1}, headers=auth)).status_code == 503
    sim.heal_rest()
    assert sim.rest_calls[0] == ("POST", "/partner/auth/login")
    assert sim.rest_calls[1:4] == [("GET", "/partner/mm/get_order/x")] * 3
    assert sim.rest_calls[-1] == ("GET", "/partner/mm/get_markets")
    assert len(sim.rest_calls) == 11


@pytest.mark.integration
@pytest.mark.asyncio
async def test_app_key_checks_and_connection_config_rotation(sim: ProphetXSimulator, http: httpx.AsyncClient) -> None:
    base = sim.ws_host
    for url, code in ((f"{base}/app/wrong?protocol=7", 4001), (f"{base}/app/{APP_KEY}?protocol=3", 4007)):
        async with connect(url) as ws:
            err = await recv(ws)
            assert (err["event"], err["data"]["code"]) == ("pusher:error", code)
            with pytest.raises(ConnectionClosed) as closed:
                await recv(ws)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == code
    with pytest.raises(InvalidStatus) as refused:
        await connect(f"{base}/other", open_timeout=TIMEOUT)
    assert refused.value.response.status_code == 403
    assert sim.connection_count == 0

    old = await ready_client(sim, http, [])
    old_url = sim.ws_url
    sim.change_connection_config()
    auth = await login(http)
    cfg = (await http.get("/websocket/connection-config", headers=auth)).json()["data"]
    assert (cfg["key"], cfg["cluster"]) == (sim.app_key, sim.cluster) == ("sim-key-2", "sim2")
    assert sim.ws_url == f"{sim.ws_host}/app/sim-key-2?protocol=7"
    async with connect(old_url) as ws:
        assert (await recv(ws))["data"]["code"] == 4001
    # The old socket is not closed and still gets its channels.
    await sim.emit_health_check()
    await old.expect("health_check", PRIVATE)
    new = await ready_client(sim, http, [])
    r = (await register(http, auth, new.socket_id, [])).json()
    assert r["data"]["authorized_channel"][0]["auth"].startswith("sim-key-2:")
    # A new-key auth is no good on a socket of the old app.
    sig = hmac_auth("sim-key-2", f"{old.socket_id}:{BROADCAST}")
    await old.send("pusher:subscribe", {"auth": sig, "channel": BROADCAST})
    assert (await old.expect("pusher:error"))["data"]["code"] == 4009
    sim.change_connection_config(key="k3", cluster="eu")
    assert (sim.app_key, sim.cluster) == ("k3", "eu")
    await old.ws.close()
    await new.ws.close()


@pytest.mark.integration
@pytest.mark.asyncio
async def test_stop_with_clients_connected_is_prompt_and_idempotent(clock: FakeClock) -> None:
    sim = ProphetXSimulator(ACCESS, SECRET, health_check_interval=0.5, clock=clock)
    await sim.start()
    try:
        with pytest.raises(RuntimeError, match="already"):
            await sim.start()
        async with httpx.AsyncClient(base_url=sim.rest_url, timeout=TIMEOUT) as http:
            a = await ready_client(sim, http, [{"type": "event", "ids": [EVENT]}])
            b = await Client.open(sim.ws_url)
            await sim.wait_for_connections(2)
            host = sim.ws_host
            async with asyncio.timeout(TIMEOUT):
                await sim.stop()
            for client in (a, b):
                with pytest.raises(ConnectionClosed) as closed:
                    await client.recv()
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == 1001
            with pytest.raises(ConnectionRefusedError):
                await connect(f"{host}/app/{APP_KEY}?protocol=7", open_timeout=TIMEOUT)
    finally:
        await sim.stop()
    await sim.stop()
    with pytest.raises(RuntimeError):
        _ = sim.ws_url
