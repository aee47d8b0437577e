"""The notifier on virtual time: default route, routing tree with continue, group/repeat timers, resolved
notifications, rendered webhook / Slack / Alertmanager / console output, and reload.

Muting (silences, inhibition) is in test_notifier_muting.py.
"""

from __future__ import annotations

import json
import textwrap

from riskmon.alerts.fingerprints import fingerprint
from riskmon.alerts.lifecycle import AlertTransition
from riskmon.alerts.silences import Silences
from riskmon.config.loader import parse_config
from riskmon.config.schema import MonitorConfig
from riskmon.notify.notifier import Due, Notifier, Outgoing
from tests.config.minimal_config import MINIMAL
from tests.notify import notifier_support as support
from tests.notify.notifier_support import body, drive, resolve

T0 = 1_700_000_000.0
SLACK_URL = "https://hooks.slack.example/services/T0/B0/slack-hook-token-4f1e"
HOOK_URL = "http://127.0.0.1:9/risk/hook-token-9d2c"

RECEIVERS = f"""\
receivers:
  ops-slack:
    kind: slack
    webhook_url: {SLACK_URL}
    channel: "#risk"
  risk-webhook:
    kind: webhook
    url: {HOOK_URL}
"""

# Critical goes to Slack and (continue) to the webhook; warning to the webhook only.
TREE = """\
routes:
  receiver: risk-webhook
  group_by: [alertname, desk]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
  routes:
    - matchers: ['severity="critical"']
      receiver: ops-slack
      continue: true
    - matchers: ['severity=~"critical|warning"']
      receiver: risk-webhook
"""


def config(*sections: str) -> MonitorConfig:
    return parse_config(MINIMAL + "".join(textwrap.dedent(s) for s in sections), "monitor.yaml", {})


def fire(alertname: str, severity: str, ts: float, **labels: str) -> AlertTransition:
    return support.fire(alertname, severity, ts, f"{alertname} on {labels.get('desk', '-')}", **labels)


def alert_statuses(out: Outgoing) -> list[tuple[str, str]]:
    """(alertname/desk, status) of each alert in a webhook payload."""
    return [(f"{a['labels']['alertname']}/{a['labels'].get('desk', '')}", a["status"]) for a in body(out)["alerts"]]


def by_queue(sent: list[tuple[float, Due]]) -> list[tuple[float, str]]:
    return [(t, o.queue) for t, due in sent for o in due.outgoing]


# Default route -----------------------------------------------------------------------------------


def test_default_route_sends_every_alert_to_every_receiver_at_once_grouped_by_alertname_desk_venue() -> None:
    notifier = Notifier(config(RECEIVERS), Silences())
    a = fire("ExposureLimitBreach", "critical", T0, desk="desk-a", venue="mango", market="SOL-PERP")
    b = fire("ExposureLimitBreach", "critical", T0, desk="desk-a", venue="mango", market="BTC-PERP")
    c = fire("ExposureLimitBreach", "warning", T0, desk="desk-b", venue="mango", market="SOL-PERP")
    notifier.observe([a, b, c], T0)
    assert notifier.next_due() == T0  # group_wait 0
    due = notifier.due(T0)
    assert due.console == []
    assert sorted((o.queue, len(body(o)["alerts"]) if o.queue == "risk-webhook" else 0) for o in due.outgoing) == [
        ("ops-slack", 0),
        ("ops-slack", 0),
        ("risk-webhook", 1),
        ("risk-webhook", 2),
    ]
    hooks = [body(o) for o in due.outgoing if o.queue == "risk-webhook"]
    assert sorted(h["groupLabels"]["desk"] for h in hooks) == ["desk-a", "desk-b"]
    assert all(set(h["groupLabels"]) == {"alertname", "desk", "venue"} for h in hooks)
    # Nothing more until the 4h repeat.
    assert notifier.next_due() == T0 + 4 * 3600
    assert notifier.due(T0 + 3600).outgoing == []


def test_console_receiver_lines_come_back_as_text_not_outgoing() -> None:
    notifier = Notifier(config("receivers:\n  screen:\n    kind: console\n"), Silences())
    a = fire("FillRevoked", "warning", T0, desk="desk-a", venue="mango", market="SOL-PERP")
    notifier.observe([a], T0)
    due = notifier.due(T0)
    assert due.outgoing == []
    assert len(due.console) == 1
    assert "FIRING" in due.console[0]
    assert "FillRevoked [warning]" in due.console[0]
    assert "market=SOL-PERP" in due.console[0]
    notifier.observe([resolve(a, T0 + 10)], T0 + 10)
    assert notifier.next_due() == T0 + 30  # the next group_interval tick of the default route
    (line,) = notifier.due(T0 + 30).console
    assert "RESOLVED" in line
    assert "FillRevoked" in line


