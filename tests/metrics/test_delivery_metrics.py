"""The delivery collector, on an injected registry: every (receiver, outcome) is exported from the
first scrape, at 0 until it happens, for each receiver it knows (the latency mapping's keys, which
the delivery fills with every configured receiver, plus any receiver seen in the outcomes)."""

from __future__ import annotations

from collections import Counter

from prometheus_client import CollectorRegistry

from riskmon.metrics import DeliveryCollector
from riskmon.metrics.delivery import NOTIFICATION_OUTCOMES
from riskmon.watchdogs.latency import LatencyHistogram

OUTCOMES = ["enqueued", "sent", "retried", "dead", "enqueue_failed"]


def notifications(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    return {
        (sample.labels["receiver"], sample.labels["outcome"]): sample.value
        for family in registry.collect()
        if family.name == "riskmon_notifications"
        for sample in family.samples
        if sample.name == "riskmon_notifications_total"
    }


def test_every_outcome_of_every_configured_receiver_is_zero_before_anything_is_sent() -> None:
    outcomes: Counter[tuple[str, str]] = Counter()
    latency = {"risk-webhook": LatencyHistogram(), "ops-slack": LatencyHistogram()}
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeliveryCollector(outcomes, {}, lambda: 0, latency))
    assert list(NOTIFICATION_OUTCOMES) == OUTCOMES
    assert notifications(registry) == {(r, o): 0 for r in ("ops-slack", "risk-webhook") for o in OUTCOMES}
    assert registry.get_sample_value("riskmon_notifications_total", {"receiver": "ops-slack", "outcome": "dead"}) == 0


def test_counts_show_as_they_happen_and_a_receiver_seen_only_in_outcomes_gets_every_outcome() -> None:
    outcomes: Counter[tuple[str, str]] = Counter()
    latency = {"risk-webhook": LatencyHistogram()}
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeliveryCollector(outcomes, {"risk-webhook": 2}, lambda: 1, latency))
    # Counted after the collector was registered: read at scrape time, not copied at registration.
    outcomes[("risk-webhook", "enqueued")] += 3
    outcomes[("risk-webhook", "sent")] += 2
    outcomes[("console", "sent")] += 1  # e.g. a receiver without a latency histogram
    exported = notifications(registry)
    assert exported == {
        **{(r, o): 0 for r in ("console", "risk-webhook") for o in OUTCOMES},
        ("risk-webhook", "enqueued"): 3,
        ("risk-webhook", "sent"): 2,
        ("console", "sent"): 1,
    }
    assert outcomes == Counter({("risk-webhook", "enqueued"): 3, ("risk-webhook", "sent"): 2, ("console", "sent"): 1})
    assert registry.get_sample_value("riskmon_outbox_depth", {"queue": "risk-webhook"}) == 2
    assert registry.get_sample_value("riskmon_alerts_muted") == 1


def test_no_receiver_known_exports_no_series() -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeliveryCollector(Counter(), {}, lambda: 0))
    assert notifications(registry) == {}
