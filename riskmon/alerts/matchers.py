"""Label matchers with Alertmanager's semantics and string syntax.

`severity="critical"`, `desk!=alpha`, `venue=~"mango.*|phoenix"`, `market!~".*-PERP"`.
A regex is fully anchored (`^(?:value)$`), as in Alertmanager, and compiled once. A label
that an alert does not carry matches as the empty string. Values are parsed, never evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

MatchOp = Literal["=", "!=", "=~", "!~"]
_OPS: dict[str, MatchOp] = {op: op for op in get_args(MatchOp)}

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Alertmanager's classic matcher grammar: name, operator, then the rest as the raw value.
_MATCHER = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|=|!=|!~)\s*(.*?)\s*", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: MatchOp
    value: str
    _regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if not LABEL_NAME.fullmatch(self.name):
            raise ValueError(f"invalid label name {self.name!r} in matcher {self}")
        if self.op not in _OPS:
            raise ValueError(f"invalid operator {self.op!r} in matcher for label {self.name!r}")
        if self.op in ("=~", "!~"):
            try:
                compiled = re.compile(f"(?:{self.value})")
            except re.error as exc:
                raise ValueError(f"invalid regular expression {self.value!r} in matcher {self}: {exc}") from None
            object.__setattr__(self, "_regex", compiled)

    def matches(self, value: str) -> bool:
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self._regex is not None
        hit = self._regex.fullmatch(value) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f"{self.name}{self.op}{quote(self.value)}"


def quote(value: str) -> str:
    """Quote a value the way Alertmanager prints it, so that `parse_matcher` reads it back."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def parse_matcher(text: str) -> Matcher:
    """Parse one matcher in Alertmanager's syntax: `name op value`, value bare or double-quoted.

    Inside the value, `\\"`, `\\\\` and `\\n` are escapes; any other backslash is kept literally,
    so `=~"\\d+"` is the regex `\\d+`. An unescaped double quote inside the value is an error.
    """
    found = _MATCHER.fullmatch(text)
    if found is None:
        raise ValueError(f"bad matcher format {text!r}: expected name, one of = != =~ !~, then a value")
    name, op, raw = found.group(1), found.group(2), found.group(3)
    quoted = raw.startswith('"')
    if quoted:
        raw = raw[1:]
    out: list[str] = []
    escaped = False
    closed = False
    for i, ch in enumerate(raw):
        if escaped:
            escaped = False
            if ch == "n":
                out.append("\n")
            elif ch in '"\\':
                out.append(ch)
            else:
                out.append("\\" + ch)
        elif ch == "\\":
            if i < len(raw) - 1:
                escaped = True
            else:
                out.append("\\")
        elif ch == '"':
            if not quoted or i < len(raw) - 1:
                raise ValueError(f"matcher {text!r}: value contains an unescaped double quote")
            closed = True
        else:
            out.append(ch)
    if quoted and not closed:
        raise ValueError(f"matcher {text!r}: value has no closing double quote")
    return Matcher(name, _OPS[op], "".join(out))


def parse_matchers(texts: Iterable[str]) -> tuple[Matcher, ...]:
    """Parse several matchers; the error names the position of the bad one."""
    parsed: list[Matcher] = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"matcher [{i}]: expected a string, got {type(text).__name__}")
        try:
            parsed.append(parse_matcher(text))
        except ValueError as exc:
            raise ValueError(f"matcher [{i}]: {exc}") from None
    return tuple(parsed)


def matches(labels: Mapping[str, str], matchers: Iterable[Matcher]) -> bool:
    """True when every matcher matches; a missing label counts as the empty string."""
    return all(m.matches(labels.get(m.name, "")) for m in matchers)


def format_matchers(matchers: Iterable[Matcher]) -> str:
    """`{a="b",c=~"d"}`, as Alertmanager writes a matcher list in route keys."""
    return "{" + ",".join(str(m) for m in matchers) + "}"
