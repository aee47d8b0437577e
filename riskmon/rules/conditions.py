"""The safe condition grammar rules are written in: parsed once at load, evaluated per change.

    exposure.net_usd > 1e6 and {desk="a", venue=~"mango|phoenix"}
    abs(position.delta) * mark.price >= 250_000 or latency.p99 > 250ms

A small hand-written recursive-descent parser turns the text into an immutable tree of frozen
dataclasses; nothing is ever `eval`-ed. Precedence, loosest first: `or` < `and` < `not` <
comparisons (`< <= > >= == !=`, not chainable) < `+ -` < `* /` < unary minus. Numbers are Decimal
(`1e6`, `1_000_000`, `0.1`); durations (`250ms`, `30s`, `5m`, `1h`, `1d`) are Decimal seconds.
Names (`latency.p99`) are read from the values mapping; label matchers `{l="v", l!="v", l=~"re",
l!~"re"}` test the evaluation's labels (an absent label is "", regexes are fully anchored).

Evaluation errors, one design: `evaluate`/`value` raise `EvaluationError` with a `kind` the caller
counts ("missing", "division_by_zero", "not_a_number", "overflow"); they never return a guess.
A missing name is checked up front against `names`, so it is an error whatever the short-circuit
path would have been and the outcome never depends on operand order. Arithmetic uses a private
Decimal context (34 digits), so the thread's global context cannot change a result.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from riskmon.config.types import Duration
from riskmon.rules.condition_tree import (
    _COMPARE,
    _CTX,
    _UNIT,
    FUNCTIONS,
    MAX_DEPTH,
    MAX_LENGTH,
    And,
    Arithmetic,
    Call,
    Compare,
    Condition,
    ConditionError,
    ErrorKind,
    EvaluationError,
    Expression,
    LabelMatcher,
    Labels,
    Name,
    Negate,
    Not,
    Number,
    Numeric,
    Or,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "And",
    "Arithmetic",
    "Call",
    "Compare",
    "Condition",
    "ConditionError",
    "ErrorKind",
    "EvaluationError",
    "Expression",
    "LabelMatcher",
    "Labels",
    "Name",
    "Negate",
    "Not",
    "Number",
    "Numeric",
    "Or",
    "parse_condition",
    "parse_expression",
]


# --- tokens -----------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""(?P<space>\s+)
    |(?P<number>\d+(?:_\d+)*(?:\.\d+(?:_\d+)*)?(?:[eE][+-]?\d+)?)(?P<suffix>[A-Za-z_]\w*)?
    |(?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)
    |(?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
    |(?P<op><=|>=|==|!=|=~|!~|[<>=+\-*/(),{}])""",
    re.VERBOSE | re.ASCII,
)
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}
_KEYWORDS = frozenset(("and", "or", "not"))


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "number", "name", "string", "end", or the operator/keyword text itself
    text: str
    column: int
    number: Decimal = Decimal(0)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ConditionError(f"unknown token {text[pos]!r}", pos + 1, text)
        kind = match.lastgroup
        column, lexeme = pos + 1, match.group(0)
        if match.group("number") is not None:
            tokens.append(_Token("number", lexeme, column, _number(match, column, text)))
        elif kind == "name":
            tokens.append(_Token(lexeme if lexeme in _KEYWORDS else "name", lexeme, column))
        elif kind == "string":
            tokens.append(_Token("string", _unescape(lexeme, column, text), column))
        elif kind == "op":
            tokens.append(_Token(lexeme, lexeme, column))
        pos = match.end()
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


def _number(match: re.Match[str], column: int, text: str) -> Decimal:
    digits, suffix = match.group("number"), match.group("suffix")
    try:
        if suffix is None:
            return _CTX.create_decimal(digits.replace("_", ""))
        seconds = Duration.parse(digits + suffix)  # the config's duration syntax, so both read alike
        if suffix in _UNIT:
            return _CTX.multiply(_CTX.create_decimal(digits.replace("_", "")), _UNIT[suffix])
        return _CTX.create_decimal(repr(float(seconds)))  # a compound such as 1h30m
    except ValueError:
        raise ConditionError(f"bad number or duration {match.group(0)!r}", column, text) from None
    except decimal.Overflow:
        raise ConditionError(f"number {match.group(0)!r} is out of range", column, text) from None


