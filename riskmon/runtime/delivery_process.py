"""Alert delivery in a process of its own, so that a busy engine never delays a notification.

Python runs one thread at a time per process. In the engine's process a notification's commit and
POST took their turns between the engine's slices and behind its hold on the interpreter: at 50k
frames/s, seconds late. Here the engine process only pickles each batch onto a socket pair; the
delivery process (riskmon.runtime.delivery_worker) commits it to the outbox and sends it at once,
on the other core.

`DeliveryProcess` has the face of `riskmon.runtime.delivery.Delivery`: `submit` returns at once,
`drain` waits until everything submitted is committed (the barrier before alert states are saved),
and `outcomes`, `depths` and `latency` are the counters the metrics read, kept up to date from the
child's reports. A batch stays in memory until the child says it is committed: if the child dies,
a new one is started and handed every such batch again (the outbox keeps one row per idempotency
key, so a batch committed just before the death is not doubled).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import socket
from collections import Counter, deque
from collections.abc import Mapping
from enum import StrEnum
from multiprocessing.process import BaseProcess
from pathlib import Path

from riskmon.clock import Clock
from riskmon.config.alerting import ConsoleReceiver, DeliveryConfig, ReceiverConfig
from riskmon.notify.notifier import Outgoing
from riskmon.runtime import delivery_worker
from riskmon.runtime.delivery_channel import Channel, Message
from riskmon.watchdogs.latency import LatencyHistogram

log = logging.getLogger(__name__)

# A fork server with the worker module (and the main module, which a child would otherwise import
# again) loaded: a new delivery process is a fork, not a fresh interpreter importing httpx and
# riskmon (~0.3-0.7 s), and it holds none of the engine's state or threads.
_CONTEXT = multiprocessing.get_context("forkserver")
_PRELOAD = ["__main__", delivery_worker.__name__]
_RESTART_BACKOFF_S = (0.1, 0.5, 2.0, 10.0)
_STOP_WAIT_S = 10.0


class DeliveryState(StrEnum):
    STARTING = "starting"  # the first process is not up yet: notifications wait in memory
    UP = "up"
    RESTARTING = "restarting"  # the process died; another is starting and will be handed the backlog
    OFF = "off"  # the outbox could not be opened or the process not started: nothing is sent


class DeliveryProcess:
    def __init__(
        self,
        outbox_path: str | Path,
        receivers: Mapping[str, ReceiverConfig],
        config: DeliveryConfig,
        clock: Clock,
        *,
        adopt_from: str | Path | None = None,
    ) -> None:
        self._clock = clock
        self._outbox_path = str(outbox_path)
        self._adopt_from = None if adopt_from is None else str(adopt_from)
        self._receivers = dict(receivers)
        self._config = config
        # What the metrics read, replaced in place from each report of the child.
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.depths: dict[str, int] = {}
        self.latency: dict[str, LatencyHistogram] = {}
        self._know_receivers(receivers)
        # Set after every report, so callers can await progress instead of polling.
        self.progress = asyncio.Event()
        # Submitted batches the child has not confirmed as committed: (seq, now, items).
        self._unacked: deque[tuple[int, float, list[Outgoing]]] = deque()
        self._seq = 0
        self._all_committed = asyncio.Event()
        self._all_committed.set()
        self._off = False  # the child could not open the outbox: nothing will be committed
        self._ready = asyncio.Event()
        self._may_open = asyncio.Event()  # set by start, or by a stop before it
        self._open_granted = False
        self._channel: Channel | None = None
        self._process: BaseProcess | None = None
        self._stopped: asyncio.Event | None = None
        self._stopping = False
        self._starter: asyncio.Task[None] | None = None
        self._restarts = 0

    @property
    def pid(self) -> int | None:
        """The delivery process's pid once started (operators and tests)."""
        return None if self._process is None else self._process.pid

    async def started(self) -> None:
        """Wait until the delivery process has opened the outbox (or found it cannot)."""
        await self._ready.wait()

    @property
    def state(self) -> DeliveryState:
        """Whether notifications can go out now (readiness): `off` says delivery is disabled."""
        if self._off:
            return DeliveryState.OFF
        if self._channel is not None and self._ready.is_set():
            return DeliveryState.UP
        return DeliveryState.RESTARTING if self._restarts else DeliveryState.STARTING

    def prepare(self) -> None:
        """Start the child now, in the background, but let it take the outbox only at `start`.

        Starting it is the slow part of a restart (the fork server imports httpx and riskmon, and
        a fork follows), so the runtime does it while the state file loads; opening the outbox
        waits, because the restore reads the outbox's alert states under the lock the delivery
        process holds for its whole life."""
        if self._starter is None:
            self._starter = asyncio.create_task(self._spawn(), name="delivery-process")

    async def start(self) -> None:
        """Start the child in the background (unless `prepare` did) and let it open the outbox:
        submissions queue until it is up."""
        self._open_granted = True
        self._may_open.set()
        self.prepare()

    def submit(self, items: list[Outgoing]) -> None:
        """Hand messages to the delivery process for a durable write and delivery; returns at once."""
        if not items or self._off:
            return
        self._seq += 1
        batch = (self._seq, self._clock.now(), list(items))
        self._unacked.append(batch)
        self._all_committed.clear()
        if self._channel is not None:
            self._channel.send(("submit", *batch))

    async def drain(self) -> None:
        """Wait until everything submitted so far is committed (the alert-state barrier, shutdown)."""
        while self._unacked:
            await self._all_committed.wait()

    def reload(self, receivers: Mapping[str, ReceiverConfig], config: DeliveryConfig) -> None:
        self._receivers, self._config = dict(receivers), config
        self._know_receivers(receivers)
        if self._channel is not None:
            self._channel.send(("reload", self._receivers, config))

    async def stop(self) -> None:
        self._stopping = True
        self._may_open.set()  # a child never allowed to open the outbox is let go without it
        if self._starter is not None and not self._starter.done():
            # Let a start in progress finish, so the child is told to stop rather than orphaned.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._starter), _STOP_WAIT_S)
        channel, stopped, process = self._channel, self._stopped, self._process
        if channel is not None and stopped is not None and channel.send(("stop",)):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopped.wait(), _STOP_WAIT_S)
            channel.close()
        if process is not None:
            await asyncio.to_thread(_reap, process)
        if self._unacked and not self._off:
            log.error("%d notification batch(es) were not committed before delivery stopped", len(self._unacked))

    def _know_receivers(self, receivers: Mapping[str, ReceiverConfig]) -> None:
        """Every network receiver has its latency series from the start, as in-process delivery has."""
        for name, receiver in receivers.items():
            if not isinstance(receiver, ConsoleReceiver):
                self.latency.setdefault(name, LatencyHistogram())

    async def _spawn(self) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        _CONTEXT.set_forkserver_preload(_PRELOAD)  # read once, when the fork server starts
        process = _CONTEXT.Process(target=delivery_worker.run, args=(theirs,), name="riskmon-delivery", daemon=True)
        try:
            # Blocking: the first start also starts the fork server.
            await asyncio.to_thread(process.start)
        except Exception as exc:
            ours.close()
            theirs.close()
            log.error("alert delivery is off: the delivery process did not start: %s", exc)
            self._turn_off()
            return
        finally:
            theirs.close()
        self._process = process
        self._ready.clear()
        stopped = asyncio.Event()
        channel = Channel(lambda message: self._on_message(message, stopped), lambda: self._on_closed(stopped))
        await loop.create_unix_connection(lambda: channel, sock=ours)
        await self._may_open.wait()
        if not self._open_granted:
            channel.close()  # stopped before start: the child returns without opening the outbox
            return
        self._channel, self._stopped = channel, stopped
        level = logging.getLogger().getEffectiveLevel()
        channel.send(("open", self._outbox_path, self._receivers, self._config, self._adopt_from, level))
        for batch in self._unacked:  # what an earlier child left uncommitted, and what came meanwhile
            channel.send(("submit", *batch))

    def _on_message(self, message: Message, stopped: asyncio.Event) -> None:
        kind = message[0]
        if kind == "committed":
            seq = message[1]
            while self._unacked and self._unacked[0][0] <= seq:
                self._unacked.popleft()
            if not self._unacked:
                self._all_committed.set()
        elif kind == "stats":
            _, outcomes, depths, latency = message
            self.outcomes.clear()
            self.outcomes.update(outcomes)
            self.depths.clear()
            self.depths.update(depths)
            for receiver, (counts, count, total) in latency.items():
                histogram = self.latency.setdefault(receiver, LatencyHistogram())
                histogram.counts, histogram.count, histogram.sum = list(counts), count, total
            self.progress.set()
        elif kind == "ready":
            self._ready.set()
        elif kind == "off":
            self._turn_off()
        elif kind == "stopped":
            stopped.set()

    def _turn_off(self) -> None:
        self._off = True
        self._ready.set()
        self._unacked.clear()
        self._all_committed.set()

    def _on_closed(self, stopped: asyncio.Event) -> None:
        stopped.set()
        self._channel = None
        if self._stopping or self._off:
            return
        delay = _RESTART_BACKOFF_S[min(self._restarts, len(_RESTART_BACKOFF_S) - 1)]
        self._restarts += 1
        log.error(
            "the delivery process exited unexpectedly; starting another in %.1fs (%d batch(es) to hand over again)",
            delay,
            len(self._unacked),
        )
        process = self._process
        self._starter = asyncio.create_task(self._respawn(process, delay), name="delivery-process")

    async def _respawn(self, process: BaseProcess | None, delay: float) -> None:
        if process is not None:
            await asyncio.to_thread(_reap, process)
        await asyncio.sleep(delay)
        if not self._stopping:
            await self._spawn()


def _reap(process: BaseProcess) -> None:
    process.join(_STOP_WAIT_S)
    if process.is_alive():
        log.error("the delivery process did not stop; killing it")
        process.kill()
        process.join(_STOP_WAIT_S)
