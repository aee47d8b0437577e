"""WsConnection's framing fast path: crafted byte streams fed to a connection over a recording
transport (every split of the stream across reads, control frames, fragments, invalid UTF-8,
oversized and unsound frames), and real websockets servers on loopback.

The crafted streams start with the server's handshake response, so the end of the response
headers (where the fast path takes over) is split at every boundary too. What the client writes
back (pongs, close frames) is read with websockets' own ServerProtocol.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from riskmon.bench.frame_server import request_key, upgrade_response
from riskmon.venues.ws_connection import Message, WsConnection, WsOptions

TIMEOUT = 5.0
LOG = logging.getLogger("tests.ws_connection_framing")


class RecordingTransport(asyncio.Transport):
    """What the connection writes, and whether it closed; reading is never really paused."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closing = False
        self.eof_written = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True


class Client:
    """A WsConnection in its opening handshake over a RecordingTransport, delivering into `messages`."""

    def __init__(self, max_size: int | None = 2**20) -> None:
        protocol = ClientProtocol(parse_uri("ws://127.0.0.1:1/"), max_size=max_size, logger=LOG)
        self.conn = WsConnection(protocol, WsOptions(max_size=max_size))
        self.transport = RecordingTransport()
        self.conn.connection_made(self.transport)
        request = protocol.connect()
        protocol.send_request(request)
        self.response = upgrade_response(request.headers["Sec-WebSocket-Key"])
        self.messages: list[Message] = []
        self.conn.start(self.messages.extend)

    def feed(self, *reads: bytes) -> None:
        for data in reads:
            self.conn.data_received(data)

    def server_closes_tcp(self) -> None:
        self.conn.eof_received()
        self.conn.connection_lost(None)

    def frames_written(self) -> list[Frame]:
        """The frames the client sent after its HTTP request, as a server reads them."""
        server = ServerProtocol(state=State.OPEN, max_size=None)
        server.receive_data(b"".join(self.transport.written[1:]))
        return [event for event in server.events_received() if isinstance(event, Frame)]


