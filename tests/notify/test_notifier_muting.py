"""The notifier's muting on virtual time: silences (active, expiring, pending, added late) and inhibition
(default FeedDown rule, a custom `equal`, turned off, source and target in one batch), for grouped
receivers and for the Alertmanager receiver.
"""

from __future__ import annotations

import pytest

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.alerts.silences import Silences
from riskmon.config.loader import parse_config
from riskmon.config.schema import MonitorConfig
from riskmon.notify.notifier import Due, Notifier
from tests.config.minimal_config import MINIMAL
from tests.notify.notifier_support import body, drive, fire, resolve

T0 = 1_700_000_000.0
WEBHOOK = """\
receivers:
  risk-webhook:
    kind: webhook
    url: http://127.0.0.1:9/hook
"""
BASE = MINIMAL + WEBHOOK

# group_wait 30s, so "at once" below is visibly earlier than a new group's wait.
ROUTE = """\
routes:
  receiver: risk-webhook
  group_by: [alertname, desk, venue]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
"""

AM = """\
  am:
    kind: alertmanager
    urls: [http://127.0.0.1:9093, http://127.0.0.1:9094]
    resend_interval: 1m
"""


def config(*sections: str) -> MonitorConfig:
    """BASE plus sections; a section that starts indented continues BASE's `receivers:`."""
    return parse_config(BASE + "".join(sections), "monitor.yaml", {})


def feed_down(venue: str, ts: float) -> AlertTransition:
    return fire("FeedDown", "critical", ts, venue=venue)


def no_fills(venue: str, ts: float, desk: str = "desk-a") -> AlertTransition:
    return fire("NoFills", "warning", ts, rule_kind="absent", venue=venue, desk=desk)


def sent_alerts(sent: list[tuple[float, Due]]) -> list[tuple[float, list[tuple[str, str]]]]:
    """(time, [(alertname/venue, status)]) of each webhook message."""
    return [
        (t, [(f"{a['labels']['alertname']}/{a['labels'].get('venue', '')}", a["status"]) for a in body(o)["alerts"]])
        for t, due in sent
        for o in due.outgoing
    ]


def silence(
    silences: Silences, matchers: list[str], now: float, ends_at: float, starts_at: float | None = None
) -> None:
    silences.add(matchers, starts_at=starts_at, ends_at=ends_at, created_by="oncall", comment="venue upgrade", now=now)


# Silences ----------------------------------------------------------------------------------------


def test_silenced_alert_is_held_back_and_goes_out_at_once_when_the_silence_expires() -> None:
    silences = Silences()
    notifier = Notifier(config(ROUTE), silences)
    silence(silences, ['venue="mango"'], T0, ends_at=T0 + 600)
    notifier.mutes_changed(T0)
    muted = fire("ExposureLimitBreach", "critical", T0 + 10, desk="desk-a", venue="mango")
    loud = fire("ExposureLimitBreach", "critical", T0 + 10, desk="desk-a", venue="phoenix")
    notifier.observe([muted, loud], T0 + 10)
    assert notifier.muted() == [muted]
    assert notifier.muted_total == 1
    assert {a.fingerprint for a in notifier.firing()} == {muted.fingerprint, loud.fingerprint}
    assert sent_alerts(drive(notifier, T0 + 10, T0 + 599)) == [(T0 + 40, [("ExposureLimitBreach/phoenix", "firing")])]
    # The notifier wakes itself at the silence's end; the alert, firing for longer than group_wait, goes at once.
    assert notifier.next_due() == T0 + 600
    assert sent_alerts(drive(notifier, T0 + 599, T0 + 600)) == [(T0 + 600, [("ExposureLimitBreach/mango", "firing")])]
    assert notifier.muted() == []


def test_alert_that_resolves_while_silenced_produces_nothing() -> None:
    silences = Silences()
    notifier = Notifier(config(AM, ROUTE), silences)
    silence(silences, ['venue="mango"'], T0, ends_at=T0 + 600)
    notifier.mutes_changed(T0)
    alert = fire("ExposureLimitBreach", "critical", T0 + 10, desk="desk-a", venue="mango")
    notifier.observe([alert], T0 + 10)
    notifier.observe([resolve(alert, T0 + 100)], T0 + 100)
    assert notifier.muted() == []
    assert notifier.firing() == []
    assert drive(notifier, T0, T0 + 10 * 3600) == []


def test_silence_added_after_notification_drops_the_alert_from_repeats_without_a_resolved_message() -> None:
    silences = Silences()
    notifier = Notifier(config(ROUTE), silences)
    mango = fire("ExposureLimitBreach", "critical", T0, desk="desk-a", venue="mango", market="SOL-PERP")
    mango_btc = fire("ExposureLimitBreach", "critical", T0, desk="desk-a", venue="mango", market="BTC-PERP")
    notifier.observe([mango, mango_btc], T0)
    assert [len(a) for _, a in sent_alerts(drive(notifier, T0, T0 + 30))] == [2]
    silence(silences, ['market="SOL-PERP"'], T0 + 100, ends_at=T0 + 86400)
    notifier.mutes_changed(T0 + 100)
    assert notifier.muted() == [mango]
    notifier.observe([resolve(mango, T0 + 200)], T0 + 200)
    sent = drive(notifier, T0 + 100, T0 + 3630)
    assert sent_alerts(sent) == [(T0 + 3630, [("ExposureLimitBreach/mango", "firing")])]
    assert [a["labels"]["market"] for a in body(sent[0][1].outgoing[0])["alerts"]] == ["BTC-PERP"]


