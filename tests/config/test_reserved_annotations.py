"""A rule may not set the `resolution` annotation: riskmon sets it on a resolved alert to say why it
resolved and drops it from firing ones, so the rule's own text would silently vanish. The error
names the file, the line and the key, like every config error."""

from __future__ import annotations

import textwrap

import pytest

from riskmon.config import ConfigError, parse_config
from tests.config.minimal_config import MINIMAL

RULES = textwrap.dedent(
    """\
        rules:
          - kind: event
            name: DeskFillRevoked
            event: fill_revoked
            annotations:
              summary: "revoked on {{market}}"
              {desk_key}: "a desk rule's text"
    rules:
      - kind: threshold
        name: GrossHigh
        when: desk.gross_usd > 1000000
      - kind: rate
        name: FillBurst
        event: fill
        window: 10s
        above: 100
        annotations:
          summary: "{{count}} fills"
          {firm_key}: "the rule's own text"
    """
)
RESERVED = (
    "`resolution` is reserved: riskmon sets it on a resolved alert to say why it resolved, and drops it from "
    "firing ones; name the annotation otherwise"
)


def config(desk_key: str = "runbook", firm_key: str = "runbook") -> str:
    return MINIMAL + RULES.format(desk_key=desk_key, firm_key=firm_key)


def line_of(text: str, needle: str) -> int:
    [number] = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    return number


def test_other_annotation_names_are_accepted() -> None:
    parsed = parse_config(config(), "monitor.yaml", {})
    assert parsed.rules[1].annotations == {"summary": "{count} fills", "runbook": "the rule's own text"}


def test_a_rule_annotation_named_resolution_is_rejected_with_file_line_and_key() -> None:
    text = config(firm_key="resolution")
    with pytest.raises(ConfigError) as raised:
        parse_config(text, "monitor.yaml", {})
    [issue] = raised.value.issues
    assert (issue.file, issue.line) == ("monitor.yaml", line_of(text, 'resolution: "the rule'))
    assert issue.path == ("rules", 1, "annotations", "resolution")
    assert str(issue) == f"monitor.yaml:{issue.line}: rules[1].annotations.resolution: {RESERVED}"


def test_a_desk_rule_annotation_named_resolution_is_rejected_too() -> None:
    text = config(desk_key="resolution", firm_key="resolution")
    with pytest.raises(ConfigError) as raised:
        parse_config(text, "monitor.yaml", {})
    found = sorted((issue.path, issue.line) for issue in raised.value.issues)
    assert found == [
        (("desks", "desk-a", "rules", 0, "annotations", "resolution"), line_of(text, 'resolution: "a desk')),
        (("rules", 1, "annotations", "resolution"), line_of(text, 'resolution: "the rule')),
    ]
