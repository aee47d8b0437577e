"""The watchdog families: activation, RFQ confirmation, feeds and resyncs, health_check, drift."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from riskmon.engine.engine import Engine
from riskmon.metrics.families import histogram, per_venue
from riskmon.watchdogs.failure_reasons import FailureReason
from riskmon.watchdogs.feeds import FeedState


def watchdog_families(engine: Engine) -> Iterator[Metric]:
    dogs = engine.watchdogs
    venues = sorted(engine.stats)
    activation = dogs.activation

    yield histogram(
        "riskmon_order_activation_latency_seconds",
        "Placement (or first pending sighting) to the venue's activation or refusal",
        activation.latency,
    )
    pending = GaugeMetricFamily("riskmon_orders_pending_activation", "Orders awaiting activation", labels=["venue"])
    per_venue(pending, {venue: activation.pending(venue) for venue in activation.latency})
    yield pending
    timeouts = CounterMetricFamily(
        "riskmon_order_activation_timeouts_total",
        "Orders not activated in time, by what the venue then said",
        labels=["venue", "outcome"],
    )
    for (venue, outcome), count in sorted(activation.outcomes.items()):
        timeouts.add_metric([venue, outcome], count)
    yield timeouts
    failures = CounterMetricFamily(
        "riskmon_order_activation_failures_total",
        "Orders the venue refused (reason classified from its words) or that a lookup could not find",
        labels=["venue", "reason"],
    )
    failed_venues = set(activation.latency) | {venue for venue, _ in activation.failures}
    for venue in sorted(failed_venues):
        for reason in FailureReason:
            failures.add_metric([venue, reason.value], activation.failures[(venue, reason)])
    yield failures

    yield histogram("riskmon_rfq_confirm_latency_seconds", "Quote accepted to confirmed", dogs.rfq.confirm_latency)
    awaiting = GaugeMetricFamily(
        "riskmon_rfq_quotes_awaiting_confirmation", "Accepted quotes not yet confirmed", labels=["venue"]
    )
    per_venue(awaiting, {venue: dogs.rfq.pending(venue) for venue in dogs.rfq.confirm_latency})
    yield awaiting
    missed = CounterMetricFamily(
        "riskmon_rfq_confirmation_deadlines_missed_total",
        "Accepted quotes not confirmed by their deadline",
        labels=["venue"],
    )
    per_venue(missed, dogs.rfq.missed)
    yield missed

    state = GaugeMetricFamily("riskmon_feed_state", "1 for the feed's current state", labels=["venue", "state"])
    for venue in venues:
        current = dogs.feeds.state(venue)
        for candidate in FeedState:
            state.add_metric([venue, candidate.value], 1.0 if candidate is current else 0.0)
    yield state
    yield histogram(
        "riskmon_resync_seconds",
        "Sequence gap to the fresh snapshot that rebuilt the stream",
        dogs.feeds.resync_seconds,
    )
    gaps = CounterMetricFamily("riskmon_sequence_gaps_total", "Sequence gaps detected", labels=["venue"])
    per_venue(gaps, {venue: engine.stats[venue].sequence_gaps for venue in venues})
    yield gaps
    health = CounterMetricFamily(
        "riskmon_health_check_gaps_total", "Venue health_check silences longer than allowed", labels=["venue"]
    )
    per_venue(health, dogs.health_check.gaps_detected)
    yield health
    last = GaugeMetricFamily(
        "riskmon_last_health_check_timestamp_seconds", "When the venue's last health_check arrived", labels=["venue"]
    )
    per_venue(
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
    # Zero, not absent, for a venue that reconciled cleanly: dashboards query its rate.
    per_venue(
        drifts, {venue: dogs.drift.drifts.get(venue, 0) for venue in set(dogs.drift.runs) | set(dogs.drift.drifts)}
    )
    yield drifts
    deadlines = GaugeMetricFamily("riskmon_deadlines_pending", "Deadlines armed in the engine's heap")
    deadlines.add_metric([], len(engine.deadlines))
    yield deadlines
