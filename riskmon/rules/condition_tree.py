"""The condition tree: immutable nodes that evaluate against values and labels (see conditions.py)."""

from __future__ import annotations

import decimal
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Literal

from riskmon.alerts.matchers import Matcher
from riskmon.config.types import UNIT_SECONDS

MAX_LENGTH = 1000
MAX_DEPTH = 50

Numeric = Decimal | float | int
ErrorKind = Literal["missing", "division_by_zero", "not_a_number", "overflow"]

_CTX = decimal.Context(
    prec=34, Emax=999_999, Emin=-999_999, traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow]
)
_UNIT = {unit: Decimal(str(seconds)) for unit, seconds in UNIT_SECONDS.items()}
_NO_LABELS: Mapping[str, str] = {}
ValueReader = Callable[[Mapping[str, Numeric]], Decimal]
ConditionTest = Callable[[Mapping[str, Numeric], Mapping[str, str]], bool]


class ConditionError(ValueError):
    """Bad condition text. `column` is the 1-based position in the text; str() shows a caret."""

    def __init__(self, message: str, column: int, text: str = "") -> None:
        self.message = message
        self.column = column
        self.text = text
        super().__init__(self._render())

    def _render(self) -> str:
        head = f"{self.message} (column {self.column})"
        if not self.text:
            return head
        offset = self.column - 1
        start = self.text.rfind("\n", 0, offset) + 1
        end = self.text.find("\n", offset)
        line = self.text[start : end if end >= 0 else len(self.text)]
        return f"{head}\n  {line}\n  {' ' * (offset - start)}^"


class EvaluationError(ArithmeticError):
    """A condition could not be evaluated on these values; `kind` is for counting."""

    def __init__(self, kind: ErrorKind, message: str, names: tuple[str, ...] = ()) -> None:
        self.kind: ErrorKind = kind
        self.names = names
        super().__init__(message)


# --- tree -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tree:
    """Every node knows the value names below it and its depth, computed once when built."""

    names: frozenset[str] = field(init=False, repr=False, compare=False)
    depth: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names, depth = self._own_names(), 0
        for spec in fields(self):
            value = getattr(self, spec.name) if spec.init else None
            for child in value if isinstance(value, tuple) else (value,):
                if isinstance(child, _Tree):
                    names |= child.names
                    depth = max(depth, child.depth)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "depth", depth + 1)

    def _own_names(self) -> frozenset[str]:
        return frozenset()


@dataclass(frozen=True, slots=True)
class Expression(_Tree):
    """A numeric expression. `names` is every value name it reads."""

    def value(self, values: Mapping[str, Numeric]) -> Decimal:
        _require(self.names, values)
        return self._value(values)

    def compiled(self) -> ValueReader:
        """`value` as one closure, for a caller that has checked every name of `names` is in `values`
        (a rule judged per price): the same result or EvaluationError, fewer calls on the way."""
        return self._value

    def _value(self, values: Mapping[str, Numeric]) -> Decimal:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Condition(_Tree):
    """A boolean condition. `names` is every value name it reads (labels are not names)."""

    def evaluate(self, values: Mapping[str, Numeric], labels: Mapping[str, str] = _NO_LABELS) -> bool:
        _require(self.names, values)
        return self._evaluate(values, labels)

    def compiled(self) -> ConditionTest:
        """`evaluate` as one closure, for a caller that has checked every name of `names` is in
        `values`: the same result or EvaluationError, fewer calls on the way."""
        return self._evaluate

    def _evaluate(self, values: Mapping[str, Numeric], labels: Mapping[str, str]) -> bool:
        raise NotImplementedError


def _require(names: frozenset[str], values: Mapping[str, Numeric]) -> None:
    if values.keys() >= names:
        return  # every key judged has its values: one set comparison, no list built
    missing = [name for name in names if name not in values]
    if missing:
        missing.sort()
        raise EvaluationError("missing", f"no value for {', '.join(missing)}", tuple(missing))


@dataclass(frozen=True, slots=True)
class Number(Expression):
    number: Decimal

    def _value(self, values: Mapping[str, Numeric]) -> Decimal:
        return self.number

    def compiled(self) -> ValueReader:
        number = self.number
        return lambda values: number


