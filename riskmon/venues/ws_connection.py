"""A websocket client connection: websockets' sans-I/O ClientProtocol driven from an asyncio.Protocol.

The websockets asyncio client wakes a reader task per message; here every complete message of one
socket read goes to the session in a single synchronous call, so a burst costs one callback, not
one task switch per frame. The protocol object decides everything about the handshake, control
frames, fragments, the close handshake and every error; this module moves bytes, keeps the
transport pings and close timer, and pauses reading when the consumer is behind.

Framing fast path: websockets' generator-based frame parser costs ~2 us a frame, more than
decoding a venue's frame. Once the connection is open, this module finds frame boundaries itself
and takes the common case straight out of the read buffer: a whole, unmasked, final TEXT or
BINARY frame with no reserved bits, within max_size, while no fragmented message is open. Every
other frame is handed to the protocol whole, so its parser always sits on a frame boundary and its
state (fragments, close, pongs to send) stays its own; anything that is not a sound frame header
(a masked server frame, an oversized length) goes to the protocol with all that follows it, and
the fast path is off for good. A frame split across reads waits here until its last byte arrives.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import USER_AGENT, Response
from websockets.protocol import State
from websockets.typing import BytesLike, Subprotocol
from websockets.uri import parse_uri

_INTERNAL_ERROR = 1011  # what websockets sends when its transport ping goes unanswered
_INVALID_DATA = 1007
# First header byte of a final, unfragmented frame with no reserved bits: the fast path's two cases.
_FINAL_TEXT = 0x81
_FINAL_BINARY = 0x82
_MASKED = 0x80
_LENGTH_16 = 126  # the 7-bit length saying "a 16-bit length follows"
_LENGTH_64 = 127
_unpack_length_64 = struct.Struct("!Q").unpack_from
_HEADERS_END = b"\r\n\r\n"

Message = str | bytes
MessagesHandler = Callable[[list[Message]], None]


@dataclass(frozen=True, slots=True)
class WsOptions:
    headers: Mapping[str, str] = field(default_factory=dict)
    subprotocols: Sequence[str] = ()
    max_size: int | None = 2**20
    open_timeout: float | None = 10.0
    # Transport (RFC 6455) pings; None: off. An unanswered one fails the connection with 1011.
    ping_interval: float | None = None
    ping_timeout: float | None = None
    # How long to wait for the peer to finish the closing handshake before dropping the socket.
    close_timeout: float = 2.0


class WsConnection(asyncio.Protocol):
    """One client connection; open it with `await WsConnection.open(url, options, logger)`.

    Messages read before `start()` are held (reading paused), so the session can set up before the
    first frame; after it, `on_messages` receives every complete message of each read, in order.
    """

    def __init__(self, protocol: ClientProtocol, options: WsOptions) -> None:
        self._protocol = protocol
        self._options = options
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._handshake: asyncio.Future[None] = self._loop.create_future()
        self._lost: asyncio.Future[None] = self._loop.create_future()
        self._on_messages: MessagesHandler | None = None
        self._held: list[Message] = []  # read before start()
        self._fragments: list[bytes] = []
        self._fragmented_text = False
        # The fast path (see the module doc); on from the end of the handshake response.
        self._framing = False
        self._max_frame = protocol.max_message_size
        self._handshake_tail = b""  # the last bytes of the response so far: its end may span reads
        self._partial = bytearray()  # a frame whose last byte has not arrived yet (framing only)
        self._partial_needed = 0  # bytes `_partial` must hold before it is worth parsing again
        self._paused = False
        self._reading = True
        self._close_timer: asyncio.TimerHandle | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._ping_payload: bytes | None = None
        # An exception the messages handler raised: the connection is dropped and the owner re-raises it.
        self.handler_error: BaseException | None = None

    @classmethod
    async def open(cls, url: str, options: WsOptions, logger: logging.Logger) -> WsConnection:
        """Connect and complete the opening handshake within `open_timeout`.

        Raises websockets' InvalidURI, InvalidStatus (a refused handshake: `.response.status_code`),
        InvalidHandshake, or OSError / TimeoutError when the socket cannot be opened in time.
        """
        uri = parse_uri(url)
        protocol = ClientProtocol(
            uri,
            subprotocols=[Subprotocol(p) for p in options.subprotocols] or None,
            max_size=options.max_size,
            logger=logger,
            # No extensions offered: permessage-deflate costs per message and per connection.
        )
        loop = asyncio.get_running_loop()
        connection = cls(protocol, options)
        try:
            async with asyncio.timeout(options.open_timeout):
                await loop.create_connection(
                    lambda: connection,
                    uri.host,
                    uri.port,
                    ssl=ssl.create_default_context() if uri.secure else None,
                    server_hostname=uri.host if uri.secure else None,
                )
                request = protocol.connect()
                request.headers.update(options.headers)
                request.headers.setdefault("User-Agent", USER_AGENT)
                protocol.send_request(request)
                connection._send_pending()
                await connection._handshake
        except BaseException:
            connection.abort()
            raise
        connection._schedule_ping()
        return connection

    # What the session uses ---------------------------------------------------------------------

    @property
    def subprotocol(self) -> str | None:
        return self._protocol.subprotocol

    @property
    def closed(self) -> bool:
        return self._lost.done()

    @property
    def close_exc(self) -> ConnectionClosed:
        """How the connection ended (close frames received and sent); only once `closed`."""
        return self._protocol.close_exc

    def start(self, on_messages: MessagesHandler) -> None:
        """Deliver what was held since the handshake, then every read as it comes."""
        self._on_messages = on_messages
        held, self._held = self._held, []
        if held:
            self._deliver(held)
        self._update_reading()

    def send(self, message: Message) -> None:
        """Queue a message on the socket; dropped once the connection is closing (it is ending anyway)."""
        if self._protocol.state is not State.OPEN:
            return
        if isinstance(message, str):
            self._protocol.send_text(message.encode())
        else:
            self._protocol.send_binary(message)
        self._send_pending()

    def pause_reading(self) -> None:
        """The consumer is behind: stop reading the socket (the peer is slowed by TCP, nothing is dropped)."""
        self._paused = True
        self._update_reading()

    def resume_reading(self) -> None:
        self._paused = False
        self._update_reading()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; the socket is dropped if the peer does not finish it in time."""
        if self._protocol.state is State.OPEN:
            self._protocol.send_close(code, reason)
            self._send_pending()
            self._arm_close_timer()
            self._update_reading()
        elif self._transport is not None and self._protocol.state is State.CONNECTING:
            self.abort()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._lost)

    async def aclose(self) -> None:
        """Close (code 1000) unless already closing, and wait until the socket is gone."""
        self.close()
        await self.wait_closed()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        messages: list[Message] = []
        if self._framing:
            self._read_frames(data, messages)
        elif self._protocol.state is State.CONNECTING:
            self._read_handshake(data, messages)
        else:
            self._feed_protocol(data, messages)
        if not messages:
            return
        if self._on_messages is None:
            self._held.extend(messages)
        else:
            self._deliver(messages)

    def eof_received(self) -> None:
        self._stop_framing()  # a frame cut short here is the protocol's to report
        self._protocol.receive_eof()
        self._send_pending()
        # The close handshake (or its absence) is settled by now: let the transport close.

    def connection_lost(self, exc: Exception | None) -> None:
        self._protocol.receive_eof()  # idempotent; makes the state CLOSED
        for timer in (self._close_timer, self._ping_timer, self._pong_timer):
            if timer is not None:
                timer.cancel()
        if not self._handshake.done():
            error = self._protocol.handshake_exc
            self._handshake.set_exception(error or ConnectionError("connection lost during the opening handshake"))
            self._handshake.exception()  # retrieved here too: `open` may already have given up waiting
        if not self._lost.done():
            self._lost.set_result(None)

    # Reading -----------------------------------------------------------------------------------

    def _read_handshake(self, data: bytes, messages: list[Message]) -> None:
        """Feed the protocol up to the end of the response headers; frames after them take the fast path."""
        joined = self._handshake_tail + data
        found = joined.find(_HEADERS_END)
        if found < 0:
            self._handshake_tail = joined[-(len(_HEADERS_END) - 1) :]
            self._feed_protocol(data, messages)
            return
        end = found + len(_HEADERS_END) - len(self._handshake_tail)
        self._feed_protocol(data[:end], messages)
        rest = data[end:]
        # A 101 has no body, so the protocol's parser now waits at a frame boundary with nothing
        # buffered. A refusal's body, or a failed handshake's leftovers, stay the protocol's.
        if self._protocol.state is State.OPEN and not self._protocol.extensions:
            self._framing = True
            if rest:
                self._read_frames(rest, messages)
        elif rest:
            self._feed_protocol(rest, messages)

    def _read_frames(self, data: bytes, messages: list[Message]) -> None:
        """The fast path: append the messages of every whole frame in the partial frame plus `data`."""
        protocol = self._protocol
        if protocol.state is not State.OPEN:  # we sent a close or failed: reading is the protocol's again
            self._stop_framing()
            self._feed_protocol(data, messages)
            return
        if self._partial:
            self._partial += data
            if len(self._partial) < self._partial_needed:
                return
            data = bytes(self._partial)
            self._partial.clear()
        max_frame = self._max_frame
        fast = protocol.current_size is None  # no fragmented message open: a whole frame is a message
        size = len(data)
        pos = 0
        needed = 0
        while pos < size:
            if size - pos < 2:
                needed = 2
                break
            head = data[pos]
            length = data[pos + 1]
            if length & _MASKED:
                self._hand_over(data[pos:], messages)  # a server must not mask: the protocol fails it
                return
            start = pos + 2
            if length == _LENGTH_16:
                start += 2
                if start > size:
                    needed = 4
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
            elif length == _LENGTH_64:
                start += 8
                if start > size:
                    needed = 10
                    break
                (length,) = _unpack_length_64(data, pos + 2)
            if max_frame is not None and length > max_frame:
                self._hand_over(data[pos:], messages)  # the protocol closes with 1009
                return
            end = start + length
            if end > size:
                needed = end - pos
                break
            if head == _FINAL_TEXT and fast:
                try:
                    messages.append(data[start:end].decode())
                except UnicodeDecodeError:
                    self._fail(_INVALID_DATA, "invalid UTF-8 in a text message")
                    self._hand_over(data[end:], messages)  # discarded by the failed protocol
                    return
            elif head == _FINAL_BINARY and fast:
                messages.append(data[start:end])
            else:
                # Control frames, fragments, reserved bits, unknown opcodes: the protocol's, whole.
                self._feed_protocol(data[pos:end], messages)
                if protocol.state is not State.OPEN:
                    self._hand_over(data[end:], messages)
                    return
                fast = protocol.current_size is None
            pos = end
        if pos < size:
            self._partial += data[pos:]
            self._partial_needed = needed

    def _hand_over(self, rest: bytes, messages: list[Message]) -> None:
        """End the fast path for good: the protocol reads `rest` and everything after it."""
        self._framing = False
        if rest:
            self._feed_protocol(rest, messages)

    def _stop_framing(self) -> None:
        """Hand the protocol what the fast path holds, which is never a whole frame."""
        self._framing = False
        if self._partial:
            partial = bytes(self._partial)
            self._partial.clear()
            self._protocol.receive_data(partial)

    def _feed_protocol(self, data: bytes, messages: list[Message]) -> None:
        """The protocol's path: everything before the handshake ends, and whatever the fast path passes on."""
        protocol = self._protocol
        protocol.receive_data(data)
        events = protocol.events_received()
        self._send_pending()
        if protocol.close_expected():
            self._arm_close_timer()
        for event in events:
            if isinstance(event, Frame):
                message = self._message(event)
                if message is not None:
                    messages.append(message)
                elif protocol.state is not State.OPEN:
                    break  # failed (bad UTF-8): what follows is discarded
            elif isinstance(event, Response):
                self._handshake_answered()

    # Internals ---------------------------------------------------------------------------------

    def _handshake_answered(self) -> None:
        if self._handshake.done():
            return
        error = self._protocol.handshake_exc
        if error is not None:
            self._handshake.set_exception(error)
            self._handshake.exception()
        else:
            self._handshake.set_result(None)
            self._update_reading()  # held until start()

    def _message(self, frame: Frame) -> Message | None:
        """A complete data message from this frame (reassembling fragments), or None."""
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if not frame.fin:
                self._fragments = [bytes(frame.data)]
                self._fragmented_text = opcode is Opcode.TEXT
                return None
            return self._text(frame.data) if opcode is Opcode.TEXT else bytes(frame.data)
        if opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
            if not frame.fin:
                return None
            data, self._fragments = b"".join(self._fragments), []
            return self._text(data) if self._fragmented_text else data
        if opcode is Opcode.PONG and frame.data == self._ping_payload:
            self._pong_received()
        return None  # pings are answered by the protocol itself; close frames end the connection

    def _text(self, data: BytesLike) -> str | None:
        try:
            return str(data, "utf-8")
        except UnicodeDecodeError:
            self._fail(_INVALID_DATA, "invalid UTF-8 in a text message")
            return None

    def _deliver(self, messages: list[Message]) -> None:
        assert self._on_messages is not None
        try:
            self._on_messages(messages)
        except Exception as exc:  # a bug in the consumer: end the connection, let the owner raise it
            if self.handler_error is None:
                self.handler_error = exc
            self.abort()

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        # Before start() the session is not ready for frames: hold the socket still. Once we
        # sent a close, read regardless, or the peer's answer is never seen and the close times out.
        wanted = self._protocol.state is State.CLOSING or (
            not self._paused and (self._on_messages is not None or not self._handshake.done())
        )
        if wanted != self._reading:
            self._reading = wanted
            if wanted:
                transport.resume_reading()
            else:
                transport.pause_reading()

    def _send_pending(self) -> None:
        transport = self._transport
        if transport is None:
            return
        for data in self._protocol.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()  # the protocol's end-of-stream marker: half-close
            else:
                transport.close()

    def _fail(self, code: int, reason: str) -> None:
        self._protocol.fail(code, reason)
        self._send_pending()
        self._arm_close_timer()
        self._update_reading()

    def _arm_close_timer(self) -> None:
        if self._close_timer is None and not self._lost.done():
            self._close_timer = self._loop.call_later(self._options.close_timeout, self.abort)

    def _schedule_ping(self) -> None:
        interval = self._options.ping_interval
        if interval is not None and not self._lost.done():
            self._ping_timer = self._loop.call_later(interval, self._send_ping)

    def _send_ping(self) -> None:
        if self._protocol.state is not State.OPEN:
            return
        self._ping_payload = os.urandom(4)
        self._protocol.send_ping(self._ping_payload)
        self._send_pending()
        if self._options.ping_timeout is None:
            self._schedule_ping()
        else:
            self._pong_timer = self._loop.call_later(self._options.ping_timeout, self._ping_timed_out)

    def _pong_received(self) -> None:
        self._ping_payload = None
        if self._pong_timer is not None:
            self._pong_timer.cancel()
            self._pong_timer = None
            self._schedule_ping()

    def _ping_timed_out(self) -> None:
        self._pong_timer = None
        if self._protocol.state is State.OPEN:
            self._fail(_INTERNAL_ERROR, "keepalive ping timeout")
