"""Small builders shared by the collectors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from riskmon.metrics.labels import Labels
from riskmon.watchdogs.latency import LatencyHistogram


def histogram(
    name: str, doc: str, histograms: Mapping[str, LatencyHistogram], label: str = "venue"
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=[label])
    for key, observed in sorted(histograms.items()):
        family.add_metric([key], observed.cumulative(), observed.sum)
    return family


def per_venue(family: GaugeMetricFamily | CounterMetricFamily, values: Mapping[str, float]) -> None:
    for venue, value in sorted(values.items()):
        family.add_metric([venue], value)


def gauge(name: str, doc: str, labels: Iterable[str], values: Mapping[Labels, Decimal | float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    for key, value in sorted(values.items()):
        family.add_metric(list(key), float(value))
    return family
