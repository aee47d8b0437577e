"""The direct HTTP/1.1 sender: its request and response handling as bytes, which receivers get it,
and its pool against real loopback peers, well-behaved (uvicorn) and misbehaving (raw asyncio)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any, Literal

import h11
import httpx
import pytest
import pytest_asyncio

from riskmon.asgi_server import AsgiServer, Receive, Scope, Send, read_body, respond
from riskmon.clock import SystemClock
from riskmon.config.alerting import (
    AlertmanagerReceiver,
    DeliveryConfig,
    ReceiverConfig,
    SlackReceiver,
    WebhookReceiver,
)
from riskmon.config.types import Secret
from riskmon.notify.http1 import (
    DirectSender,
    Origin,
    ReceiverPool,
    ReceiverPools,
    ResponseReader,
    goes_direct,
    post_request,
    proxy_applies,
)
from riskmon.notify.notifier import Outgoing
from riskmon.notify.webhook import WebhookSender, post_headers, sign, status_result, verify_signature
from riskmon.runtime.delivery import Delivery
from riskmon.runtime.receiver_queues import queue_specs

T0 = 1_700_000_000.0
SECRET = Secret("s3cr3t-hmac-key")
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def request_bytes(origin: Origin, body: bytes, key: str = "k1") -> bytes:
    conn = h11.Connection(h11.CLIENT)
    request = post_request(origin, post_headers(body, key, SECRET, T0), body)
    return conn.send(request) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())


def reader_after_request() -> tuple[h11.Connection, ResponseReader]:
    conn = h11.Connection(h11.CLIENT)
    conn.send(post_request(Origin.of("http://h/"), {}, b""))
    conn.send(h11.EndOfMessage())
    return conn, ResponseReader(conn, body_limit=16)


# --- pure: the request and the response, as bytes ---------------------------------------------------


def test_request_carries_target_host_headers_signature_and_basic_auth_from_userinfo() -> None:
    body = b'{"version":"4"}'
    wire = request_bytes(Origin.of("http://ops:p%40ss@hooks.internal:8080/a%20b/hook?token=t1"), body)
    head, sent_body = wire.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /a%20b/hook?token=t1 HTTP/1.1"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers["Host"] == "hooks.internal:8080"
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == "k1"
    assert headers["Content-Length"] == str(len(body))
    assert headers["X-Riskmon-Signature"] == sign(SECRET, body, int(T0))
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"ops:p@ss").decode()
    assert sent_body == body
    # The default port is not named in Host, and no userinfo means no Authorization.
    plain = request_bytes(Origin.of("http://hooks.internal/"), b"{}")
    assert b"\r\nHost: hooks.internal\r\n" in plain
    assert b"Authorization" not in plain


def test_a_content_length_or_chunked_response_fed_in_pieces_completes_and_keeps_the_connection() -> None:
    _, fixed = reader_after_request()
    assert not fixed.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
    assert fixed.feed(b"cde")
    assert fixed.response is not None
    assert fixed.response.status_code == 200
    assert (fixed.body_bytes, fixed.reusable) == (5, True)

    _, chunked = reader_after_request()
    assert not chunked.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 Too Many\r\nRetry-After: 7\r\n")
    assert not chunked.feed(b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    assert chunked.feed(b"2\r\nde\r\n0\r\n\r\n")
    assert chunked.response is not None
    assert chunked.response.status_code == 429
    assert chunked.header(b"retry-after") == "7"
    assert chunked.header(b"date") is None
    assert (chunked.body_bytes, chunked.reusable) == (5, True)


def test_connection_close_a_large_body_or_a_cut_response_end_the_connection() -> None:
    _, closing = reader_after_request()
    assert closing.feed(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    assert not closing.reusable

    _, large = reader_after_request()  # limit 16 bytes: reading stops past it, mid-body
    assert large.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 17)
    assert large.response is not None
    assert large.response.status_code == 200
    assert not large.reusable

    _, cut = reader_after_request()
    assert not cut.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    with pytest.raises(h11.RemoteProtocolError):
        cut.feed(b"")  # EOF mid-body

    _, garbage = reader_after_request()
    with pytest.raises(h11.RemoteProtocolError):
        garbage.feed(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")


def test_status_results_match_the_httpx_sender() -> None:
    endpoint = "http://127.0.0.1:1"
    assert status_result(204, None, None, T0, endpoint).ok
    busy = status_result(429, "42", None, T0, endpoint)
    assert (busy.ok, busy.retryable, busy.retry_after, busy.error) == (False, True, 42.0, f"HTTP 429 from {endpoint}")
    # An HTTP-date counts from the response's Date, not from our clock.
    dated = status_result(503, formatdate(T0 + 30, usegmt=True), formatdate(T0, usegmt=True), T0 + 900, endpoint)
    assert (dated.retryable, dated.retry_after) == (True, 30.0)
    gone = status_result(404, "5", None, T0, endpoint)
    assert (gone.ok, gone.retryable, gone.retry_after, gone.status) == (False, False, None, 404)
    assert not status_result(302, None, None, T0, endpoint).retryable  # redirects are not followed


# --- which receivers go direct -------------------------------------------------------------------


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def test_a_proxy_variable_that_applies_sends_the_receiver_through_httpx(no_proxy_env: pytest.MonkeyPatch) -> None:
    assert not proxy_applies("http://hooks.internal/x")
    no_proxy_env.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert not proxy_applies("http://hooks.internal/x")  # only https is proxied
    assert proxy_applies("https://hooks.internal/x")
    no_proxy_env.setenv("HTTP_PROXY", "http://proxy:3128")
    assert proxy_applies("http://hooks.internal/x")
    # NO_PROXY as httpx reads it: a bare domain covers itself and its subdomains, an IP itself.
    no_proxy_env.setenv("NO_PROXY", "internal,127.0.0.1,localhost")
    assert not proxy_applies("http://hooks.internal/x")
    assert not proxy_applies("http://127.0.0.1:9/x")
    assert not proxy_applies("http://localhost:9/x")
    assert proxy_applies("http://hooks.external/x")
    assert proxy_applies("http://127.0.0.2/x")
    no_proxy_env.setenv("NO_PROXY", "*")
    assert not proxy_applies("http://hooks.external/x")
    no_proxy_env.delenv("NO_PROXY")
    no_proxy_env.delenv("HTTP_PROXY")
    no_proxy_env.delenv("HTTPS_PROXY")
    no_proxy_env.setenv("all_proxy", "socks5://proxy:1080")
    assert proxy_applies("http://hooks.internal/x")


@pytest.mark.asyncio
async def test_queue_specs_choose_the_direct_sender_for_unproxied_plain_http_only(
    no_proxy_env: pytest.MonkeyPatch,
) -> None:
    receivers: dict[str, ReceiverConfig] = {
        "hook": WebhookReceiver(url=Secret("http://127.0.0.1:9/hook?token=t"), max_concurrency=3),
        "slack": SlackReceiver(webhook_url=Secret("https://hooks.slack.example/services/x")),
        "am": AlertmanagerReceiver(urls=["http://am-a:9093", "http://am-b:9093"]),
    }
    pools = ReceiverPools()
    async with httpx.AsyncClient() as client:
        specs = queue_specs(receivers, client, SystemClock(), pools)
        kinds = {queue: type(spec.sender) for queue, spec in specs.items()}
        assert kinds == {"hook": DirectSender, "slack": WebhookSender, "am#0": DirectSender, "am#1": DirectSender}
        assert queue_specs(receivers, client, SystemClock()).keys() == specs.keys()  # no pools: all httpx
        no_proxy_env.setenv("HTTP_PROXY", "http://proxy:3128")
        no_proxy_env.setenv("NO_PROXY", "am-b")
        specs = queue_specs(receivers, client, SystemClock(), pools)
        assert type(specs["hook"].sender) is WebhookSender
        assert type(specs["am#0"].sender) is WebhookSender
        assert type(specs["am#1"].sender) is DirectSender
        assert goes_direct("http://127.0.0.1:9/", httpx.AsyncClient(trust_env=False))  # it ignores the env
    await pools.aclose()


# --- loopback peers ------------------------------------------------------------------------------


@dataclass
class Hook:
    """A well-behaved receiver on uvicorn: records each request with the client port it came from."""

    script: list[tuple[int, list[tuple[bytes, bytes]]]] = field(default_factory=list)
    requests: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    delay: float = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive) or b""
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.requests.append((scope["client"][1], headers, body))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)  # a slow receiver, so sends overlap
        finally:
            self.in_flight -= 1
        status, extra = self.script.pop(0) if self.script else (200, [])
        await respond(send, status, b"ok", "text/plain", extra)

    @property
    def connections(self) -> int:
        return len({port for port, _, _ in self.requests})


@pytest_asyncio.fixture
async def hook() -> AsyncIterator[tuple[Hook, str]]:
    app = Hook()
    server = AsgiServer(app)
    await server.start()
    try:
        yield app, f"http://127.0.0.1:{server.port}/hooks/path-key?token=query-secret"
    finally:
        await server.stop()


@dataclass(frozen=True)
class Answer:
    data: bytes = b""
    then: Literal["keep", "close", "hang"] = "keep"


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class RawPeer:
    """A raw HTTP/1.1 peer: `script(connection, request)` (both counted from 0) says what to answer."""

    script: Callable[[int, int], Answer]
    accepts: int = 0
    requests: list[tuple[int, bytes]] = field(default_factory=list)  # (connection, body)
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)  # a client closed a connection
    _handlers: set[asyncio.Task[Any]] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        conn, self.accepts = self.accepts, self.accepts + 1
        try:
            for n in range(1000):
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    self.hung_up.set()
                    return
                length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                assert length is not None
                self.requests.append((conn, await reader.readexactly(int(length.group(1)))))
                answer = self.script(conn, n)
                with contextlib.suppress(ConnectionError):
                    writer.write(answer.data)
                    await writer.drain()
                if answer.then == "close":
                    return
                if answer.then == "hang":
                    await asyncio.Event().wait()
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def raw_peer(script: Callable[[int, int], Answer]) -> AsyncIterator[tuple[RawPeer, str]]:
    peer = RawPeer(script)
    server = await asyncio.start_server(peer.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield peer, f"http://user:hunter2@127.0.0.1:{port}/hook/path-key?token=query-secret"
    finally:
        server.close()
        for task in list(peer._handlers):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await server.wait_closed()


def sender_for(url: str, pool: ReceiverPool | None = None, timeout: float = 5.0) -> DirectSender:
    pool = pool or ReceiverPool(Origin.of(url), 4)
    return DirectSender(url, hmac_secret=SECRET, timeout=timeout, pool=pool, clock=lambda: T0)


def assert_masked(error: str | None) -> None:
    assert error is not None
    for leak in ("hunter2", "user", "query-secret", "path-key", "token", SECRET.reveal()):
        assert leak not in error


integration = pytest.mark.integration
ASYNC = pytest.mark.asyncio


@integration
@ASYNC
async def test_sends_reuse_one_connection_and_carry_the_signed_webhook_headers(hook: tuple[Hook, str]) -> None:
    app, url = hook
    pool = ReceiverPool(Origin.of(url), 4)
    sender = sender_for(url, pool)
    results = [await sender.send(json.dumps({"n": n}).encode(), f"key-{n}") for n in range(20)]
    await pool.aclose()
    assert all(r.ok and r.status == 200 for r in results)
    assert app.connections == 1
    assert [json.loads(body)["n"] for _, _, body in app.requests] == list(range(20))
    _, headers, body = app.requests[-1]
    assert headers["content-type"] == "application/json"
    assert headers["idempotency-key"] == "key-19"
    assert verify_signature(SECRET, headers["x-riskmon-signature"], body, T0)


@integration
@ASYNC
async def test_a_pooled_connection_sends_without_waiting_to_coalesce(hook: tuple[Hook, str]) -> None:
    _, url = hook
    pool = ReceiverPool(Origin.of(url), 1)
    assert (await sender_for(url, pool).send(b"{}", "key-1")).ok
    sock = pool._idle[0].writer.get_extra_info("socket")
    nodelay = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    await pool.aclose()
    assert nodelay != 0  # Nagle off: a request is never held back for the previous one's ACK


@integration
@ASYNC
async def test_concurrent_sends_open_no_more_connections_than_the_bound(hook: tuple[Hook, str]) -> None:
    app, url = hook
    app.delay = 0.05
    pool = ReceiverPool(Origin.of(url), 2)
    sender = sender_for(url, pool)
    results = await asyncio.gather(*(sender.send(b"{}", f"k{n}") for n in range(6)))
    await pool.aclose()
    assert all(r.ok for r in results)
    assert len(app.requests) == 6
    assert app.max_in_flight == 2
    assert app.connections == 2


@integration
@ASYNC
async def test_retry_statuses_and_final_refusals(hook: tuple[Hook, str]) -> None:
    app, url = hook
    app.script = [(429, [(b"retry-after", b"42")]), (500, []), (404, []), (302, [(b"location", b"/elsewhere")])]
    pool = ReceiverPool(Origin.of(url), 1)
    sender = sender_for(url, pool)
    busy, failed, missing, moved = [await sender.send(b"{}", f"k{n}") for n in range(4)]
    await pool.aclose()
    endpoint = sender.endpoint
    assert (busy.status, busy.retryable, busy.retry_after, busy.error) == (429, True, 42.0, f"HTTP 429 from {endpoint}")
    assert (failed.status, failed.retryable, failed.retry_after) == (500, True, None)
    assert (missing.status, missing.retryable, missing.error) == (404, False, f"HTTP 404 from {endpoint}")
    assert (moved.status, moved.retryable) == (302, False)
    assert len(app.requests) == 4  # not followed
    assert app.connections == 1  # error answers keep the connection too


@integration
@ASYNC
async def test_an_http_date_retry_after_counts_from_the_response_date() -> None:
    answer = (
        f"HTTP/1.1 503 Busy\r\nDate: {formatdate(T0, usegmt=True)}\r\n"
        f"Retry-After: {formatdate(T0 + 30, usegmt=True)}\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    async with raw_peer(lambda c, n: Answer(answer)) as (_, url):
        pool = ReceiverPool(Origin.of(url), 1)
        # Our clock is 900 s off the receiver's: the wait is still the 30 s the receiver meant.
        sender = DirectSender(url, hmac_secret=None, timeout=5, pool=pool, clock=lambda: T0 + 900)
        result = await sender.send(b"{}", "k1")
        await pool.aclose()
    assert (result.status, result.retryable, result.retry_after) == (503, True, 30.0)


@integration
@ASYNC
async def test_a_kept_connection_the_peer_dropped_is_replaced_without_losing_the_send() -> None:
    # Connection 0 answers once, then takes the next request and hangs up unanswered (a keep-alive
    # timeout racing our write); connection 1 closes right after each answer.
    def script(conn: int, n: int) -> Answer:
        if conn == 0:
            return Answer(OK) if n == 0 else Answer(b"", "close")
        return Answer(OK, "close")

    async with raw_peer(script) as (peer, url):
        pool = ReceiverPool(Origin.of(url), 1)
        sender = sender_for(url, pool)
        results = [await sender.send(f"{n}".encode(), f"k{n}") for n in range(4)]
        await pool.aclose()
    assert all(r.ok for r in results), results
    # The dropped request went again on a fresh connection; the closed ones were not reused.
    assert peer.requests == [(0, b"0"), (0, b"1"), (1, b"1"), (2, b"2"), (3, b"3")]
    assert peer.accepts == 4


@integration
@ASYNC
async def test_a_response_cut_short_fails_and_is_not_sent_again() -> None:
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"
    async with raw_peer(lambda c, n: Answer(OK) if n == 0 else Answer(cut, "close")) as (peer, url):
        pool = ReceiverPool(Origin.of(url), 1)
        sender = sender_for(url, pool)
        first, second = [await sender.send(b"{}", f"k{n}") for n in range(2)]
        await pool.aclose()
    assert first.ok
    assert (second.ok, second.status, second.retryable) == (False, None, True)
    assert second.error is not None
    assert second.error.startswith(f"RemoteProtocolError posting to {sender.endpoint}")
    assert_masked(second.error)
    assert len(peer.requests) == 2  # the receiver may have acted on it: the outbox retries, not us


@integration
@ASYNC
async def test_connection_close_and_an_oversized_body_cost_the_connection_chunked_keeps_it() -> None:
    close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    huge = b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n" + b"x" * 1048576
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3\r\nyes\r\n0\r\n\r\n"
    answers = {"close": close, "huge": huge, "chunked": chunked}
    for kind, answer in answers.items():
        async with raw_peer(lambda c, n, answer=answer: Answer(answer)) as (peer, url):  # type: ignore[misc]
            pool = ReceiverPool(Origin.of(url), 1)
            sender = sender_for(url, pool)
            results = [await sender.send(b"{}", f"k{n}") for n in range(3)]
            await pool.aclose()
        assert all(r.ok for r in results), (kind, results)
        assert peer.accepts == (1 if kind == "chunked" else 3), kind


@integration
@ASYNC
async def test_timeouts_and_refused_connections_fail_retryably_with_secrets_masked() -> None:
    async with raw_peer(lambda c, n: Answer(b"", "hang")) as (_, url):
        sender = sender_for(url, timeout=0.2)
        silent = await sender.send(b"{}", "k1")
    assert (silent.ok, silent.status, silent.retryable) == (False, None, True)
    assert silent.error == f"ReadTimeout posting to {sender.endpoint}"

    refused = sender_for(url)  # the peer is gone: nobody listens on its port now
    result = await refused.send(b"{}", "k1")
    assert (result.ok, result.status, result.retryable) == (False, None, True)
    assert result.error is not None
    assert result.error.startswith(f"ConnectError posting to {refused.endpoint}")
    assert_masked(result.error)


@integration
@ASYNC
async def test_pools_close_on_reload_away_and_on_delivery_stop(
    tmp_path: Path, no_proxy_env: pytest.MonkeyPatch
) -> None:
    async with raw_peer(lambda c, n: Answer(OK)) as (peer, url):
        pools = ReceiverPools()
        origin = Origin.of(url)
        pool = pools.pool("hook", origin, 2)
        assert pools.pool("hook", origin, 2) is pool  # a reload that keeps origin and bound keeps it
        assert (await sender_for(url, pool).send(b"{}", "k1")).ok
        pools.keep_only(["other"])
        await asyncio.wait_for(peer.hung_up.wait(), timeout=5)
        await pools.aclose()

        peer.hung_up.clear()
        receivers = {"hook": WebhookReceiver(url=Secret(url))}
        delivery = Delivery(tmp_path / "outbox.db", receivers, DeliveryConfig(), SystemClock())
        await delivery.start()
        try:
            delivery.submit([Outgoing("hook", "hook", "g", "key-1", b"{}")])
            async with asyncio.timeout(5):
                while delivery.outcomes[("hook", "sent")] < 1:
                    delivery.progress.clear()
                    await delivery.progress.wait()
            assert not peer.hung_up.is_set()  # kept alive between sends
        finally:
            await delivery.stop()
        await asyncio.wait_for(peer.hung_up.wait(), timeout=5)
    assert peer.accepts == 2
