"""What each outbox queue sends with: a receiver, or one replica of an Alertmanager receiver, to
its sender (the direct HTTP/1.1 one for plain-http receivers no proxy covers, httpx otherwise),
its concurrency bound, and the delivery latency it observes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from riskmon.clock import Clock
from riskmon.config.alerting import AlertmanagerReceiver, DeliveryConfig, ReceiverConfig, SlackReceiver, WebhookReceiver
from riskmon.config.types import Secret
from riskmon.notify.alertmanager import alerts_url
from riskmon.notify.http1 import DirectSender, Origin, ReceiverPools, goes_direct
from riskmon.notify.notifier import alertmanager_queue
from riskmon.notify.outbox import RetryPolicy
from riskmon.notify.webhook import Sender, SendResult, WebhookSender
from riskmon.watchdogs.latency import LatencyHistogram


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """Where one outbox queue goes: a receiver, or one replica of an Alertmanager receiver."""

    receiver: str
    sender: Sender
    concurrency: int


def queue_specs(
    receivers: Mapping[str, ReceiverConfig],
    client: httpx.AsyncClient,
    clock: Clock,
    pools: ReceiverPools | None = None,
) -> dict[str, QueueSpec]:
    """Each queue's sender. With `pools`, plain-http receivers that no proxy applies to get a
    `DirectSender` on the queue's pool (kept while its origin and bound stay); the rest use `client`."""
    specs: dict[str, QueueSpec] = {}

    def spec(queue: str, receiver: str, url: str, secret: Secret | None, timeout: float, limit: int) -> None:
        sender: Sender
        if pools is not None and goes_direct(url, client):
            pool = pools.pool(queue, Origin.of(url), limit)
            sender = DirectSender(url, hmac_secret=secret, timeout=timeout, pool=pool, clock=clock.now)
        else:
            sender = WebhookSender(url, hmac_secret=secret, timeout=timeout, client=client, clock=clock.now)
        specs[queue] = QueueSpec(receiver, sender, limit)

    for name, receiver in receivers.items():
        if isinstance(receiver, WebhookReceiver):
            spec(name, name, receiver.url.reveal(), receiver.hmac_secret, receiver.timeout, receiver.max_concurrency)
        elif isinstance(receiver, SlackReceiver):
            spec(name, name, receiver.webhook_url.reveal(), None, receiver.timeout, receiver.max_concurrency)
        elif isinstance(receiver, AlertmanagerReceiver):
            for replica, url in enumerate(receiver.urls):
                queue = alertmanager_queue(name, replica)
                spec(queue, name, alerts_url(url), None, receiver.timeout, receiver.max_concurrency)
    if pools is not None:
        pools.keep_only(specs)
    return specs


class TimedSender:
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
