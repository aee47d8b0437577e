"""A compiled condition or expression (what a threshold rule runs per change) decides exactly what
the tree's own `evaluate`/`value` decides: the same result, or the same EvaluationError, on any
values that hold every name (ints, floats, Decimals finite or not, strings, huge numbers)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskmon.rules.conditions import EvaluationError, parse_condition, parse_expression


def _outcome(run: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", run(*args)
    except EvaluationError as exc:
        return exc.kind, str(exc)


_LEAVES = st.sampled_from(["a", "b", "c.d", "0", "1", "2.5", "1e6", "250ms", "-a"])
_OPS = st.sampled_from(["+", "-", "*", "/"])
_CMP = st.sampled_from(["<", "<=", ">", ">=", "==", "!="])


@st.composite
def _expressions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 2 or draw(st.booleans()):
        return draw(_LEAVES)
    shape = draw(st.sampled_from(["op", "abs", "min", "paren"]))
    left, right = draw(_expressions(depth + 1)), draw(_expressions(depth + 1))
    if shape == "op":
        return f"{left} {draw(_OPS)} {right}"
    if shape == "abs":
        return f"abs({left})"
    if shape == "min":
        return f"{draw(st.sampled_from(['min', 'max']))}({left}, {right})"
    return f"({left})"


@st.composite
def _conditions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 1 or draw(st.booleans()):
        if draw(st.integers(0, 5)) == 0:
            return '{desk=~"a.*"}'
        return f"{draw(_expressions())} {draw(_CMP)} {draw(_expressions())}"
    joined = draw(st.sampled_from(["and", "or"]))
    left, right = draw(_conditions(depth + 1)), draw(_conditions(depth + 1))
    return f"not ({left})" if draw(st.booleans()) else f"({left}) {joined} ({right})"


_NUMBERS = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from([Decimal(0), Decimal("0.000"), Decimal("1e999000"), Decimal("-1e999000"), "5"]),
)


@settings(max_examples=300, deadline=None)
@given(_conditions(), st.fixed_dictionaries({"a": _NUMBERS, "b": _NUMBERS, "c.d": _NUMBERS}), st.booleans())
def test_a_compiled_condition_decides_what_the_tree_decides(text: str, values: dict[str, Any], desk_a: bool) -> None:
    condition = parse_condition(text)
    labels = {"desk": "alpha" if desk_a else "beta"}
    assert _outcome(condition.compiled(), values, labels) == _outcome(condition.evaluate, values, labels)


@settings(max_examples=200, deadline=None)
@given(_expressions(), st.fixed_dictionaries({"a": _NUMBERS, "b": _NUMBERS, "c.d": _NUMBERS}))
def test_a_compiled_expression_reads_what_the_tree_reads(text: str, values: dict[str, Any]) -> None:
    expression = parse_expression(text)
    compiled = _outcome(expression.compiled(), values)
    assert compiled == _outcome(expression.value, values)
    if compiled[0] == "ok":
        assert str(compiled[1]) == str(expression.value(values))  # the same digits, not just equal


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("a > 1e6", {"a": Decimal("1000000.01")}, ("ok", True)),
        ("a > 1e6", {"a": 10**6}, ("ok", False)),
        ("a > 1e6", {"a": 1e7}, ("ok", True)),
        ("a > b", {"a": Decimal("2"), "b": 1.5}, ("ok", True)),
        ("a > 1", {"a": Decimal("NaN")}, ("not_a_number", "a is not a finite number: Decimal('NaN')")),
        ("a > 1", {"a": "5"}, ("not_a_number", "a is not a finite number: '5'")),
    ],
)
def test_the_usual_shape_reads_a_decimal_as_it_is_and_checks_everything_else(
    text: str, values: dict[str, Any], expected: tuple[str, Any]
) -> None:
    assert _outcome(parse_condition(text).compiled(), values, {}) == expected
