"""Rate rules: more than `above` matching signals within a sliding `window`, per group.

A signal at time t counts until t + window. Each group keeps only its newest `above` + 1 times:
that is enough to know the count exceeds `above`, and, since `clear_at` <= `above`, to know the
exact moment it falls back to `clear_at` (when the (clear_at + 1)-th newest leaves the window).
That moment is one DeadlineHeap key per firing group, re-armed when it falls due, so a burst of
signals costs no heap churn and nothing is ever polled.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

from riskmon.alerts.lifecycle import AlertTracker, AlertTransition
from riskmon.config.alerting import RateRule, SignalKind
from riskmon.config.schema import MonitorConfig
from riskmon.engine.deadlines import DeadlineHeap
from riskmon.rules import rule_parse
from riskmon.rules.event_rules import SignalFilter
from riskmon.rules.rule_alerts import RuleAlerts, seconds
from riskmon.rules.signals import Signal

KIND = "rule-rate"
# Groups per rule; signals of a new group beyond it are counted in `dropped`, not tracked.
MAX_GROUPS = 10_000
GroupKey = tuple[str, ...]


class _Window:
    __slots__ = ("firing", "times")

    def __init__(self, size: int) -> None:
        self.times: deque[float] = deque(maxlen=size)
        self.firing = False


class RateRuleHandler:
    kind = "rate"

    def __init__(
        self,
        rule: RateRule,
        desk: str | None,
        config: MonitorConfig,
        tracker: AlertTracker,
        deadlines: DeadlineHeap,
        rule_id: Hashable,
    ) -> None:
        self.config = rule
        self.desk = desk
        self.events: frozenset[SignalKind] = frozenset((rule.event,))
        if rule.window <= 0:
            raise rule_parse.RuleProblem(("window",), "expected a positive duration")
        if rule.above < 0:
            raise rule_parse.RuleProblem(("above",), "expected a count of 0 or more")
        self.clear_at = rule.above if rule.clear_at is None else rule.clear_at
        if not 0 <= self.clear_at <= rule.above:
            raise rule_parse.RuleProblem(("clear_at",), f"expected a count from 0 to above ({rule.above})")
        self.filter = SignalFilter(rule.event, rule.match, desk)
        self.group_by = rule_parse.group_by(rule.group_by, rule.event, ("group_by",))
        self.alerts = RuleAlerts(tracker, rule, "rate", desk)
        self._deadlines = deadlines
        self._id = rule_id
        self._groups: dict[GroupKey, _Window] = {}
        self.dropped = 0
        self.bind(config)

    def bind(self, config: MonitorConfig) -> None:
        self.filter.bind(config)

    def count(self, group: GroupKey, now: float) -> int:
        window = self._groups.get(group)
        return 0 if window is None else sum(1 for t in window.times if t + self.config.window > now)

    def on_signal(self, signal: Signal, now: float) -> list[AlertTransition]:
        if not self.filter.admits(signal):
            return []
        labels = signal.labels
        key = tuple([labels.get(label, "") for label in self.group_by])
        window = self._groups.get(key)
        if window is None:
            if len(self._groups) >= MAX_GROUPS and not self._forget_quiet_groups(now):
                self.dropped += 1
                return []
            window = self._groups[key] = _Window(self.config.above + 1)
        times = window.times
        span = self.config.window
        while times and times[0] + span <= now:
            times.popleft()
        times.append(now)
        if window.firing or len(times) <= self.config.above:
            return []
        window.firing = True
        self._arm(key, window)
        return self._observe(key, window, breached=True, now=now)

    def on_deadline(self, group: GroupKey, due: float) -> list[AlertTransition]:
        window = self._groups.get(group)
        if window is None or not window.firing:
            return []
        times = window.times
        while times and times[0] + self.config.window <= due:
            times.popleft()
        if len(times) > self.clear_at:
            self._arm(group, window)
            return []
        window.firing = False
        out = self._observe(group, window, breached=False, now=due)
        if not times:
            del self._groups[group]
        return out

    def _arm(self, group: GroupKey, window: _Window) -> None:
        # The count falls to clear_at when the (clear_at + 1)-th newest signal leaves the window.
        times = window.times
        leaving = times[len(times) - self.clear_at - 1]
        self._deadlines.schedule((KIND, self._id, group), leaving + self.config.window)

    def _observe(self, group: GroupKey, window: _Window, *, breached: bool, now: float) -> list[AlertTransition]:
        count = len(window.times)
        labels = dict(zip(self.group_by, group, strict=True))
        transition = self.alerts.observe(
            group,
            labels,
            breached=breached,
            cleared=not breached,
            fields=lambda: {
                "count": str(count),
                "value": str(count),
                "window": seconds(self.config.window),
                "event": self.config.event,
            },
            value=float(count),
            pending_for=0.0,
            now=now,
        )
        return [] if transition is None else [transition]

    def _forget_quiet_groups(self, now: float) -> bool:
        quiet = [
            key
            for key, window in self._groups.items()
            if not window.firing and (not window.times or window.times[-1] + self.config.window <= now)
        ]
        for key in quiet:
            del self._groups[key]
        return bool(quiet)

    def retire(self, now: float) -> list[AlertTransition]:
        for group in self._groups:
            self._deadlines.cancel((KIND, self._id, group))
        self._groups.clear()
        return self.alerts.resolve_all(now)