# Routing tree, timers, resolved -------------------------------------------------------------------


def test_tree_routes_critical_to_slack_and_webhook_and_warning_to_webhook_only_after_group_wait() -> None:
    notifier = Notifier(config(RECEIVERS, TREE), Silences())
    crit = fire("ExposureLimitBreach", "critical", T0, desk="desk-a", market="SOL-PERP")
    warn = fire("PendingRfqHigh", "warning", T0 + 5, desk="desk-a")
    notifier.observe([crit], T0)
    notifier.observe([warn], T0 + 5)
    assert notifier.next_due() == T0 + 30
    assert notifier.due(T0 + 29.999).outgoing == []
    first = notifier.due(T0 + 30).outgoing
    assert notifier.next_due() == T0 + 35
    second = notifier.due(T0 + 35).outgoing
    assert sorted(o.queue for o in first) == ["ops-slack", "risk-webhook"]
    assert {alert_statuses(o)[0] for o in first if o.queue == "risk-webhook"} == {
        ("ExposureLimitBreach/desk-a", "firing")
    }
    assert [(o.queue, alert_statuses(o)) for o in second] == [("risk-webhook", [("PendingRfqHigh/desk-a", "firing")])]
    slack = body(next(o for o in first if o.queue == "ops-slack"))
    assert slack["channel"] == "#risk"
    assert slack["attachments"][0]["color"] == "#E01E5A"
    assert slack["text"].startswith("[FIRING:1] ExposureLimitBreach critical")
    assert slack["attachments"][0]["blocks"][0]["type"] == "header"


def test_group_interval_and_repeat_interval_fire_at_exact_grid_times() -> None:
    notifier = Notifier(config(RECEIVERS, TREE), Silences())
    sol = fire("ExposureLimitBreach", "warning", T0, desk="desk-a", market="SOL-PERP")
    notifier.observe([sol], T0)
    assert by_queue(drive(notifier, T0, T0 + 100)) == [(T0 + 30, "risk-webhook")]
    # A second alert of the same group waits for the next group_interval tick (anchor T0+30, 5m grid).
    btc = fire("ExposureLimitBreach", "warning", T0 + 100, desk="desk-a", market="BTC-PERP")
    notifier.observe([btc], T0 + 100)
    assert notifier.next_due() == T0 + 330
    sent = drive(notifier, T0 + 100, T0 + 330)
    assert [(t, len(body(o)["alerts"])) for t, due in sent for o in due.outgoing] == [(T0 + 330, 2)]
    # No change: the repeat comes at the first tick at least repeat_interval (1h) after the last send.
    assert notifier.next_due() == T0 + 330 + 3600
    sent = drive(notifier, T0 + 330, T0 + 2 * 3600 + 330)
    assert [t for t, _ in sent] == [T0 + 3930, T0 + 7530]
    assert all(len(body(o)["alerts"]) == 2 for _, due in sent for o in due.outgoing)


def test_resolved_is_sent_once_per_receiver_and_the_group_ends() -> None:
    notifier = Notifier(config(RECEIVERS, TREE), Silences())
    crit = fire("ExposureLimitBreach", "critical", T0, desk="desk-a", market="SOL-PERP")
    notifier.observe([crit], T0)
    drive(notifier, T0, T0 + 30)
    notifier.observe([resolve(crit, T0 + 200)], T0 + 200)
    assert notifier.next_due() == T0 + 330
    sent = drive(notifier, T0 + 200, T0 + 10 * 3600)
    assert sorted(by_queue(sent)) == [(T0 + 330, "ops-slack"), (T0 + 330, "risk-webhook")]
    hook = body(next(o for _, d in sent for o in d.outgoing if o.queue == "risk-webhook"))
    assert hook["status"] == "resolved"
    assert hook["alerts"][0]["endsAt"] == "2023-11-14T22:16:40Z"
    slack = body(next(o for _, d in sent for o in d.outgoing if o.queue == "ops-slack"))
    assert slack["text"].startswith("[RESOLVED]")
    assert slack["attachments"][0]["color"] == "#2EB67D"
    assert notifier.next_due() is None
    assert notifier.firing() == []


