"""Alert delivery: the durable outbox and one sender task per receiver queue.

`submit` never blocks the caller: each batch of messages goes to one dedicated thread (so SQLite
never stalls the event loop and commits keep their order), which commits the batch durably in one
transaction and, in the same call, claims the batch's rows that head their groups (due now, they
need no query for what is due). Those claims are sent as soon as the commit is back on the loop,
without waking another task or making a second trip to the thread. The delivery process, whose
loop runs nothing else, commits inline in `submit` itself and starts the sends from there. Each
queue's sender task does everything else: what a fast send left behind in a group, retries, and
messages left pending by an earlier run. It sleeps until the
outbox's next due item, or until woken. A receiver's sends share one bound on concurrency. Every
outcome is counted for the metrics; a crash at any point leaves committed messages pending for
the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx

from riskmon.clock import Clock
from riskmon.config.alerting import DeliveryConfig, ReceiverConfig
from riskmon.notify.http1 import ReceiverPools
from riskmon.notify.notifier import Outgoing
from riskmon.notify.outbox import Enqueued, Outbox, OutboxError, OutboxItem
from riskmon.notify.webhook import send_claimed
from riskmon.runtime.receiver_queues import QueueSpec, TimedSender, queue_specs, retry_policy
from riskmon.tls import default_ssl_context
from riskmon.watchdogs.latency import LatencyHistogram

log = logging.getLogger(__name__)

_T = TypeVar("_T")
# Enqueue times remembered for the delivery latency; a dead letter's entry goes oldest first.
_ENQUEUE_TIMES_KEPT = 100_000
# Messages one send round claims at most (the rest go in the next round).
_ROUND_LIMIT = 100
# The outbox's WAL is copied back into the database this often, off the commit path.
_CHECKPOINT_EVERY_S = 1.0


def _commit_and_claim(outbox: Outbox, items: Sequence[Outgoing], now: float, queues: frozenset[str]) -> Enqueued:
    """On the outbox thread: commit a batch durably, with the alert states it reflects, and claim
    (after the commit, so nothing is sent before it is durable) the rows it inserted that head their
    groups in `queues`. Anything else due in those queues is their sender tasks' to find."""
    return outbox.enqueue_and_claim(
        [(i.queue, i.group_key, i.idempotency_key, i.payload) for i in items],
        now,
        [i.alert_states for i in items if i.alert_states is not None],
        queues,
        _ROUND_LIMIT,
    )


def _poll(outbox: Outbox, queue: str, now: float) -> tuple[list[OutboxItem], float | None, int]:
    """On the outbox thread, in one trip: claim what is due, when the rest falls due, and the depth."""
    items = outbox.claim(queue, now, _ROUND_LIMIT)
    return items, outbox.next_due(queue), outbox.depth(queue)


def _outcome(done: Future[Enqueued]) -> Enqueued | Exception:
    try:
        return done.result()
    except Exception as exc:
        return exc


def _log_queued(items: list[Outgoing]) -> None:
    for item in items:
        log.info("notification %s queued for %s", item.idempotency_key[:16], item.queue)


