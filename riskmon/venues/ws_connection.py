"""A websocket client connection: websockets' sans-I/O ClientProtocol driven from an asyncio.Protocol.

The websockets asyncio client wakes a reader task per message; here every complete message of one
socket read goes to the session in a single synchronous call, so a burst costs one callback, not
one task switch per frame. The protocol object decides everything about the handshake, control
frames, fragments, the close handshake and every error; this module moves bytes, keeps the close
timer, and pauses reading when the consumer is behind. The transport pings are ws_keepalive's.

Once the connection is open, ws_framing's scanner takes the common frames straight out of the read
buffer and says which ones are the protocol's (see its module doc); a frame split across reads
waits here until its last byte arrives.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import USER_AGENT, Response
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from riskmon.tls import default_ssl_context
from riskmon.venues.ws_framing import (
    DONE,
    INVALID_UTF8_CODE,
    INVALID_UTF8_REASON,
    PARTIAL,
    PROTOCOL_FRAME,
    UNSOUND,
    Message,
    MessageFragments,
    find_headers_end,
    scan_frames,
)
from riskmon.venues.ws_keepalive import TransportKeepalive

__all__ = ["Message", "MessagesHandler", "WsConnection", "WsOptions"]

_INTERNAL_ERROR = 1011  # what websockets sends when its transport ping goes unanswered

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
        self._fragments = MessageFragments()  # the protocol's path only
        # The fast path (see the module doc); on from the end of the handshake response.
        self._framing = False
        self._max_frame = protocol.max_message_size
        self._handshake_tail = b""  # the last bytes of the response so far: its end may span reads
        self._partial = bytearray()  # a frame whose last byte has not arrived yet (framing only)
        self._partial_needed = 0  # bytes `_partial` must hold before it is worth parsing again
        self._paused = False
        self._reading = True
        self._close_timer: asyncio.TimerHandle | None = None
        self._keepalive = TransportKeepalive(
            self._loop, options.ping_interval, options.ping_timeout, self._send_ping, self._keepalive_failed
        )
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
                    ssl=default_ssl_context() if uri.secure else None,
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
        connection._keepalive.start()
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
            try:
                on_messages(held)
            except Exception as exc:
                self._consumer_failed(exc)
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
        on_messages = self._on_messages
        if on_messages is None:
            self._held.extend(messages)
            return
        try:  # inline, not a helper: this is once per socket read
            on_messages(messages)
        except Exception as exc:
            self._consumer_failed(exc)

    def eof_received(self) -> None:
        self._stop_framing()  # a frame cut short here is the protocol's to report
        self._protocol.receive_eof()
        self._send_pending()
        # The close handshake (or its absence) is settled by now: let the transport close.

    def connection_lost(self, exc: Exception | None) -> None:
        self._protocol.receive_eof()  # idempotent; makes the state CLOSED
        if self._close_timer is not None:
            self._close_timer.cancel()
        self._keepalive.stop()
        if not self._handshake.done():
            error = self._protocol.handshake_exc
            self._handshake.set_exception(error or ConnectionError("connection lost during the opening handshake"))
            self._handshake.exception()  # retrieved here too: `open` may already have given up waiting
        if not self._lost.done():
            self._lost.set_result(None)

    # Reading -----------------------------------------------------------------------------------

    def _read_handshake(self, data: bytes, messages: list[Message]) -> None:
        """Feed the protocol up to the end of the response headers; frames after them take the fast path."""
        end, self._handshake_tail = find_headers_end(self._handshake_tail, data)
        if end < 0:
            self._feed_protocol(data, messages)
            return
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
        pos = 0
        while True:
            stop, pos, end = scan_frames(data, pos, self._max_frame, protocol.current_size is None, messages)
            if stop is DONE:
                return
            if stop is PROTOCOL_FRAME:
                self._feed_protocol(data[pos:end], messages)
                if protocol.state is not State.OPEN:
                    self._hand_over(data[end:], messages)
                    return
                pos = end
            elif stop is PARTIAL:
                self._partial += data[pos:]
                self._partial_needed = end
                return
            elif stop is UNSOUND:
                self._hand_over(data[pos:], messages)
                return
            else:
                self._fail(INVALID_UTF8_CODE, INVALID_UTF8_REASON)
                self._hand_over(data[end:], messages)  # discarded by the failed protocol
                return

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
                if event.opcode is Opcode.PONG:
                    self._keepalive.pong(event.data)
                try:
                    message = self._fragments.message(event)
                except UnicodeDecodeError:
                    self._fail(INVALID_UTF8_CODE, INVALID_UTF8_REASON)
                    break  # what follows is discarded
                if message is not None:
                    messages.append(message)
                elif protocol.state is not State.OPEN:
                    break
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

    def _consumer_failed(self, exc: Exception) -> None:
        """A bug in the consumer: end the connection, let the owner raise it."""
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

    def _send_ping(self, payload: bytes) -> bool:
        if self._protocol.state is not State.OPEN:
            return False
        self._protocol.send_ping(payload)
        self._send_pending()
        return True

    def _keepalive_failed(self) -> None:
        if self._protocol.state is State.OPEN:
            self._fail(_INTERNAL_ERROR, "keepalive ping timeout")
