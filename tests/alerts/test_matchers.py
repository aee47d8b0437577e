from __future__ import annotations

import re

import pytest

from riskmon.alerts.matchers import Matcher, format_matchers, matches, parse_matcher, parse_matchers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('severity="critical"', Matcher("severity", "=", "critical")),
        ("severity=critical", Matcher("severity", "=", "critical")),
        ('  desk != "alpha"  ', Matcher("desk", "!=", "alpha")),
        ('severity=~"critical|warning"', Matcher("severity", "=~", "critical|warning")),
        ("venue!~mango.*", Matcher("venue", "!~", "mango.*")),
        ('summary="say \\"hi\\""', Matcher("summary", "=", 'say "hi"')),
        ('path="a\\\\b"', Matcher("path", "=", "a\\b")),
        ('text="two\\nlines"', Matcher("text", "=", "two\nlines")),
        ('n=~"\\d+"', Matcher("n", "=~", "\\d+")),  # a spurious escape stays literal, as in Alertmanager
        ('empty=""', Matcher("empty", "=", "")),
        ("empty=", Matcher("empty", "=", "")),
    ],
)
def test_parse_accepts_alertmanager_syntax(text: str, expected: Matcher) -> None:
    assert parse_matcher(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("severity", "bad matcher format 'severity'"),
        ('="x"', "bad matcher format"),
        ('1abc="x"', "bad matcher format"),
        ('a="x', "no closing double quote"),
        ('a="x"y"', "unescaped double quote"),
        ('a=x"', "unescaped double quote"),
        ('a=~"(unclosed"', "invalid regular expression '(unclosed' in matcher a=~\"(unclosed\""),
    ],
)
def test_parse_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_matcher(text)


def test_parse_matchers_names_the_position_of_the_bad_one() -> None:
    assert parse_matchers(['a="1"', "b!=2"]) == (Matcher("a", "=", "1"), Matcher("b", "!=", "2"))
    with pytest.raises(ValueError, match=r"^matcher \[1\]: bad matcher format 'nope'"):
        parse_matchers(['a="1"', "nope"])


def test_matcher_validates_name_and_regex_when_built_directly() -> None:
    with pytest.raises(ValueError, match="invalid label name 'bad-name'"):
        Matcher("bad-name", "=", "x")
    with pytest.raises(ValueError, match=r"invalid regular expression '\['"):
        Matcher("a", "!~", "[")


def test_regex_is_fully_anchored() -> None:
    m = Matcher("venue", "=~", "mango|phoenix")
    assert m.matches("mango")
    assert m.matches("phoenix")
    assert not m.matches("mango_v3")  # no prefix match
    assert not m.matches("xphoenix")  # no suffix match
    assert not Matcher("venue", "!~", "mango|phoenix").matches("phoenix")
    assert Matcher("venue", "!~", "mango|phoenix").matches("mango_v3")


def test_missing_label_is_the_empty_string() -> None:
    labels = {"desk": "alpha"}
    assert matches(labels, [Matcher("venue", "=", "")])
    assert matches(labels, [Matcher("venue", "=~", ".*")])
    assert not matches(labels, [Matcher("venue", "=~", ".+")])
    assert not matches(labels, [Matcher("venue", "!=", "")])
    assert matches(labels, [Matcher("venue", "!=", "mango")])


def test_matches_needs_every_matcher() -> None:
    labels = {"desk": "alpha", "severity": "critical"}
    assert matches(labels, [])
    assert matches(labels, parse_matchers(['desk="alpha"', 'severity=~"critical|warning"']))
    assert not matches(labels, parse_matchers(['desk="alpha"', "severity=warning"]))


def test_string_form_round_trips() -> None:
    m = Matcher("summary", "=", 'a"b\\c\nd')
    assert str(m) == 'summary="a\\"b\\\\c\\nd"'
    assert parse_matcher(str(m)) == m
    assert format_matchers([Matcher("a", "=", "b"), Matcher("c", "=~", "d")]) == '{a="b",c=~"d"}'
