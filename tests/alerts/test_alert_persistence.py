"""Alert states and notification groups survive a restart: the tracker's and the groups' journals,
their restore (deadlines re-armed), the state file's tables, and the idempotency key re-derived
after a restart equal to the one that may already have gone out."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from riskmon.alerts.grouping import NotificationGroups
from riskmon.alerts.lifecycle import AlertTracker
from riskmon.alerts.routing import Route
from riskmon.engine.deadlines import DeadlineHeap
from riskmon.engine.state_journal import AlertStateChanges, StateChanges
from riskmon.store.state import StateStore

ROUTE = Route.from_dict({"receiver": "hook", "group_by": ["..."], "group_wait": "10s", "group_interval": "1m"})
LABELS = {"desk": "alpha", "market": "SOL"}


def breach(tracker: AlertTracker, now: float, *, breached: bool = True, pending_for: float = 0.0) -> Any:
    """One limit evaluation; the transition it causes (Any: the tests know when there is one)."""
    return tracker.observe(
        "ExposureLimitBreach",
        "critical",
        LABELS,
        breached=breached,
        cleared=not breached,
        value=1.0,
        annotations={"summary": "x"},
        pending_for=pending_for,
        now=now,
    )


def restarted(tracker: AlertTracker) -> tuple[AlertTracker, DeadlineHeap]:
    heap = DeadlineHeap()
    again = AlertTracker(heap)
    stored = [s for s in tracker.take_changes().values() if s is not None]
    again.restore(stored)
    return again, heap


def test_no_journal_until_restore_and_nothing_taken_without_a_change() -> None:
    tracker = AlertTracker(DeadlineHeap())
    breach(tracker, 1.0)
    assert not tracker.changed()
    assert tracker.take_changes() == {}
    tracker.restore([])
    breach(tracker, 2.0)  # same value and annotations: no change to write
    assert tracker.take_changes() == {}


def test_a_firing_alert_keeps_its_episode_and_resolves_after_a_restart() -> None:
    tracker = AlertTracker(DeadlineHeap())
    tracker.restore([])
    fired = breach(tracker, 100.0)
    again, _ = restarted(tracker)
    assert breach(again, 200.0) is None  # still breaching: no new episode
    [firing] = again.firing()
    assert (firing.fingerprint, firing.starts_at) == (fired.fingerprint, 100.0)
    resolved = breach(again, 300.0, breached=False)
    assert resolved is not None
    assert (resolved.status, resolved.starts_at) == ("resolved", 100.0)
    assert again.take_changes() == {firing.fingerprint: None}


def test_pending_for_and_event_resolve_deadlines_are_re_armed() -> None:
    tracker = AlertTracker(DeadlineHeap())
    tracker.restore([])
    breach(tracker, 100.0, pending_for=30.0)
    tracker.fire_event("FillRevoked", "warning", {"venue": "mango"}, {}, resolve_after=60.0, now=110.0)
    again, heap = restarted(tracker)
    due = sorted((heap.due_at(k), k[0]) for k in list(heap._due))
    assert due == [(130.0, "alert-for"), (170.0, "alert-expire")]
    out = [again.on_deadline(key, at) for at, key in heap.pop_due(1_000.0)]
    assert [(t.alertname, t.status, t.starts_at) for t in out if t is not None] == [
        ("ExposureLimitBreach", "firing", 130.0),
        ("FillRevoked", "resolved", 110.0),
    ]


def test_a_group_re_derives_the_same_notification_key_after_a_restart() -> None:
    tracker = AlertTracker(DeadlineHeap())
    tracker.restore([])
    groups = NotificationGroups()
    groups.restore([])
    fired = breach(tracker, 100.0)
    [match] = ROUTE.route(fired.labels)
    groups.add(fired, match, 100.0)
    saved = [g for g in groups.take_changes().values() if g is not None]
    [sent] = groups.due(110.0)  # sent, then killed before the "told" state was written
    again = NotificationGroups()
    again.restore(saved)
    [resent] = again.due(500.0)
    assert resent.idempotency_key == sent.idempotency_key
    # Told now; the resolution of the alert the receiver heard fire goes out after the restart.
    after = NotificationGroups()
    after.restore([g for g in again.take_changes().values() if g is not None])
    resolved = breach(tracker, 600.0, breached=False)
    after.add(resolved, match, 600.0)
    [n] = after.due(after.next_due() or 0.0)
    assert [a.status for a in n.resolved] == ["resolved"]
    assert n.sequence == 2
    assert n.idempotency_key != sent.idempotency_key


def test_a_new_episode_of_the_same_alert_gets_a_new_key() -> None:
    groups = NotificationGroups()
    tracker = AlertTracker(DeadlineHeap())
    keys = []
    for start in (100.0, 200.0):
        fired = breach(tracker, start)
        [match] = ROUTE.route(fired.labels)
        groups.add(fired, match, start)
        keys.append(groups.due(start + 10)[0].idempotency_key)
        groups.add(breach(tracker, start + 20, breached=False), match, start + 20)
        groups.due(start + 80)
    assert keys[0] != keys[1]


def test_state_file_round_trip_and_deletes(tmp_path: Path) -> None:
    tracker = AlertTracker(DeadlineHeap())
    tracker.restore([])
    groups = NotificationGroups()
    groups.restore([])
    fired = breach(tracker, 100.0)
    [match] = ROUTE.route(fired.labels)
    groups.add(fired, match, 100.0)
    store = StateStore(tmp_path / "state.db")
    try:
        store.write(StateChanges(alerts=AlertStateChanges(tracker.take_changes(), groups.take_changes())))
        loaded = store.load().alerts
        assert [a.fingerprint for a in loaded.alerts] == [fired.fingerprint]
        assert [g.alerts for g in loaded.groups] == [[fired]]
        breach(tracker, 200.0, breached=False)
        store.write(StateChanges(alerts=AlertStateChanges(tracker.take_changes(), {})))
        assert store.load().alerts.alerts == []
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "state.db") as db:
        db.execute("UPDATE notification_groups SET body = x'00'")
    store = StateStore(tmp_path / "state.db")
    try:
        assert store.load().alerts.groups == []  # an unreadable row is skipped, not fatal
    finally:
        store.close()
