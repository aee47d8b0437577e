"""What every venue session test needs around a session running against its loopback simulator.

A `SessionHarness` is the session's sink: it keeps every Inbound batch item in order (`seen`),
optionally applies it to a real Engine and writes frames to a capture as the runtime does, and
hands items to the test one at a time, failing fast when the session task died instead of timing
out. Backoff sleeps are a `FakeSleep` (recorded, returned at once unless the test holds them), the
jitter a seeded `random.Random` whose delays `reference_delays` reproduces, the session clock a
VirtualClock and the simulators' clocks a settable `SimClock`. Nothing here sleeps to wait: every
wait is bounded by TIMEOUT.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Protocol, TypeVar

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.capture import CaptureWriter
from riskmon.clock import VirtualClock
from riskmon.engine.engine import Engine
from riskmon.events import Event
from riskmon.venues.backoff import ReconnectBackoff
from riskmon.venues.base import Inbound

TIMEOUT = 5.0


class RunningSession(Protocol):
    async def run(self) -> None: ...


class LoopbackServer(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


ServerT = TypeVar("ServerT", bound=LoopbackServer)


class FakeSleep:
    """The session's backoff sleep: records every delay and returns at once, unless held.

    While held, every backoff sleep parks until `release()`; `sleeping` is set once one is parked.
    """

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.sleeping = asyncio.Event()
        self._gate: asyncio.Event | None = None
        self._called = asyncio.Condition()

    def hold(self) -> None:
        if self._gate is None:
            self._gate = asyncio.Event()

    def release(self) -> None:
        gate, self._gate = self._gate, None
        self.sleeping.clear()
        if gate is not None:
            gate.set()

    async def wait_sleeping(self) -> None:
        """Return once a backoff sleep is parked at the gate."""
        await asyncio.wait_for(self.sleeping.wait(), TIMEOUT)

    async def wait_for_sleeps(self, n: int) -> None:
        """Return once the session has begun `n` backoff sleeps."""
        async with asyncio.timeout(TIMEOUT), self._called:
            await self._called.wait_for(lambda: len(self.delays) >= n)

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        async with self._called:
            self._called.notify_all()
        gate = self._gate
        if gate is not None:
            self.sleeping.set()
            await gate.wait()
        await asyncio.sleep(0)


def reference_delays(seed: int, steps: int | Iterable[str], initial: float = 1.0, maximum: float = 8.0) -> list[float]:
    """What a backoff seeded like the session's yields: for `steps` 'next' steps, or for a pattern
    of 'next' and 'reset' steps."""
    backoff = ReconnectBackoff(initial, maximum, random.Random(seed))
    pattern = ["next"] * steps if isinstance(steps, int) else steps
    out: list[float] = []
    for step in pattern:
        if step == "reset":
            backoff.reset()
        else:
            out.append(backoff.next_delay())
    return out


class SimClock:
    """A simulator's clock: it reads `now`, which the test sets."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ingest(engine: Engine, items: Iterable[Inbound]) -> list[AlertTransition]:
    """Apply items to an engine as the runtime does: a REST body is not a stream frame."""
    transitions: list[AlertTransition] = []
    for item in items:
        is_frame = item.frame is not None and item.rest is None
        transitions.extend(engine.ingest(item.venue, item.events, item.received_at, is_frame=is_frame))
    return transitions


def write_capture(path: Path, items: Iterable[Inbound]) -> None:
    """Write the frames and REST bodies among `items` as a capture file."""
    writer = CaptureWriter(path)
    try:
        for item in items:
            if item.frame is not None:
                writer.write(item.received_at, item.venue, item.frame, item.rest)
    finally:
        writer.close()