class _Inline(Executor):
    """Runs each call at once on the caller's thread."""

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        future: Future[_T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


class Delivery:
    def __init__(
        self,
        path: str | Path,
        receivers: Mapping[str, ReceiverConfig],
        config: DeliveryConfig,
        clock: Clock,
        *,
        client: httpx.AsyncClient | None = None,
        adopt_from: str | Path | None = None,
        outbox_on_thread: bool = True,
    ) -> None:
        self._path = path
        self._sync = config.outbox_sync
        # Where an older version kept the outbox (the state file): its pending rows move here on start.
        self._adopt_from = adopt_from
        self._clock = clock
        self._policy = retry_policy(config)
        self._keep_delivered = config.keep_delivered
        self._owns_client = client is None
        # One TLS context per process, shared with the venues' clients (~130 ms to build each).
        self._client = client or httpx.AsyncClient(verify=default_ssl_context())
        # Plain-http receivers bypass httpx (a quarter of its CPU per POST), but not a client a caller
        # chose: it may be a test double or carry its own transport.
        self._pools = ReceiverPools() if client is None else None
        # Receiver -> seconds from outbox enqueue to accepted; (queue, idempotency key) -> enqueued at.
        self.latency: dict[str, LatencyHistogram] = {}
        self._enqueued_at: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._specs = self._timed(queue_specs(receivers, self._client, clock, self._pools))
        # SQLite on its own thread, so it never blocks a loop that runs other work; the delivery
        # process, whose loop runs nothing else, calls it inline and saves two thread hand-offs.
        self._db: Executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="riskmon-outbox") if outbox_on_thread else _Inline()
        )
        self._checkpoints = ThreadPoolExecutor(max_workers=1, thread_name_prefix="riskmon-outbox-checkpoint")
        self._checkpointer: asyncio.Task[None] | None = None
        self._enqueues = 0
        self._outbox: Outbox | None = None
        self._wake: dict[str, asyncio.Event] = {}
        self._gates: dict[str, asyncio.Semaphore] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # Sends started straight from a commit, outside the queues' sender tasks.
        self._rounds: set[asyncio.Task[None]] = set()
        # (receiver, outcome) -> count: sent, retried, dead, enqueued, enqueue_failed.
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.depths: dict[str, int] = {}
        # Set after every delivery round, so callers can await progress instead of polling.
        self.progress = asyncio.Event()
        self._uncommitted = 0
        self._written = asyncio.Event()
        # Called after each submitted batch is committed (or failed), in submission order.
        self.on_committed: Callable[[], None] | None = None
        # Called whenever outcomes, depths or latency changed (a process boundary forwards them).
        self.on_change: Callable[[], None] | None = None

    def _timed(self, specs: dict[str, QueueSpec]) -> dict[str, QueueSpec]:
        return {
            queue: replace(
                spec,
                sender=TimedSender(
                    spec.sender,
                    queue,
                    self._enqueued_at,
                    self.latency.setdefault(spec.receiver, LatencyHistogram()),
                    self._clock,
                ),
            )
            for queue, spec in specs.items()
        }

    async def _run_db(self, fn: Callable[..., _T], *args: Any) -> _T:
        if isinstance(self._db, _Inline):
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    async def start(self) -> None:
        try:
            self._outbox = await self._run_db(
                partial(Outbox, self._path, self._policy, sync=self._sync, auto_checkpoint=False)
            )
            pruned = await self._run_db(self._outbox.prune, self._clock.now(), self._keep_delivered)
        except OutboxError as exc:
            # Alerts still reach the console and the metrics; say loudly what is lost.
            self._outbox = None
            log.error("alert delivery is off: %s", exc)
            return
        if pruned:
            log.info("pruned %d delivered or dead notification(s) from the outbox", pruned)
        if self._adopt_from is not None:
            try:
                if moved := await self._run_db(self._outbox.adopt_pending, self._adopt_from):
                    log.warning("moved %d pending notification(s) from %s into the outbox", moved, self._adopt_from)
            except OutboxError as exc:  # they stay where they were; this outbox works all the same
                log.error("pending notifications were not moved: %s", exc)
        for queue in self._specs:
            self._start_queue(queue)
        self._checkpointer = asyncio.create_task(self._checkpoint_loop(self._outbox), name="outbox-checkpoint")

    async def _checkpoint_loop(self, outbox: Outbox) -> None:
        loop = asyncio.get_running_loop()
        checkpointed = 0
        while True:
            await asyncio.sleep(_CHECKPOINT_EVERY_S)
            if self._enqueues == checkpointed:
                continue
            checkpointed = self._enqueues
            try:
                await loop.run_in_executor(self._checkpoints, outbox.checkpoint)
            except OutboxError as exc:  # the WAL grows until the next one succeeds; nothing is lost
                log.warning("outbox checkpoint failed: %s", exc)

    @property
    def running(self) -> bool:
        """False when the outbox could not be opened: alerts reach only the console and metrics."""
        return self._outbox is not None

    def submit(self, items: list[Outgoing], now: float | None = None) -> None:
        """Queue messages for a durable write and delivery; returns at once. `now`: when they were
        handed over (the enqueue time the delivery latency counts from), the clock's now if None."""
        outbox = self._outbox
        if not items or outbox is None:
            return
        now = self._clock.now() if now is None else now
        self._uncommitted += 1
        self._written.clear()
        batch = list(items)
        self._enqueues += 1
        if isinstance(self._db, _Inline):
            # The commit, and the sends it makes due, in this very call: no loop turn in between.
            try:
                outcome: Enqueued | Exception = _commit_and_claim(outbox, batch, now, frozenset(self._tasks))
            except Exception as exc:
                outcome = exc
            self._committed(batch, now, outcome)
            return
        loop = asyncio.get_running_loop()
        committed = self._db.submit(_commit_and_claim, outbox, batch, now, frozenset(self._tasks))
        # Straight from the thread to the loop: one wake-up, not an asyncio future's two steps.
        committed.add_done_callback(lambda done: loop.call_soon_threadsafe(self._committed, batch, now, _outcome(done)))

    async def drain(self) -> None:
        """Wait until everything submitted so far is committed (tests, shutdown)."""
        if self._uncommitted:
            await self._written.wait()

    def reload(self, receivers: Mapping[str, ReceiverConfig], config: DeliveryConfig) -> None:
        specs = self._timed(queue_specs(receivers, self._client, self._clock, self._pools))
        for queue in set(self._tasks) - set(specs):
            self._tasks.pop(queue).cancel()
        old = self._specs
        self._specs = specs
        self._policy = retry_policy(config)
        if self._outbox is not None:
            self._outbox.policy = self._policy
            self._outbox.sync = config.outbox_sync
            for queue, spec in specs.items():
                if queue not in self._tasks:
                    self._start_queue(queue)
                    continue
                if queue in old and old[queue].concurrency != spec.concurrency:
                    self._gates[queue] = asyncio.Semaphore(max(1, spec.concurrency))
                self._wake[queue].set()

    async def stop(self) -> None:
        if self._outbox is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.drain(), timeout=5)
        tasks = [*self._tasks.values(), *self._rounds, *([self._checkpointer] if self._checkpointer else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._outbox is not None:
            outbox, self._outbox = self._outbox, None
            await self._run_db(outbox.close)
        self._db.shutdown(wait=True)
        self._checkpoints.shutdown(wait=True)
        if self._owns_client:
            await self._client.aclose()
        if self._pools is not None:
            await self._pools.aclose()

    def _start_queue(self, queue: str) -> None:
        self._wake[queue] = asyncio.Event()
        self._gates[queue] = asyncio.Semaphore(max(1, self._specs[queue].concurrency))
        self._tasks[queue] = asyncio.create_task(self._send_loop(queue), name=f"deliver:{queue}")

    def _committed(self, items: list[Outgoing], now: float, outcome: Enqueued | Exception) -> None:
        self._uncommitted -= 1
        if not self._uncommitted:
            self._written.set()
        if self.on_committed is not None:
            self.on_committed()
        if isinstance(outcome, Exception):  # nothing was committed: the batch is one transaction
            reason = str(outcome) if isinstance(outcome, OutboxError) else type(outcome).__name__
            for item in items:
                self.outcomes[(item.receiver, "enqueue_failed")] += 1
                log.error("could not queue a notification for %s: %s", item.receiver, reason)
            self._changed()
            return
        for item in items:
            self.outcomes[(item.receiver, "enqueued")] += 1
            self._remember_enqueued(item, now)
        # The sends before the logging, and before whoever on_change wakes: those can wait.
        for queue, due in outcome.claimed.items():
            spec, outbox = self._specs.get(queue), self._outbox
            if outbox is None:
                continue  # stopping: claims live in memory only, the rows stay pending for the next start
            if spec is None:  # its receiver was reloaded away meanwhile
                self._db.submit(outbox.release, [item.id for item in due])
                continue
            task = asyncio.create_task(self._round(queue, spec, outbox, due, now), name=f"send:{queue}")
            self._rounds.add(task)
            task.add_done_callback(self._rounds.discard)
        if log.isEnabledFor(logging.INFO):
            # After the sends' first steps (queued behind them), which write the requests.
            asyncio.get_running_loop().call_soon(_log_queued, items)
        for item in items:
            if item.queue not in self._wake:
                log.warning("a notification is queued for %s, which no receiver sends to", item.queue)
        self._changed()

    async def _round(self, queue: str, spec: QueueSpec, outbox: Outbox, items: list[OutboxItem], now: float) -> None:
        try:
            db = None if isinstance(self._db, _Inline) else self._db
            report = await send_claimed(outbox, items, spec.sender, now, self._gates[queue], db=db)
        except OutboxError as exc:
            log.error("delivery round for %s failed: %s", queue, exc)
        else:
            self._count(spec.receiver, report.sent, report.retrying, report.dead)
        finally:
            # Later messages of these groups, and retries, are the queue's sender's to schedule.
            if (wake := self._wake.get(queue)) is not None:
                wake.set()

    async def _send_loop(self, queue: str) -> None:
        outbox = self._outbox
        assert outbox is not None
        wake = self._wake[queue]
        loop = asyncio.get_running_loop()
        while True:
            spec = self._specs.get(queue)
            if spec is None:
                return
            # Cleared before reading the outbox, not after: a wake-up for a notification committed
            # while we read must not be lost (it would wait for the next one to be sent).
            wake.clear()
            now = self._clock.now()
            try:
                items, due, self.depths[queue] = await self._run_db(_poll, outbox, queue, now)
                self._changed()
            except OutboxError as exc:
                log.error("outbox unreadable for %s: %s", queue, exc)
                items, due = [], now + 5.0
            if items:
                await self._round(queue, spec, outbox, items, now)
                continue
            if due is not None and due <= now:
                continue
            # One timer handle for the deadline, not wait_for's task and timer around each wait.
            timer = None if due is None else loop.call_later(max(0.0, due - self._clock.now()), wake.set)
            try:
                await wake.wait()
            finally:
                if timer is not None:
                    timer.cancel()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def _remember_enqueued(self, item: Outgoing, now: float) -> None:
        self._enqueued_at[(item.queue, item.idempotency_key)] = now
        if len(self._enqueued_at) > _ENQUEUE_TIMES_KEPT:
            self._enqueued_at.popitem(last=False)

    def _count(self, receiver: str, sent: list[int], retrying: list[int], dead: list[int]) -> None:
        self.outcomes[(receiver, "sent")] += len(sent)
        self.outcomes[(receiver, "retried")] += len(retrying)
        self.outcomes[(receiver, "dead")] += len(dead)
        self.progress.set()
        self._changed()
        if dead:
            log.error("%d notification(s) for %s dead-lettered", len(dead), receiver)
