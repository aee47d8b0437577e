from __future__ import annotations

import contextlib
import time
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskmon.config.types import Duration
from riskmon.rules.conditions import (
    MAX_DEPTH,
    And,
    Arithmetic,
    Call,
    Compare,
    Condition,
    ConditionError,
    EvaluationError,
    LabelMatcher,
    Labels,
    Name,
    Negate,
    Not,
    Number,
    Or,
    parse_condition,
    parse_expression,
)

D = Decimal


def n(text: str) -> Number:
    return Number(D(text))


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("1", n("1")),
        ("1.5", n("1.5")),
        ("1e6", n("1000000")),
        ("2.5E-3", n("0.0025")),
        ("1_000_000", n("1000000")),
        ("exposure.net_usd", Name("exposure.net_usd")),
        ("-x", Negate(Name("x"))),
        ("--x", Negate(Negate(Name("x")))),
        ("a + b - c", Arithmetic("-", Arithmetic("+", Name("a"), Name("b")), Name("c"))),
        ("a - b * c", Arithmetic("-", Name("a"), Arithmetic("*", Name("b"), Name("c")))),
        ("(a - b) * c", Arithmetic("*", Arithmetic("-", Name("a"), Name("b")), Name("c"))),
        ("a / b / c", Arithmetic("/", Arithmetic("/", Name("a"), Name("b")), Name("c"))),
        ("-a * b", Arithmetic("*", Negate(Name("a")), Name("b"))),
        ("abs(x.y)", Call("abs", (Name("x.y"),))),
        (
            "min(a, 1) + max(b, 2, 3)",
            Arithmetic("+", Call("min", (Name("a"), n("1"))), Call("max", (Name("b"), n("2"), n("3")))),
        ),
        ("30s + 5m + 1h", Arithmetic("+", Arithmetic("+", n("30"), n("300")), n("3600"))),
        ("250ms", n("0.25")),
        ("1.5d", n("129600")),
    ],
)
def test_expression_trees(text: str, tree: object) -> None:
    assert parse_expression(text) == tree


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("a > 1", Compare(">", Name("a"), n("1"))),
        ("a + 1 <= b * 2", Compare("<=", Arithmetic("+", Name("a"), n("1")), Arithmetic("*", Name("b"), n("2")))),
        ("not a == 1", Not(Compare("==", Name("a"), n("1")))),
        ("not not a != 1", Not(Not(Compare("!=", Name("a"), n("1"))))),
        (
            "a < 1 or b >= 2 and c > 3",
            Or(
                (
                    Compare("<", Name("a"), n("1")),
                    And((Compare(">=", Name("b"), n("2")), Compare(">", Name("c"), n("3")))),
                )
            ),
        ),
        (
            "(a < 1 or b >= 2) and not c > 3",
            And(
                (
                    Or((Compare("<", Name("a"), n("1")), Compare(">=", Name("b"), n("2")))),
                    Not(Compare(">", Name("c"), n("3"))),
                )
            ),
        ),
        ("a>1 and b>1 and c>1", And(tuple(Compare(">", Name(x), n("1")) for x in "abc"))),
        ("((a > 1))", Compare(">", Name("a"), n("1"))),
        (
            "{desk='a', venue=~\"mango|phoenix\", m!=\"x\", k!~'y.*',}",
            Labels(
                (
                    LabelMatcher("desk", "=", "a"),
                    LabelMatcher("venue", "=~", "mango|phoenix"),
                    LabelMatcher("m", "!=", "x"),
                    LabelMatcher("k", "!~", "y.*"),
                )
            ),
        ),
        ('{q="a\\"b\\\\"}', Labels((LabelMatcher("q", "=", 'a"b\\'),))),
    ],
)
def test_condition_trees(text: str, tree: Condition) -> None:
    assert parse_condition(text) == tree


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.1 + 0.2", "0.3"),
        ("1 - 2 * 3", "-5"),
        ("(1 - 2) * 3", "-3"),
        ("-2 * -3", "6"),
        ("10 / 4", "2.5"),
        ("abs(-7.25)", "7.25"),
        ("min(3, 1, 2) + max(-1, -2)", "0"),
        ("1e6 / 1_000", "1000"),
        ("x * 3", "0.3"),
        ("f + f", "0.2"),
        ("i / 3", "0.3333333333333333333333333333333333"),
        ("2h - 250ms", "7199.75"),
    ],
)
def test_values_are_exact_decimals(text: str, expected: str) -> None:
    value = parse_expression(text).value({"x": D("0.1"), "f": 0.1, "i": 1})
    assert isinstance(value, Decimal)
    assert value == D(expected)


def test_decimal_exactness_in_conditions() -> None:
    assert parse_condition("0.1 + 0.2 == 0.3").evaluate({})
    assert parse_condition("a + b == 0.3").evaluate({"a": 0.1, "b": 0.2})  # floats go through str()
    assert not parse_condition("a + b != 0.3").evaluate({"a": 0.1, "b": D("0.2")})