@dataclass(frozen=True, slots=True)
class Name(Expression):
    name: str

    def _own_names(self) -> frozenset[str]:
        return frozenset((self.name,))

    def _value(self, values: Mapping[str, Numeric]) -> Decimal:
        raw = values[self.name]
        if isinstance(raw, Decimal):
            if raw.is_finite():
                return raw
        elif isinstance(raw, int):
            return Decimal(raw)
        elif isinstance(raw, float):
            converted = Decimal(str(raw))
            if converted.is_finite():
                return converted
        raise EvaluationError("not_a_number", f"{self.name} is not a finite number: {raw!r}", (self.name,))

    def compiled(self) -> ValueReader:
        name, checked = self.name, self._value

        def read(values: Mapping[str, Numeric]) -> Decimal:
            raw = values[name]
            # A finite Decimal as it is (the usual reading); anything else through every check.
            return raw if type(raw) is Decimal and raw.is_finite() else checked(values)

        return read


@dataclass(frozen=True, slots=True)
class Negate(Expression):
    operand: Expression

    def _value(self, values: Mapping[str, Numeric]) -> Decimal:
        return _CTX.minus(self.operand._value(values))


def _divide(a: Decimal, b: Decimal) -> Decimal:
    if not b:
        raise EvaluationError("division_by_zero", "division by zero")
    return _CTX.divide(a, b)


_ARITHMETIC: dict[str, Callable[[Decimal, Decimal], Decimal]] = {
    "+": _CTX.add,
    "-": _CTX.subtract,
    "*": _CTX.multiply,
    "/": _divide,
}


@dataclass(frozen=True, slots=True)
class Arithmetic(Expression):
    op: Literal["+", "-", "*", "/"]
    left: Expression
    right: Expression

    def _value(self, values: Mapping[str, Numeric]) -> Decimal:
        left, right = self.left._value(values), self.right._value(values)
        try:
            return _ARITHMETIC[self.op](left, right)
        except decimal.Overflow:
            raise EvaluationError("overflow", f"{left} {self.op} {right} overflows") from None


FUNCTIONS: dict[str, tuple[int, int | None]] = {"abs": (1, 1), "min": (2, None), "max": (2, None)}


@dataclass(frozen=True, slots=True)
class Call(Expression):
    function: Literal["abs", "min", "max"]
    args: tuple[Expression, ...]

    def _value(self, values: Mapping[str, Numeric]) -> Decimal:
        args = [arg._value(values) for arg in self.args]
        if self.function == "abs":
            return _CTX.abs(args[0])
        return min(args) if self.function == "min" else max(args)


_COMPARE: dict[str, Callable[[Decimal, Decimal], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True, slots=True)
class Compare(Condition):
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    left: Expression
    right: Expression

    def _evaluate(self, values: Mapping[str, Numeric], labels: Mapping[str, str]) -> bool:
        return _COMPARE[self.op](self.left._value(values), self.right._value(values))

    def compiled(self) -> ConditionTest:
        compare, left = _COMPARE[self.op], self.left.compiled()
        if isinstance(self.right, Number):
            limit = self.right.number  # the usual `name > 1e6`: the constant read once, here
            return lambda values, labels: compare(left(values), limit)
        right = self.right.compiled()
        return lambda values, labels: compare(left(values), right(values))


@dataclass(frozen=True, slots=True)
class And(Condition):
    operands: tuple[Condition, ...]

    def _evaluate(self, values: Mapping[str, Numeric], labels: Mapping[str, str]) -> bool:
        return all(operand._evaluate(values, labels) for operand in self.operands)


@dataclass(frozen=True, slots=True)
class Or(Condition):
    operands: tuple[Condition, ...]

    def _evaluate(self, values: Mapping[str, Numeric], labels: Mapping[str, str]) -> bool:
        return any(operand._evaluate(values, labels) for operand in self.operands)


@dataclass(frozen=True, slots=True)
class Not(Condition):
    operand: Condition

    def _evaluate(self, values: Mapping[str, Numeric], labels: Mapping[str, str]) -> bool:
        return not self.operand._evaluate(values, labels)


# Label matchers are the alert routing's own (riskmon/alerts/matchers.py): one set of semantics.
LabelMatcher = Matcher


@dataclass(frozen=True, slots=True)
class Labels(Condition):
    matchers: tuple[LabelMatcher, ...]
    names: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)
    depth: int = field(default=1, init=False, repr=False, compare=False)

    def _evaluate(self, values: Mapping[str, Numeric], labels: Mapping[str, str]) -> bool:
        return all(matcher.matches(labels.get(matcher.name, "")) for matcher in self.matchers)
