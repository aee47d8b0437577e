"""StreamSession: the I/O half every websocket venue shares.

One connection at a time: prepare (REST login, endpoint choice), connect, let the codec
hand-shake, read frames into the codec, send what it queues, ping when the venue wants
application pings, and on any failure report the feed down, back off (capped, jittered) and
start over. Venue sessions subclass it and override the hooks; every decision about bytes is the
codec's, and how a failure is classified for the metrics is session_failures'.

Ingest runs in the connection's read callback: every frame of one socket read is decoded in one
pass and handed to the engine's InboundQueue as one batch, without a task switch. A session that
overrides `after_frame` (or a sink that is not an InboundQueue) takes the awaited path instead:
frames wait in a backlog, reading pauses, and the session task decodes them one at a time and calls
the hook after each, exactly as a per-frame loop would. Either way reading pauses while anything
is waiting, so buffering is bounded and no frame is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidHandshake, InvalidStatus, InvalidURI

from riskmon.clock import Clock
from riskmon.config.schema import Backoff
from riskmon.events import DisconnectCause, Event, FeedDown, FeedUp, FrameMalformed
from riskmon.venues.backoff import ReconnectBackoff
from riskmon.venues.base import (
    INVALID_URL,
    Inbound,
    InboundQueue,
    InboundSink,
    PingingCodec,
    VenueCodec,
    redact_endpoint,
)
from riskmon.venues.session_failures import VenueUnavailable, close_cause, refusal_cause, unavailable_cause
from riskmon.venues.ws_connection import Message, WsConnection, WsOptions

log = logging.getLogger(__name__)
# websockets logs request lines (paths, queries: possibly tokens) at DEBUG; never let them out.
_wire_log = logging.getLogger("riskmon.venues.wire")
_wire_log.setLevel(logging.INFO)

_MESSAGE_TOO_BIG = 1009
_CLOSE_TIMEOUT = 2.0
_ABNORMAL_CLOSURE = 1006

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class StreamTarget:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    subprotocols: Sequence[str] = ()


@dataclass(frozen=True)
class StreamSettings:
    reconnect: Backoff
    max_frame_bytes: int
    open_timeout: float
    # Application-level ping (JSON ping/pong) every `ping_interval`; None: the venue has none.
    ping_interval: float | None = None
    pong_timeout: float = 10.0
    # Transport (RFC 6455) pings, answered by the server's websocket stack; None: off.
    transport_ping_interval: float | None = None
    transport_ping_timeout: float | None = None


class StreamSession:
    # False when the session must finish a resync (REST reconcile) before the feed counts as up.
    up_on_open = True

    def __init__(
        self,
        venue: str,
        codec: VenueCodec,
        sink: InboundSink,
        clock: Clock,
        settings: StreamSettings,
        *,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
        heartbeat_sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.venue = venue
        self._codec = codec
        self._sink = sink
        self._clock = clock
        self._settings = settings
        self._backoff = ReconnectBackoff(settings.reconnect.initial, settings.reconnect.max, rng)
        self._sleep = sleep
        self._heartbeat_sleep = heartbeat_sleep
        self._conn: WsConnection | None = None
        self._endpoint = ""
        self._drop_reason: str | None = None
        self._drop_cause = DisconnectCause.REQUESTED
        self._last_events: list[Event] = []  # of the last frame: a refusal sent just before a close
        self._queue = sink if isinstance(sink, InboundQueue) else None
        # The hook is awaited per frame only where a venue has one: the base one does nothing.
        self._frame_hook = type(self).after_frame is not StreamSession.after_frame
        self._inline = self._queue is not None and not self._frame_hook
        # What could not be handed on from the read callback, oldest first; reading is paused
        # while either is non-empty. Decoded batches (inline path) or raw messages (awaited path).
        self._held_batches: deque[list[Inbound]] = deque()
        self._held_messages: deque[tuple[float, list[Message]]] = deque()
        self._backlog = asyncio.Event()
        # Frames the awaited path decoded but has not handed on yet: any report goes after them.
        self._unsent: list[Inbound] = []
        self._fresh = True  # no frame yet on this connection

    # Hooks -----------------------------------------------------------------------------------

    async def prepare(self) -> StreamTarget:
        """Where to connect next; raise VenueUnavailable when there is nowhere usable."""
        raise NotImplementedError

    async def after_frame(self, events: list[Event]) -> None:
        """Called after each received frame was decoded, before the next one (REST follow-ups go here).

        The frame reaches the engine before anything the hook reports or delivers.
        """

    def background(self) -> list[Callable[[], Coroutine[Any, Any, None]]]:
        """Extra per-connection chores (token refresh...), cancelled when the connection ends."""
        return []

    def on_close(self, code: int, reason: str) -> list[Event]:
        """Events a close code means for this venue (a 4001 misconfiguration...)."""
        return []

    def on_refused(self, status: int) -> list[Event]:
        """Events an HTTP status refusing the websocket handshake means (401: bad credentials...)."""
        return []

    async def on_disconnected(self) -> None:
        """Per-connection cleanup after the socket is gone."""

    # Shared machinery ------------------------------------------------------------------------

    async def run(self) -> None:
        """Stream until cancelled, starting over after every failure."""
        while True:
            reason, cause = await self._connect_once()
            await self.report(FeedDown(self.venue, self._endpoint or "?", reason, cause))
            delay = self._backoff.next_delay()
            log.info("%s: reconnecting in %.2fs", self.venue, delay)
            await self._sleep(delay)

    async def report(self, *events: Event) -> None:
        """Hand session-made events (not from a frame) to the engine."""
        await self._hand_on_unsent()
        await self._sink(Inbound(self.venue, self._clock.now(), None, list(events)))

    async def deliver_rest(self, source: str, body: str) -> list[Event]:
        """Run a REST body through the codec, hand it on (captured like a frame), send what it queues."""
        events = self._codec.receive_rest(source, body)
        await self._hand_on_unsent()
        await self._sink(Inbound(self.venue, self._clock.now(), body, events, rest=source))
        self._flush_now()
        return events

    async def report_up(self) -> None:
        await self.report(FeedUp(self.venue, self._endpoint))

    async def flush(self) -> None:
        self._flush_now()

    def drop_connection(self, reason: str, cause: DisconnectCause = DisconnectCause.REQUESTED) -> None:
        """Close the current connection on purpose; `reason` becomes the FeedDown reason."""
        self._drop_reason = reason
        self._drop_cause = cause
        conn = self._conn
        if conn is not None:
            conn.close(1000, "client reconnect")

    def _flush_now(self) -> None:
        frames = self._codec.data_to_send()
        conn = self._conn
        if conn is None:
            return
        for frame in frames:
            conn.send(frame)

    async def _connect_once(self) -> tuple[str, DisconnectCause]:
        self._drop_reason = None
        self._last_events = []
        try:
            target = await self.prepare()
        except VenueUnavailable as exc:
            return str(exc), unavailable_cause(exc)
        self._endpoint = redact_endpoint(target.url)
        if self._endpoint == INVALID_URL:
            return "invalid URL", DisconnectCause.OTHER
        settings = self._settings
        options = WsOptions(
            headers=target.headers,
            subprotocols=target.subprotocols,
            max_size=settings.max_frame_bytes,
            open_timeout=settings.open_timeout,
            ping_interval=settings.transport_ping_interval,
            ping_timeout=settings.transport_ping_timeout,
            # A dead peer never answers the closing handshake: do not wait long for it, or a
            # missed pong is reported many seconds after it proved the socket dead.
            close_timeout=min(_CLOSE_TIMEOUT, settings.transport_ping_timeout or _CLOSE_TIMEOUT),
        )
        try:
            conn = await WsConnection.open(target.url, options, _wire_log)
        except InvalidURI:
            return "invalid URL", DisconnectCause.OTHER
        except InvalidStatus as exc:
            status = exc.response.status_code
            events = self.on_refused(status)
            if events:
                await self.report(*events)
            return f"handshake refused (HTTP {status})", refusal_cause(status)
        except InvalidHandshake as exc:
            return f"handshake failed ({type(exc).__name__})", DisconnectCause.REFUSED
        except ssl.SSLCertVerificationError as exc:
            # Not a network fault, and no retry mends it: say what OpenSSL found (the host name, an
            # unknown issuer), which names no secret.
            return f"TLS certificate not verified ({exc.verify_message or exc.reason})", DisconnectCause.TLS
        except ssl.SSLError as exc:
            return f"TLS handshake failed ({exc.reason or type(exc).__name__})", DisconnectCause.TLS
        except ConnectionRefusedError as exc:
            return f"cannot connect ({type(exc).__name__})", DisconnectCause.REFUSED
        except (OSError, TimeoutError) as exc:
            return f"cannot connect ({type(exc).__name__})", DisconnectCause.NETWORK_ERROR
        try:
            self._conn = conn
            try:
                return await self._stream(conn)
            finally:
                self._conn = None
                self._held_batches.clear()
                self._held_messages.clear()
                self._unsent = []
                await self.on_disconnected()
        finally:
            await conn.aclose()

    async def _stream(self, conn: WsConnection) -> tuple[str, DisconnectCause]:
        self._codec.connection_opened()
        self._flush_now()
        if self.up_on_open:
            await self.report_up()
        chores = [asyncio.create_task(chore()) for chore in self.background()]
        if self._settings.ping_interval is not None and isinstance(self._codec, PingingCodec):
            chores.append(asyncio.create_task(self._keepalive(self._codec, self._settings.ping_interval)))
        self._fresh = True
        self._backlog.clear()
        closed = asyncio.ensure_future(conn.wait_closed())
        closed.add_done_callback(lambda _: self._backlog.set())
        try:
            conn.start(self._on_messages)
            while True:
                await self._backlog.wait()
                self._backlog.clear()
                await self._drain_backlog(conn)
                if closed.done():
                    break
            await self._hand_on_unsent()
        finally:
            closed.cancel()
            for chore in chores:
                chore.cancel()
            for chore in chores:
                with contextlib.suppress(asyncio.CancelledError):
                    await chore
        if conn.handler_error is not None:
            raise conn.handler_error
        if self._drop_reason is not None:
            return self._drop_reason, self._drop_cause
        exc = conn.close_exc
        if not isinstance(exc, ConnectionClosedOK):
            return await self._closed(exc)
        # A normal close (1000/1001 both ways) ends quietly; its reason can still mean something
        # to the venue (an expired token), so it goes through on_close like any other.
        code, reason = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd is not None else (1000, "")
        events = self.on_close(code, reason)
        if events:
            await self.report(*events)
        return "server closed the connection", close_cause(code, reason, [*self._last_events, *events], by_venue=True)

    def _on_messages(self, messages: list[Message]) -> None:
        """The connection's read callback: every complete message of one socket read, in order."""
        if self._fresh:
            self._fresh = False
            self._backoff.reset()  # a frame arrived: the link works, start backoff afresh
        now = self._clock.now()
        if not self._inline:
            self._held_messages.append((now, messages))
            self._hold()
            return
        venue = self.venue
        # Bound once per read, not per frame: a read holds hundreds of frames under load.
        receive_text, receive_bytes, inbound = self._codec.receive_text, self._codec.receive_bytes, Inbound
        batch = [
            inbound(venue, now, message, receive_text(message) if isinstance(message, str) else receive_bytes(message))
            for message in messages
        ]
        self._last_events = batch[-1].events
        assert self._queue is not None
        if self._held_batches or not self._queue.offer(batch):
            self._held_batches.append(batch)
            self._hold()
        # After the hand-on: whatever answers these frames goes out once for the whole read.
        self._flush_now()

    def _hold(self) -> None:
        conn = self._conn
        if conn is not None:
            conn.pause_reading()
        self._backlog.set()

    async def _drain_backlog(self, conn: WsConnection) -> None:
        """Hand on what the read callback could not, in order, then read again."""
        while self._held_batches:
            assert self._queue is not None
            await self._queue.put_batch(self._held_batches[0])
            self._held_batches.popleft()
        while self._held_messages:
            received_at, messages = self._held_messages.popleft()
            for message in messages:
                if isinstance(message, str):
                    events = self._codec.receive_text(message)
                else:
                    events = self._codec.receive_bytes(message)
                self._last_events = events
                self._unsent.append(Inbound(self.venue, received_at, message, events))
                self._flush_now()
                if self._frame_hook:
                    await self.after_frame(events)
            await self._hand_on_unsent()
        if not conn.closed:
            conn.resume_reading()

    async def _hand_on_unsent(self) -> None:
        unsent, self._unsent = self._unsent, []
        if not unsent:
            return
        if self._queue is not None:
            await self._queue.put_batch(unsent)
            return
        for item in unsent:
            await self._sink(item)

    async def _keepalive(self, codec: PingingCodec, interval: float) -> None:
        """Ping every `interval`; a ping unanswered after `pong_timeout` means a dead socket."""
        while True:
            await self._heartbeat_sleep(interval)
            codec.send_ping()
            await self.flush()
            await self._heartbeat_sleep(self._settings.pong_timeout)
            if codec.pong_outstanding:
                self.drop_connection(f"no pong within {self._settings.pong_timeout:g}s", DisconnectCause.PING_TIMEOUT)
                return

    async def _closed(self, exc: ConnectionClosed) -> tuple[str, DisconnectCause]:
        if self._drop_reason is not None:
            return self._drop_reason, self._drop_cause
        frame = exc.rcvd if exc.rcvd is not None else exc.sent
        code = frame.code if frame is not None else _ABNORMAL_CLOSURE
        reason = frame.reason if frame is not None else ""
        if code == _MESSAGE_TOO_BIG:
            await self.report(FrameMalformed(self.venue, "frame larger than max_frame_bytes"))
        events = self.on_close(code, reason)
        if events:
            await self.report(*events)
        cause = close_cause(code, reason, [*self._last_events, *events], by_venue=exc.rcvd is not None)
        return f"connection closed (code {code})", cause
