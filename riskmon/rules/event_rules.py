"""Event rules: one alert per matching signal, firing at once and resolving by itself.

Also the signal filter every signal-driven rule (event, rate, absent) shares: a desk's own rule
sees only its desk's signals (or, for kinds without a desk, its venues'), then the `match`.
"""

from __future__ import annotations

from collections import Counter

from riskmon.alerts.lifecycle import AlertTracker, AlertTransition
from riskmon.config.alerting import EventRule, SignalKind
from riskmon.config.schema import MonitorConfig
from riskmon.rules import rule_parse
from riskmon.rules.conditions import Condition, EvaluationError, Numeric
from riskmon.rules.rule_alerts import RuleAlerts, number
from riskmon.rules.signals import Signal, default_group_by


class SignalFilter:
    def __init__(self, kind: SignalKind, match: str | None, desk: str | None) -> None:
        self.kind = kind
        self.match: Condition | None = rule_parse.signal_match(match, kind, ("match",))
        self.desk = desk
        self.venues: frozenset[str] = frozenset()
        # Signals a match could not decide on (a comparison of `value` on a kind without one).
        self.errors: Counter[str] = Counter()

    def bind(self, config: MonitorConfig) -> None:
        desk = config.desks.get(self.desk) if self.desk is not None else None
        self.venues = frozenset(desk.accounts) if desk is not None else frozenset()

    def admits(self, signal: Signal) -> bool:
        if self.desk is not None:
            owner = signal.labels.get("desk")
            if owner is not None and owner != self.desk:
                return False
            if owner is None and signal.venue not in self.venues:
                return False
        if self.match is None:
            return True
        values: dict[str, Numeric] = {} if signal.value is None else {rule_parse.SIGNAL_VALUE: signal.value}
        try:
            return self.match.evaluate(values, signal.labels)
        except EvaluationError as exc:
            self.errors[exc.kind] += 1
            return False


def signal_fields(signal: Signal) -> dict[str, str]:
    """What an annotation can say about a signal: its labels (reason included), kind and value."""
    return {**signal.labels, "event": signal.kind, "value": "" if signal.value is None else number(signal.value)}


class EventRuleHandler:
    kind = "event"

    def __init__(self, rule: EventRule, desk: str | None, config: MonitorConfig, tracker: AlertTracker) -> None:
        self.config = rule
        self.desk = desk
        self.events: frozenset[SignalKind] = frozenset((rule.event,))
        if rule.resolve_after is not None and rule.resolve_after <= 0:
            raise rule_parse.RuleProblem(("resolve_after",), "expected a positive duration")
        self.filter = SignalFilter(rule.event, rule.match, desk)
        self.group_by = default_group_by(rule.event)
        self.alerts = RuleAlerts(tracker, rule, "event", desk)
        self.bind(config)

    def bind(self, config: MonitorConfig) -> None:
        self.filter.bind(config)
        self.resolve_after = self.config.resolve_after or config.alerts.event_resolve_after

    def on_signal(self, signal: Signal, now: float) -> list[AlertTransition]:
        if not self.filter.admits(signal):
            return []
        key = tuple(signal.labels.get(label, "") for label in self.group_by)
        group = dict(zip(self.group_by, key, strict=True))
        transition = self.alerts.fire_event(
            key,
            group,
            signal_fields(signal),
            resolve_after=self.resolve_after,
            value=None if signal.value is None else float(signal.value),
            now=now,
        )
        return [] if transition is None else [transition]

    def retire(self, now: float) -> list[AlertTransition]:
        return self.alerts.resolve_all(now)