def test_send_resolved_false_never_gets_resolutions_nor_a_message_of_resolutions_only() -> None:
    quiet_slack = RECEIVERS.replace('channel: "#risk"', 'channel: "#risk"\n    send_resolved: false')
    notifier = Notifier(config(quiet_slack, TREE), Silences())
    sol = fire("ExposureLimitBreach", "critical", T0, desk="desk-a", market="SOL-PERP")
    btc = fire("ExposureLimitBreach", "critical", T0, desk="desk-a", market="BTC-PERP")
    notifier.observe([sol, btc], T0)
    drive(notifier, T0, T0 + 30)
    notifier.observe([resolve(sol, T0 + 100), resolve(btc, T0 + 100)], T0 + 100)
    sent = drive(notifier, T0 + 100, T0 + 10 * 3600)
    assert by_queue(sent) == [(T0 + 330, "risk-webhook")]
    assert alert_statuses(sent[0][1].outgoing[0]) == [
        ("ExposureLimitBreach/desk-a", "resolved"),
        ("ExposureLimitBreach/desk-a", "resolved"),
    ]


def test_send_resolved_false_message_with_firing_alerts_leaves_the_resolved_ones_out() -> None:
    quiet_hook = RECEIVERS.replace(f"url: {HOOK_URL}", f"url: {HOOK_URL}\n    send_resolved: false")
    notifier = Notifier(config(quiet_hook, TREE), Silences())
    sol = fire("ExposureLimitBreach", "warning", T0, desk="desk-a", market="SOL-PERP")
    notifier.observe([sol], T0)
    drive(notifier, T0, T0 + 30)
    btc = fire("ExposureLimitBreach", "warning", T0 + 100, desk="desk-a", market="BTC-PERP")
    notifier.observe([resolve(sol, T0 + 100), btc], T0 + 100)
    ((t, due),) = drive(notifier, T0 + 100, T0 + 330)
    assert t == T0 + 330
    assert [a["labels"]["market"] for a in body(due.outgoing[0])["alerts"]] == ["BTC-PERP"]
    assert body(due.outgoing[0])["status"] == "firing"


def test_send_resolved_false_gets_no_message_when_one_of_its_alerts_resolves() -> None:
    quiet_hook = RECEIVERS.replace(f"url: {HOOK_URL}", f"url: {HOOK_URL}\n    send_resolved: false")
    notifier = Notifier(config(quiet_hook, TREE), Silences())
    sol = fire("ExposureLimitBreach", "warning", T0, desk="desk-a", market="SOL-PERP")
    btc = fire("ExposureLimitBreach", "warning", T0, desk="desk-a", market="BTC-PERP")
    notifier.observe([sol, btc], T0)
    drive(notifier, T0, T0 + 30)
    notifier.observe([resolve(sol, T0 + 100)], T0 + 100)
    assert drive(notifier, T0 + 100, T0 + 3000) == []


# Rendered bytes ----------------------------------------------------------------------------------


def test_webhook_outgoing_is_a_v4_payload_with_a_stable_idempotency_key_that_changes_on_repeat() -> None:
    def run() -> list[tuple[float, Due]]:
        notifier = Notifier(
            config(RECEIVERS, TREE, "delivery:\n  external_url: http://riskmon.example:9860\n"), Silences()
        )
        notifier.observe([fire("ExposureLimitBreach", "warning", T0, desk="desk-a", market="SOL-PERP")], T0)
        return drive(notifier, T0, T0 + 3630)

    first, again = run(), run()
    (t1, d1), (t2, d2) = first
    assert (t1, t2) == (T0 + 30, T0 + 3630)
    (out1,), (out2,) = d1.outgoing, d2.outgoing
    assert (out1.queue, out1.receiver) == ("risk-webhook", "risk-webhook")
    payload = body(out1)
    assert payload["version"] == "4"
    assert payload["status"] == "firing"
    assert payload["receiver"] == "risk-webhook"
    assert payload["truncatedAlerts"] == 0
    assert payload["externalURL"] == "http://riskmon.example:9860"
    assert payload["groupKey"] == out1.group_key
    assert payload["groupKey"].endswith(':{alertname="ExposureLimitBreach", desk="desk-a"}')
    assert payload["groupLabels"] == {"alertname": "ExposureLimitBreach", "desk": "desk-a"}
    assert payload["commonLabels"]["market"] == "SOL-PERP"
    (alert,) = payload["alerts"]
    assert alert["startsAt"] == "2023-11-14T22:13:20Z"
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["fingerprint"] == fingerprint(alert["labels"])
    # Same input, same key (a rebuilt notification dedupes); the repeat is a new message with a new key.
    assert [o.idempotency_key for _, d in again for o in d.outgoing] == [out1.idempotency_key, out2.idempotency_key]
    assert out1.idempotency_key != out2.idempotency_key
    # The receiver URL is a credential: it is not in the payload.
    assert HOOK_URL not in out1.payload.decode()
    assert "hook-token" not in out1.payload.decode()
    assert "slack-hook-token" not in json.dumps([body(o) for _, d in first for o in d.outgoing])


