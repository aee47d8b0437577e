"""A resolved alert carries the annotations it last fired with (Prometheus' behaviour), not a text
worded from the value that cleared it, plus one `resolution` annotation saying what it cleared at:
through the real engine's limit evaluation, and in the Alertmanager v4 webhook payload the notifier
renders for the receiver."""

from __future__ import annotations

import json
from decimal import Decimal

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.alerts.silences import Silences
from riskmon.engine.engine import Engine
from riskmon.events import QuoteStatus
from riskmon.notify.notifier import Notifier
from tests.rules.conftest import T0, desks_with, make_config
from tests.watchdogs.conftest import TOT, quote

LIMITS = """
limits:
  max_pending_rfq_usd: 1000
  warn_at: 0.8
  clear_at: 0.95
"""
DELIVERY = """
receivers:
  risk-webhook:
    kind: webhook
    url: http://127.0.0.1:9/hook
routes:
  receiver: risk-webhook
  group_by: [alertname, desk]
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 1h
"""


def limit_alerts(transitions: list[AlertTransition]) -> dict[tuple[str, str], AlertTransition]:
    return {(t.status, t.severity): t for t in transitions if t.alertname == "ExposureLimitBreach"}


def annotations_at(value: str, severity: str, threshold: str) -> dict[str, str]:
    clears = {"warning": "$760", "critical": "$950"}[severity]
    percent = int(value.replace(",", "")) // 10
    return {
        "summary": f"Desk alpha pending RFQ exposure is ${value}, {percent}% of its $1,000 limit",
        "description": f"Desk alpha pending RFQ exposure reached ${value} against a limit of $1,000 "
        f"({severity} at {threshold}, clears below {clears}).",
        "value": f"{value.replace(',', '')}.00",
        "limit": "1000.00",
    }


RESOLUTION = "back to $200.00 against the $1,000.00 limit"


def test_a_limit_alert_resolves_with_its_last_firing_annotations_in_the_engine_and_the_webhook() -> None:
    engine = Engine(make_config(DELIVERY, desks=desks_with(alpha=LIMITS)))
    notifier = Notifier(engine.config, Silences())
    deadline = T0 + 3600
    q1 = quote("q1", rfq_id="r1", deadline=deadline, worst_case_loss_usd=Decimal(850))
    q2 = quote("q2", rfq_id="r2", deadline=deadline, worst_case_loss_usd=Decimal(200))
    fired = limit_alerts(engine.ingest(TOT, [q1], T0))
    assert fired[("firing", "warning")].annotations == annotations_at("850", "warning", "$800")  # no resolution
    notifier.observe(fired.values(), T0)
    assert len(notifier.due(T0).outgoing) == 1  # the receiver hears the warning fire
    fired = limit_alerts(engine.ingest(TOT, [q2], T0 + 1))  # 1,050: critical too; the warning is re-worded
    notifier.observe(fired.values(), T0 + 1)
    assert len(notifier.due(T0 + 60).outgoing) == 1  # and then the critical one
    (active_warning,) = [a for a in engine.alerts.active() if a.severity == "warning"]
    assert active_warning.annotations == annotations_at("1,050", "warning", "$800")

    # q1 confirms: 200 pending, under both clear levels.
    resolved = limit_alerts(engine.ingest(TOT, [quote("q1", QuoteStatus.CONFIRMED, rfq_id="r1")], T0 + 62))
    warning, critical = resolved[("resolved", "warning")], resolved[("resolved", "critical")]
    assert warning.annotations == {**annotations_at("1,050", "warning", "$800"), "resolution": RESOLUTION}
    assert critical.annotations == {**annotations_at("1,050", "critical", "$1,000"), "resolution": RESOLUTION}
    assert warning.value == 200.0  # the value that cleared it is still reported as the value

    notifier.observe(resolved.values(), T0 + 62)
    (out,) = notifier.due(T0 + 120).outgoing
    payload = json.loads(out.payload)
    assert payload["status"] == "resolved"
    by_severity = {a["labels"]["severity"]: a for a in payload["alerts"]}
    for severity, threshold in (("warning", "$800"), ("critical", "$1,000")):
        expected = {**annotations_at("1,050", severity, threshold), "resolution": RESOLUTION}
        assert by_severity[severity]["annotations"] == dict(sorted(expected.items()))
    assert {a["status"] for a in payload["alerts"]} == {"resolved"}
    assert payload["commonAnnotations"] == {
        "limit": "1000.00",
        "resolution": RESOLUTION,
        "summary": "Desk alpha pending RFQ exposure is $1,050, 105% of its $1,000 limit",
        "value": "1050.00",
    }
