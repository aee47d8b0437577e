"""One configured rule's alerts: their labels, annotation templates and fingerprints.

Labels: alertname = the rule's name, severity, `rule`, `rule_kind` (threshold, event, rate,
absent), the group's labels (desk, venue, market...), then the rule's own `labels`.
Annotation templates substitute `{name}` from the labels and the rule's fields (`{value}`,
`{limit}`, `{count}`, `{window}`) with a plain regex: user text never reaches str.format, whose
attribute and index access would reach into objects. An unknown placeholder stays as written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping
from decimal import Decimal
from typing import Literal

from riskmon.alerts.fingerprints import fingerprint
from riskmon.alerts.lifecycle import AlertTracker, AlertTransition
from riskmon.config.alerting import RuleConfig

RuleKind = Literal["threshold", "event", "rate", "absent"]
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Label sets whose fingerprints are remembered; beyond, the cache starts over (it is only a cache).
_FINGERPRINTS_KEPT = 50_000

DEFAULT_SUMMARY: dict[RuleKind, str] = {
    "threshold": "{rule}: {value}",
    "event": "{rule}: {event} on {venue}",
    "rate": "{rule}: {count} {event} events within {window}",
    "absent": "{rule}: no {event} for {window}",
}


def render(template: str, fields: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: fields.get(m.group(1), m.group(0)), template)


def number(value: Decimal | float | int) -> str:
    """A value as an operator reads it: no exponent, no trailing zeros, at most 6 decimals."""
    if isinstance(value, float | int):
        value = Decimal(str(value))
    if not value.is_finite():
        return str(value)
    rounded = round(value, 6) if value.as_tuple().exponent < -6 else value  # type: ignore[operator]
    text = format(rounded.normalize(), "f") if rounded else "0"
    return text


def seconds(value: float) -> str:
    return f"{number(value)}s"


class RuleAlerts:
    def __init__(self, tracker: AlertTracker, rule: RuleConfig, kind: RuleKind, desk: str | None) -> None:
        self.tracker = tracker
        self.name = rule.name
        self.severity = rule.severity
        self._extra = dict(rule.labels)
        self._own = {"rule": rule.name, "rule_kind": kind}
        self._desk = desk
        self._templates = dict(rule.annotations)
        self._templates.setdefault("summary", DEFAULT_SUMMARY[kind])
        self._labels: dict[Hashable, tuple[dict[str, str], str]] = {}

    def labels(self, key: Hashable, group: Mapping[str, str]) -> tuple[dict[str, str], str]:
        """The alert labels of a group and their fingerprint, remembered per group key."""
        cached = self._labels.get(key)
        if cached is None:
            if len(self._labels) >= _FINGERPRINTS_KEPT:
                self._labels.clear()
            labels = {**self._extra, **group, **self._own}
            if self._desk is not None:
                labels["desk"] = self._desk
            full = {**labels, "alertname": self.name, "severity": self.severity}
            cached = self._labels[key] = (labels, fingerprint(full))
        return cached

    def is_active(self, key: Hashable, group: Mapping[str, str]) -> bool:
        return self.tracker.get(self.labels(key, group)[1]) is not None

    def annotations(self, labels: Mapping[str, str], fields: Mapping[str, str]) -> dict[str, str]:
        merged = {**labels, **fields}
        return {name: render(template, merged) for name, template in self._templates.items()}

    def observe(
        self,
        key: Hashable,
        group: Mapping[str, str],
        *,
        breached: bool,
        cleared: bool,
        fields: Callable[[], dict[str, str]],
        value: float | None,
        pending_for: float,
        now: float,
        resolution: Callable[[], str] | None = None,
    ) -> AlertTransition | None:
        """`resolution` words why the alert cleared; called only when it does."""
        labels, fp = self.labels(key, group)
        if not breached and self.tracker.get(fp) is None:
            return None  # nothing to start and nothing to clear: skip the annotation work
        return self.tracker.observe(
            self.name,
            self.severity,
            labels,
            breached=breached,
            cleared=cleared,
            value=value,
            annotations=lambda: self.annotations(labels, fields()),
            pending_for=pending_for,
            now=now,
            resolution=resolution() if cleared and resolution is not None else None,
            fp=fp,
        )

    def fire_event(
        self,
        key: Hashable,
        group: Mapping[str, str],
        fields: Mapping[str, str],
        *,
        resolve_after: float,
        value: float | None,
        now: float,
    ) -> AlertTransition | None:
        labels, _ = self.labels(key, group)
        return self.tracker.fire_event(
            self.name,
            self.severity,
            labels,
            self.annotations(labels, fields),
            resolve_after=resolve_after,
            now=now,
            value=value,
        )

    def resolve_all(self, now: float) -> list[AlertTransition]:
        """Resolve every active alert of this rule (it was removed or changed); pending ones just end."""
        own = {**self._own, **({"desk": self._desk} if self._desk is not None else {})}
        out: list[AlertTransition] = []
        for alert in self.tracker.active():
            labels = alert.labels
            if alert.alertname != self.name or any(labels.get(k) != v for k, v in own.items()):
                continue
            transition = self.tracker.end(
                alert.fingerprint, now, "its rule was changed or removed from the configuration"
            )
            if transition is not None:
                out.append(transition)
        self._labels.clear()
        return out