def test_webhook_max_alerts_truncates_and_counts_the_rest() -> None:
    capped = RECEIVERS.replace(f"url: {HOOK_URL}", f"url: {HOOK_URL}\n    max_alerts: 2")
    notifier = Notifier(config(capped, TREE), Silences())
    markets = ["SOL-PERP", "BTC-PERP", "ETH-PERP", "AVAX-PERP", "BNB-PERP"]
    notifier.observe([fire("ExposureLimitBreach", "warning", T0, desk="desk-a", market=m) for m in markets], T0)
    (out,) = notifier.due(T0 + 30).outgoing
    payload = body(out)
    assert len(payload["alerts"]) == 2
    assert payload["truncatedAlerts"] == 3
    assert [a["labels"]["market"] for a in payload["alerts"]] == markets[:2]


# Alertmanager receiver ---------------------------------------------------------------------------

AM = """\
receivers:
  am:
    kind: alertmanager
    urls: [http://127.0.0.1:9093, http://127.0.0.1:9094]
    resend_interval: 1m
"""


def test_alertmanager_gets_each_transition_at_once_per_replica_and_a_resend_of_all_firing() -> None:
    notifier = Notifier(config(AM, TREE.replace("risk-webhook", "am").replace("ops-slack", "am")), Silences())
    sol = fire("ExposureLimitBreach", "critical", T0, desk="desk-a", market="SOL-PERP")
    notifier.observe([sol], T0)
    assert notifier.next_due() == T0  # no group_wait: Alertmanager groups by itself
    out = notifier.due(T0).outgoing
    assert [o.queue for o in out] == ["am#0", "am#1"]
    assert out[0].payload == out[1].payload
    assert out[0].idempotency_key == out[1].idempotency_key
    assert out[0].receiver == "am"
    (posted,) = body(out[0])  # one alert, even though the route has `continue` to the same receiver
    assert posted["labels"]["market"] == "SOL-PERP"
    assert posted["startsAt"] == "2023-11-14T22:13:20Z"
    assert posted["endsAt"] == "2023-11-14T22:17:20Z"

    btc = fire("ExposureLimitBreach", "critical", T0 + 20, desk="desk-a", market="BTC-PERP")
    notifier.observe([btc], T0 + 20)
    assert notifier.next_due() == T0 + 20
    new = notifier.due(T0 + 20).outgoing
    assert [[a["labels"]["market"] for a in body(o)] for o in new] == [["BTC-PERP"], ["BTC-PERP"]]

    assert notifier.next_due() == T0 + 60
    resend = notifier.due(T0 + 60).outgoing
    assert [o.queue for o in resend] == ["am#0", "am#1"]
    assert sorted(a["labels"]["market"] for a in body(resend[0])) == ["BTC-PERP", "SOL-PERP"]
    assert {a["endsAt"] for a in body(resend[0])} == {"2023-11-14T22:18:20Z"}
    assert resend[0].idempotency_key != out[0].idempotency_key

    notifier.observe([resolve(sol, T0 + 90)], T0 + 90)
    gone = notifier.due(T0 + 90).outgoing
    assert [o.queue for o in gone] == ["am#0", "am#1"]
    assert gone[0].payload == gone[1].payload
    (alert,) = body(gone[0])
    assert alert["labels"]["market"] == "SOL-PERP"
    assert alert["endsAt"] == "2023-11-14T22:14:50Z"
    assert notifier.next_due() == T0 + 120
    assert [a["labels"]["market"] for a in body(notifier.due(T0 + 120).outgoing[0])] == ["BTC-PERP"]


