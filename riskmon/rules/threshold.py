"""Threshold rules: a condition on monitor state, per desk, (desk, instrument), venue or firm-wide.

`when` starts an alert (held `for` before it fires), `clear` ends it (default: `when` no longer
holds), so a value oscillating around its line does not flap. A key whose values cannot be
evaluated (no mark yet, a division by zero) gets no decision: counted, neither fired nor resolved.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from riskmon.alerts.lifecycle import AlertTracker, AlertTransition
from riskmon.config.alerting import ThresholdRule
from riskmon.config.schema import MonitorConfig
from riskmon.rules import rule_parse
from riskmon.rules.conditions import EvaluationError, Expression, Numeric
from riskmon.rules.rule_alerts import RuleAlerts, number
from riskmon.rules.state_values import SCOPE_LABELS, STATE_NAMES, Getter, MonitorState, ScopeKey, scope_keys


@dataclass(slots=True)
class Touched:
    """What one ingest changed, so only the rule keys it can affect are evaluated."""

    desks: set[str] = field(default_factory=set)
    markets: set[tuple[str, str]] = field(default_factory=set)  # (desk, instrument)
    venues: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.desks or self.markets or self.venues)

    def clear(self) -> None:
        # Most ingests touch one kind of key: only a set that holds something is cleared.
        if self.desks:
            self.desks.clear()
        if self.markets:
            self.markets.clear()
        if self.venues:
            self.venues.clear()


class ThresholdEvaluator:
    kind = "threshold"

    def __init__(self, rule: ThresholdRule, desk: str | None, config: MonitorConfig, tracker: AlertTracker) -> None:
        self.config = rule
        self.desk = desk
        self.when = rule_parse.condition(rule.when, ("when",))
        self.clear = None if rule.clear is None else rule_parse.condition(rule.clear, ("clear",))
        first = rule_parse.first_comparison(self.when)
        self.value: Expression | None = first.left if first is not None else None
        if rule.value is not None:
            self.value = rule_parse.expression(rule.value, ("value",))
        self.limit: Expression | None = first.right if first is not None else None
        parts = [(rule.when, ("when",), self.when.names)]
        if self.clear is not None and rule.clear is not None:
            parts.append((rule.clear, ("clear",), self.clear.names))
        if self.value is not None and rule.value is not None:
            parts.append((rule.value, ("value",), self.value.names))
        self.scope = rule_parse.state_scope(parts)
        labels = tuple(dict.fromkeys((*SCOPE_LABELS[self.scope], *(("desk",) if desk else ()))))
        rule_parse.check_labels(self.when, rule.when, ("when",), labels, f"{self.scope}-scope state")
        if self.clear is not None and rule.clear is not None:
            rule_parse.check_labels(self.clear, rule.clear, ("clear",), labels, f"{self.scope}-scope state")
        self.names = self.when.names | (self.clear.names if self.clear else frozenset())
        self.names |= (self.value.names if self.value else frozenset()) | (
            self.limit.names if self.limit else frozenset()
        )
        self.alerts = RuleAlerts(tracker, rule, "threshold", desk)
        self.errors: Counter[str] = Counter()
        # Each key's values and labels when last judged, so an ingest that touched a key without
        # moving what the rule reads costs a comparison. Keys are bounded by desks x instruments.
        self._judged: dict[ScopeKey, tuple[dict[str, Numeric], dict[str, str]]] = {}
        # The state readers of the rule's names, looked up once rather than per key and step.
        self._getters: tuple[tuple[str, Getter], ...] = tuple((name, STATE_NAMES[name]) for name in sorted(self.names))
        self._when = self.when.compiled()
        self._clear = None if self.clear is None else self.clear.compiled()
        self._value = None if self.value is None else self.value.compiled()
        # Market keys by (desk, instrument), so a touched cell costs a lookup, not a new key.
        self._market_keys: dict[tuple[str, str], ScopeKey] = {}
        self.bind(config)

    def bind(self, config: MonitorConfig) -> None:
        """Follow the desks and venues of a (re)loaded config; the rule's alert state is untouched."""
        if self.desk is None:
            self.desks = frozenset(config.desks)
            self.venues = frozenset(config.venues)
        else:
            desk = config.desks.get(self.desk)
            self.desks = frozenset((self.desk,))
            self.venues = frozenset(desk.accounts if desk is not None else ())

    def evaluate(self, state: MonitorState, touched: Touched | None, now: float) -> list[AlertTransition]:
        """Evaluate every key (`touched` None: the evaluation tick, a reload) or only the keys an
        ingest touched whose values moved since they were last judged."""
        out: list[AlertTransition] = []
        if touched is not None and self.scope == "market":
            # The hot case, a price or fill that moved a desk's net: no list of keys built.
            cells, desks, keys = touched.markets, self.desks, self._market_keys
            for cell in cells if len(cells) < 2 else sorted(cells):
                if cell[0] in desks:
                    transition = self._evaluate_key(state, keys.get(cell) or self._market_key(cell), now, False)
                    if transition is not None:
                        out.append(transition)
            return out
        for key in self._keys(state, touched):
            transition = self._evaluate_key(state, key, now, touched is None)
            if transition is not None:
                out.append(transition)
        return out

    def _keys(self, state: MonitorState, touched: Touched | None) -> Iterable[ScopeKey]:
        if touched is None:
            return scope_keys(self.scope, state, sorted(self.desks), sorted(self.venues))
        if self.scope == "firm":
            return [ScopeKey()] if touched.desks or touched.markets else []
        if self.scope == "venue":
            return [ScopeKey(venue=v) for v in sorted(touched.venues & self.venues)]
        desks = touched.desks | {desk for desk, _ in touched.markets}
        return [ScopeKey(desk=d) for d in sorted(desks & self.desks)]

    def _market_key(self, cell: tuple[str, str]) -> ScopeKey:
        key = self._market_keys.get(cell)
        if key is None:
            # Bounded like _judged: by the (desk, instrument) cells the desks have held.
            key = self._market_keys[cell] = ScopeKey(*cell)
        return key

    def _evaluate_key(self, state: MonitorState, key: ScopeKey, now: float, full: bool) -> AlertTransition | None:
        values: dict[str, Numeric] = {}
        for name, getter in self._getters:
            reading = getter(state, key, now)
            if reading is not None:
                values[name] = reading
        judged = self._judged.get(key)
        if judged is not None:
            if not full and judged[0] == values:
                # The same values give the same decision, and observing it again changes nothing.
                return None
            group = judged[1]
        else:
            group = key.labels()
        try:
            if values.keys() >= self.names:
                # Every name has its value (the usual case): checked once here, not per part.
                breached = self._when(values, group)
                cleared = self._clear(values, group) if self._clear is not None else not breached
                value = self._value(values) if self._value is not None else None
            else:
                breached = self.when.evaluate(values, group)
                cleared = self.clear.evaluate(values, group) if self.clear is not None else not breached
                value = self.value.value(values) if self.value is not None else None
        except EvaluationError as exc:
            # Not remembered: a key that cannot be evaluated is counted each time it is touched.
            self._judged.pop(key, None)
            self.errors[exc.kind] += 1
            return None
        self._judged[key] = (values, group)
        if not breached and not self.alerts.is_active(key, group):
            return None  # nothing to start and nothing to clear: no wording to prepare

        def fields() -> dict[str, str]:
            out = {"value": number(value) if value is not None else ""}
            if self.limit is not None:
                # {limit} stays as written rather than showing a guess.
                with contextlib.suppress(EvaluationError):
                    out["limit"] = number(self.limit.value(values))
            return out

        def resolution() -> str:
            return self._resolution(values, value)

        return self.alerts.observe(
            key,
            group,
            breached=breached,
            cleared=cleared,
            fields=fields,
            value=float(value) if isinstance(value, Decimal) else None,
            pending_for=self.config.pending_for,
            now=now,
            resolution=resolution,
        )

    def _resolution(self, values: dict[str, Numeric], value: Numeric | None) -> str:
        """Why the alert cleared: the value it cleared at, against the threshold it is compared with."""
        if value is None:
            return f"{self.config.clear} holds" if self.config.clear else f"{self.config.when} no longer holds"
        if self.config.value is None and self.limit is not None:
            # The value is the left side of `when`'s first comparison, so its right side is the threshold.
            with contextlib.suppress(EvaluationError):
                return f"back to {number(value)} against the threshold of {number(self.limit.value(values))}"
        return f"cleared at {number(value)}"

    def retire(self, now: float) -> list[AlertTransition]:
        return self.alerts.resolve_all(now)
