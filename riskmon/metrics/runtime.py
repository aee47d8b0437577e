"""The runtime shell's own numbers: engine step time per venue and the inbound queue."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from functools import partial

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from riskmon.metrics.families import histogram
from riskmon.watchdogs.latency import ENGINE_STEP_BUCKETS, LatencyHistogram


class RuntimeCollector(Collector):
    def __init__(self, engine_seconds: Mapping[str, LatencyHistogram], inbound_depth: Callable[[], int]) -> None:
        self._engine_seconds = engine_seconds
        self._inbound_depth = inbound_depth

    def collect(self) -> Iterator[Metric]:
        yield histogram(
            "riskmon_engine_event_processing_seconds",
            "Time the engine spent on one inbound item (decode excluded: ingest, rules, alerting)",
            self._engine_seconds,
        )
        yield GaugeMetricFamily(
            "riskmon_inbound_queue_depth", "Inbound items waiting for the engine", value=self._inbound_depth()
        )


def engine_step_histograms() -> defaultdict[str, LatencyHistogram]:
    """Per venue, the seconds each engine step took (microseconds to tens of milliseconds)."""
    return defaultdict(partial(LatencyHistogram, ENGINE_STEP_BUCKETS))
