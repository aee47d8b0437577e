"""The typed shape of monitor.yaml's alerting sections: rules, routes, receivers, inhibit_rules, delivery.

Conditions, matchers and routes are kept as the text the operator wrote; they are parsed (and
their errors located) once at load by the rules and alerts layers, never evaluated as Python.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from riskmon.config.types import Duration, Secret

Severity = Literal["info", "warning", "critical"]

# What an event, rate or absent rule can count. Each kind comes with the labels its events carry
# (riskmon.rules.signals documents them); `match` conditions and `group_by` use those labels.
SignalKind = Literal[
    "fill",
    "fill_revoked",
    "liquidation",
    "order_rejected",
    "position_error",
    "subscription_error",
    "sequence_gap",
    "reconnect",
    "feed_down",
    "feed_up",
    "mark",
    "heartbeat",
    "malformed",
    "quote_accepted",
    "trade",
]


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class _Rule(_Section, tag_field="kind", kw_only=True):
    # The alertname; also the `rule` label, so two rules never share alerts.
    name: str
    severity: Severity = "warning"
    # Extra labels on every alert of the rule (route on them: team, runbook...).
    labels: dict[str, str] = {}
    # Templates: `{value}`, `{limit}`, `{count}` and any label (`{desk}`, `{venue}`, `{market}`).
    annotations: dict[str, str] = {}


class ThresholdRule(_Rule, tag="threshold", kw_only=True):
    # A condition on monitor state; its names say the scope (desk.*, market.*, venue.*, firm.*),
    # and the rule is evaluated once per desk, (desk, market) or venue accordingly.
    when: str
    # The alert resolves only when this holds (hysteresis). Default: `when` no longer holds.
    clear: str | None = None
    # The number shown as {value}; default: the left side of the first comparison in `when`.
    value: str | None = None
    pending_for: Duration = msgspec.field(default=Duration(0.0), name="for")


class EventRule(_Rule, tag="event", kw_only=True):
    event: SignalKind
    # A condition on the event's labels and value, e.g. `reason =~ "insufficient.*"`.
    match: str | None = None
    # Default: alerts.event_resolve_after.
    resolve_after: Duration | None = None


class RateRule(_Rule, tag="rate", kw_only=True):
    event: SignalKind
    match: str | None = None
    window: Duration
    # Fires when more than `above` matching events fall within `window` for one group.
    above: int
    # Resolves once the count is at or below this (default: `above`), for hysteresis.
    clear_at: int | None = None
    # Default: every label the event kind carries except its free-text ones (reason...).
    group_by: list[str] | None = None


class AbsentRule(_Rule, tag="absent", kw_only=True):
    event: SignalKind
    match: str | None = None
    # Fires when a group seen before has had no matching event for this long.
    pending_for: Duration = msgspec.field(name="for")
    group_by: list[str] | None = None
    # Only judge absence while this state condition holds (e.g. `venue.open_orders > 0`).
    while_: str | None = msgspec.field(default=None, name="while")
    # Groups expected from the start, before any event: label sets such as {venue: mango, market: SOL-PERP}.
    expect: list[dict[str, str]] = []


RuleConfig = ThresholdRule | EventRule | RateRule | AbsentRule


class _Receiver(_Section, tag_field="kind", kw_only=True):
    # Tell the receiver when an alert it was told about resolves.
    send_resolved: bool = True


class ConsoleReceiver(_Receiver, tag="console", kw_only=True):
    pass


class WebhookReceiver(_Receiver, tag="webhook", kw_only=True):
    # A secret: webhook URLs often carry a token in their path.
    url: Secret
    # Adds X-Riskmon-Signature (HMAC-SHA256 of "<unix time>.<body>") when set.
    hmac_secret: Secret | None = None
    timeout: Duration = Duration(5.0)
    max_concurrency: int = 4
    # Alerts in one message; the rest are counted in truncatedAlerts, as Alertmanager does.
    max_alerts: int = 0


class SlackReceiver(_Receiver, tag="slack", kw_only=True):
    # The incoming-webhook URL is the credential.
    webhook_url: Secret
    channel: str | None = None
    timeout: Duration = Duration(5.0)
    max_concurrency: int = 1


class AlertmanagerReceiver(_Receiver, tag="alertmanager", kw_only=True):
    # Every replica of an Alertmanager cluster gets every push, as Prometheus does.
    urls: list[str]
    # Firing alerts are pushed again this often, or Alertmanager resolves them by itself.
    resend_interval: Duration = Duration(60.0)
    timeout: Duration = Duration(5.0)
    max_concurrency: int = 2


ReceiverConfig = ConsoleReceiver | WebhookReceiver | SlackReceiver | AlertmanagerReceiver


class InhibitRuleConfig(_Section):
    source_matchers: list[str]
    target_matchers: list[str]
    equal: list[str] = []


# A feed that is down makes every "no X for N seconds" alert on that venue a consequence, not news.
DEFAULT_INHIBIT_RULES = [
    InhibitRuleConfig(
        source_matchers=['alertname="FeedDown"'],
        target_matchers=['rule_kind="absent"'],
        equal=["venue"],
    )
]


class DeliveryConfig(_Section):
    # externalURL in webhook payloads and the link in Slack messages.
    external_url: str = ""
    retry_initial: Duration = Duration(1.0)
    retry_max: Duration = Duration(300.0)
    # A receiver's Retry-After is honoured up to this long.
    retry_after_cap: Duration = Duration(900.0)
    # An undelivered notification is dead-lettered (and counted) only after this long.
    dead_letter_after: Duration = Duration(86400.0)
    # Delivered and dead notifications are kept this long for inspection, then pruned.
    keep_delivered: Duration = Duration(7 * 86400.0)
    # How an outbox commit is made durable before its notification may be sent: `normal` survives a
    # crash of riskmon (the WAL write is in the OS); `full` also survives power loss (an fsync per
    # batch of notifications, 1-4 ms on common disks, which then bounds alert latency).
    outbox_sync: Literal["normal", "full"] = "normal"


def default_route(receivers: dict[str, Any]) -> dict[str, Any]:
    """The route used when none is configured: everything to every receiver, critical at once."""
    names = sorted(receivers)
    return {
        "receiver": names[0],
        "group_by": ["alertname", "desk", "venue"],
        "group_wait": "0s",
        "group_interval": "30s",
        "repeat_interval": "4h",
        "routes": [{"receiver": name, "continue": True} for name in names],
    }