def test_pending_silence_starts_muting_at_its_start() -> None:
    silences = Silences()
    notifier = Notifier(config(ROUTE), silences)
    alert = fire("ExposureLimitBreach", "critical", T0, desk="desk-a", venue="mango")
    notifier.observe([alert], T0)
    drive(notifier, T0, T0 + 30)
    silence(silences, ['venue="mango"'], T0 + 60, starts_at=T0 + 3000, ends_at=T0 + 5000)
    notifier.mutes_changed(T0 + 60)
    assert notifier.muted() == []
    assert notifier.next_due() == T0 + 3000
    assert drive(notifier, T0 + 60, T0 + 3000) == []
    assert notifier.muted() == [alert]
    # Muted over the 1h repeat (T0+3630); released at the end, and told again at once.
    assert notifier.next_due() == T0 + 5000
    assert sent_alerts(drive(notifier, T0 + 3000, T0 + 5000)) == [
        (T0 + 5000, [("ExposureLimitBreach/mango", "firing")])
    ]


def test_silenced_alert_is_not_posted_to_alertmanager_until_the_silence_ends() -> None:
    silences = Silences()
    notifier = Notifier(config(AM), silences)
    silence(silences, ['venue="mango"'], T0, ends_at=T0 + 600)
    notifier.mutes_changed(T0)
    alert = fire("ExposureLimitBreach", "critical", T0 + 10, desk="desk-a", venue="mango")
    notifier.observe([alert], T0 + 10)
    sent = drive(notifier, T0 + 10, T0 + 600)
    assert [(t, o.queue) for t, d in sent for o in d.outgoing if o.queue.startswith("am#")] == [
        (T0 + 600, "am#0"),
        (T0 + 600, "am#1"),
    ]


# Inhibition --------------------------------------------------------------------------------------


def test_feed_down_inhibits_the_absent_alerts_of_its_venue_only_and_releases_them_when_it_resolves() -> None:
    notifier = Notifier(config(ROUTE), Silences())
    down = feed_down("mango", T0)
    notifier.observe([down], T0)
    mango, phoenix = no_fills("mango", T0 + 5), no_fills("phoenix", T0 + 5)
    notifier.observe([mango, phoenix], T0 + 5)
    assert notifier.muted() == [mango]
    assert sent_alerts(drive(notifier, T0, T0 + 35)) == [
        (T0 + 30, [("FeedDown/mango", "firing")]),
        (T0 + 35, [("NoFills/phoenix", "firing")]),
    ]
    notifier.observe([resolve(down, T0 + 100)], T0 + 100)
    assert notifier.muted() == []
    assert sent_alerts(drive(notifier, T0 + 100, T0 + 330)) == [
        (T0 + 100, [("NoFills/mango", "firing")]),  # firing longer than group_wait: at once
        (T0 + 330, [("FeedDown/mango", "resolved")]),
    ]


def test_custom_inhibit_rule_with_equal_desk() -> None:
    rules = """\
inhibit_rules:
  - source_matchers: ['alertname="DeskKillSwitch"']
    target_matchers: ['severity="warning"']
    equal: [desk]
"""
    notifier = Notifier(config(ROUTE, rules), Silences())
    notifier.observe([fire("DeskKillSwitch", "critical", T0, desk="desk-a")], T0)
    a = fire("ExposureNearLimit", "warning", T0, desk="desk-a", venue="mango")
    b = fire("ExposureNearLimit", "warning", T0, desk="desk-b", venue="mango")
    notifier.observe([a, b], T0)
    assert notifier.muted() == [a]
    # The default FeedDown rule is replaced, not added to (desk-b: outside the custom rule's reach).
    notifier.observe([feed_down("mango", T0), no_fills("mango", T0, desk="desk-b")], T0)
    assert notifier.muted() == [a]


def test_empty_inhibit_rules_turn_inhibition_off() -> None:
    notifier = Notifier(config(ROUTE, "inhibit_rules: []\n"), Silences())
    notifier.observe([feed_down("mango", T0), no_fills("mango", T0)], T0)
    assert notifier.muted() == []
    assert sent_alerts(drive(notifier, T0, T0 + 30)) == [
        (T0 + 30, [("FeedDown/mango", "firing")]),
        (T0 + 30, [("NoFills/mango", "firing")]),
    ]


@pytest.mark.parametrize("source_first", [True, False])
def test_target_in_the_same_batch_as_its_source_is_inhibited_in_either_order(source_first: bool) -> None:
    notifier = Notifier(config(ROUTE), Silences())
    down, mango = feed_down("mango", T0), no_fills("mango", T0)
    notifier.observe([down, mango] if source_first else [mango, down], T0)
    assert notifier.muted() == [mango]
    assert sent_alerts(drive(notifier, T0, T0 + 3000)) == [(T0 + 30, [("FeedDown/mango", "firing")])]


@pytest.mark.parametrize(
    "source_first",
    [
        True,
        False,
    ],
)
def test_alertmanager_target_in_the_same_batch_as_its_source_is_inhibited_in_either_order(source_first: bool) -> None:
    notifier = Notifier(config(AM), Silences())
    down, mango = feed_down("mango", T0), no_fills("mango", T0)
    notifier.observe([down, mango] if source_first else [mango, down], T0)
    posted = [
        (t, o.queue, [a["labels"]["alertname"] for a in body(o)])
        for t, d in drive(notifier, T0, T0 + 60)
        for o in d.outgoing
        if o.queue == "am#0"
    ]
    assert posted == [(T0, "am#0", ["FeedDown"]), (T0 + 60, "am#0", ["FeedDown"])]
