"""Alert delivery: the durable outbox and one sender task per receiver queue.

`submit` never blocks the caller: messages are handed to a writer task that commits them to the
outbox (on one dedicated thread, so SQLite never stalls the event loop and commits keep their
order) and then wakes the queue's sender. Each sender sleeps until the outbox's next due item,
or until woken, and sends with the receiver's bounded concurrency. Every outcome is counted for
the metrics; a crash at any point leaves committed messages pending for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import httpx

from riskmon.clock import Clock
from riskmon.config.alerting import AlertmanagerReceiver, DeliveryConfig, ReceiverConfig, SlackReceiver, WebhookReceiver
from riskmon.notify.alertmanager import alerts_url
from riskmon.notify.notifier import Outgoing, alertmanager_queue
from riskmon.notify.outbox import Outbox, OutboxError, RetryPolicy
from riskmon.notify.webhook import Sender, SendResult, WebhookSender, deliver_once
from riskmon.watchdogs.latency import LatencyHistogram

log = logging.getLogger(__name__)

_T = TypeVar("_T")
# Enqueue times remembered for the delivery latency; a dead letter's entry goes oldest first.
_ENQUEUE_TIMES_KEPT = 100_000


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """Where one outbox queue goes: a receiver, or one replica of an Alertmanager receiver."""

    receiver: str
    sender: Sender
    concurrency: int


def queue_specs(
    receivers: Mapping[str, ReceiverConfig], client: httpx.AsyncClient, clock: Clock
) -> dict[str, QueueSpec]:
    specs: dict[str, QueueSpec] = {}
    for name, receiver in receivers.items():
        if isinstance(receiver, WebhookReceiver):
            sender = WebhookSender(
                receiver.url.reveal(),
                hmac_secret=receiver.hmac_secret,
                timeout=receiver.timeout,
                client=client,
                clock=clock.now,
            )
            specs[name] = QueueSpec(name, sender, receiver.max_concurrency)
        elif isinstance(receiver, SlackReceiver):
            sender = WebhookSender(
                receiver.webhook_url.reveal(),
                hmac_secret=None,
                timeout=receiver.timeout,
                client=client,
                clock=clock.now,
            )
            specs[name] = QueueSpec(name, sender, receiver.max_concurrency)
        elif isinstance(receiver, AlertmanagerReceiver):
            for replica, url in enumerate(receiver.urls):
                sender = WebhookSender(
                    alerts_url(url), hmac_secret=None, timeout=receiver.timeout, client=client, clock=clock.now
                )
                specs[alertmanager_queue(name, replica)] = QueueSpec(name, sender, receiver.max_concurrency)
    return specs


class _TimedSender:
    """Observes outbox enqueue -> receiver accepted (2xx) for what this process enqueued.

    A message left pending by an earlier run has no enqueue time here and is not observed.
    """

    def __init__(
        self,
        sender: Sender,
        queue: str,
        enqueued_at: dict[tuple[str, str], float],
        latency: LatencyHistogram,
        clock: Clock,
    ) -> None:
        self._sender = sender
        self._queue = queue
        self._enqueued_at = enqueued_at
        self._latency = latency
        self._clock = clock

    async def send(self, payload: bytes, idempotency_key: str) -> SendResult:
        result = await self._sender.send(payload, idempotency_key)
        if result.ok:
            enqueued_at = self._enqueued_at.pop((self._queue, idempotency_key), None)
            if enqueued_at is not None:
                self._latency.observe(self._clock.now() - enqueued_at)
        return result


def retry_policy(config: DeliveryConfig) -> RetryPolicy:
    return RetryPolicy(
        initial=config.retry_initial,
        maximum=config.retry_max,
        retry_after_cap=config.retry_after_cap,
        dead_letter_after=config.dead_letter_after,
    )


class Delivery:
    def __init__(
        self,
        path: str | Path,
        receivers: Mapping[str, ReceiverConfig],
        config: DeliveryConfig,
        clock: Clock,
        *,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._path = path
        self._clock = clock
        self._policy = retry_policy(config)
        self._keep_delivered = config.keep_delivered
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient()
        # Receiver -> seconds from outbox enqueue to accepted; (queue, idempotency key) -> enqueued at.
        self.latency: dict[str, LatencyHistogram] = {}
        self._enqueued_at: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._specs = self._timed(queue_specs(receivers, self._client, clock))
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="riskmon-outbox")
        self._outbox: Outbox | None = None
        self._incoming: asyncio.Queue[list[Outgoing]] = asyncio.Queue()
        self._wake: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._writer: asyncio.Task[None] | None = None
        # (receiver, outcome) -> count: sent, retried, dead, enqueued, enqueue_failed.
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.depths: dict[str, int] = {}
        # Set after every delivery round, so callers can await progress instead of polling.
        self.progress = asyncio.Event()
        self._unwritten = 0
        self._written = asyncio.Event()

    def _timed(self, specs: dict[str, QueueSpec]) -> dict[str, QueueSpec]:
        return {
            queue: replace(
                spec,
                sender=_TimedSender(
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
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    async def start(self) -> None:
        try:
            self._outbox = await self._run_db(Outbox, self._path, self._policy)
            pruned = await self._run_db(self._outbox.prune, self._clock.now(), self._keep_delivered)
        except OutboxError as exc:
            # Alerts still reach the console and the metrics; say loudly what is lost.
            log.error("alert delivery is off: %s", exc)
            return
        if pruned:
            log.info("pruned %d delivered or dead notification(s) from the outbox", pruned)
        self._writer = asyncio.create_task(self._write_loop(), name="outbox-writer")
        for queue in self._specs:
            self._start_queue(queue)

    def submit(self, items: list[Outgoing]) -> None:
        """Queue messages for a durable write and delivery; returns at once."""
        if items:
            self._unwritten += 1
            self._written.clear()
            self._incoming.put_nowait(items)

    async def drain(self) -> None:
        """Wait until everything submitted so far is committed (tests, shutdown)."""
        if self._writer is not None and self._unwritten:
            await self._written.wait()

    def reload(self, receivers: Mapping[str, ReceiverConfig], config: DeliveryConfig) -> None:
        specs = self._timed(queue_specs(receivers, self._client, self._clock))
        for queue in set(self._tasks) - set(specs):
            self._tasks.pop(queue).cancel()
        self._specs = specs
        self._policy = retry_policy(config)
        if self._outbox is not None:
            self._outbox.policy = self._policy
            for queue in specs:
                if queue not in self._tasks:
                    self._start_queue(queue)
                else:
                    self._wake[queue].set()

    async def stop(self) -> None:
        tasks = [*self._tasks.values(), *([self._writer] if self._writer else [])]
        if self._writer is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.drain(), timeout=5)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._outbox is not None:
            outbox, self._outbox = self._outbox, None
            await self._run_db(outbox.close)
        self._db.shutdown(wait=True)
        if self._owns_client:
            await self._client.aclose()

    def _start_queue(self, queue: str) -> None:
        self._wake[queue] = asyncio.Event()
        self._tasks[queue] = asyncio.create_task(self._send_loop(queue), name=f"deliver:{queue}")

    async def _write_loop(self) -> None:
        outbox = self._outbox
        assert outbox is not None
        while True:
            items = await self._incoming.get()
            now = self._clock.now()
            for item in items:
                try:
                    await self._run_db(
                        outbox.enqueue, item.queue, item.group_key, item.idempotency_key, item.payload, now
                    )
                    self.outcomes[(item.receiver, "enqueued")] += 1
                    self._remember_enqueued(item, now)
                    log.info("notification %s queued for %s", item.idempotency_key[:16], item.queue)
                except OutboxError as exc:
                    self.outcomes[(item.receiver, "enqueue_failed")] += 1
                    log.error("could not queue a notification for %s: %s", item.receiver, exc)
                wake = self._wake.get(item.queue)
                if wake is not None:
                    wake.set()
                else:
                    log.warning("a notification is queued for %s, which no receiver sends to", item.queue)
            self._unwritten -= 1
            if not self._unwritten:
                self._written.set()

    async def _send_loop(self, queue: str) -> None:
        outbox = self._outbox
        assert outbox is not None
        wake = self._wake[queue]
        while True:
            spec = self._specs.get(queue)
            if spec is None:
                return
            # Cleared before reading the outbox, not after: a wake-up for a notification committed
            # while we read must not be lost (it would wait for the next one to be sent).
            wake.clear()
            try:
                due = await self._run_db(outbox.next_due, queue)
                self.depths[queue] = await self._run_db(outbox.depth, queue)
            except OutboxError as exc:
                log.error("outbox unreadable for %s: %s", queue, exc)
                due = self._clock.now() + 5.0
            now = self._clock.now()
            if due is None or due > now:
                timeout = None if due is None else due - now
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout)
                continue
            try:
                report = await deliver_once(outbox, queue, spec.sender, now, spec.concurrency, db=self._db)
            except OutboxError as exc:
                log.error("delivery round for %s failed: %s", queue, exc)
                continue
            self._count(spec.receiver, report.sent, report.retrying, report.dead)

    def _remember_enqueued(self, item: Outgoing, now: float) -> None:
        self._enqueued_at[(item.queue, item.idempotency_key)] = now
        if len(self._enqueued_at) > _ENQUEUE_TIMES_KEPT:
            self._enqueued_at.popitem(last=False)

    def _count(self, receiver: str, sent: list[int], retrying: list[int], dead: list[int]) -> None:
        self.outcomes[(receiver, "sent")] += len(sent)
        self.outcomes[(receiver, "retried")] += len(retrying)
        self.outcomes[(receiver, "dead")] += len(dead)
        self.progress.set()
        if dead:
            log.error("%d notification(s) for %s dead-lettered", len(dead), receiver)
