from __future__ import annotations

from typing import Literal

from riskmon.alerts.fingerprints import fingerprint
from riskmon.alerts.grouping import Notification, NotificationGroups
from riskmon.alerts.lifecycle import AlertTransition
from riskmon.alerts.routing import Route, RouteMatch

ROOT = Route.from_dict(
    {
        "receiver": "desk-slack",
        "group_by": ["desk"],
        "group_wait": "30s",
        "group_interval": "5m",
        "repeat_interval": "1h",
        "routes": [{"matchers": ["market=A"], "receiver": "pager", "group_wait": 0, "continue": True}],
    }
)


def alert(
    market: str, status: Literal["firing", "resolved"], ts: float, desk: str = "alpha", starts_at: float | None = None
) -> AlertTransition:
    labels = {"alertname": "ExposureLimitBreach", "severity": "critical", "desk": desk, "market": market}
    return AlertTransition(
        ts=ts,
        status=status,
        alertname="ExposureLimitBreach",
        severity="critical",
        labels=labels,
        annotations={},
        fingerprint=fingerprint(labels),
        starts_at=ts if starts_at is None else starts_at,
    )


def desk_route(labels: dict[str, str]) -> RouteMatch:
    [match] = ROOT.route(labels)
    return match


def feed(groups: NotificationGroups, transition: AlertTransition) -> None:
    groups.add(transition, desk_route(transition.labels), transition.ts)


def content(n: Notification) -> tuple[list[str], list[str]]:
    return [a.labels["market"] for a in n.firing], [a.labels["market"] for a in n.resolved]


def test_first_alert_waits_group_wait_and_batches_what_arrives_meanwhile() -> None:
    groups = NotificationGroups()
    feed(groups, alert("B", "firing", 100.0))
    assert groups.next_due() == 130.0
    feed(groups, alert("C", "firing", 120.0))
    assert groups.next_due() == 130.0
    assert groups.due(129.9) == []
    [n] = groups.due(130.0)
    assert content(n) == (["B", "C"], [])
    assert (n.receiver, n.group_key, n.group_labels, n.ts, n.sequence) == (
        "desk-slack",
        '{}:{desk="alpha"}',
        {"desk": "alpha"},
        130.0,
        1,
    )


def test_changes_go_out_at_the_next_group_interval_tick() -> None:
    groups = NotificationGroups()
    feed(groups, alert("B", "firing", 0.0))
    assert content(groups.due(30.0)[0]) == (["B"], [])
    feed(groups, alert("C", "firing", 40.0))
    feed(groups, alert("D", "firing", 200.0))
    assert groups.next_due() == 330.0
    assert groups.due(329.0) == []
    [n] = groups.due(330.0)
    assert content(n) == (["B", "C", "D"], [])  # the whole group, in arrival order
    # A change after an idle tick still lands on the grid: 30 + 300k.
    feed(groups, alert("E", "firing", 700.0))
    assert groups.next_due() == 930.0


def test_unchanged_firing_alerts_repeat_every_repeat_interval_on_the_grid() -> None:
    groups = NotificationGroups()
    feed(groups, alert("B", "firing", 0.0))
    groups.due(30.0)
    feed(groups, alert("B", "firing", 50.0))  # a refresh of the same alert is not a change
    assert groups.next_due() == 3630.0
    assert groups.due(3629.0) == []
    [n] = groups.due(3630.0)
    assert content(n) == (["B"], [])
    assert n.sequence == 2
    assert groups.next_due() == 7230.0


def test_a_repeat_interval_off_the_grid_rounds_up_to_the_next_tick() -> None:
    root = Route.from_dict({"receiver": "r", "group_wait": 0, "group_interval": 300, "repeat_interval": 1000})
    groups = NotificationGroups()
    groups.add(alert("B", "firing", 0.0), root.route({})[0], 0.0)
    groups.due(0.0)
    assert groups.next_due() == 1200.0


def test_resolved_alerts_are_sent_once_then_dropped_and_an_empty_group_is_removed() -> None:
    groups = NotificationGroups()
    feed(groups, alert("B", "firing", 0.0))
    feed(groups, alert("C", "firing", 0.0))
    groups.due(30.0)
    feed(groups, alert("B", "resolved", 100.0))
    assert groups.next_due() == 330.0
    [n] = groups.due(330.0)
    assert content(n) == (["C"], ["B"])
    assert groups.next_due() == 3930.0
    assert content(groups.due(3930.0)[0]) == (["C"], [])
    feed(groups, alert("C", "resolved", 4000.0))
    [last] = groups.due(4230.0)
    assert content(last) == ([], ["C"])
    assert len(groups) == 0
    assert groups.next_due() is None


