from __future__ import annotations

from typing import Any

import msgspec
import pytest
import yaml

from riskmon.config.alerting import RuleConfig
from riskmon.config.schema import MonitorConfig
from riskmon.config.types import decode_hook
from riskmon.engine.engine import Engine
from riskmon.rules.ruleset import check_rules
from tests.rules.conftest import MANGO, T0, fill, make_config, mark


def with_rules(rules_yaml: str, desk_rules: dict[str, str] | None = None) -> MonitorConfig:
    """The base config (parsed as `riskmon check` does) with rules decoded from YAML text into the
    config's own types: the loader may itself refuse broken rules once it calls check_rules."""

    def decode(text: str) -> list[RuleConfig]:
        data: Any = yaml.safe_load(text) or []
        return msgspec.convert(data, list[RuleConfig], dec_hook=decode_hook)

    config = make_config()
    desks = {
        name: msgspec.structs.replace(desk, rules=decode((desk_rules or {}).get(name, "")))
        for name, desk in config.desks.items()
    }
    return msgspec.structs.replace(config, rules=decode(rules_yaml), desks=desks)


def problems(rules_yaml: str) -> list[tuple[tuple[str | int, ...], str]]:
    return check_rules(with_rules(rules_yaml))


def test_a_valid_config_has_no_problems() -> None:
    rules = """
rules:
  - {kind: threshold, name: A, when: "market.net_usd > 1e6 and firm.gross_usd > 0", value: market.net_usd}
  - {kind: event, name: B, event: order_rejected, match: '{reason=~"insufficient.*", venue="px"}'}
  - {kind: rate, name: C, event: fill, window: 1m, above: 5, clear_at: 2, group_by: [venue, market]}
  - {kind: absent, name: D, event: heartbeat, for: 30s, while: venue.open_orders > 0, expect: [{venue: px}]}
"""
    assert check_rules(make_config(rules)) == []  # through the loader: the YAML shape is the real one


def test_an_unknown_state_name_is_located_with_a_caret() -> None:
    [(path, message)] = problems("  - {kind: threshold, name: A, when: 'desk.open_orders > 1 or desk.gros_usd > 5'}\n")
    assert path == ("rules", 0, "when")
    assert "unknown state name 'desk.gros_usd'" in message
    assert "(column 25)" in message
    assert message.endswith("desk.open_orders > 1 or desk.gros_usd > 5\n" + " " * 26 + "^")


def test_a_syntax_error_in_a_desk_rule_names_the_desk_rule() -> None:
    alpha = """
      - {kind: threshold, name: Ok, when: desk.gross_usd > 1}
      - {kind: threshold, name: Broken, when: desk.gross_usd >}
    """
    [(path, message)] = check_rules(with_rules("", {"alpha": alpha}))
    assert path == ("desks", "alpha", "rules", 1, "when")
    assert "expected a value, found end of input (column 17)" in message


@pytest.mark.parametrize(
    ("rule", "path", "fragment"),
    [
        (
            "{kind: threshold, name: A, when: 'venue.feed_up == 0 and desk.open_orders > 0'}",
            ("rules", 0, "when"),
            "cannot be mixed with 'desk.open_orders'",
        ),
        ("{kind: threshold, name: A, when: desk.gross_usd}", ("rules", 0, "when"), "expected a condition"),
        (
            "{kind: threshold, name: A, when: 'desk.gross_usd > 1 and {venue=\"px\"}'}",
            ("rules", 0, "when"),
            "label 'venue' is not carried by desk-scope state",
        ),
        ("{kind: event, name: A, event: fill, match: '{reason=\"x\"}'}", ("rules", 0, "match"), "not carried by fill"),
        ("{kind: event, name: A, event: fill, match: 'desk.gross_usd > 1'}", ("rules", 0, "match"), "unknown name"),
        ("{kind: event, name: A, event: fill, resolve_after: 0s}", ("rules", 0, "resolve_after"), "positive"),
        (
            "{kind: rate, name: A, event: fill, window: 1m, above: 1, group_by: [venue, reason]}",
            ("rules", 0, "group_by", 1),
            "fill signals carry no label 'reason'",
        ),
        ("{kind: rate, name: A, event: fill, window: 0s, above: 1}", ("rules", 0, "window"), "positive duration"),
        ("{kind: rate, name: A, event: fill, window: 1m, above: 1, clear_at: 2}", ("rules", 0, "clear_at"), "0 to"),
        (
            "{kind: absent, name: A, event: fill, for: 1m, group_by: [market], while: venue.open_orders > 0}",
            ("rules", 0, "while"),
            "needs 'venue' in group_by",
        ),
        (
            "{kind: absent, name: A, event: mark, for: 1m, expect: [{venue: mango}]}",
            ("rules", 0, "expect", 0),
            "exactly the group_by labels (venue, market)",
        ),
        ("{kind: event, name: A, event: fill, labels: {rule: x}}", ("rules", 0, "labels", "rule"), "set by riskmon"),
    ],
)
def test_each_problem_names_its_key(rule: str, path: tuple[str | int, ...], fragment: str) -> None:
    [(where, message)] = problems(f"  - {rule}\n")
    assert where == path
    assert fragment in message


def test_names_are_unique_per_scope_and_against_global_rules() -> None:
    desk_rules = {
        "alpha": "[{kind: event, name: Dup, event: fill}, {kind: event, name: Mine, event: fill}]",
        "beta": "[{kind: event, name: Mine, event: fill}]",
    }
    config = with_rules("[{kind: event, name: Dup, event: fill}, {kind: event, name: Dup, event: mark}]", desk_rules)
    assert check_rules(config) == [
        (("rules", 1, "name"), "another rule here is already named 'Dup'"),
        (("desks", "alpha", "rules", 0, "name"), "'Dup' is also the name of a global rule"),
    ]


def test_a_broken_rule_is_left_out_and_the_others_still_run() -> None:
    rules = """
  - {kind: threshold, name: Broken, when: desk.nope > 1}
  - {kind: threshold, name: Works, when: desk.gross_usd > 100}
"""
    engine = Engine(with_rules(rules))
    assert [path for path, _ in engine.rule_hooks.rules.problems] == [("rules", 0, "when")]
    [fired] = engine.ingest(MANGO, [mark("100"), fill("2")], T0)
    assert fired.alertname == "Works"