def test_alertmanager_with_send_resolved_false_posts_no_resolution() -> None:
    quiet = AM.replace("resend_interval: 1m", "resend_interval: 1m\n    send_resolved: false")
    notifier = Notifier(config(quiet), Silences())
    sol = fire("ExposureLimitBreach", "critical", T0, desk="desk-a", market="SOL-PERP")
    notifier.observe([sol], T0)
    assert len(notifier.due(T0).outgoing) == 2
    notifier.observe([resolve(sol, T0 + 10)], T0 + 10)
    assert notifier.due(T0 + 10).outgoing == []
    assert drive(notifier, T0 + 10, T0 + 3600) == []


# Reload ------------------------------------------------------------------------------------------


def _reload_keeps_timers(tree: str) -> None:
    notifier = Notifier(config(RECEIVERS, tree), Silences())
    notifier.observe([fire("ExposureLimitBreach", "warning", T0, desk="desk-a", market="SOL-PERP")], T0)
    assert by_queue(drive(notifier, T0, T0 + 30)) == [(T0 + 30, "risk-webhook")]
    notifier.observe([fire("LiquidationSeen", "warning", T0 + 40, desk="desk-a")], T0 + 40)
    assert notifier.next_due() == T0 + 70  # the second group is in its group_wait
    notifier.reload(config(RECEIVERS, tree), T0 + 45)
    assert notifier.next_due() == T0 + 70
    sent = drive(notifier, T0 + 45, T0 + 3650)
    assert [(t, alert_statuses(o)) for t, d in sent for o in d.outgoing] == [
        (T0 + 70, [("LiquidationSeen/desk-a", "firing")]),
        (T0 + 3630, [("ExposureLimitBreach/desk-a", "firing")]),
    ]


def test_reload_with_identical_routes_keeps_group_timers_when_group_by_has_the_matched_labels() -> None:
    _reload_keeps_timers(TREE.replace("group_by: [alertname, desk]", "group_by: [alertname, desk, severity]"))


def test_reload_with_identical_routes_keeps_group_timers_when_matchers_use_labels_outside_group_by() -> None:
    _reload_keeps_timers(TREE)


# Severity in group_by too, so these trees also cover routes whose matchers are all group labels.
SEV_TREE = """\
routes:
  receiver: risk-webhook
  group_by: [alertname, desk, severity]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
  routes:
    - matchers: ['severity="critical"']
      receiver: ops-slack
      continue: true
    - matchers: ['severity=~"critical|warning"']
      receiver: risk-webhook
      continue: true
"""
SCREEN_ROUTE = """\
    - matchers: ['desk="desk-a"']
      receiver: desk-screen
"""
SCREEN = "  desk-screen:\n    kind: console\n"


def test_reload_drops_the_groups_of_a_removed_receiver_and_keeps_the_others() -> None:
    notifier = Notifier(config(RECEIVERS + SCREEN, SEV_TREE + SCREEN_ROUTE), Silences())
    crit = fire("ExposureLimitBreach", "critical", T0, desk="desk-a", market="SOL-PERP")
    notifier.observe([crit], T0)
    ((_, due),) = drive(notifier, T0, T0 + 30)
    assert sorted(o.queue for o in due.outgoing) == ["ops-slack", "risk-webhook"]
    assert len(due.console) == 1
    notifier.reload(config(RECEIVERS, SEV_TREE), T0 + 100)
    assert notifier.next_due() == T0 + 3630  # the kept groups' repeat, no re-send
    notifier.observe([resolve(crit, T0 + 200)], T0 + 200)
    sent = drive(notifier, T0 + 200, T0 + 10 * 3600)
    assert sorted(by_queue(sent)) == [(T0 + 330, "ops-slack"), (T0 + 330, "risk-webhook")]
    assert all(d.console == [] for _, d in sent)


def test_reload_adds_a_receiver_that_gets_new_alerts() -> None:
    notifier = Notifier(config(RECEIVERS, SEV_TREE), Silences())
    old = fire("ExposureLimitBreach", "warning", T0, desk="desk-a", market="SOL-PERP")
    notifier.observe([old], T0)
    drive(notifier, T0, T0 + 30)
    notifier.reload(config(RECEIVERS + SCREEN, SEV_TREE + SCREEN_ROUTE), T0 + 100)
    new = fire("LiquidationSeen", "warning", T0 + 200, desk="desk-a")
    notifier.observe([new], T0 + 200)
    sent = drive(notifier, T0 + 100, T0 + 3000)
    assert [t for t, _ in sent] == [T0 + 230]
    (due,) = [d for _, d in sent]
    assert [alert_statuses(o) for o in due.outgoing] == [[("LiquidationSeen/desk-a", "firing")]]
    assert len(due.console) == 1
    assert "LiquidationSeen" in due.console[0]


