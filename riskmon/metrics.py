"""Prometheus metrics read from engine state at scrape time.

The engine keeps plain counters; this collector turns them into metric families only when
Prometheus asks, so the hot path never pays a prometheus_client call per event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from riskmon import __version__
from riskmon.engine.engine import Engine
from riskmon.watchdogs.feeds import FeedState
from riskmon.watchdogs.latency import LatencyHistogram


class EngineCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        engine = self._engine
        info = InfoMetricFamily("riskmon_build", "riskmon build information")
        info.add_metric([], {"version": __version__})
        yield info

        counters = {
            "frames": ("riskmon_frames_received_total", "Frames received from the venue"),
            "fills": ("riskmon_fills_total", "Desk fills applied to exposure"),
            "duplicates": ("riskmon_fill_duplicates_total", "Fills dropped as already seen"),
            "malformed": ("riskmon_malformed_frames_total", "Frames dropped as unusable"),
            "reconnects": ("riskmon_feed_reconnects_total", "Connections lost after being up"),
        }
        for attr, (name, doc) in counters.items():
            family = CounterMetricFamily(name, doc, labels=["venue"])
            for venue, stats in sorted(engine.stats.items()):
                family.add_metric([venue], getattr(stats, attr))
            yield family
        revokes = CounterMetricFamily(
            "riskmon_fill_revokes_total", "Fills reversed after the venue voided them", labels=["venue", "reason"]
        )
        for venue, stats in sorted(engine.stats.items()):
            revokes.add_metric([venue, "revoke"], stats.revoked)
            revokes.add_metric([venue, "absent_from_checkpoint"], stats.voided)
        yield revokes

        feed_up = GaugeMetricFamily("riskmon_feed_up", "1 while the venue connection is up", labels=["venue"])
        for venue, stats in sorted(engine.stats.items()):
            feed_up.add_metric([venue], 1.0 if stats.feed_up else 0.0)
        yield feed_up

        # Summed over accounts: account ids are unbounded, desks and markets are not.
        positions: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
        notionals: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
        for row in engine.book.rows():
            key = (row.key.desk, row.key.venue, row.key.market)
            positions[key] += row.position
            if row.notional_usd is not None:
                notionals[key] += row.notional_usd
        position = GaugeMetricFamily(
            "riskmon_position", "Net position in base units", labels=["desk", "venue", "market"]
        )
        net = GaugeMetricFamily(
            "riskmon_exposure_net_notional_usd", "Net notional at the latest mark", labels=["desk", "venue", "market"]
        )
        for key, amount in sorted(positions.items()):
            position.add_metric(list(key), float(amount))
            if key in notionals:
                net.add_metric(list(key), float(notionals[key]))
        yield position
        yield net

        utilisation = GaugeMetricFamily(
            "riskmon_limit_utilisation_ratio", "Exposure over its limit", labels=["desk", "limit", "market"]
        )
        for (desk, limit, market), ratio in sorted(engine.limits.utilisation.items()):
            utilisation.add_metric([desk, limit, market], ratio)
        yield utilisation

        firing: dict[tuple[str, str, str], int] = defaultdict(int)
        for alert in engine.alerts.active():
            if alert.state == "firing":
                firing[(alert.alertname, alert.severity, alert.labels.get("desk", ""))] += 1
        alerts = GaugeMetricFamily(
            "riskmon_alerts_firing", "Alerts firing now", labels=["alertname", "severity", "desk"]
        )
        for key, count in sorted(firing.items()):
            alerts.add_metric(list(key), count)
        yield alerts
        yield from _watchdog_families(engine)


def _histogram(name: str, doc: str, histograms: Mapping[str, LatencyHistogram]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=["venue"])
    for venue, histogram in sorted(histograms.items()):
        family.add_metric([venue], histogram.cumulative(), histogram.sum)
    return family


def _per_venue(family: GaugeMetricFamily | CounterMetricFamily, values: Mapping[str, float]) -> None:
    for venue, value in sorted(values.items()):
        family.add_metric([venue], value)


def _watchdog_families(engine: Engine) -> Iterator[Metric]:
    dogs = engine.watchdogs
    venues = sorted(engine.stats)

    yield _histogram(
        "riskmon_order_activation_latency_seconds",
        "Placement (or first pending sighting) to the venue's activation or refusal",
        dogs.activation.latency,
    )
    pending = GaugeMetricFamily("riskmon_orders_pending_activation", "Orders awaiting activation", labels=["venue"])
    _per_venue(pending, {venue: dogs.activation.pending(venue) for venue in dogs.activation.latency})
    yield pending
    timeouts = CounterMetricFamily(
        "riskmon_order_activation_timeouts_total",
        "Orders not activated in time, by what the venue then said",
        labels=["venue", "outcome"],
    )
    for (venue, outcome), count in sorted(dogs.activation.outcomes.items()):
        timeouts.add_metric([venue, outcome], count)
    yield timeouts

    yield _histogram("riskmon_rfq_confirm_latency_seconds", "Quote accepted to confirmed", dogs.rfq.confirm_latency)
    awaiting = GaugeMetricFamily(
        "riskmon_rfq_quotes_awaiting_confirmation", "Accepted quotes not yet confirmed", labels=["venue"]
    )
    _per_venue(awaiting, {venue: dogs.rfq.pending(venue) for venue in dogs.rfq.confirm_latency})
    yield awaiting
    missed = CounterMetricFamily(
        "riskmon_rfq_confirmation_deadlines_missed_total",
        "Accepted quotes not confirmed by their deadline",
        labels=["venue"],
    )
    _per_venue(missed, dogs.rfq.missed)
    yield missed

    state = GaugeMetricFamily("riskmon_feed_state", "1 for the feed's current state", labels=["venue", "state"])
    for venue in venues:
        current = dogs.feeds.state(venue)
        for candidate in FeedState:
            state.add_metric([venue, candidate.value], 1.0 if candidate is current else 0.0)
    yield state
    yield _histogram(
        "riskmon_resync_seconds",
        "Sequence gap to the fresh snapshot that rebuilt the stream",
        dogs.feeds.resync_seconds,
    )
    gaps = CounterMetricFamily("riskmon_sequence_gaps_total", "Sequence gaps detected", labels=["venue"])
    _per_venue(gaps, {venue: engine.stats[venue].sequence_gaps for venue in venues})
    yield gaps
    health = CounterMetricFamily(
        "riskmon_health_check_gaps_total", "Venue health_check silences longer than allowed", labels=["venue"]
    )
    _per_venue(health, dogs.health_check.gaps_detected)
    yield health
    last = GaugeMetricFamily(
        "riskmon_last_health_check_timestamp_seconds", "When the venue's last health_check arrived", labels=["venue"]
    )
    _per_venue(
        last,
        {
            venue: seen
            for venue in dogs.health_check.gaps_detected
            if (seen := dogs.health_check.last_health_check(venue)) is not None
        },
    )
    yield last

    runs = CounterMetricFamily(
        "riskmon_reconciliation_runs_total", "REST reconciliations finished", labels=["venue", "outcome"]
    )
    for venue, count in sorted(dogs.drift.runs.items()):
        failed = dogs.drift.failures[venue]
        runs.add_metric([venue, "ok"], count - failed)
        runs.add_metric([venue, "failed"], failed)
    yield runs
    drifts = CounterMetricFamily(
        "riskmon_stream_drift_total",
        "Differences between REST and the stream found by reconciliation",
        labels=["venue"],
    )
    _per_venue(drifts, dict(dogs.drift.drifts))
    yield drifts
    deadlines = GaugeMetricFamily("riskmon_deadlines_pending", "Deadlines armed in the engine's heap")
    deadlines.add_metric([], len(engine.deadlines))
    yield deadlines


class DeliveryCollector(Collector):
    """Alert delivery, from the plain counters the delivery tasks keep."""

    def __init__(
        self, outcomes: Mapping[tuple[str, str], int], depths: Mapping[str, int], muted: Callable[[], int]
    ) -> None:
        self._outcomes = outcomes
        self._depths = depths
        self._muted = muted

    def collect(self) -> Iterator[Metric]:
        notifications = CounterMetricFamily(
            "riskmon_notifications_total",
            "Notifications by receiver and outcome (enqueued, sent, retried, dead, enqueue_failed)",
            labels=["receiver", "outcome"],
        )
        for (receiver, outcome), count in sorted(self._outcomes.items()):
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


def engine_registry(engine: Engine) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(engine))
    return registry