@pytest.mark.parametrize("literal", ["250ms", "30s", "5m", "1h", "2d", "1.5h", "7"])
def test_durations_agree_with_config_durations(literal: str) -> None:
    text = literal if literal[-1].isalpha() else literal + "s"
    assert float(parse_expression(literal).value({})) == Duration.parse(text)


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("latency.p99 > 250ms", {"latency.p99": 0.3}, True),
        ("latency.p99 > 250ms", {"latency.p99": 0.25}, False),
        ("a > 1 and b > 1", {"a": 2, "b": 0}, False),
        ("a > 1 or b > 1", {"a": 0, "b": 2}, True),
        ("not a > 1", {"a": 1}, True),
        ("abs(x) >= 5", {"x": -5}, True),
        ("-x < 0", {"x": 1}, True),
    ],
)
def test_evaluate(text: str, values: dict[str, float], expected: bool) -> None:
    assert parse_condition(text).evaluate(values) is expected


@pytest.mark.parametrize(
    ("matcher", "labels", "expected"),
    [
        ('{desk="a"}', {"desk": "a"}, True),
        ('{desk="a"}', {"desk": "ab"}, False),
        ('{desk="a"}', {}, False),
        ('{desk=""}', {}, True),  # an absent label is ""
        ('{desk!="a"}', {}, True),
        ('{desk!="a"}', {"desk": "a"}, False),
        ('{venue=~"mango|phoenix"}', {"venue": "phoenix"}, True),
        ('{venue=~"mango|phoenix"}', {"venue": "phoenix2"}, False),  # fully anchored
        ('{venue=~"mango|phoenix"}', {"venue": "xmango"}, False),
        ('{venue=~"mango.*"}', {"venue": "mango_v3"}, True),
        ('{venue!~"mango.*"}', {"venue": "mango_v3"}, False),
        ('{venue!~"mango.*"}', {"venue": "phoenix"}, True),
        ('{desk="a", venue=~"p.*"}', {"desk": "a", "venue": "phoenix"}, True),
        ('{desk="a", venue=~"p.*"}', {"desk": "b", "venue": "phoenix"}, False),
    ],
)
def test_label_matchers(matcher: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_condition(matcher).evaluate({}, labels) is expected


def test_labels_combine_with_values() -> None:
    condition = parse_condition('{desk="a"} and x > 1 or not {desk="a"} and x > 10')
    assert condition.evaluate({"x": 2}, {"desk": "a"})
    assert not condition.evaluate({"x": 2}, {"desk": "b"})
    assert condition.evaluate({"x": 11}, {"desk": "b"})


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("1 > 0", set()),
        ('{desk="a"}', set()),
        ("a.b + c > abs(d) or not min(e, a.b) < 1", {"a.b", "c", "d", "e"}),
        ("exposure.net_usd > 1e6 and latency.p99 > 250ms", {"exposure.net_usd", "latency.p99"}),
    ],
)
def test_names(text: str, names: set[str]) -> None:
    condition = parse_condition(text)
    assert condition.names == frozenset(names)
    assert isinstance(condition.names, frozenset)


def test_missing_names_are_an_error_whatever_the_short_circuit() -> None:
    condition = parse_condition("a > 1 or z > 1 or y > 1")
    with pytest.raises(EvaluationError) as caught:
        condition.evaluate({"a": 2})
    assert caught.value.kind == "missing"
    assert caught.value.names == ("y", "z")
    with pytest.raises(EvaluationError, match="no value for x"):
        parse_expression("x + 1").value({})


@pytest.mark.parametrize(
    ("text", "values", "kind"),
    [
        ("a / b > 1", {"a": 1, "b": 0}, "division_by_zero"),
        ("a / b > 1", {"a": 0, "b": D("0.0")}, "division_by_zero"),
        ("a > 1", {"a": float("nan")}, "not_a_number"),
        ("a > 1", {"a": float("inf")}, "not_a_number"),
        ("a > 1", {"a": D("NaN")}, "not_a_number"),
        ("a > 1", {"a": "5"}, "not_a_number"),
        ("a * a > 1", {"a": D("1e999000")}, "overflow"),
    ],
)
def test_evaluation_errors(text: str, values: dict[str, object], kind: str) -> None:
    with pytest.raises(EvaluationError) as caught:
        parse_condition(text).evaluate(values)  # type: ignore[arg-type]
    assert caught.value.kind == kind


