from __future__ import annotations

from riskmon.alerts.fingerprints import fingerprint
from riskmon.alerts.lifecycle import AlertTracker, AlertTransition
from riskmon.engine.deadlines import DeadlineHeap

LABELS = {"desk": "alpha", "market": "SOL-PERP"}


def observe(
    tracker: AlertTracker, value: float, now: float, pending_for: float = 0.0, fire: float = 100.0
) -> AlertTransition | None:
    return tracker.observe(
        "ExposureLimitBreach",
        "critical",
        LABELS,
        breached=value >= fire,
        cleared=value < fire * 0.95,
        value=value,
        annotations={"summary": f"value {value}"},
        pending_for=pending_for,
        now=now,
    )


def test_fires_at_once_without_for_and_resolves_below_the_clear_level() -> None:
    tracker = AlertTracker(DeadlineHeap())
    assert observe(tracker, 50, 1.0) is None
    fired = observe(tracker, 101, 2.0)
    assert fired is not None
    assert fired.status == "firing"
    assert fired.ts == 2.0
    assert fired.labels == {**LABELS, "alertname": "ExposureLimitBreach", "severity": "critical"}
    assert fired.fingerprint == fingerprint(fired.labels)
    resolved = observe(tracker, 90, 3.0)
    assert resolved is not None
    assert resolved.status == "resolved"
    assert resolved.starts_at == 2.0
    assert resolved.annotations == {"summary": "value 101"}  # as it last fired, not as it cleared
    assert resolved.value == 90
    assert tracker.active() == []


def test_a_resolved_alert_keeps_the_annotations_of_its_last_firing_evaluation() -> None:
    tracker = AlertTracker(DeadlineHeap())
    observe(tracker, 101, 1.0)
    assert observe(tracker, 120, 2.0) is None  # still firing: the annotations follow the value
    assert observe(tracker, 97, 3.0) is None  # inside the hysteresis band: still firing, still follows
    (active,) = tracker.active()
    assert active.annotations == {"summary": "value 97"}
    resolved = observe(tracker, 10, 4.0)
    assert resolved is not None
    assert (resolved.status, resolved.annotations) == ("resolved", {"summary": "value 97"})


def test_hysteresis_keeps_a_value_on_the_line_from_flapping() -> None:
    tracker = AlertTracker(DeadlineHeap())
    transitions = [observe(tracker, v, float(i)) for i, v in enumerate([100, 99, 100.5, 96, 99.9, 100, 95.5])]
    assert [t.status for t in transitions if t] == ["firing"]
    final = observe(tracker, 94.9, 10.0)
    assert final is not None
    assert final.status == "resolved"


def test_for_holds_the_alert_pending_until_its_deadline() -> None:
    heap = DeadlineHeap()
    tracker = AlertTracker(heap)
    assert observe(tracker, 120, 0.0, pending_for=30.0) is None
    (pending,) = tracker.active()
    assert pending.state == "pending"
    assert heap.next_due() == 30.0
    ((due, key),) = heap.pop_due(45.0)
    assert due == 30.0
    fired = tracker.on_deadline(key, due)
    assert fired is not None
    assert fired.status == "firing"
    assert fired.starts_at == 30.0


def test_a_pending_alert_that_clears_never_fires_or_resolves() -> None:
    heap = DeadlineHeap()
    tracker = AlertTracker(heap)
    observe(tracker, 120, 0.0, pending_for=30.0)
    assert observe(tracker, 10, 5.0, pending_for=30.0) is None
    assert heap.pop_due(60.0) == []
    assert tracker.active() == []


def test_event_alerts_fire_once_refresh_and_expire() -> None:
    heap = DeadlineHeap()
    tracker = AlertTracker(heap)
    first = tracker.fire_event("FillRevoked", "warning", LABELS, {"summary": "one"}, resolve_after=60, now=0.0)
    assert first is not None
    assert first.status == "firing"
    again = tracker.fire_event("FillRevoked", "warning", LABELS, {"summary": "two"}, resolve_after=60, now=30.0)
    assert again is None  # refreshed, not fired twice
    assert heap.pop_due(60.0) == []  # the refresh moved the expiry to 90
    ((_, key),) = heap.pop_due(90.0)
    resolved = tracker.on_deadline(key, 90.0)
    assert resolved is not None
    assert resolved.status == "resolved"
    assert resolved.annotations == {"summary": "two"}


def test_on_deadline_ignores_keys_it_does_not_own() -> None:
    tracker = AlertTracker(DeadlineHeap())
    assert tracker.on_deadline(("activation", "order-1"), 1.0) is None
    assert not tracker.owns("plain")


def test_fingerprint_depends_on_every_label_but_not_order() -> None:
    a = fingerprint({"x": "1", "y": "2"})
    assert a == fingerprint({"y": "2", "x": "1"})
    assert a != fingerprint({"x": "1", "y": "3"})
    assert a != fingerprint({"x": "1"})


def test_a_pending_alert_back_under_its_threshold_is_dropped_not_held_by_hysteresis() -> None:
    heap = DeadlineHeap()
    tracker = AlertTracker(heap)
    observe(tracker, 120, 0.0, pending_for=30.0)
    assert observe(tracker, 97, 5.0, pending_for=30.0) is None  # under 100, above the 95 clear level
    assert tracker.active() == []
    assert heap.pop_due(60.0) == []
