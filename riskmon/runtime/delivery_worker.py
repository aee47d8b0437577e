"""The delivery process: the outbox and every receiver's sends, in a process of its own.

riskmon's engine process hands it each batch of notifications over a socket pair
(riskmon.runtime.delivery_process); here they are committed to the outbox and sent by the same
`Delivery` the engine process would otherwise run. Back go which submissions are committed (the
barrier before alert states are saved) and the delivery counters the metrics read.

It ignores SIGINT and SIGTERM, which a terminal or a service manager sends to the whole process
group: the engine process stops it in order (committing what it was handed). If the engine
process dies, the socket closes and this process stops too; what it committed stays pending for
the next one, which waits for this one's lock on the outbox first, so the two never send at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import signal
import socket
import sys
import time
from collections import deque
from pathlib import Path
from typing import IO

from riskmon.clock import SystemClock
from riskmon.notify.notifier import Outgoing
from riskmon.notify.outbox_states import outbox_lock_path
from riskmon.runtime.delivery import Delivery
from riskmon.runtime.delivery_channel import Channel, Message

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Counters go back at most this often: metrics and tests see them within milliseconds, and a burst
# of deliveries costs one message, not one per send.
_STATS_INTERVAL_S = 0.01
# How long a new process waits for the one before it to let go of the outbox.
_LOCK_WAIT_S = 15.0


def run(sock: socket.socket) -> None:
    """The child's entry point (multiprocessing target)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    asyncio.run(_Worker(sock).serve())


def _lock(outbox: Path) -> IO[bytes] | None:
    """Exclusive lock beside the outbox, polled so a hung predecessor cannot stall delivery forever."""
    try:
        handle = open(outbox_lock_path(outbox), "ab")  # noqa: SIM115 - held for the process's life
    except OSError:
        return None  # nor can the outbox open there: Delivery says so, and delivery is off
    deadline = time.monotonic() + _LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.close()
                return None
            time.sleep(0.02)


class _Worker:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._channel = Channel(self._on_message, self._on_closed)
        self._opened: asyncio.Future[Message] | None = None
        self._done = asyncio.Event()
        self._delivery: Delivery | None = None
        # Submissions handed over before the outbox was open: (seq, now, items).
        self._early: list[tuple[int, float, list[Outgoing]]] = []
        # Sequence numbers of submitted batches, in order; each commit answers the oldest.
        self._awaiting: deque[int] = deque()
        self._dirty = asyncio.Event()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._opened = loop.create_future()
        await loop.create_unix_connection(lambda: self._channel, sock=self._sock)
        try:
            opened = await self._opened
        except asyncio.CancelledError:
            return  # the parent went away before saying what to open
        _, outbox_path, receivers, config, adopt_from, log_level = opened
        logging.basicConfig(level=log_level, stream=sys.stderr, format=LOG_FORMAT)
        outbox = Path(outbox_path)
        held = await asyncio.to_thread(_lock, outbox)
        if held is None and outbox.parent.is_dir():
            log.error("another delivery process still holds %s; delivering alongside it", outbox)
        delivery = Delivery(outbox, receivers, config, SystemClock(), adopt_from=adopt_from, outbox_on_thread=False)
        delivery.on_committed = self._committed
        delivery.on_change = self._dirty.set
        await delivery.start()
        self._delivery = delivery
        self._channel.send(("ready",) if delivery.running else ("off",))
        for seq, now, items in self._early:
            self._submit(seq, now, items)
        self._early.clear()
        reporter = asyncio.create_task(self._report())
        try:
            await self._done.wait()
        finally:
            await delivery.stop()
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
            self._send_stats()
            self._channel.send(("stopped",))
            self._channel.close()
            if held is not None:
                held.close()

    def _on_message(self, message: Message) -> None:
        kind = message[0]
        if kind == "submit":
            _, seq, now, items = message
            if self._delivery is None:
                self._early.append((seq, now, items))
            else:
                self._submit(seq, now, items)
        elif kind == "open":
            if self._opened is not None and not self._opened.done():
                self._opened.set_result(message)
        elif kind == "reload":
            if self._delivery is not None:
                self._delivery.reload(message[1], message[2])
        elif kind == "stop":
            self._done.set()

    def _on_closed(self) -> None:
        if self._opened is not None and not self._opened.done():
            self._opened.cancel()
        self._done.set()

    def _submit(self, seq: int, now: float, items: list[Outgoing]) -> None:
        delivery = self._delivery
        assert delivery is not None
        if not items or not delivery.running:
            self._channel.send(("committed", seq))  # nothing to wait for, as in-process
            return
        self._awaiting.append(seq)
        delivery.submit(items, now)

    def _committed(self) -> None:
        self._channel.send(("committed", self._awaiting.popleft()))

    async def _report(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            self._send_stats()
            await asyncio.sleep(_STATS_INTERVAL_S)

    def _send_stats(self) -> None:
        delivery = self._delivery
        if delivery is None:
            return
        latency = {receiver: (list(h.counts), h.count, h.sum) for receiver, h in delivery.latency.items()}
        self._channel.send(("stats", dict(delivery.outcomes), dict(delivery.depths), latency))
