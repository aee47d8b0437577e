"""The order intake endpoint, `POST /api/v1/orders`, through a real uvicorn server on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from riskmon.asgi_server import AsgiServer
from riskmon.config.types import Secret
from riskmon.events import OrderIntake
from riskmon.runtime.http import HttpServer, build_app
from riskmon.runtime.intake import (
    MAX_BODY_BYTES,
    ORDERS_PATH,
    IntakeRejected,
    IntakeSink,
    OrderIntakeEndpoint,
    OrderIntakePolicy,
    parse_order,
)

URL = "/api/v1/orders"
TOKEN = "s3cr3t-T0ken-that-must-never-leak"

POLICY = OrderIntakePolicy(
    venues=frozenset({"px", "px2"}),
    desks=frozenset({"sports", "macro"}),
    token=None,
    untracked_venues=frozenset({"mango"}),
)
SECURED = OrderIntakePolicy(venues=POLICY.venues, desks=POLICY.desks, token=Secret(TOKEN))


class Recorder:
    """The sink: records what the endpoint hands to the engine."""

    def __init__(self) -> None:
        self.orders: list[OrderIntake] = []

    async def __call__(self, order: OrderIntake) -> None:
        self.orders.append(order)


@asynccontextmanager
async def serving(server: AsgiServer) -> AsyncIterator[httpx.AsyncClient]:
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            yield client
    finally:
        await server.stop()


# One server of each kind for the module: starting and stopping uvicorn costs ~0.2 s.
ASYNC = pytest.mark.asyncio(loop_scope="module")
SHARED = Recorder()


@pytest.fixture
def recorder() -> Recorder:
    SHARED.orders.clear()
    return SHARED


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with serving(HttpServer(CollectorRegistry(), "127.0.0.1", 0, intake=SHARED, intake_policy=POLICY)) as c:
        yield c


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def secured() -> AsyncIterator[httpx.AsyncClient]:
    async with serving(HttpServer(CollectorRegistry(), "127.0.0.1", 0, intake=SHARED, intake_policy=SECURED)) as c:
        yield c


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- accepted orders ----------------------------------------------------------------------------


@pytest.mark.integration
@ASYNC
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"venue": "px", "order_id": "o-1"}, OrderIntake("px", "o-1")),
        (
            {"venue": "px", "order_id": "o-2", "placed_at": 1_700_000_000.25, "desk": "sports"},
            OrderIntake("px", "o-2", placed_at=1_700_000_000.25, desk="sports"),
        ),
        ({"venue": "px2", "order_id": "o-3", "placed_at": 1_700_000_000}, OrderIntake("px2", "o-3", 1_700_000_000.0)),
        ({"venue": "px", "order_id": "o-4", "desk": "macro"}, OrderIntake("px", "o-4", desk="macro")),
        ({"venue": "px", "order_id": "o-5", "placed_at": None, "desk": None}, OrderIntake("px", "o-5")),
        ({"venue": "px", "order_id": "x" * 200}, OrderIntake("px", "x" * 200)),
        ({"venue": "px", "order_id": "ордер-☃"}, OrderIntake("px", "ордер-☃")),
    ],
)
async def test_a_valid_order_is_handed_to_the_sink_and_accepted(
    client: httpx.AsyncClient, recorder: Recorder, body: dict[str, Any], expected: OrderIntake
) -> None:
    response = await client.post(URL, json=body)
    assert response.status_code == 202
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"accepted": True, "venue": expected.venue, "order_id": expected.order_id}
    assert recorder.orders == [expected]
    assert type(recorder.orders[0].placed_at) is (float if expected.placed_at is not None else type(None))


@pytest.mark.integration
@ASYNC
async def test_concurrent_orders_are_all_accepted_once(client: httpx.AsyncClient, recorder: Recorder) -> None:
    ids = [f"c-{i}" for i in range(20)]
    responses = await asyncio.gather(*(client.post(URL, json={"venue": "px", "order_id": i}) for i in ids))
    assert [r.status_code for r in responses] == [202] * len(ids)
    assert sorted(o.order_id for o in recorder.orders) == sorted(ids)
    assert {o.venue for o in recorder.orders} == {"px"}


# --- rejected bodies ------------------------------------------------------------------------------

OK = {"venue": "px", "order_id": "o-1"}


def with_(**changes: Any) -> bytes:
    return json.dumps({**OK, **changes}).encode()


@pytest.mark.integration
@ASYNC
@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "body is not valid JSON: JSON is malformed: object keys must be strings (byte 1)"),
        (b"", "body is not valid JSON: Input data was truncated"),
        (b"venue=px&order_id=o-1", "body is not valid JSON: JSON is malformed: invalid character (byte 0)"),
        (b'{"venue": "px", "order_id": "o-1"} trailing', "body is not valid JSON: JSON is malformed: trailing"),
        (b'{"venue": "px", "order_id": "\xff"}', "body is not valid UTF-8"),
        (b'{"venue": "px", "order_id": "\\ud800"}', "body is not valid JSON"),
        (b"[]", "invalid order: Expected `object`, got `array`"),
        (b"null", "invalid order: Expected `object`, got `null`"),
        (with_(palced_at=1_700_000_000), "invalid order: Object contains unknown field `palced_at`"),
        (b'{"venue": "px"}', "invalid order: Object missing required field `order_id`"),
        (b'{"order_id": "o-1"}', "invalid order: Object missing required field `venue`"),
        (with_(venue=7), "invalid order: Expected `str`, got `int` - at `$.venue`"),
        (with_(venue=None), "invalid order: Expected `str`, got `null` - at `$.venue`"),
        (with_(order_id=12345), "invalid order: Expected `str`, got `int` - at `$.order_id`"),
        (with_(venue=""), "venue must be a non-empty string"),
        (with_(venue="nope"), 'unknown venue "nope" (venues that take order intake: px, px2)'),
        (
            with_(venue="mango"),
            'venue "mango" has no activation watchdog, so it takes no order intake '
            "(venues that take order intake: px, px2)",
        ),
        (with_(venue="PX"), 'unknown venue "PX"'),
        (with_(venue="v" * 500), 'unknown venue "' + "v" * 64 + '..."'),
        (with_(order_id=""), "order_id must be 1 to 200 characters, got 0"),
        (with_(order_id="x" * 201), "order_id must be 1 to 200 characters, got 201"),
        (with_(order_id="ab\ncd"), "order_id has a control character (U+000A) at position 2"),
        (with_(order_id="\x00"), "order_id has a control character (U+0000) at position 0"),
        (with_(order_id="o\x7f"), "order_id has a control character (U+007F) at position 1"),
        (with_(order_id="o-\u202e1"), "order_id has a control character (U+202E) at position 2"),
        (with_(placed_at=0), "placed_at must be a finite number of unix seconds > 0"),
        (with_(placed_at=-5.5), "placed_at must be a finite number of unix seconds > 0"),
        (b'{"venue": "px", "order_id": "o-1", "placed_at": 1e400}', "invalid order: Number out of range"),
        (b'{"venue": "px", "order_id": "o-1", "placed_at": NaN}', "body is not valid JSON"),
        (with_(placed_at=True), "invalid order: Expected `float | null`, got `bool` - at `$.placed_at`"),
        (with_(placed_at="1700000000"), "invalid order: Expected `float | null`, got `str` - at `$.placed_at`"),
        (with_(placed_at=1_700_000_000_000), "placed_at must be unix seconds; 1.7e+12 looks like milliseconds"),
        (with_(desk="ghost"), 'unknown desk "ghost" (configured desks: macro, sports)'),
        (with_(desk=""), 'unknown desk ""'),
        (with_(desk=3), "invalid order: Expected `str | null`, got `int` - at `$.desk`"),
    ],
)
async def test_an_invalid_body_is_refused_with_a_message_saying_why(
    client: httpx.AsyncClient, recorder: Recorder, body: bytes, error: str
) -> None:
    response = await client.post(URL, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    message = response.json()["error"]
    assert message.startswith(error)
    assert recorder.orders == []


@pytest.mark.integration
@ASYNC
async def test_a_huge_unknown_field_name_gives_a_bounded_message(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, content=with_(**{"k" * 10_000: 1}))
    assert response.status_code == 400
    message = response.json()["error"]
    assert message.startswith("invalid order: Object contains unknown field `kkk")
    assert len(message) <= 300


# --- size, method, path -----------------------------------------------------------------------


@pytest.mark.integration
@ASYNC
async def test_a_body_over_64_kib_is_refused_with_413(client: httpx.AsyncClient, recorder: Recorder) -> None:
    body = with_(order_id="o-1").rstrip(b"}") + b', "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    response = await client.post(URL, content=body)
    assert response.status_code == 413
    assert response.json() == {"error": "body is larger than 65536 bytes"}

    async def chunks() -> AsyncIterator[bytes]:  # no content-length: counted while read
        for _ in range(5):
            yield b" " * 16_384
        yield with_()

    response = await client.post(URL, content=chunks())
    assert response.status_code == 413
    # The server drained the refused bodies and still serves.
    assert (await client.post(URL, json=OK)).status_code == 202
    assert recorder.orders == [OrderIntake("px", "o-1")]


@pytest.mark.integration
@ASYNC
async def test_a_body_of_exactly_64_kib_is_read(client: httpx.AsyncClient, recorder: Recorder) -> None:
    body = with_()
    body += b" " * (MAX_BODY_BYTES - len(body))
    assert len(body) == MAX_BODY_BYTES
    response = await client.post(URL, content=body)
    assert response.status_code == 202
    assert recorder.orders == [OrderIntake("px", "o-1")]


@pytest.mark.integration
@ASYNC
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
async def test_another_method_on_the_path_is_405_with_allow(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(method, URL)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    if method != "HEAD":
        assert response.json() == {"error": f"method {method} not allowed; use POST"}


@pytest.mark.integration
@ASYNC
async def test_without_a_sink_the_path_is_not_found() -> None:
    async with serving(HttpServer(CollectorRegistry(), "127.0.0.1", 0)) as client:
        assert (await client.post(URL, json=OK)).status_code == 404
        assert (await client.get(URL)).status_code == 404
        assert (await client.get("/healthz")).json() == {"status": "ok"}


@pytest.mark.integration
@ASYNC
async def test_metrics_and_healthz_are_unchanged(client: httpx.AsyncClient) -> None:
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    healthz = await client.get("/healthz")
    assert (healthz.status_code, healthz.json()) == (200, {"status": "ok"})
    assert (await client.head("/healthz")).status_code == 200
    refused = await client.post("/metrics")
    assert (refused.status_code, refused.text) == (405, "method not allowed\n")
    assert (await client.get("/nowhere")).status_code == 404
    assert (await client.post(URL + "/")).status_code == 404


# --- authorization ------------------------------------------------------------------------------


@pytest.mark.integration
@ASYNC
@pytest.mark.parametrize(
    ("headers", "error", "challenge"),
    [
        ({}, "a bearer token is required", "Bearer"),
        ({"Authorization": f"Basic {TOKEN}"}, "a bearer token is required", "Bearer"),
        ({"Authorization": "Bearer"}, "the bearer token is wrong", 'Bearer error="invalid_token"'),
        (bearer("wrong"), "the bearer token is wrong", 'Bearer error="invalid_token"'),
        (bearer(TOKEN[:-1]), "the bearer token is wrong", 'Bearer error="invalid_token"'),
        (bearer(TOKEN + "x"), "the bearer token is wrong", 'Bearer error="invalid_token"'),
        (bearer(TOKEN.upper()), "the bearer token is wrong", 'Bearer error="invalid_token"'),
        (bearer("tökén"), "the bearer token is wrong", 'Bearer error="invalid_token"'),
    ],
)
async def test_a_missing_or_wrong_token_is_401(
    secured: httpx.AsyncClient, recorder: Recorder, headers: dict[str, str], error: str, challenge: str
) -> None:
    raw = {name.encode(): value.encode() for name, value in headers.items()}  # UTF-8, as a client may send
    response = await secured.post(URL, json=OK, headers=raw)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == challenge
    assert response.json() == {"error": error}
    assert recorder.orders == []


@pytest.mark.integration
@ASYNC
async def test_two_authorization_headers_are_refused(secured: httpx.AsyncClient, recorder: Recorder) -> None:
    headers = [("Authorization", f"Bearer {TOKEN}"), ("Authorization", "Bearer other")]
    response = await secured.post(URL, json=OK, headers=headers)
    assert response.status_code == 401
    assert recorder.orders == []


@pytest.mark.integration
@ASYNC
@pytest.mark.parametrize("header", [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER  {TOKEN}"])
async def test_the_right_token_is_accepted(secured: httpx.AsyncClient, recorder: Recorder, header: str) -> None:
    response = await secured.post(URL, json=OK, headers={"Authorization": header})
    assert response.status_code == 202
    assert recorder.orders == [OrderIntake("px", "o-1")]


@pytest.mark.integration
@ASYNC
async def test_authorization_comes_before_the_body(secured: httpx.AsyncClient) -> None:
    # No venue names, validation details or size limits for a caller without the token.
    assert (await secured.post(URL, content=b"{not json")).status_code == 401
    assert (await secured.post(URL, json={"venue": "nope", "order_id": "1"})).status_code == 401
    assert (await secured.post(URL, content=b" " * (MAX_BODY_BYTES + 1))).status_code == 401
    # Reads need no token.
    assert (await secured.get("/healthz")).status_code == 200


@pytest.mark.integration
@ASYNC
async def test_the_token_appears_in_no_response_and_no_log_line(
    secured: httpx.AsyncClient, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    attempts: list[tuple[dict[str, str], bytes]] = [
        (bearer(), with_()),
        (bearer(), with_(venue="nope")),
        (bearer(), b"{not json"),
        (bearer(), b" " * (MAX_BODY_BYTES + 1)),
        (bearer(TOKEN[:-1]), with_()),
        (bearer(TOKEN + "x"), with_()),
        ({"Authorization": f"Basic {TOKEN}"}, with_()),
        ({}, with_()),
    ]
    responses = [await secured.post(URL, content=body, headers=headers) for headers, body in attempts]
    assert [r.status_code for r in responses] == [202, 400, 400, 413, 401, 401, 401, 401]
    for response in responses:
        assert TOKEN not in response.text
        assert all(TOKEN not in value for value in response.headers.values())
    assert "order intake: accepted 'px' order 'o-1'" in caplog.text  # DEBUG lines were captured
    assert "invalid bearer token" in caplog.text
    assert TOKEN not in caplog.text
    assert TOKEN[:8] not in caplog.text
    assert TOKEN not in repr(SECURED)
    assert recorder.orders == [OrderIntake("px", "o-1")]


# --- a sink that fails or stalls ------------------------------------------------------------------


@pytest.mark.integration
@ASYNC
async def test_a_failing_sink_is_503_and_the_endpoint_keeps_serving(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[OrderIntake] = []

    async def failing(order: OrderIntake) -> None:
        calls.append(order)
        if len(calls) == 1:
            raise RuntimeError("engine queue closed")

    server = HttpServer(CollectorRegistry(), "127.0.0.1", 0, intake=failing, intake_policy=SECURED)
    async with serving(server) as client:
        first = await client.post(URL, json=OK, headers=bearer())
        assert first.status_code == 503
        assert first.headers["retry-after"] == "1"
        assert first.json() == {"error": "order intake is unavailable; retry"}
        assert (await client.post(URL, json=OK, headers=bearer())).status_code == 202
    assert "could not hand 'px' order 'o-1' to the engine" in caplog.text
    assert TOKEN not in caplog.text


@pytest.mark.integration
@ASYNC
async def test_a_full_engine_queue_is_503_after_the_timeout() -> None:
    stalled = asyncio.Event()

    async def full(order: OrderIntake) -> None:
        await stalled.wait()  # never set: the queue never frees a slot

    endpoint = OrderIntakeEndpoint(full, POLICY, sink_timeout=0.05)
    async with serving(AsgiServer(build_app(CollectorRegistry(), {ORDERS_PATH: endpoint}))) as client:
        response = await client.post(URL, json=OK)
        assert response.status_code == 503
        assert response.json() == {"error": "the monitor is busy; retry"}
        assert (await client.get("/healthz")).status_code == 200


# --- construction and pure parsing -----------------------------------------------------------------


def test_a_sink_without_a_policy_is_a_configuration_error() -> None:
    sink: IntakeSink = Recorder()
    with pytest.raises(ValueError, match="needs an intake_policy"):
        HttpServer(CollectorRegistry(), "127.0.0.1", 0, intake=sink)


def test_the_policy_refuses_contradictions() -> None:
    with pytest.raises(ValueError, match="both tracked and untracked: px"):
        OrderIntakePolicy(venues=frozenset({"px"}), desks=frozenset(), token=None, untracked_venues=frozenset({"px"}))
    with pytest.raises(ValueError, match="must not be empty"):
        OrderIntakePolicy(venues=frozenset({"px"}), desks=frozenset(), token=Secret(""))


def test_no_desks_configured_says_so() -> None:
    policy = OrderIntakePolicy(venues=frozenset({"px"}), desks=frozenset(), token=None)
    with pytest.raises(IntakeRejected, match=r'unknown desk "a" \(no desks are configured\)'):
        parse_order(with_(desk="a"), policy)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
orders = st.fixed_dictionaries(
    {},
    optional={
        "venue": st.sampled_from(["px", "mango", "", "nope"]) | json_values,
        "order_id": st.text(max_size=210) | json_values,
        "placed_at": st.floats() | st.integers() | json_values,
        "desk": st.sampled_from(["sports", "ghost"]) | json_values,
        "extra": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | orders.map(lambda d: json.dumps(d).encode()))
def test_any_body_gives_an_order_or_a_rejection(body: bytes) -> None:
    try:
        order = parse_order(body, POLICY)
    except IntakeRejected as exc:
        message = exc.message
    else:
        assert order.venue in POLICY.venues
        assert 1 <= len(order.order_id) <= 200
        return
    assert 0 < len(message) <= 300
