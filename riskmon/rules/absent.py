"""Absent rules: a group that has been seen (or is expected) goes quiet for `for`.

Each group has one DeadlineHeap key at last_seen + for. A signal only moves last_seen; the key is
re-armed when it falls due early, so a busy group costs one heap entry, not one per signal. At
the deadline the alert fires if `while` holds (a state condition, e.g. `venue.open_orders > 0`);
if it does not, the group is re-judged at each evaluation tick. The next matching signal
resolves it. A group never seen and not listed in `expect` never fires.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable

from riskmon.alerts.lifecycle import AlertTracker, AlertTransition
from riskmon.config.alerting import AbsentRule, SignalKind
from riskmon.config.schema import MonitorConfig
from riskmon.engine.deadlines import DeadlineHeap
from riskmon.rules import rule_parse
from riskmon.rules.conditions import Condition, EvaluationError
from riskmon.rules.event_rules import SignalFilter
from riskmon.rules.rule_alerts import RuleAlerts, number, seconds
from riskmon.rules.signals import Signal
from riskmon.rules.state_values import SCOPE_LABELS, MonitorState, Scope, ScopeKey

KIND = "rule-absent"
MAX_GROUPS = 10_000
GroupKey = tuple[str, ...]


class _Watch:
    __slots__ = ("firing", "last_seen")

    def __init__(self, last_seen: float) -> None:
        self.last_seen = last_seen
        self.firing = False


class AbsentRuleHandler:
    kind = "absent"

    def __init__(
        self,
        rule: AbsentRule,
        desk: str | None,
        config: MonitorConfig,
        tracker: AlertTracker,
        deadlines: DeadlineHeap,
        rule_id: Hashable,
    ) -> None:
        self.config = rule
        self.desk = desk
        self.events: frozenset[SignalKind] = frozenset((rule.event,))
        if rule.pending_for <= 0:
            raise rule_parse.RuleProblem(("for",), "expected a positive duration")
        self.filter = SignalFilter(rule.event, rule.match, desk)
        self.group_by = rule_parse.group_by(rule.group_by, rule.event, ("group_by",))
        self.while_: Condition | None = None
        self.scope: Scope = "firm"
        if rule.while_ is not None:
            self.while_ = self._parse_while(rule.while_)
        self.expected = [self._expected(index, labels) for index, labels in enumerate(rule.expect)]
        self.alerts = RuleAlerts(tracker, rule, "absent", desk)
        self._deadlines = deadlines
        self._id = rule_id
        self._groups: dict[GroupKey, _Watch] = {}
        self._waiting: set[GroupKey] = set()  # due, but `while` did not hold
        self.dropped = 0
        self.errors: Counter[str] = Counter()
        self.bind(config)

    def _parse_while(self, text: str) -> Condition:
        cond = rule_parse.condition(text, ("while",))
        self.scope = rule_parse.state_scope([(text, ("while",), cond.names)])
        available = set(self.group_by) | ({"desk"} if self.desk else set())
        for label in SCOPE_LABELS[self.scope]:
            if label not in available:
                raise rule_parse.RuleProblem(
                    ("while",), f"a {self.scope}-scope condition needs {label!r} in group_by to know which {label}"
                )
        rule_parse.check_labels(cond, text, ("while",), tuple(sorted(available)), "this rule's groups")
        return cond

    def _expected(self, index: int, labels: dict[str, str]) -> GroupKey:
        if set(labels) != set(self.group_by):
            raise rule_parse.RuleProblem(
                ("expect", index), f"expected exactly the group_by labels ({', '.join(self.group_by)})"
            )
        if self.desk is not None and labels.get("desk", self.desk) != self.desk:
            raise rule_parse.RuleProblem(("expect", index, "desk"), f"this rule belongs to desk {self.desk!r}")
        return tuple(labels[label] for label in self.group_by)

    def bind(self, config: MonitorConfig) -> None:
        self.filter.bind(config)

    @property
    def judges_state(self) -> bool:
        return self.while_ is not None

    def start(self, now: float) -> None:
        """Arm the expected groups not yet seen: they fire `for` after the start if never seen."""
        for group in self.expected:
            if group not in self._groups:
                self._groups[group] = _Watch(now)
                self._deadlines.schedule((KIND, self._id, group), now + self.config.pending_for)

    def on_signal(self, signal: Signal, now: float) -> list[AlertTransition]:
        if not self.filter.admits(signal):
            return []
        key = tuple(signal.labels.get(label, "") for label in self.group_by)
        watch = self._groups.get(key)
        if watch is None:
            if len(self._groups) >= MAX_GROUPS:
                self.dropped += 1
                return []
            self._groups[key] = _Watch(now)
            self._deadlines.schedule((KIND, self._id, key), now + self.config.pending_for)
            return []
        watch.last_seen = now
        if key in self._waiting:
            self._waiting.discard(key)
            self._deadlines.schedule((KIND, self._id, key), now + self.config.pending_for)
        if not watch.firing:
            return []  # the armed key re-arms itself when it falls due early
        watch.firing = False
        self._deadlines.schedule((KIND, self._id, key), now + self.config.pending_for)
        return self._observe(key, watch, breached=False, now=now)

    def on_deadline(self, group: GroupKey, due: float, state: MonitorState | None) -> list[AlertTransition]:
        watch = self._groups.get(group)
        if watch is None or watch.firing:
            return []
        quiet_until = watch.last_seen + self.config.pending_for
        if quiet_until > due:
            self._deadlines.schedule((KIND, self._id, group), quiet_until)
            return []
        if not self._while_holds(group, state, due):
            self._waiting.add(group)
            return []
        watch.firing = True
        return self._observe(group, watch, breached=True, now=due)

    def on_tick(self, state: MonitorState, now: float) -> list[AlertTransition]:
        """Re-judge the groups that fell due while `while` did not hold."""
        out: list[AlertTransition] = []
        for group in sorted(self._waiting):
            if self._while_holds(group, state, now):
                self._waiting.discard(group)
                watch = self._groups[group]
                watch.firing = True
                out.extend(self._observe(group, watch, breached=True, now=now))
        return out

    def _while_holds(self, group: GroupKey, state: MonitorState | None, now: float) -> bool:
        if self.while_ is None:
            return True
        if state is None:
            return False
        labels = dict(zip(self.group_by, group, strict=True))
        if self.desk is not None:
            labels["desk"] = self.desk
        key = ScopeKey()
        if self.scope == "desk":
            key = ScopeKey(desk=labels["desk"])
        elif self.scope == "market":
            venue = labels.get("venue")
            market = labels["market"]
            key = ScopeKey(labels["desk"], state.book.instrument(venue, market) if venue else market)
        elif self.scope == "venue":
            key = ScopeKey(venue=labels["venue"])
        try:
            return self.while_.evaluate(state.values(self.while_.names, key, now), labels)
        except EvaluationError as exc:
            self.errors[exc.kind] += 1
            return False

    def _observe(self, group: GroupKey, watch: _Watch, *, breached: bool, now: float) -> list[AlertTransition]:
        labels = dict(zip(self.group_by, group, strict=True))
        quiet = now - watch.last_seen
        transition = self.alerts.observe(
            group,
            labels,
            breached=breached,
            cleared=not breached,
            fields=lambda: {
                "value": number(quiet),
                "window": seconds(self.config.pending_for),
                "event": self.config.event,
            },
            value=quiet,
            pending_for=0.0,
            now=now,
        )
        return [] if transition is None else [transition]

    def retire(self, now: float) -> list[AlertTransition]:
        for group in self._groups:
            self._deadlines.cancel((KIND, self._id, group))
        self._groups.clear()
        self._waiting.clear()
        return self.alerts.resolve_all(now)