def test_an_alert_that_resolves_before_anyone_was_told_makes_no_noise() -> None:
    groups = NotificationGroups()
    feed(groups, alert("B", "firing", 0.0))
    feed(groups, alert("B", "resolved", 10.0))
    assert groups.next_due() is None
    assert groups.due(30.0) == []
    feed(groups, alert("Z", "resolved", 40.0))  # unknown group: nothing to say
    assert len(groups) == 0


def test_flap_between_ticks_is_not_a_change() -> None:
    groups = NotificationGroups()
    feed(groups, alert("B", "firing", 0.0))
    groups.due(30.0)
    feed(groups, alert("B", "resolved", 100.0))
    feed(groups, alert("B", "firing", 200.0))
    assert groups.next_due() == 3630.0


def test_an_alert_already_older_than_group_wait_goes_out_at_once() -> None:
    groups = NotificationGroups()
    feed(groups, alert("B", "firing", 500.0, starts_at=100.0))  # e.g. rebuilt after a restart
    assert groups.next_due() == 500.0
    assert content(groups.due(500.0)[0]) == (["B"], [])


def test_groups_are_separate_per_group_by_value_and_per_route() -> None:
    groups = NotificationGroups()
    for t in (alert("A", "firing", 0.0), alert("B", "firing", 5.0), alert("B", "firing", 10.0, desk="beta")):
        for match in ROOT.route(t.labels):  # A reaches only the pager route (a matching child wins)
            groups.add(t, match, t.ts)
    assert len(groups) == 3
    assert groups.next_due() == 0.0
    [pager] = groups.due(0.0)
    assert (pager.receiver, pager.group_key, content(pager)) == ("pager", '{}/{market="A"}:{desk="alpha"}', (["A"], []))
    alpha, beta = groups.due(40.0)  # oldest due first: alpha at 35, beta at 40
    assert (alpha.group_labels, content(alpha)) == ({"desk": "alpha"}, (["B"], []))
    assert (beta.group_labels, content(beta)) == ({"desk": "beta"}, (["B"], []))


def test_late_wakeup_sends_once_and_does_not_burst() -> None:
    groups = NotificationGroups()
    feed(groups, alert("B", "firing", 0.0))
    groups.due(30.0)
    assert len(groups.due(20000.0)) == 1  # several repeat ticks missed: one notification
    assert groups.next_due() == 23730.0  # the first tick a repeat_interval after the actual send
    assert groups.due(20000.0) == []


def run_episode(start: float) -> list[Notification]:
    groups = NotificationGroups()
    feed(groups, alert("B", "firing", start))
    out = groups.due(start + 30.0)
    out += groups.due(start + 3630.0)
    feed(groups, alert("B", "resolved", start + 3700.0))
    out += groups.due(start + 3930.0)
    return out


def test_idempotency_key_is_stable_for_the_same_notification_and_new_for_each_send() -> None:
    first, again = run_episode(0.0), run_episode(0.0)
    assert [n.idempotency_key for n in first] == [n.idempotency_key for n in again]
    keys = [n.idempotency_key for n in first]
    assert len(set(keys)) == 3  # the first send, the repeat and the resolution all differ
    assert all(len(k) == 64 for k in keys)
    later = run_episode(10000.0)  # the same alert in a later episode of the same group
    assert [content(n) for n in later] == [content(n) for n in first]
    assert not {n.idempotency_key for n in later} & set(keys)


def test_zero_group_wait_sends_at_once() -> None:
    groups = NotificationGroups()
    t = alert("A", "firing", 7.0)
    [pager_match] = ROOT.route(t.labels)
    groups.add(t, pager_match, 7.0)
    assert groups.next_due() == 7.0
    assert [content(n) for n in groups.due(7.0)] == [(["A"], [])]


def test_continue_to_sibling_routes_keeps_separate_groups_and_keys() -> None:
    root = Route.from_dict(
        {"receiver": "r", "group_wait": 0, "routes": [{"receiver": "a", "continue": True}, {"receiver": "b"}]}
    )
    groups = NotificationGroups()
    t = alert("B", "firing", 0.0)
    for match in root.route(t.labels):
        groups.add(t, match, 0.0)
    a, b = groups.due(0.0)
    assert (a.receiver, b.receiver) == ("a", "b")
    assert a.group_key == b.group_key == "{}/{}:{}"
    assert a.idempotency_key != b.idempotency_key
