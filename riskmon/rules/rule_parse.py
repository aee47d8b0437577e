"""Turning a rule's text fields into condition trees, with every problem located for `riskmon check`.

A problem is a RuleProblem: the key below the rule (`("when",)`, `("group_by", 1)`) and a message
that, for condition text, carries the grammar's caret under the offending column.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import fields

from riskmon.config.alerting import SignalKind
from riskmon.rules.conditions import (
    Compare,
    Condition,
    ConditionError,
    Expression,
    Labels,
    parse_condition,
    parse_expression,
)
from riskmon.rules.signals import SIGNAL_LABELS, default_group_by
from riskmon.rules.state_values import Scope, ScopeError, scope_of

FieldPath = tuple[str | int, ...]
# What a `match` condition may read besides its labels.
SIGNAL_VALUE = "value"
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RuleProblem(Exception):
    def __init__(self, field: FieldPath, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def condition(text: str, field: FieldPath) -> Condition:
    try:
        return parse_condition(text)
    except ConditionError as exc:
        raise RuleProblem(field, str(exc)) from None


def expression(text: str, field: FieldPath) -> Expression:
    try:
        return parse_expression(text)
    except ConditionError as exc:
        raise RuleProblem(field, str(exc)) from None


def column_of(text: str, word: str) -> int:
    """1-based column of `word` as a whole name in `text` (1 when not found)."""
    match = re.search(rf"(?<![\w.]){re.escape(word)}(?![\w.])", text)
    return match.start() + 1 if match else 1


def located(text: str, field: FieldPath, word: str, message: str) -> RuleProblem:
    return RuleProblem(field, str(ConditionError(message, column_of(text, word), text)))


def state_scope(parts: Sequence[tuple[str, FieldPath, frozenset[str]]]) -> Scope:
    """The scope of a rule's state conditions; `parts` is (text, field, names) per condition."""
    everything: set[str] = set()
    for text, field, names in parts:
        try:
            scope_of(names)
        except ScopeError as exc:
            raise located(text, field, exc.name, str(exc)) from None
        everything |= names
    try:
        return scope_of(everything)
    except ScopeError as exc:
        text, field, _ = next(part for part in parts if exc.name in part[2])
        raise located(text, field, exc.name, str(exc)) from None


def walk(node: Condition | Expression) -> Iterator[Condition | Expression]:
    """Every node, depth first, left to right."""
    yield node
    for spec in fields(node):
        if not spec.init:
            continue
        value = getattr(node, spec.name)
        for child in value if isinstance(value, tuple) else (value,):
            if isinstance(child, Condition | Expression):
                yield from walk(child)


def first_comparison(node: Condition) -> Compare | None:
    return next((n for n in walk(node) if isinstance(n, Compare)), None)


def check_labels(node: Condition, text: str, field: FieldPath, known: tuple[str, ...], what: str) -> None:
    for part in walk(node):
        if isinstance(part, Labels):
            for matcher in part.matchers:
                if matcher.name not in known:
                    message = f"label {matcher.name!r} is not carried by {what} (labels: {', '.join(known)})"
                    raise located(text, field, matcher.name, message)


def signal_match(text: str | None, kind: SignalKind, field: FieldPath) -> Condition | None:
    """A `match` condition: label matchers on the signal's labels and comparisons of `value`."""
    if text is None:
        return None
    cond = condition(text, field)
    for name in sorted(cond.names):
        if name != SIGNAL_VALUE:
            raise located(text, field, name, f'unknown name {name!r}: a match reads labels ({{label="..."}}) and value')
    check_labels(cond, text, field, SIGNAL_LABELS[kind], f"{kind} signals")
    return cond


def group_by(configured: list[str] | None, kind: SignalKind, field: FieldPath) -> tuple[str, ...]:
    if configured is None:
        return default_group_by(kind)
    seen: set[str] = set()
    for index, label in enumerate(configured):
        if label not in SIGNAL_LABELS[kind]:
            known = ", ".join(SIGNAL_LABELS[kind])
            raise RuleProblem((*field, index), f"{kind} signals carry no label {label!r} (labels: {known})")
        if label in seen:
            raise RuleProblem((*field, index), f"label {label!r} is listed twice")
        seen.add(label)
    return tuple(configured)


RESERVED_LABELS = frozenset({"alertname", "severity", "rule", "rule_kind"})


def rule_labels(labels: dict[str, str]) -> None:
    for name in labels:
        if name in RESERVED_LABELS:
            raise RuleProblem(("labels", name), f"label {name!r} is set by riskmon itself")
        if not _LABEL_NAME.match(name):
            raise RuleProblem(("labels", name), "a label name is letters, digits and _ (not first a digit)")