class SessionHarness:
    """The sink of one running session, and the test's view of what it handed on."""

    def __init__(
        self,
        clock: VirtualClock,
        *,
        engine: Engine | None = None,
        capture: Path | None = None,
        skip: Callable[[Inbound], bool] | None = None,
    ) -> None:
        self.clock = clock
        self.sleep = FakeSleep()
        self.engine = engine
        self.transitions: list[AlertTransition] = []
        self.capture = None if capture is None else CaptureWriter(capture)
        self.skip = skip  # items `next` passes over (they stay in `seen`)
        self.queue: asyncio.Queue[Inbound] = asyncio.Queue()
        self.seen: list[Inbound] = []
        self.task: asyncio.Task[None] | None = None

    def run(self, session: RunningSession, name: str) -> None:
        self.task = asyncio.create_task(session.run(), name=name)

    async def sink(self, item: Inbound) -> None:
        self.seen.append(item)
        if self.capture is not None and item.frame is not None:
            self.capture.write(item.received_at, item.venue, item.frame, item.rest)
        if self.engine is not None:
            self.transitions.extend(ingest(self.engine, [item]))
        self.queue.put_nowait(item)

    async def next(self, timeout: float = TIMEOUT) -> Inbound:  # noqa: ASYNC109
        """The next Inbound not skipped; fails fast if the session task ended instead of timing out."""
        assert self.task is not None, "the session was never started"
        while True:
            get = asyncio.ensure_future(self.queue.get())
            done, _ = await asyncio.wait({get, self.task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if get not in done:
                get.cancel()
                if self.task in done:
                    raise AssertionError(f"session task ended: {self.task.exception()!r}")
                raise AssertionError(f"no inbound item within {timeout}s")
            item = get.result()
            if self.skip is None or not self.skip(item):
                return item

    async def next_report(self) -> Event:
        """The next Inbound, which must be a session report (one event, no frame)."""
        item = await self.next()
        assert item.frame is None, f"expected a session report, got frame {item.frame!r}"
        assert len(item.events) == 1, item.events
        return item.events[0]

    async def next_frame(self) -> Inbound:
        """The next Inbound, which must be a stream frame (not a report, not a REST body)."""
        item = await self.next()
        assert item.frame is not None, f"expected a frame, got report {item.events!r}"
        assert item.rest is None, item.rest
        return item

    async def frame_events(self) -> list[Event]:
        return (await self.next_frame()).events

    async def until(self, done: Callable[[list[Inbound]], bool]) -> list[Inbound]:
        """Items up to the one after which `done` holds."""
        items: list[Inbound] = []
        while not done(items):
            items.append(await self.next())
        return items

    async def until_event(self, kind: type[Event]) -> list[Inbound]:
        """Items up to the next one carrying an event of `kind`."""
        return await self.until(lambda items: bool(items) and any(isinstance(e, kind) for e in items[-1].events))

    def events(self, items: Iterable[Inbound] | None = None) -> list[Event]:
        """Every event of `items` (default: of everything handed on), in order."""
        return [event for item in (self.seen if items is None else items) for event in item.events]

    async def stop(self) -> None:
        """Release any held sleep and cancel the session; a session that crashed fails the test here."""
        self.sleep.release()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self.task, TIMEOUT)
        self.close_capture()

    def close_capture(self) -> None:
        """Flush and close the capture, so it can be read; later frames are not captured."""
        if self.capture is not None:
            self.capture.close()
            self.capture = None


class SessionPool:
    """The sessions one test started, each run by its harness until the pool stops them all."""

    def __init__(self) -> None:
        self.harnesses: list[SessionHarness] = []

    def start(self, harness: SessionHarness, session: RunningSession, name: str) -> SessionHarness:
        harness.run(session, name)
        self.harnesses.append(harness)
        return harness

    async def stop(self) -> None:
        for harness in self.harnesses:
            harness.sleep.release()
            if harness.task is not None:
                harness.task.cancel()
        for harness in self.harnesses:
            await harness.stop()


@contextlib.asynccontextmanager
async def session_pool() -> AsyncIterator[SessionPool]:
    """A pool whose sessions are stopped on exit: the body of a `start_session` fixture."""
    pool = SessionPool()
    try:
        yield pool
    finally:
        await pool.stop()


@contextlib.asynccontextmanager
async def started(server: ServerT) -> AsyncIterator[ServerT]:
    """A simulator (or any loopback server) started for the block, stopped after it."""
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def refusing_http_server(status: int) -> AsyncIterator[int]:
    """A loopback server that answers every websocket handshake with a bare HTTP `status`; its port."""

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(f"HTTP/1.1 {status} Refused\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
