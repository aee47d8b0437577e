"""The notifier across a restart: restored groups keep what they told their receiver (no repeat of
a firing notification, the resolution still goes out), and an alert muted before the restart whose
silence is gone goes out once the mutes are judged."""

from __future__ import annotations

import textwrap

from riskmon.alerts.silences import Silences
from riskmon.config.loader import parse_config
from riskmon.config.schema import MonitorConfig
from riskmon.notify.notifier import Notifier
from tests.notify.notifier_support import body, fire, resolve

T0 = 1_700_000_000.0
CONFIG = """\
venues:
  mango: {kind: mango_v3_fills, urls: ["ws://127.0.0.1:8790"]}
desks:
  desk-a: {accounts: {mango: [DMjLV5AdbdnAxEE9CCJYdzGhEDVAaKPJDRTZQ7kgMZwm]}}
receivers:
  hook: {kind: webhook, url: "http://127.0.0.1:9/hook"}
routes: {receiver: hook, group_by: [desk], group_wait: 0s, group_interval: 1m, repeat_interval: 1h}
"""


def config() -> MonitorConfig:
    return parse_config(textwrap.dedent(CONFIG), "monitor.yaml", {})


def test_restored_group_sends_no_repeat_and_then_the_resolution() -> None:
    before = Notifier(config(), Silences())
    before.restore([], [])
    alert = fire("ExposureLimitBreach", "critical", T0, desk="desk-a")
    before.observe([alert], T0)
    [sent] = before.due(T0).outgoing
    stored = [g for g in before.take_changes().values() if g is not None]

    after = Notifier(config(), Silences())
    after.restore(stored, [alert])
    after.mutes_changed(T0 + 5)
    assert after.due(T0 + 5).outgoing == []  # the receiver already heard it fire
    assert after.next_due() == T0 + 3600  # the repeat, on the restored grid
    after.observe([resolve(alert, T0 + 10)], T0 + 10)
    [resolved] = after.due(after.next_due() or 0.0).outgoing
    assert body(resolved)["status"] == "resolved"
    assert resolved.idempotency_key != sent.idempotency_key


def test_a_firing_alert_no_group_holds_goes_out_when_nothing_mutes_it_after_the_restart() -> None:
    alert = fire("FeedDown", "critical", T0, desk="desk-a")
    after = Notifier(config(), Silences())
    after.restore([], [alert])  # muted before the kill; the silence expired while riskmon was down
    assert after.due(T0 + 60).outgoing == []  # held until the mutes are judged (silences load first)
    after.mutes_changed(T0 + 60)
    [out] = after.due(T0 + 60).outgoing
    assert (body(out)["status"], body(out)["alerts"][0]["labels"]["alertname"]) == ("firing", "FeedDown")
