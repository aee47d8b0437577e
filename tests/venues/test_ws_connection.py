"""WsConnection (sans-I/O websocket client on an asyncio.Protocol), the StreamSession ingest path
over it, and InboundQueue, against real websockets servers on loopback.

Servers that must misbehave (answer no ping, write many frames in one TCP write) are raw asyncio
servers that complete the opening handshake by hand. Timeouts are short real ones (tens of
milliseconds); every wait is on an event, bounded by `asyncio.wait_for(..., 5)`.
TLS (wss) is not exercised here: `trustme` is not installed in this environment.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus

import pytest
import pytest_asyncio
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response

from riskmon.bench.frame_server import request_key, upgrade_response
from riskmon.clock import VirtualClock
from riskmon.config.schema import Backoff
from riskmon.config.types import Duration
from riskmon.events import Event, FeedDown, FeedUp, FrameMalformed
from riskmon.venues.base import Inbound, InboundQueue
from riskmon.venues.stream_session import StreamSession, StreamSettings, StreamTarget
from riskmon.venues.ws_connection import Message, WsConnection, WsOptions

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

TIMEOUT = 5.0
LOG = logging.getLogger("tests.ws_connection")


def text_frame(text: str, *, fin: bool = True, opcode: Opcode = Opcode.TEXT) -> bytes:
    return Frame(opcode, text.encode(), fin=fin).serialize(mask=False)


class RawServer:
    """Completes the opening handshake by hand, then writes only what the test tells it to."""

    def __init__(self, after_handshake: bytes = b"") -> None:
        self._after_handshake = after_handshake
        self.writers: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()
        self._opened: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        key = request_key(await reader.readuntil(b"\r\n\r\n"))
        assert key is not None
        writer.write(upgrade_response(key) + self._after_handshake)
        self._opened.append(writer)
        await self.writers.put(writer)
        # Never reads again: pings and close frames go unanswered, as from a dead peer.

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._opened:
            writer.close()
            await writer.wait_closed()
        await self._server.wait_closed()


@pytest_asyncio.fixture
async def raw_server() -> AsyncIterator[RawServer]:
    server = RawServer()
    yield server
    await server.stop()


def ws_url(server: Server) -> str:
    port = next(iter(server.sockets)).getsockname()[1]
    return f"ws://127.0.0.1:{port}/"


class Batches:
    """The messages handler: records each call (one call per socket read) and signals it."""

    def __init__(self) -> None:
        self.calls: list[list[Message]] = []
        self.changed = asyncio.Event()

    def __call__(self, messages: list[Message]) -> None:
        self.calls.append(messages)
        self.changed.set()

    async def until(self, count: int) -> None:
        async with asyncio.timeout(TIMEOUT):
            while sum(len(call) for call in self.calls) < count:
                self.changed.clear()
                await self.changed.wait()


# ---- the connection -----------------------------------------------------------------------------


async def test_handshake_sends_the_headers_and_subprotocols_and_offers_no_compression() -> None:
    seen: list[Headers] = []

    def record(connection: ServerConnection, request: Request) -> None:
        seen.append(request.headers)

    async with serve(
        lambda ws: ws.wait_closed(), "127.0.0.1", 0, subprotocols=["phoenix-jwt"], process_request=record
    ) as server:
        options = WsOptions(headers={"Authorization": "Bearer tok-1"}, subprotocols=("phoenix-jwt", "tok-1"))
        conn = await WsConnection.open(ws_url(server), options, LOG)
        try:
            assert conn.subprotocol == "phoenix-jwt"
            [headers] = seen
            assert headers["Authorization"] == "Bearer tok-1"
            assert headers["Sec-WebSocket-Protocol"] == "phoenix-jwt, tok-1"
            assert "Sec-WebSocket-Extensions" not in headers
            assert headers["User-Agent"].startswith("Python/")
        finally:
            await asyncio.wait_for(conn.aclose(), TIMEOUT)
        assert conn.close_exc.sent is not None
        assert conn.close_exc.sent.code == 1000


async def test_a_refused_handshake_raises_with_the_http_status() -> None:
    def refuse(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(HTTPStatus.UNAUTHORIZED, "no\n")

    async with serve(lambda ws: ws.wait_closed(), "127.0.0.1", 0, process_request=refuse) as server:
        with pytest.raises(InvalidStatus) as refused:
            await WsConnection.open(ws_url(server), WsOptions(), LOG)
    assert refused.value.response.status_code == 401


async def test_frames_written_with_the_handshake_wait_for_start_then_arrive_as_one_batch() -> None:
    server = RawServer(after_handshake=b"".join(text_frame(f"m{i}") for i in range(5)))
    url = await server.start()
    try:
        conn = await WsConnection.open(url, WsOptions(), LOG)
        batches = Batches()
        conn.start(batches)
        assert batches.calls == [[f"m{i}" for i in range(5)]]  # delivered inside start(), in order
        conn.abort()
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
    finally:
        await server.stop()


async def test_many_frames_in_one_tcp_write_arrive_in_order_as_one_batch(raw_server: RawServer) -> None:
    conn = await WsConnection.open(await raw_server.start(), WsOptions(), LOG)
    batches = Batches()
    conn.start(batches)
    writer = await asyncio.wait_for(raw_server.writers.get(), TIMEOUT)
    # A fragmented message and a binary one among them: reassembled, in place.
    wire = [text_frame(f"fill-{i}") for i in range(200)]
    wire.insert(50, text_frame("frag-", fin=False) + text_frame("mented", opcode=Opcode.CONT))
    wire.insert(51, Frame(Opcode.BINARY, b"\x00\x01").serialize(mask=False))
    writer.write(b"".join(wire))
    await batches.until(202)
    expected: list[Message] = [f"fill-{i}" for i in range(200)]
    expected[50:50] = ["frag-mented", b"\x00\x01"]
    assert batches.calls == [expected]
    conn.abort()
    await asyncio.wait_for(conn.wait_closed(), TIMEOUT)


async def test_a_message_over_max_size_fails_the_connection_with_1009() -> None:
    async def oversized(ws: ServerConnection) -> None:
        await ws.send("x" * 2048)
        await ws.wait_closed()

    async with serve(oversized, "127.0.0.1", 0) as server:
        conn = await WsConnection.open(ws_url(server), WsOptions(max_size=1024), LOG)
        batches = Batches()
        conn.start(batches)
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
    assert batches.calls == []
    exc = conn.close_exc
    assert exc.sent is not None
    assert exc.sent.code == 1009


async def test_the_server_close_code_and_reason_are_kept() -> None:
    async def closer(ws: ServerConnection) -> None:
        await ws.send("last words")
        await ws.close(4001, "idle, no subscription")

    async with serve(closer, "127.0.0.1", 0) as server:
        conn = await WsConnection.open(ws_url(server), WsOptions(), LOG)
        batches = Batches()
        conn.start(batches)
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
    assert batches.calls == [["last words"]]
    exc = conn.close_exc
    assert exc.rcvd is not None
    assert (exc.rcvd.code, exc.rcvd.reason) == (4001, "idle, no subscription")


async def test_an_unanswered_transport_ping_fails_the_connection_with_1011(raw_server: RawServer) -> None:
    options = WsOptions(ping_interval=0.02, ping_timeout=0.05, close_timeout=0.05)
    conn = await WsConnection.open(await raw_server.start(), options, LOG)
    conn.start(Batches())
    await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
    exc = conn.close_exc
    assert exc.rcvd is None  # the peer never answered, not even the close
    assert exc.sent is not None
    assert (exc.sent.code, exc.sent.reason) == (1011, "keepalive ping timeout")


async def test_answered_transport_pings_keep_the_connection_open() -> None:
    pings_answered = asyncio.Event()

    async def talker(ws: ServerConnection) -> None:
        # websockets answers pings itself; a few intervals later the connection must still be up.
        await asyncio.wait_for(pings_answered.wait(), TIMEOUT)
        await ws.send("still here")
        await ws.wait_closed()

    async with serve(talker, "127.0.0.1", 0) as server:
        conn = await WsConnection.open(ws_url(server), WsOptions(ping_interval=0.01, ping_timeout=0.05), LOG)
        batches = Batches()
        conn.start(batches)
        pongs = 0
        original = conn._keepalive.pong

        def counting(payload: bytes | bytearray | memoryview) -> bool:
            nonlocal pongs
            answered = original(payload)
            pongs += answered
            if pongs == 5:
                pings_answered.set()
            return answered

        conn._keepalive.pong = counting  # type: ignore[method-assign]
        await batches.until(1)
        assert not conn.closed
        assert pongs >= 5
        await asyncio.wait_for(conn.aclose(), TIMEOUT)


# ---- the session over it ------------------------------------------------------------------------


class EchoCodec:
    """Events name the frame; "ping" queues a "pong" to send."""

    venue = "test"

    def __init__(self) -> None:
        self._out: list[str | bytes] = []
        self.opened = 0

    def connection_opened(self) -> None:
        self.opened += 1
        self._out.append("hello")

    def receive_text(self, text: str) -> list[Event]:
        if text == "ping":
            self._out.append("pong")
        return [FrameMalformed(self.venue, text)]

    def receive_bytes(self, data: bytes) -> list[Event]:
        return [FrameMalformed(self.venue, data.hex())]

    def receive_rest(self, source: str, body: str) -> list[Event]:
        return []

    def data_to_send(self) -> list[str | bytes]:
        out, self._out = self._out, []
        return out


class PlainSession(StreamSession):
    def __init__(self, url: str, sink: InboundQueue) -> None:
        settings = StreamSettings(
            reconnect=Backoff(initial=Duration(0.01), max=Duration(0.01)),
            max_frame_bytes=1024,
            open_timeout=TIMEOUT,
        )
        clock = VirtualClock(1000.0)
        super().__init__("test", EchoCodec(), sink, clock, settings, rng=random.Random(1), sleep=self._stay_down)
        self._url = url

    async def prepare(self) -> StreamTarget:
        return StreamTarget(self._url)

    async def _stay_down(self, delay: float) -> None:
        await asyncio.Event().wait()  # one connection is enough for these tests: wait to be cancelled


class HookedSession(PlainSession):
    """Overrides after_frame, so frames take the awaited path; the hook reports after "up"."""

    async def after_frame(self, events: list[Event]) -> None:
        if events == [FrameMalformed("test", "up")]:
            await self.report_up()


async def run_session(session: StreamSession) -> asyncio.Task[None]:
    return asyncio.create_task(session.run())


def frames_and_reports(items: list[Inbound]) -> list[str]:
    return [item.frame if isinstance(item.frame, str) else type(item.events[0]).__name__ for item in items]


async def drain(queue: InboundQueue, until: Callable[[list[Inbound]], bool]) -> tuple[list[Inbound], list[int]]:
    """Every item until `until` holds, and the batch sizes they came in."""
    items: list[Inbound] = []
    sizes: list[int] = []
    async with asyncio.timeout(TIMEOUT):
        while not until(items):
            batch = await queue.get()
            sizes.append(len(batch))
            items.extend(batch)
    return items, sizes


def has_feed_down(items: list[Inbound]) -> bool:
    return any(isinstance(event, FeedDown) for item in items for event in item.events)


async def test_the_session_hands_a_burst_on_as_one_batch_and_answers_once_per_read() -> None:
    received: asyncio.Queue[str] = asyncio.Queue()

    async def venue(ws: ServerConnection) -> None:
        await received.put(str(await ws.recv()))  # the codec's hello, sent on open
        # One TCP write carrying many frames.
        ws.transport.write(b"".join(text_frame(text) for text in ["ping", *(f"f{i}" for i in range(100))]))
        await received.put(str(await ws.recv()))
        await ws.close(1000)

    async with serve(venue, "127.0.0.1", 0) as server:
        queue = InboundQueue(10_000)
        task = await run_session(PlainSession(ws_url(server), queue))
        items, sizes = await drain(queue, has_feed_down)
        assert [await asyncio.wait_for(received.get(), TIMEOUT) for _ in range(2)] == ["hello", "pong"]
        task.cancel()
    assert frames_and_reports(items) == ["FeedUp", "ping", *(f"f{i}" for i in range(100)), "FeedDown"]
    assert sizes == [1, 101, 1]  # FeedUp, the whole read, FeedDown
    assert isinstance(items[0].events[0], FeedUp)


async def test_a_full_queue_pauses_reading_and_drops_nothing() -> None:
    async def venue(ws: ServerConnection) -> None:
        for i in range(300):
            await ws.send(f"f{i}")
        await ws.close(1000)

    async with serve(venue, "127.0.0.1", 0) as server:
        queue = InboundQueue(3)
        task = await run_session(PlainSession(ws_url(server), queue))
        items: list[Inbound] = []
        sizes: list[int] = []
        most = 0
        async with asyncio.timeout(TIMEOUT):
            while not has_feed_down(items):
                most = max(most, queue.qsize())
                batch = await queue.get()
                sizes.append(len(batch))
                items.extend(batch)
                await asyncio.sleep(0)  # a slow engine: the session runs ahead and must wait
        task.cancel()
    assert frames_and_reports(items) == ["FeedUp", *(f"f{i}" for i in range(300)), "FeedDown"]
    # Bounded: a batch is taken only while fewer than 3 items wait, so never more than one read beyond.
    assert 3 <= most <= 2 + max(sizes)


async def test_a_report_from_after_frame_lands_right_after_its_frame() -> None:
    async def venue(ws: ServerConnection) -> None:
        ws.transport.write(b"".join(text_frame(text) for text in ("a", "up", "b", "c")))
        await ws.close(1000)

    async with serve(venue, "127.0.0.1", 0) as server:
        queue = InboundQueue(10_000)
        task = await run_session(HookedSession(ws_url(server), queue))
        items, _ = await drain(queue, has_feed_down)
        task.cancel()
    assert frames_and_reports(items) == ["FeedUp", "a", "up", "FeedUp", "b", "c", "FeedDown"]


# ---- the queue ----------------------------------------------------------------------------------


def item(n: int) -> Inbound:
    return Inbound("test", float(n), f"f{n}", [])


async def test_inbound_queue_bounds_items_and_serves_putters_first_come_first_served() -> None:
    queue = InboundQueue(3)
    assert queue.offer([item(0), item(1)])
    assert queue.offer([item(2), item(3)])  # room when offered: one batch may go past capacity
    assert queue.qsize() == 4
    assert not queue.offer([item(4)])
    waiting = asyncio.create_task(queue.put_batch([item(4)]))
    await asyncio.sleep(0)
    assert [i.frame for i in await queue.get()] == ["f0", "f1"]  # room again, but f4 waits first
    assert not queue.offer([item(5)])
    await asyncio.wait_for(waiting, TIMEOUT)
    assert queue.qsize() == 3
    assert not queue.offer([item(5)])  # full again
    assert [i.frame for i in await queue.get()] == ["f2", "f3"]
    assert queue.offer([item(5)])
    got: list[object] = []
    while queue.qsize():
        got.extend(i.frame for i in await queue.get())
    assert got == ["f4", "f5"]


async def test_a_cancelled_putter_passes_its_turn_on() -> None:
    queue = InboundQueue(1)
    await queue(item(0))
    first = asyncio.create_task(queue.put_batch([item(1)]))
    second = asyncio.create_task(queue.put_batch([item(2)]))
    await asyncio.sleep(0)
    first.cancel()
    assert [i.frame for i in await queue.get()] == ["f0"]
    await asyncio.wait_for(second, TIMEOUT)
    assert [i.frame for i in await queue.get()] == ["f2"]
    assert first.cancelled()