def test_short_circuit_skips_a_division_by_zero() -> None:
    assert parse_condition("b == 0 or a / b > 1").evaluate({"a": 1, "b": 0})


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("", 1, "empty"),
        ("   ", 1, "empty"),
        ("a > @1", 5, "unknown token '@'"),
        ("a > 1 ;", 7, "unknown token ';'"),
        ("a >", 4, "found end of input"),
        ("(a > 1", 7, "expected ')' to close '(' at column 1"),
        ("((a > 1)", 9, "expected ')' to close '(' at column 1"),
        ("a > 1)", 6, "unmatched ')'"),
        ("a > 1 b", 7, "unexpected 'b'"),
        ("a > 1 2", 7, "unexpected '2'"),
        ("foo(1) > 2", 1, "unknown function 'foo'"),
        ("abs(1, 2) > 0", 1, "abs() takes exactly 1"),
        ("min(1) > 0", 1, "min() takes at least 2"),
        ("abs(1 2) > 0", 7, "to close abs("),
        ('{venue=~"("}', 9, "bad regex"),
        ('{venue!~"a[b"}', 9, "bad regex"),
        ('{venue="a"', 11, "to close '{'"),
        ("{}", 1, "empty label matcher"),
        ("{1=2}", 2, "expected a label name"),
        ('{a.b="x"}', 2, "bad label name"),
        ('{a > "x"}', 4, "expected =, !=, =~ or !~"),
        ("{a = b}", 6, "expected a quoted label value"),
        ('{a="\\q"}', 5, "unknown escape"),
        ('{a="x}', 4, "unknown token"),
        ("a = 1", 3, "compare with =="),
        ("a < b < c", 7, "cannot be chained"),
        ("5min > 1", 1, "bad number or duration '5min'"),
        ("1_000s > 1", 1, "bad number or duration"),
        ("1e6s > 1", 1, "bad number or duration"),
        ("2x > 1", 1, "bad number or duration"),
        ("1e999999999 > 1", 1, "out of range"),
        ("a + 1", 1, "expected a condition"),
        ("a > 1 and b", 11, "expected a condition"),
        ("not 5", 5, "expected a condition"),
        ('{a="x"} + 1 > 0', 1, "expected a number expression"),
        ("(a > 1) > 0", 1, "expected a number expression"),
        ("a > (b > 1)", 5, "expected a number expression"),
        ("-(a > 1) > 0", 2, "expected a number expression"),
        ("abs(a > 1) > 0", 5, "expected a number expression"),
        ('a > "x"', 5, "found a string"),
        ("a > not b", 5, "found 'not'"),
        ("x" * 1001, 1001, "longer than 1000"),
        ("(" * 51 + "a > 1" + ")" * 51, 51, "nests deeper than 50"),
        ("-" * 51 + "a > 1", 51, "nests deeper than 50"),
        ("not " * 51 + "a > 1", 201, "nests deeper than 50"),
        ("+".join(["a"] * 52) + " > 1", 100, "nests deeper than 50"),  # depth counts the leaves
    ],
)
def test_errors_name_their_column(text: str, column: int, fragment: str) -> None:
    with pytest.raises(ConditionError) as caught:
        parse_condition(text)
    assert caught.value.column == column
    assert fragment in caught.value.message


def test_error_message_has_a_caret() -> None:
    with pytest.raises(ConditionError) as caught:
        parse_condition("a > 1 and\nb >< 2")
    assert caught.value.column == 14
    assert str(caught.value).splitlines()[1:] == ["  b >< 2", "     ^"]


def test_parse_expression_rejects_a_condition() -> None:
    with pytest.raises(ConditionError, match="expected a number expression"):
        parse_expression("a > 1")


def test_deepest_allowed_nesting_parses_and_evaluates() -> None:
    deep = "(" * MAX_DEPTH + "a > 1" + ")" * MAX_DEPTH
    assert parse_condition(deep).evaluate({"a": 2})
    assert parse_condition("-" * (MAX_DEPTH - 2) + "a < 1").evaluate({"a": 0})
    assert parse_condition(" or ".join(["a>1"] * 120)).evaluate({"a": 2})  # or/and chains stay flat


def test_trees_are_immutable_and_hashable() -> None:
    condition = parse_condition("a > 1 and {desk='x'}")
    with pytest.raises(AttributeError):
        condition.names = frozenset()  # type: ignore[misc]
    assert hash(condition) == hash(parse_condition("a > 1 and {desk='x'}"))


_PIECES = st.sampled_from(
    [
        " ", "a", "b.c", "1", "0", "1e6", "1_0", "2.5", "30s", "250ms", "5m", "(", ")", "{", "}", ",",
        "+", "-", "*", "/", "<", "<=", ">", ">=", "==", "!=", "=", "=~", "!~", "and", "or", "not",
        "abs", "min", "max", '"x"', '"(a|b)*"', "'['", "desk", "@", "\\", '"', ".", "e", "_",
    ]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.lists(_PIECES, max_size=40).map("".join), st.text(max_size=80)))
def test_fuzz_parse_raises_only_condition_error(text: str) -> None:
    started = time.perf_counter()
    error: ConditionError | None = None
    try:
        node = parse_condition(text)
    except ConditionError as exc:
        error = exc
    if error is not None:
        assert 1 <= error.column <= len(text) + 1
    else:
        with contextlib.suppress(EvaluationError):
            node.evaluate(dict.fromkeys(node.names, 1), {"desk": "a"})
    assert time.perf_counter() - started < 0.5


def test_worst_case_inputs_are_fast() -> None:
    started = time.perf_counter()
    for text in ["(" * 1000, "-" * 1000, "a+" * 499 + "a", "not " * 250, "{a=~'" + "(" * 500, "1" * 1000]:
        with pytest.raises(ConditionError):
            parse_condition(text)
    assert time.perf_counter() - started < 0.5
