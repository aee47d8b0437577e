"""What every venue adapter provides: a pure codec and an I/O session around it."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

import msgspec

from riskmon.events import Event


class VenueCodec(Protocol):
    """Sans-I/O protocol core: frames in, normalized events out, frames to send queued.

    No sockets, clocks or tasks: the same codec serves the live session and replay.
    """

    venue: str

    def connection_opened(self) -> None:
        """A new connection is open: reset per-connection state and queue the handshake frames."""

    def receive_text(self, text: str) -> list[Event]: ...

    def receive_bytes(self, data: bytes) -> list[Event]: ...

    def receive_rest(self, source: str, body: str) -> list[Event]:
        """A REST response the session fetched (`source` names the call, e.g. "get_order").

        REST answers go through the codec like frames, so a capture of them replays the same way.
        """
        ...

    def data_to_send(self) -> list[str | bytes]: ...


@runtime_checkable
class PingingCodec(VenueCodec, Protocol):
    """A venue with an application-level ping: the session decides when, the codec says what."""

    def send_ping(self) -> None:
        """Queue a ping frame; `pong_outstanding` stays True until the venue answers."""

    @property
    def pong_outstanding(self) -> bool: ...


class Inbound(msgspec.Struct, gc=False):
    """What a session hands the engine task: the raw frame (for capture) and its events.

    `rest` names the REST call when `frame` is a REST response body rather than a stream frame.
    One is built per frame: a Struct is built in C (~55 ns against ~280 ns for a slotted class's
    __init__). Not tracked by the GC: it is never part of a reference cycle.
    """

    venue: str
    received_at: float
    frame: str | bytes | None
    events: list[Event]
    rest: str | None = None


InboundSink = Callable[[Inbound], Awaitable[None]]


class InboundQueue:
    """The engine's bounded input: batches of Inbound (all the frames of one socket read), in order.

    Bounded in items, not batches: a batch is taken while fewer than `capacity` items wait, so at
    most one batch more than `capacity` is ever held. Putters wait their turn strictly first come,
    first served, so a session's reports never overtake its frames. One consumer (the engine task).
    Calling the queue with one Inbound makes it an InboundSink.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self._capacity = capacity
        self._batches: deque[list[Inbound]] = deque()
        self._items = 0
        # Items ever queued: the consumer can tell when it has applied a given one (FIFO).
        self.pushed = 0
        self._putters: deque[asyncio.Future[None]] = deque()
        self._getter: asyncio.Future[None] | None = None

    def qsize(self) -> int:
        """Items (frames, reports) waiting, not batches."""
        return self._items

    def offer(self, batch: list[Inbound]) -> bool:
        """Take `batch` now if there is room and no putter is waiting ahead of it."""
        if self._putters or self._items >= self._capacity:
            return False
        self._push(batch)
        return True

    async def put_batch(self, batch: list[Inbound]) -> None:
        if self.offer(batch):
            return
        turn = asyncio.get_running_loop().create_future()
        self._putters.append(turn)
        try:
            await turn
        except BaseException:
            first = self._putters[0] is turn
            self._putters.remove(turn)
            if first:
                self._wake_putter()  # it may have been given the turn: pass it on
            raise
        self._putters.popleft()
        self._push(batch)
        self._wake_putter()

    async def __call__(self, item: Inbound) -> None:
        await self.put_batch([item])

    async def get(self) -> list[Inbound]:
        while not self._batches:
            getter = self._getter = asyncio.get_running_loop().create_future()
            try:
                await getter
            finally:
                self._getter = None
        batch = self._batches.popleft()
        self._items -= len(batch)
        self._wake_putter()
        return batch

    def _push(self, batch: list[Inbound]) -> None:
        self._batches.append(batch)
        self._items += len(batch)
        self.pushed += len(batch)
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)

    def _wake_putter(self) -> None:
        if self._putters and self._items < self._capacity:
            turn = self._putters[0]
            if not turn.done():
                turn.set_result(None)


INVALID_URL = "(invalid URL)"


def redact_endpoint(url: str) -> str:
    """scheme://host:port only: paths and queries can carry keys, and logs must never show them."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return INVALID_URL
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal keeps its brackets, or the port is ambiguous
    return f"{parts.scheme}://{host}{port}"
