"""Alert delivery, from the plain counters the delivery tasks keep.

Every outcome of every known receiver is exported from the first scrape, at 0 until it happens, so
`rate()` has a starting point and `absent()` is not fooled by a receiver that never failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from riskmon.metrics.families import histogram
from riskmon.watchdogs.latency import LatencyHistogram

NOTIFICATION_OUTCOMES: Final = ("enqueued", "sent", "retried", "dead", "enqueue_failed")
"""What the delivery counts per receiver (riskmon.runtime.delivery's `outcomes` keys)."""


class DeliveryCollector(Collector):
    def __init__(
        self,
        outcomes: Mapping[tuple[str, str], int],
        depths: Mapping[str, int],
        muted: Callable[[], int],
        latency: Mapping[str, LatencyHistogram] | None = None,
    ) -> None:
        self._outcomes = outcomes
        self._depths = depths
        self._muted = muted
        self._latency = latency if latency is not None else {}

    def collect(self) -> Iterator[Metric]:
        notifications = CounterMetricFamily(
            "riskmon_notifications_total",
            "Notifications by receiver and outcome (enqueued, sent, retried, dead, enqueue_failed)",
            labels=["receiver", "outcome"],
        )
        counts = dict(self._outcomes)
        # The receivers are those with a latency histogram (every configured one) plus any seen.
        receivers = {*self._latency, *(receiver for receiver, _ in counts)}
        for receiver in receivers:
            for outcome in NOTIFICATION_OUTCOMES:
                counts.setdefault((receiver, outcome), 0)
        for (receiver, outcome), count in sorted(counts.items()):
            notifications.add_metric([receiver, outcome], count)
        yield notifications
        depth = GaugeMetricFamily(
            "riskmon_outbox_depth", "Notifications waiting in the outbox, per receiver queue", labels=["queue"]
        )
        for queue, pending in sorted(self._depths.items()):
            depth.add_metric([queue], pending)
        yield depth
        yield GaugeMetricFamily(
            "riskmon_alerts_muted", "Firing alerts held back by a silence or an inhibition", value=self._muted()
        )
        yield histogram(
            "riskmon_notification_delivery_latency_seconds",
            "Outbox enqueue to the receiver's 2xx, for notifications this process enqueued",
            self._latency,
            label="receiver",
        )
