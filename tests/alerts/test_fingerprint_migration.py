"""A state file written while fingerprints were sha256-based restores the same alerts and groups.

The rows are put into a real state file directly, as the older riskmon wrote them (msgpack bodies
keyed by the old fingerprint), then loaded through StateStore and restored: the alerts come back
under Alertmanager's fingerprint, keep their episode, resolve, and leave no stale row behind.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path

import msgspec
import pytest

from riskmon.alerts.fingerprints import fingerprint
from riskmon.alerts.grouping import NotificationGroups, StoredGroup
from riskmon.alerts.lifecycle import AlertTracker, AlertTransition, StoredAlert
from riskmon.alerts.routing import Route
from riskmon.engine.deadlines import DeadlineHeap
from riskmon.engine.state_journal import AlertStateChanges, StateChanges
from riskmon.store.state import StateStore

ROUTE = Route.from_dict({"receiver": "hook", "group_by": ["desk"], "group_wait": "10s", "group_interval": "1m"})
FIRING_LABELS = {"desk": "alpha", "market": "SOL", "alertname": "ExposureLimitBreach", "severity": "critical"}
PENDING_LABELS = {"desk": "alpha", "market": "ETH", "alertname": "ExposureLimitBreach", "severity": "critical"}


def old_fingerprint(labels: Mapping[str, str]) -> str:
    """The scheme riskmon used before it matched Alertmanager."""
    canonical = "\x00".join(f"{k}\x01{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def old_transition(labels: dict[str, str], starts_at: float) -> AlertTransition:
    return AlertTransition(
        ts=starts_at,
        status="firing",
        alertname=labels["alertname"],
        severity=labels["severity"],
        labels=labels,
        annotations={"summary": "alpha SOL over its limit"},
        fingerprint=old_fingerprint(labels),
        starts_at=starts_at,
        value=120.0,
    )


def write_old_rows(path: Path) -> None:
    """What the older riskmon left: one firing alert (told to the receiver), one pending one."""
    StateStore(path).close()  # the schema, as the current riskmon creates it
    firing = StoredAlert(
        old_fingerprint(FIRING_LABELS),
        "ExposureLimitBreach",
        "critical",
        FIRING_LABELS,
        {"summary": "alpha SOL over its limit"},
        "firing",
        100.0,
        100.0,
        120.0,
        False,
        None,
    )
    pending = StoredAlert(
        old_fingerprint(PENDING_LABELS),
        "ExposureLimitBreach",
        "critical",
        PENDING_LABELS,
        {"summary": "alpha ETH over its limit"},
        "pending",
        150.0,
        None,
        130.0,
        False,
        180.0,
    )
    told = old_transition(FIRING_LABELS, 100.0)
    [match] = ROUTE.route(FIRING_LABELS)
    group = StoredGroup(1, match, 100.0, 170.0, [told], [told.fingerprint], 110.0, 1, 0, 110.0, 1)
    encode = msgspec.msgpack.encode
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO alert_states VALUES (?, ?)",
            [(firing.fingerprint, encode(firing)), (pending.fingerprint, encode(pending))],
        )
        db.execute("INSERT INTO notification_groups VALUES (?, ?, ?)", (match.route_id, match.group_key, encode(group)))
    db.close()


def stored_keys(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        keys = {key for (key,) in db.execute("SELECT fingerprint FROM alert_states")}
    db.close()
    return keys


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    write_old_rows(tmp_path / "state.db")
    opened = StateStore(tmp_path / "state.db")
    yield opened
    opened.close()


def observe(tracker: AlertTracker, labels: Mapping[str, str], now: float, *, breached: bool) -> AlertTransition | None:
    own = {k: v for k, v in labels.items() if k not in ("alertname", "severity")}
    return tracker.observe(
        "ExposureLimitBreach",
        "critical",
        own,
        breached=breached,
        cleared=not breached,
        value=120.0 if breached else 1.0,
        annotations={"summary": f"worded at {now:g}"},
        pending_for=30.0,
        now=now,
    )


def test_old_alert_rows_restore_under_the_new_fingerprint_and_are_rewritten(store: StateStore) -> None:
    heap = DeadlineHeap()
    tracker = AlertTracker(heap)
    tracker.restore(store.load().alerts.alerts)
    new_firing, new_pending = fingerprint(FIRING_LABELS), fingerprint(PENDING_LABELS)
    assert {a.fingerprint for a in tracker.active()} == {new_firing, new_pending}
    assert heap.due_at(("alert-for", new_pending)) == 180.0  # the `for` deadline under the new key
    # Still breaching after the restart: the same episode, not a new firing.
    assert observe(tracker, FIRING_LABELS, 200.0, breached=True) is None
    [firing] = tracker.firing()
    assert (firing.fingerprint, firing.starts_at) == (new_firing, 100.0)
    # The next write replaces the old keys by the new ones.
    store.write(StateChanges(alerts=AlertStateChanges(tracker.take_changes(), {})))
    assert stored_keys(store.path) == {new_firing, new_pending}
    assert {a.fingerprint for a in store.load().alerts.alerts} == {new_firing, new_pending}
    # A resolution after the migration deletes the row: nothing comes back at the next restart.
    resolved = observe(tracker, FIRING_LABELS, 300.0, breached=False)
    assert resolved is not None
    assert resolved.fingerprint == new_firing
    assert resolved.annotations == {"summary": "worded at 200"}  # its last firing text, not the clearing one
    store.write(StateChanges(alerts=AlertStateChanges(tracker.take_changes(), {})))
    assert stored_keys(store.path) == {new_pending}


def test_a_restart_after_the_migration_changes_nothing(store: StateStore) -> None:
    tracker = AlertTracker(DeadlineHeap())
    tracker.restore(store.load().alerts.alerts)
    store.write(StateChanges(alerts=AlertStateChanges(tracker.take_changes(), {})))
    again = AlertTracker(DeadlineHeap())
    again.restore(store.load().alerts.alerts)
    assert not again.changed()


def test_an_old_group_still_knows_the_receiver_was_told_and_announces_the_resolution(store: StateStore) -> None:
    snapshot = store.load().alerts
    tracker = AlertTracker(DeadlineHeap())
    tracker.restore(snapshot.alerts)
    groups = NotificationGroups()
    groups.restore(snapshot.groups)
    [firing] = tracker.firing()
    [match] = ROUTE.route(firing.labels)
    groups.add(firing, match, 200.0)  # re-dispatched after the restart: the group already holds it
    assert groups.due(230.0) == []  # no change, so no message before the repeat interval
    resolved = observe(tracker, FIRING_LABELS, 240.0, breached=False)
    assert resolved is not None
    groups.add(resolved, match, 240.0)
    [notification] = groups.due(groups.next_due() or 0.0)
    assert [a.fingerprint for a in notification.resolved] == [fingerprint(FIRING_LABELS)]
    assert notification.previously_firing == frozenset({fingerprint(FIRING_LABELS)})
    assert notification.sequence == 2  # the stored episode goes on


def test_an_old_group_row_is_rewritten_with_new_fingerprints(store: StateStore) -> None:
    groups = NotificationGroups()
    groups.restore(store.load().alerts.groups)
    assert groups.changed()
    store.write(StateChanges(alerts=AlertStateChanges({}, groups.take_changes())))
    [group] = store.load().alerts.groups
    assert [a.fingerprint for a in group.alerts] == [fingerprint(FIRING_LABELS)]
    assert group.told_firing == [fingerprint(FIRING_LABELS)]
    again = NotificationGroups()
    again.restore([group])
    assert not again.changed()