def test_reload_with_a_changed_route_re_routes_its_alerts() -> None:
    notifier = Notifier(config(RECEIVERS, SEV_TREE), Silences())
    crit = fire("ExposureLimitBreach", "critical", T0, desk="desk-a", market="SOL-PERP")
    notifier.observe([crit], T0)
    drive(notifier, T0, T0 + 30)
    # Critical now reaches Slack only for desk-b: desk-a's critical group has no route to Slack any more.
    changed = SEV_TREE.replace("""['severity="critical"']""", """['severity="critical"', 'desk="desk-b"']""")
    notifier.reload(config(RECEIVERS, changed), T0 + 100)
    sent = drive(notifier, T0 + 100, T0 + 3630)
    assert by_queue(sent) == [(T0 + 3630, "risk-webhook")]  # the kept webhook group repeats, Slack is gone
    notifier.observe([resolve(crit, T0 + 4000)], T0 + 4000)
    assert by_queue(drive(notifier, T0 + 4000, T0 + 9000)) == [(T0 + 4230, "risk-webhook")]


def test_reload_with_changed_matchers_sends_the_alerts_under_their_new_group_at_once() -> None:
    notifier = Notifier(config(RECEIVERS, SEV_TREE), Silences())
    crit = fire("ExposureLimitBreach", "critical", T0, desk="desk-a", market="SOL-PERP")
    notifier.observe([crit], T0)
    ((_, first),) = drive(notifier, T0, T0 + 30)
    slack_before = next(o for o in first.outgoing if o.queue == "ops-slack")
    widened = SEV_TREE.replace("""['severity="critical"']""", """['severity=~"critical|warning"']""")
    notifier.reload(config(RECEIVERS, widened), T0 + 100)
    due = notifier.due(T0 + 100)
    (slack,) = due.outgoing  # the webhook group is unchanged and keeps quiet
    assert slack.queue == "ops-slack"
    assert slack.group_key != slack_before.group_key
    assert slack.group_key.startswith('{}/{severity=~"critical|warning"}:')
    assert body(slack)["text"].startswith("[FIRING:1] ExposureLimitBreach critical")


PAGER = "  pager:\n    kind: webhook\n    url: http://127.0.0.1:9/pager\n"


def test_reload_that_changes_a_routes_receiver_tells_the_new_receiver() -> None:
    notifier = Notifier(config(RECEIVERS + PAGER, SEV_TREE), Silences())
    crit = fire("ExposureLimitBreach", "critical", T0, desk="desk-a", market="SOL-PERP")
    notifier.observe([crit], T0)
    drive(notifier, T0, T0 + 30)
    notifier.reload(config(RECEIVERS + PAGER, SEV_TREE.replace("receiver: ops-slack", "receiver: pager")), T0 + 100)
    assert by_queue(drive(notifier, T0 + 100, T0 + 100)) == [(T0 + 100, "pager")]


def test_reload_re_routing_to_a_new_alertmanager_receiver() -> None:
    notifier = Notifier(config(RECEIVERS, SEV_TREE), Silences())
    crit = fire("ExposureLimitBreach", "critical", T0, desk="desk-a", market="SOL-PERP")
    notifier.observe([crit], T0)
    drive(notifier, T0, T0 + 30)
    to_am = SEV_TREE.replace(
        """['severity="critical"']\n      receiver: ops-slack""", """['severity=~"critical"']\n      receiver: am"""
    )
    notifier.reload(config(RECEIVERS + AM.removeprefix("receivers:\n"), to_am), T0 + 100)
    assert [o.queue for o in notifier.due(T0 + 100).outgoing] == ["am#0", "am#1"]


def test_reload_removing_a_receiver_from_the_default_route_leaves_the_others_alone() -> None:
    notifier = Notifier(config(RECEIVERS), Silences())
    notifier.observe([fire("ExposureLimitBreach", "critical", T0, desk="desk-a", venue="mango")], T0)
    assert len(notifier.due(T0).outgoing) == 2
    only_hook = "receivers:\n  risk-webhook:\n    kind: webhook\n    url: http://127.0.0.1:9/hook\n"
    notifier.reload(config(only_hook), T0 + 100)
    assert notifier.next_due() == T0 + 4 * 3600