def frame(opcode: Opcode | int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    """An unmasked frame, built by hand so that it can break the rules websockets' serializer checks."""
    head = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | int(opcode)
    n = len(payload)
    if n < 126:
        return bytes((head, n)) + payload
    if n < 1 << 16:
        return bytes((head, 126)) + n.to_bytes(2, "big") + payload
    return bytes((head, 127)) + n.to_bytes(8, "big") + payload


def text(payload: str, *, fin: bool = True) -> bytes:
    return frame(Opcode.TEXT, payload.encode(), fin=fin)


def close(code: int, reason: str) -> bytes:
    return frame(Opcode.CLOSE, Close(code, reason).serialize())


# A server's stream: short, 16-bit and binary frames, pings, a fragmented message with a ping
# inside it, multi-byte UTF-8, an unsolicited pong, then a close (after which nothing counts).
MIXED = b"".join(
    [
        text("a"),
        text("x" * 300),
        frame(Opcode.BINARY, b"\x00\x01\x02"),
        frame(Opcode.PING, b"hb"),
        text("frag-", fin=False),
        frame(Opcode.PING, b"mid"),
        frame(Opcode.CONT, b"ment", fin=False),
        frame(Opcode.CONT, b"ed"),
        text("caf\u00e9 \u2713"),
        frame(Opcode.PONG, b"unasked"),
        text("last"),
        close(4001, "idle"),
        text("after the close"),
    ]
)
MIXED_MESSAGES: list[Message] = ["a", "x" * 300, b"\x00\x01\x02", "frag-mented", "caf\u00e9 \u2713", "last"]


def assert_mixed_outcome(client: Client) -> None:
    assert client.messages == MIXED_MESSAGES
    written = [(f.opcode, f.data) for f in client.frames_written()]
    assert written == [
        (Opcode.PONG, b"hb"),
        (Opcode.PONG, b"mid"),
        (Opcode.CLOSE, Close(4001, "idle").serialize()),  # the close echoed, as RFC 6455 asks
    ]
    client.server_closes_tcp()
    exc = client.conn.close_exc
    assert exc.rcvd is not None
    assert (exc.rcvd.code, exc.rcvd.reason) == (4001, "idle")


def splits(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    for k in range(1, len(data)):
        yield data[:k], data[k:]


@pytest.mark.asyncio
async def test_a_mixed_stream_in_one_read_gives_every_message_in_order_and_answers_the_pings() -> None:
    client = Client()
    client.feed(client.response + MIXED)
    assert_mixed_outcome(client)


@pytest.mark.asyncio
async def test_a_mixed_stream_split_at_every_byte_boundary_gives_the_same_outcome() -> None:
    # The response is the same length for every client (only its accept key differs), so the
    # cuts cover the end of the response headers as well as every frame header and payload.
    for cut in range(1, len(Client().response + MIXED)):
        client = Client()
        stream = client.response + MIXED
        client.feed(stream[:cut], stream[cut:])
        assert_mixed_outcome(client)


@pytest.mark.asyncio
async def test_a_mixed_stream_fed_one_byte_at_a_time_gives_the_same_outcome() -> None:
    client = Client()
    stream = client.response + MIXED
    client.feed(*(stream[i : i + 1] for i in range(len(stream))))
    assert_mixed_outcome(client)


@pytest.mark.asyncio
async def test_a_64_bit_length_frame_split_anywhere_in_its_header_or_payload() -> None:
    big = "y" * 70_000
    wire = text("before") + text(big) + text("after")
    for cut in [*range(1, 20), len(wire) // 2, len(wire) - 9, len(wire) - 1]:
        client = Client()
        client.feed(client.response + wire[:cut], wire[cut:])
        assert client.messages == ["before", big, "after"]
        assert not client.conn.closed
        assert client.frames_written() == []


@pytest.mark.asyncio
async def test_invalid_utf8_fails_with_1007_and_drops_what_follows() -> None:
    bad = frame(Opcode.TEXT, b"\xff\xfe")
    for reads in ([text("ok") + bad + text("after")], [text("ok") + bad[:3], bad[3:] + text("after")]):
        client = Client()
        client.feed(client.response, *reads)
        assert client.messages == ["ok"]
        [sent] = client.frames_written()
        assert sent.opcode is Opcode.CLOSE
        assert Close.parse(sent.data).code == 1007
        client.server_closes_tcp()
        assert client.conn.close_exc.sent == Close(1007, "invalid UTF-8 in a text message")


@pytest.mark.asyncio
async def test_invalid_utf8_across_fragments_fails_with_1007() -> None:
    client = Client()
    euro = "\u20ac".encode()  # three bytes, cut between the two fragments: still valid when joined
    client.feed(
        client.response
        + frame(Opcode.TEXT, euro[:2], fin=False)
        + frame(Opcode.CONT, euro[2:])
        + frame(Opcode.TEXT, b"a", fin=False)
        + frame(Opcode.CONT, b"\xc3")
        + text("after")
    )
    assert client.messages == ["\u20ac"]
    assert Close.parse(client.frames_written()[0].data).code == 1007


@pytest.mark.asyncio
async def test_a_frame_over_max_size_fails_with_1009_as_soon_as_its_header_arrives() -> None:
    client = Client(max_size=1024)
    client.feed(client.response + text("small") + text("z" * 2048)[:4])  # the payload never comes
    assert client.messages == ["small"]
    [sent] = client.frames_written()
    assert Close.parse(sent.data).code == 1009
    exact = Client(max_size=1024)
    exact.feed(exact.response + text("z" * 1024))
    assert exact.messages == ["z" * 1024]  # max_size itself is allowed


@pytest.mark.asyncio
async def test_a_fragmented_message_over_max_size_fails_with_1009() -> None:
    client = Client(max_size=1024)
    client.feed(client.response + text("a" * 600, fin=False) + frame(Opcode.CONT, b"b" * 600) + text("after"))
    assert client.messages == []
    assert Close.parse(client.frames_written()[0].data).code == 1009


@pytest.mark.parametrize(
    "unsound",
    [
        Frame(Opcode.TEXT, b"masked").serialize(mask=True),  # a server must not mask
        frame(Opcode.TEXT, b"deflated?", rsv1=True),  # no extension was negotiated
        frame(0x3, b"x"),  # a reserved opcode
        frame(Opcode.CONT, b"nothing to continue"),
        text("open", fin=False) + text("a new message inside it"),
        frame(Opcode.PING, b"p" * 126),  # control frames are at most 125 bytes
    ],
    ids=["masked", "rsv1", "reserved-opcode", "stray-continuation", "new-message-in-fragments", "long-ping"],
)
@pytest.mark.asyncio
async def test_unsound_frames_fail_with_1002_and_nothing_after_them_is_delivered(unsound: bytes) -> None:
    client = Client()
    client.feed(client.response + text("ok") + unsound + text("after"))
    assert client.messages == ["ok"]
    [sent] = client.frames_written()
    assert Close.parse(sent.data).code == 1002


@pytest.mark.asyncio
async def test_a_frame_split_when_we_close_is_still_read_and_the_close_answered() -> None:
    client = Client()
    wire = text("in flight") + close(1000, "")
    client.feed(client.response + wire[:5])
    client.conn.close(1000, "client reconnect")
    client.feed(wire[5:])
    assert client.messages == ["in flight"]
    client.server_closes_tcp()
    exc = client.conn.close_exc
    assert exc.sent is not None
    assert exc.rcvd is not None
    assert (exc.sent.code, exc.rcvd.code) == (1000, 1000)


@pytest.mark.asyncio
async def test_eof_inside_a_frame_is_an_abnormal_closure() -> None:
    client = Client()
    client.feed(client.response + text("whole") + text("cut short")[:6])
    client.conn.eof_received()
    client.conn.connection_lost(None)
    assert client.messages == ["whole"]
    assert client.conn.closed
    exc = client.conn.close_exc
    assert exc.rcvd is None
    assert exc.sent is None  # 1006 is never sent: the peer is gone


@pytest.mark.asyncio
async def test_frames_in_the_handshake_read_before_start_are_held_then_delivered() -> None:
    protocol = ClientProtocol(parse_uri("ws://127.0.0.1:1/"), logger=LOG)
    conn = WsConnection(protocol, WsOptions())
    conn.connection_made(RecordingTransport())
    request = protocol.connect()
    protocol.send_request(request)
    conn.data_received(upgrade_response(request.headers["Sec-WebSocket-Key"]) + text("first") + text("sec"))
    got: list[Message] = []
    conn.data_received(text("ond")[:3])
    conn.start(got.extend)
    assert got == ["first", "sec"]
    conn.data_received(text("ond")[3:])
    assert got == ["first", "sec", "ond"]


@pytest.mark.asyncio
async def test_a_refused_handshake_with_a_body_stays_with_the_protocol() -> None:
    protocol = ClientProtocol(parse_uri("ws://127.0.0.1:1/"), logger=LOG)
    conn = WsConnection(protocol, WsOptions())
    conn.connection_made(RecordingTransport())
    protocol.send_request(protocol.connect())
    got: list[Message] = []
    conn.start(got.extend)
    body = text("not a frame")  # bytes that would parse as a frame: they are the refusal's body
    head = f"HTTP/1.1 401 Unauthorized\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    conn.data_received(head + body[:4])
    conn.data_received(body[4:])
    assert got == []
    assert isinstance(protocol.handshake_exc, InvalidStatus)
    assert protocol.handshake_exc.response.status_code == 401
    assert protocol.handshake_exc.response.body == body
    conn.connection_lost(None)


# ---- real servers on loopback --------------------------------------------------------------------


def ws_url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/"


class Collector:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.changed = asyncio.Event()

    def __call__(self, messages: list[Message]) -> None:
        self.messages.extend(messages)
        self.changed.set()

    async def until(self, count: int) -> None:
        async with asyncio.timeout(TIMEOUT):
            while len(self.messages) < count:
                self.changed.clear()
                await self.changed.wait()


@pytest.mark.integration
@pytest.mark.asyncio
async def test_a_real_server_mixing_messages_pings_fragments_and_a_close() -> None:
    big = "q" * 300_000  # many socket reads

    async def venue(ws: ServerConnection) -> None:
        await ws.send("one")
        pong = await ws.ping(b"are you there")
        await ws.send(["frag", "ment", "ed"])  # a fragmented message
        await ws.send(b"\x00binary")
        await ws.send(big)
        await asyncio.wait_for(pong, TIMEOUT)  # our pong went out through the protocol
        await ws.send("pong seen")
        await ws.close(4001, "idle, no subscription")

    async with serve(venue, "127.0.0.1", 0, max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        conn = await WsConnection.open(ws_url(port), WsOptions(max_size=2**20), LOG)
        collector = Collector()
        conn.start(collector)
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
    assert collector.messages == ["one", "fragmented", b"\x00binary", big, "pong seen"]
    exc = conn.close_exc
    assert exc.rcvd is not None
    assert (exc.rcvd.code, exc.rcvd.reason) == (4001, "idle, no subscription")


@pytest.mark.integration
@pytest.mark.asyncio
async def test_a_real_server_sending_invalid_utf8_is_closed_with_1007() -> None:
    codes: asyncio.Queue[int | None] = asyncio.Queue()

    async def venue(ws: ServerConnection) -> None:
        await ws.send("fine")
        ws.transport.write(b"\x81\x02\xff\xfe")  # text frame, invalid UTF-8, written raw
        await ws.wait_closed()
        await codes.put(ws.close_code)

    async with serve(venue, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        conn = await WsConnection.open(ws_url(port), WsOptions(), LOG)
        collector = Collector()
        conn.start(collector)
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
        assert await asyncio.wait_for(codes.get(), TIMEOUT) == 1007
    assert collector.messages == ["fine"]
    assert conn.close_exc.sent is not None
    assert conn.close_exc.sent.code == 1007


@pytest.mark.integration
@pytest.mark.asyncio
async def test_frames_arriving_after_we_failed_the_connection_are_discarded() -> None:
    """A peer that never answers our transport ping: once we fail it (1011), what it still sends is dropped."""
    close_seen = asyncio.Event()

    async def silent_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        key = request_key(await reader.readuntil(b"\r\n\r\n"))
        assert key is not None
        writer.write(upgrade_response(key) + text("before") + text("half")[:3])
        server = ServerProtocol(state=State.OPEN)
        while not close_seen.is_set():  # read the client's ping, then its close, never answering
            data = await reader.read(4096)
            if not data:
                break
            server.receive_data(data)
            if any(isinstance(e, Frame) and e.opcode is Opcode.CLOSE for e in server.events_received()):
                close_seen.set()
        writer.write(text("half")[3:] + text("too late"))
        await writer.drain()
        await reader.read()  # until the client drops the socket
        writer.close()

    peer = await asyncio.start_server(silent_peer, "127.0.0.1", 0)
    try:
        port = peer.sockets[0].getsockname()[1]
        options = WsOptions(ping_interval=0.01, ping_timeout=0.03, close_timeout=0.3)
        conn = await WsConnection.open(ws_url(port), options, LOG)
        collector = Collector()
        conn.start(collector)
        await asyncio.wait_for(close_seen.wait(), TIMEOUT)
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
    finally:
        peer.close()
        await peer.wait_closed()
    assert collector.messages == ["before"]
    assert conn.close_exc.sent == Close(1011, "keepalive ping timeout")
