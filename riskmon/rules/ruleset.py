"""Every configured rule (global and per desk), built once, with the few calls the engine makes.

A rule is identified by (desk, name) — desk "" for a global rule. On a reload, a rule whose
definition is unchanged keeps its state (pending `for` timers, firing alerts, rate windows,
absent deadlines); a removed or changed one has its alerts resolved and its deadlines cancelled.
A rule that does not compile is left out and reported in `problems` (what `riskmon check` says),
so one broken rule never stops the monitoring of the others.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable

from riskmon.alerts.lifecycle import AlertTracker, AlertTransition
from riskmon.config.alerting import AbsentRule, EventRule, RateRule, RuleConfig, SignalKind, ThresholdRule
from riskmon.config.schema import MonitorConfig
from riskmon.engine.deadlines import DeadlineHeap
from riskmon.rules import absent, rate, rule_parse
from riskmon.rules.absent import AbsentRuleHandler
from riskmon.rules.event_rules import EventRuleHandler
from riskmon.rules.rate import RateRuleHandler
from riskmon.rules.signals import Signal
from riskmon.rules.state_values import MonitorState, Scope
from riskmon.rules.threshold import ThresholdEvaluator, Touched

Handler = ThresholdEvaluator | EventRuleHandler | RateRuleHandler | AbsentRuleHandler
RuleId = tuple[str, str]  # (desk or "", rule name)
KeyPath = tuple[str | int, ...]
Problem = tuple[KeyPath, str]
TICK = "rule-tick"


def _compile(
    config: MonitorConfig, deadlines: DeadlineHeap, alerts: AlertTracker
) -> tuple[dict[RuleId, Handler], list[Problem]]:
    handlers: dict[RuleId, Handler] = {}
    problems: list[Problem] = []
    sources: list[tuple[str, KeyPath, list[RuleConfig]]] = [("", ("rules",), config.rules)]
    sources += [(name, ("desks", name, "rules"), desk.rules) for name, desk in config.desks.items()]
    global_names = {rule.name for rule in config.rules}
    for desk, base, rules in sources:
        seen: set[str] = set()
        for index, rule in enumerate(rules):
            path = (*base, index)
            if rule.name in seen:
                problems.append(((*path, "name"), f"another rule here is already named {rule.name!r}"))
                continue
            seen.add(rule.name)
            if desk and rule.name in global_names:
                problems.append(((*path, "name"), f"{rule.name!r} is also the name of a global rule"))
                continue
            try:
                rule_parse.rule_labels(rule.labels)
                handlers[(desk, rule.name)] = _handler(rule, desk or None, config, deadlines, alerts)
            except rule_parse.RuleProblem as problem:
                problems.append(((*path, *problem.field), problem.message))
    return handlers, problems


def _handler(
    rule: RuleConfig, desk: str | None, config: MonitorConfig, deadlines: DeadlineHeap, alerts: AlertTracker
) -> Handler:
    rule_id = (desk or "", rule.name)
    if isinstance(rule, ThresholdRule):
        return ThresholdEvaluator(rule, desk, config, alerts)
    if isinstance(rule, EventRule):
        return EventRuleHandler(rule, desk, config, alerts)
    if isinstance(rule, RateRule):
        return RateRuleHandler(rule, desk, config, alerts, deadlines, rule_id)
    assert isinstance(rule, AbsentRule)
    return AbsentRuleHandler(rule, desk, config, alerts, deadlines, rule_id)


def check_rules(config: MonitorConfig) -> list[Problem]:
    """Every problem of the config's rules as (key path, message with the condition's caret)."""
    deadlines = DeadlineHeap()
    return _compile(config, deadlines, AlertTracker(deadlines))[1]


class RuleSet:
    def __init__(
        self,
        config: MonitorConfig,
        deadlines: DeadlineHeap,
        alerts: AlertTracker,
        *,
        state: MonitorState | None = None,
    ) -> None:
        self._deadlines = deadlines
        self._alerts = alerts
        self.state = state
        self._started_at: float | None = None
        handlers, self.problems = _compile(config, deadlines, alerts)
        self._install(handlers, config)

    def _install(self, handlers: dict[RuleId, Handler], config: MonitorConfig) -> None:
        self._rules = handlers
        self._interval = float(config.alerts.evaluation_interval)
        by_kind: dict[SignalKind, list[Handler]] = defaultdict(list)
        for handler in handlers.values():
            if not isinstance(handler, ThresholdEvaluator):
                for kind in handler.events:
                    by_kind[kind].append(handler)
        self._by_kind = dict(by_kind)
        self._thresholds = [h for h in handlers.values() if isinstance(h, ThresholdEvaluator)]
        self._absent = [h for h in handlers.values() if isinstance(h, AbsentRuleHandler)]
        # The engine checks this before it builds a signal at all.
        self.listened: frozenset[SignalKind] = frozenset(self._by_kind)
        # Rules that read monitor state: the engine must say what each ingest touched.
        self.reads_state = bool(self._thresholds) or any(h.judges_state for h in self._absent)
        # The state names the threshold rules read (what an ingest must touch for them).
        self.threshold_names: frozenset[str] = frozenset().union(*(h.names for h in self._thresholds))
        # Every state name any rule reads (thresholds, absent rules' `while`): the engine keeps the
        # state only rules read (open order counts, mark ages) just while one reads it.
        whiles = (h.while_.names for h in self._absent if h.while_ is not None)
        self.state_names: frozenset[str] = self.threshold_names.union(*whiles)
        # The scopes of the threshold rules: which kinds of keys an ingest must note as touched.
        self.threshold_scopes: frozenset[Scope] = frozenset(h.scope for h in self._thresholds)

    def rules(self) -> dict[RuleId, Handler]:
        return dict(self._rules)

    def listens(self, kind: SignalKind) -> bool:
        return kind in self.listened

    def start(self, now: float) -> None:
        """The rules begin watching at `now`: expected absent groups and the evaluation tick are armed."""
        if self._started_at is not None:
            return
        self._started_at = now
        for handler in self._absent:
            handler.start(now)
        self._arm_tick(now)

    @property
    def started(self) -> bool:
        return self._started_at is not None

    def _arm_tick(self, now: float) -> None:
        self._deadlines.cancel((TICK,))
        if self.reads_state and self._interval > 0:
            self._deadlines.schedule((TICK,), now + self._interval)

    def on_signal(self, signal: Signal, now: float) -> list[AlertTransition]:
        out: list[AlertTransition] = []
        for handler in self._by_kind.get(signal.kind, ()):
            assert not isinstance(handler, ThresholdEvaluator)
            out.extend(handler.on_signal(signal, now))
        return out

    def evaluate(self, state: MonitorState, touched: Touched | None, now: float) -> list[AlertTransition]:
        """Threshold rules on what an ingest touched; every key when `touched` is None."""
        out: list[AlertTransition] = []
        for handler in self._thresholds:
            out.extend(handler.evaluate(state, touched, now))
        return out

    def on_deadline(self, key: Hashable, now: float) -> list[AlertTransition] | None:
        """Handle a deadline key of the rules; None when the key is not theirs."""
        if not isinstance(key, tuple) or not key:
            return None
        tag = key[0]
        if tag == TICK:
            return self._tick(now)
        if tag not in (rate.KIND, absent.KIND):
            return None
        handler = self._rules.get(key[1])
        if tag == rate.KIND and isinstance(handler, RateRuleHandler):
            return handler.on_deadline(key[2], now)
        if tag == absent.KIND and isinstance(handler, AbsentRuleHandler):
            return handler.on_deadline(key[2], now, self.state)
        return []  # a key of a rule since removed

    def _tick(self, now: float) -> list[AlertTransition]:
        self._deadlines.schedule((TICK,), now + self._interval)
        if self.state is None:
            return []
        out = self.evaluate(self.state, None, now)
        for handler in self._absent:
            if handler.judges_state:
                out.extend(handler.on_tick(self.state, now))
        return out

    def reload(self, config: MonitorConfig, now: float) -> list[AlertTransition]:
        """Apply a new config's rules; returns the transitions of rules removed or changed, then
        of a full evaluation of the threshold rules."""
        handlers, self.problems = _compile(config, self._deadlines, self._alerts)
        out: list[AlertTransition] = []
        kept: dict[RuleId, Handler] = {}
        for rule_id, old in self._rules.items():
            new = handlers.get(rule_id)
            if new is not None and new.config == old.config:
                old.bind(config)
                kept[rule_id] = old
            else:
                out.extend(old.retire(now))
        fresh = [handler for rule_id, handler in handlers.items() if rule_id not in kept]
        handlers.update(kept)
        self._install(handlers, config)
        if self._started_at is not None:
            for handler in fresh:
                if isinstance(handler, AbsentRuleHandler):
                    handler.start(now)
            self._arm_tick(now)
        if self.state is not None:
            out.extend(self.evaluate(self.state, None, now))
        return out