def _unescape(lexeme: str, column: int, text: str) -> str:
    out: list[str] = []
    chars = iter(enumerate(lexeme[1:-1], start=column + 1))
    for index, char in chars:
        if char == "\\":
            _, escaped = next(chars)
            if escaped not in _ESCAPES:
                raise ConditionError(f"unknown escape '\\{escaped}' in string", index, text)
            char = _ESCAPES[escaped]
        out.append(char)
    return "".join(out)


# --- parser -----------------------------------------------------------------------------------

_Node = Expression | Condition
_CMP_OPS = frozenset(_COMPARE)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.nesting = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def error(self, message: str, column: int) -> ConditionError:
        return ConditionError(message, column, self.text)

    def expect(self, kind: str, message: str) -> _Token:
        if self.token.kind != kind:
            raise self.error(f"{message}, found {_describe(self.token)}", self.token.column)
        return self.advance()

    def built(self, node: _Node, column: int) -> _Node:
        if node.depth > MAX_DEPTH:
            raise self.error(f"expression nests deeper than {MAX_DEPTH} levels", column)
        return node

    def enter(self, column: int) -> None:
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise self.error(f"expression nests deeper than {MAX_DEPTH} levels", column)

    def condition(self, node: _Node, column: int) -> Condition:
        if not isinstance(node, Condition):
            raise self.error("expected a condition (like x > 1), found a number expression", column)
        return node

    def expression(self, node: _Node, column: int) -> Expression:
        if not isinstance(node, Expression):
            raise self.error("expected a number expression, found a condition", column)
        return node

    def parse(self) -> _Node:
        node = self.or_()
        token = self.token
        if token.kind != "end":
            what = "unmatched ')'" if token.kind == ")" else f"unexpected {_describe(token)}"
            raise self.error(f"{what} after a complete expression", token.column)
        return node

    def _chain(
        self, keyword: str, operand: Callable[[], _Node], build: Callable[[tuple[Condition, ...]], _Node]
    ) -> _Node:
        column = self.token.column
        first = operand()
        if self.token.kind != keyword:
            return first
        operands = [self.condition(first, column)]
        while self.token.kind == keyword:
            self.advance()
            column = self.token.column
            operands.append(self.condition(operand(), column))
        return self.built(build(tuple(operands)), column)

    def or_(self) -> _Node:
        return self._chain("or", self.and_, Or)

    def and_(self) -> _Node:
        return self._chain("and", self.not_, And)

    def not_(self) -> _Node:
        if self.token.kind != "not":
            return self.comparison()
        keyword = self.advance()
        self.enter(keyword.column)
        column = self.token.column
        node = self.built(Not(self.condition(self.not_(), column)), keyword.column)
        self.nesting -= 1
        return node

    def comparison(self) -> _Node:
        column = self.token.column
        left = self.sum()
        if self.token.kind not in _CMP_OPS:
            if self.token.kind in ("=", "=~", "!~"):
                raise self.error(f"unexpected {self.token.text!r} (compare with ==)", self.token.column)
            return left
        op = self.advance()
        right_column = self.token.column
        right = self.expression(self.sum(), right_column)
        node = Compare(op.kind, self.expression(left, column), right)  # type: ignore[arg-type]
        if self.token.kind in _CMP_OPS:
            raise self.error("comparisons cannot be chained; join them with 'and'", self.token.column)
        return self.built(node, op.column)

    def _binary(self, ops: tuple[str, str], operand: Callable[[], _Node]) -> _Node:
        column = self.token.column
        node = operand()
        while self.token.kind in ops:
            op = self.advance()
            left = self.expression(node, column)
            right_column = self.token.column
            right = self.expression(operand(), right_column)
            node = self.built(Arithmetic(op.kind, left, right), op.column)  # type: ignore[arg-type]
        return node

    def sum(self) -> _Node:
        return self._binary(("+", "-"), self.product)

    def product(self) -> _Node:
        return self._binary(("*", "/"), self.unary)

    def unary(self) -> _Node:
        if self.token.kind != "-":
            return self.primary()
        minus = self.advance()
        self.enter(minus.column)
        column = self.token.column
        node = self.built(Negate(self.expression(self.unary(), column)), minus.column)
        self.nesting -= 1
        return node

    def primary(self) -> _Node:
        token = self.token
        if token.kind == "number":
            self.advance()
            return Number(token.number)
        if token.kind == "name":
            self.advance()
            if self.token.kind == "(":
                return self.call(token)
            return Name(token.text)
        if token.kind == "(":
            self.advance()
            self.enter(token.column)
            node = self.or_()
            self.expect(")", f"expected ')' to close '(' at column {token.column}")
            self.nesting -= 1
            return node
        if token.kind == "{":
            return self.labels()
        raise self.error(f"expected a value, found {_describe(token)}", token.column)

    def call(self, name: _Token) -> _Node:
        if name.text not in FUNCTIONS:
            known = ", ".join(sorted(FUNCTIONS))
            raise self.error(f"unknown function {name.text!r} (known: {known})", name.column)
        open_paren = self.advance()
        self.enter(open_paren.column)
        args: list[Expression] = []
        while True:
            column = self.token.column
            args.append(self.expression(self.or_(), column))
            if self.token.kind != ",":
                break
            self.advance()
        self.expect(")", f"expected ',' or ')' to close {name.text}( at column {open_paren.column}")
        self.nesting -= 1
        low, high = FUNCTIONS[name.text]
        if len(args) < low or (high is not None and len(args) > high):
            wanted = f"exactly {low}" if low == high else f"at least {low}"
            raise self.error(f"{name.text}() takes {wanted} argument(s), got {len(args)}", name.column)
        return self.built(Call(name.text, tuple(args)), name.column)  # type: ignore[arg-type]

    def labels(self) -> _Node:
        brace = self.advance()
        matchers: list[LabelMatcher] = []
        while self.token.kind != "}":
            label = self.expect("name", "expected a label name")
            if "." in label.text:
                raise self.error(f"bad label name {label.text!r}", label.column)
            op = self.token
            if op.kind not in ("=", "!=", "=~", "!~"):
                raise self.error(f"expected =, !=, =~ or !~, found {_describe(op)}", op.column)
            self.advance()
            value = self.expect("string", "expected a quoted label value")
            try:
                matchers.append(LabelMatcher(label.text, op.kind, value.text))  # type: ignore[arg-type]
            except (ValueError, RecursionError, OverflowError) as exc:
                raise self.error(f"bad regex: {exc}", value.column) from None
            if self.token.kind != ",":
                break
            self.advance()
        self.expect("}", f"expected ',' or '}}' to close '{{' at column {brace.column}")
        if not matchers:
            raise self.error("empty label matcher {}", brace.column)
        return Labels(tuple(matchers))


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "end of input"
    if token.kind == "string":
        return "a string"
    return repr(token.text)


def _parse(text: str) -> _Node:
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"longer than {MAX_LENGTH} characters", MAX_LENGTH + 1)
    if not text.strip():
        raise ConditionError("empty expression", 1, text)
    return _Parser(text).parse()


def parse_condition(text: str) -> Condition:
    """Parse a boolean rule condition; raises ConditionError with a column for bad input."""
    node = _parse(text)
    if not isinstance(node, Condition):
        raise ConditionError("expected a condition (like x > 1), found a number expression", 1, text)
    return node


def parse_expression(text: str) -> Expression:
    """Parse a numeric expression (a rule's `value:`); raises ConditionError for bad input."""
    node = _parse(text)
    if not isinstance(node, Expression):
        raise ConditionError("expected a number expression, found a condition", 1, text)
    return node
