"""Tests for riskmon/export_rules.py, the `firm` config section and `riskmon export-rules`.

promtool runs the generated rules in tests/integration/test_export_rules_promtool.py.
"""

from __future__ import annotations

import fnmatch
import re
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from riskmon.cli import main
from riskmon.config import ConfigError, load_config, parse_config
from riskmon.config.schema import FirmConfig, FirmLimits, NetNotionalLimit
from riskmon.config.types import Duration
from riskmon.export_rules import (
    FIRM_GROSS,
    FIRM_INSTANCES_UP,
    FIRM_NET,
    FIRM_PENDING_RFQ,
    FIRM_WORST_CASE_LOSS,
    HEADER,
    firm_rule_file,
    glob_to_re2,
    prometheus_duration,
    render_rule_file,
)

DATA = Path(__file__).resolve().parent / "data"
FIRM_MONITOR = DATA / "firm_monitor.yaml"

BASE = textwrap.dedent(
    """\
    venues:
      mango: {kind: mango_v3_fills, urls: ["ws://127.0.0.1:1"]}
    desks:
      alpha:
        accounts: {mango: [DMjLV5AdbdnAxEE9CCJYdzGhEDVAaKPJDRTZQ7kgMZwm]}
    """
)


def firm(*patterns: tuple[str, int], job: str = "riskmon", **limits: Any) -> FirmConfig:
    net = [NetNotionalLimit(market=p, max_usd=Decimal(m)) for p, m in patterns]
    return FirmConfig(instances=2, job=job, limits=FirmLimits(max_net_notional_usd=net, **limits))


def rules_of(config: FirmConfig) -> list[dict[str, Any]]:
    groups = firm_rule_file(config)["groups"]
    assert len(groups) == 1
    rules: list[dict[str, Any]] = groups[0]["rules"]
    return rules


def alerts_named(config: FirmConfig, alertname: str) -> list[dict[str, Any]]:
    return [rule for rule in rules_of(config) if rule.get("alert") == alertname]


# --- glob -> RE2 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "regex"),
    [
        ("SOL", "SOL"),
        ("*", ".*"),
        ("**", ".*"),
        ("*-eth-usd*", ".*-eth-usd.*"),
        ("BTC?", "BTC."),
        ("ETH.PERP", r"ETH\.PERP"),
        ("$(x)+{1}|^", r"\$\(x\)\+\{1\}\|\^"),
        ("back\\slash", r"back\\slash"),
        ("[AB]TC", "[AB]TC"),
        ("[!A]*", "[^A].*"),
        ("[]x]", r"[\]x]"),
        ("[^x]", r"[\^x]"),
        (
            "[[:alpha:]]",
            r"[\[:alpha:]\]",
        ),  # fnmatch: the set `[:alph` then a literal `]`; RE2 must not see a POSIX class
        ("[a-c-e]", r"[a-c\-e]"),
        ("[a-]", r"[a\-]"),
        ("[z-a]", r"[^\s\S]"),  # an empty range matches nothing
        ("[!z-a]", r"[\s\S]"),
        ("[", r"\["),
        ("a[b", r"a\[b"),
        ("x[&&y]", r"x[\&\&y]"),
    ],
)
def test_glob_to_re2_translates_fnmatch_syntax(pattern: str, regex: str) -> None:
    assert glob_to_re2(pattern) == regex


_GLOB_CHARS = "aSb-*?[]!^.\\$(|&"


@settings(max_examples=400, deadline=None)
@given(
    pattern=st.text(alphabet=_GLOB_CHARS, max_size=8), names=st.lists(st.text(alphabet="aSb-[]!^.\\$(|&", max_size=6))
)
def test_glob_to_re2_matches_exactly_what_fnmatchcase_matches(pattern: str, names: list[str]) -> None:
    # Prometheus anchors `=~` on both ends, as fullmatch does; the translated syntax means the same
    # in Python's re and in RE2 (promtool checks the RE2 side in the integration test).
    regex = re.compile(glob_to_re2(pattern))
    for name in [*names, pattern]:
        assert bool(regex.fullmatch(name)) == fnmatch.fnmatchcase(name, pattern), (pattern, name)


# --- the rule file --------------------------------------------------------------------------------


def test_rule_file_records_the_firm_sums_and_alerts_on_them_for_the_configured_job() -> None:
    config = load_config(FIRM_MONITOR)
    assert config.firm is not None
    rules = rules_of(config.firm)
    assert firm_rule_file(config.firm)["groups"][0]["name"] == "riskmon_firm"
    assert [(r["record"], r["expr"]) for r in rules if "record" in r] == [
        (FIRM_INSTANCES_UP, 'sum by (job) (up{job="riskmon"}) or label_replace(vector(0), "job", "riskmon", "", "")'),
        (FIRM_GROSS, 'sum by (job) (riskmon_desk_exposure_gross_notional_usd{job="riskmon"})'),
        (FIRM_NET, 'sum by (job, underlying) (riskmon_desk_exposure_net_notional_usd{job="riskmon"})'),
        (FIRM_PENDING_RFQ, 'sum by (job) (riskmon_rfq_pending_exposure_usd{job="riskmon"})'),
        (FIRM_WORST_CASE_LOSS, 'sum by (job) (riskmon_worst_case_loss_usd{job="riskmon"})'),
    ]
    alerts = [r for r in rules if "alert" in r]
    assert [(r["alert"], r["labels"]["severity"], r["labels"].get("pattern")) for r in alerts] == [
        ("FirmGrossNotionalLimit", "critical", None),
        ("FirmGrossNotionalLimit", "warning", None),
        ("FirmNetNotionalLimit", "critical", "SOL"),
        ("FirmNetNotionalLimit", "warning", "SOL"),
        ("FirmNetNotionalLimit", "critical", "*"),
        ("FirmNetNotionalLimit", "warning", "*"),
        ("FirmPendingRfqLimit", "critical", None),
        ("FirmPendingRfqLimit", "warning", None),
        ("FirmWorstCaseLossLimit", "critical", None),
        ("FirmWorstCaseLossLimit", "warning", None),
        ("RiskmonInstancesMissing", "critical", None),
        ("RiskmonDeskReportedTwice", "warning", None),
    ]
    for alert in alerts:
        assert alert["labels"]["scope"] == "firm"
        assert alert["for"] == "1m"
        assert 'job="riskmon"' in alert["expr"]
        assert set(alert["annotations"]) == {"summary", "description"}
    assert alerts[-2]["expr"] == 'firm:up:sum{job="riskmon"} < 2'
    assert alerts[-1]["expr"].startswith("count by (job, desk) (group by (job, desk, instance) ({__name__=~")


def test_warning_stops_where_critical_starts() -> None:
    critical, warning = alerts_named(firm(max_gross_notional_usd=Decimal("1000000"), warn_at=Decimal("0.75")),
                                     "FirmGrossNotionalLimit")  # fmt: skip
    assert critical["expr"] == f'{FIRM_GROSS}{{job="riskmon"}} >= 1000000'
    assert warning["expr"] == f'{FIRM_GROSS}{{job="riskmon"}} >= 750000 < 1000000'
    assert "at or over 75% of its $1,000,000 limit" in warning["annotations"]["summary"]
    assert "{{ $value | humanize }}" in critical["annotations"]["summary"]
    assert "(warning at $750,000, critical at $1,000,000)" in critical["annotations"]["description"]


def test_later_net_patterns_exclude_every_earlier_one() -> None:
    config = firm(("SOL*", 300000), ("*-PERP", 200000), ("*", 100000))
    criticals = [
        rule for rule in alerts_named(config, "FirmNetNotionalLimit") if rule["labels"]["severity"] == "critical"
    ]
    series = f'abs({FIRM_NET}{{job="riskmon", underlying=~'
    assert [rule["expr"] for rule in criticals] == [
        series + '"SOL.*"}) >= 300000',
        series + '".*-PERP", underlying!~"SOL.*"}) >= 200000',
        series + '".*", underlying!~"SOL.*", underlying!~".*-PERP"}) >= 100000',
    ]
    assert [rule["labels"]["pattern"] for rule in criticals] == ["SOL*", "*-PERP", "*"]
    assert "limit for pattern `*-PERP`" in criticals[1]["annotations"]["summary"]


def test_a_repeated_pattern_adds_no_rule() -> None:
    config = firm(("SOL", 300000), ("SOL", 50000))
    assert [rule["labels"]["severity"] for rule in alerts_named(config, "FirmNetNotionalLimit")] == [
        "critical",
        "warning",
    ]


def test_unset_limits_give_only_the_sums_and_the_instance_alerts() -> None:
    rules = rules_of(FirmConfig(instances=3))
    assert [rule.get("alert") for rule in rules if "alert" in rule] == [
        "RiskmonInstancesMissing",
        "RiskmonDeskReportedTwice",
    ]
    assert len([rule for rule in rules if "record" in rule]) == 5
    assert all("for" not in rule for rule in rules)  # for: 0s fires at the first evaluation


def test_config_text_is_quoted_for_promql_and_kept_out_of_templates() -> None:
    config = firm(('we"ird{{x}}', 1000), job='risk"mon$1{{')
    rules = rules_of(config)
    up = next(rule for rule in rules if rule.get("record") == FIRM_INSTANCES_UP)
    assert up["expr"] == (
        r'sum by (job) (up{job="risk\"mon$1{{"}) or label_replace(vector(0), "job", "risk\"mon$$1{{", "", "")'
    )
    net = alerts_named(config, "FirmNetNotionalLimit")[0]
    assert r'underlying=~"we\"ird\\{\\{x\\}\\}"' in net["expr"]
    # Prometheus expands labels and annotations as Go templates: config text goes in as a string literal.
    assert net["labels"]["pattern"] == r'{{ "we\"ird{{x}}" }}'
    assert r'job {{ "risk\"mon$1{{" }}:' in net["annotations"]["description"]


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (0.25, "250ms"), (30, "30s"), (90, "1m30s"), (3600, "1h"), (90061, "1d1h1m1s")]
)
def test_for_is_written_as_a_prometheus_duration(seconds: float, text: str) -> None:
    assert prometheus_duration(seconds) == text


def test_rendered_yaml_is_deterministic_and_round_trips() -> None:
    config = load_config(FIRM_MONITOR)
    assert config.firm is not None
    text = render_rule_file(config.firm)
    again = load_config(FIRM_MONITOR).firm
    assert again is not None
    assert render_rule_file(again) == text
    assert text.startswith(HEADER)
    assert yaml.safe_load(text) == firm_rule_file(config.firm)
    first_alert = text[text.index("- alert: FirmGrossNotionalLimit") :]
    assert first_alert.index("annotations:") < first_alert.index("expr:") < first_alert.index("labels:")


# --- config ---------------------------------------------------------------------------------------


def test_firm_section_defaults() -> None:
    config = parse_config(BASE + "firm: {instances: 3}\n", "monitor.yaml", {})
    assert config.firm == FirmConfig(instances=3)
    assert config.firm.job == "riskmon"
    assert config.firm.limits.warn_at == Decimal("0.8")
    assert config.firm.limits.pending_for == Duration(0.0)
    assert parse_config(BASE, "monitor.yaml", {}).firm is None


def test_firm_section_problems_are_reported_with_file_line_and_key() -> None:
    text = BASE + textwrap.dedent(
        """\
        firm:
          instances: 0
          job: ""
          limits:
            max_gross_notional_usd: 0
            max_net_notional_usd:
              - {market: SOL, max_usd: -5}
              - {market: "", max_usd: 10}
            max_pending_rfq_usd: -1
            max_worst_case_loss_usd: .nan
            warn_at: 1
        """
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "firm.yaml", {})
    assert sorted(str(issue) for issue in caught.value.issues) == sorted(
        [
            "firm.yaml:7: firm.instances: expected at least 1",
            "firm.yaml:8: firm.job: expected the scrape job name of the riskmon instances",
            "firm.yaml:10: firm.limits.max_gross_notional_usd: expected a positive amount",
            "firm.yaml:12: firm.limits.max_net_notional_usd[0].max_usd: expected a positive amount",
            "firm.yaml:13: firm.limits.max_net_notional_usd[1].market: expected an underlying name pattern",
            "firm.yaml:14: firm.limits.max_pending_rfq_usd: expected a positive amount",
            "firm.yaml:15: firm.limits.max_worst_case_loss_usd: expected a positive amount",
            "firm.yaml:16: firm.limits.warn_at: expected a fraction in (0, 1)",
        ]
    )


def test_firm_section_type_errors_name_the_key() -> None:
    text = BASE + "firm:\n  instances: 2\n  limits:\n    clear_at: 0.9\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "firm.yaml", {})
    (issue,) = caught.value.issues
    assert str(issue).startswith("firm.yaml:9: firm.limits.clear_at: unknown key; expected one of")
    with pytest.raises(ConfigError) as missing:
        parse_config(BASE + "firm:\n  job: riskmon\n", "firm.yaml", {})
    assert [str(i) for i in missing.value.issues] == ["firm.yaml:6: firm: missing required key `instances`"]


REPO = Path(__file__).resolve().parents[1]
_MONITOR_VARIABLES = (
    "RISKMON_API_TOKEN",
    "MOBULA_API_KEY",
    "PROPHETX_ACCESS_KEY",
    "PROPHETX_SECRET_KEY",
    "TOTALIS_API_KEY",
    "PHOENIX_JWT",
    "RISK_WEBHOOK_URL",
    "RISK_WEBHOOK_HMAC",
    "SLACK_WEBHOOK_URL",
)
MONITOR_ENV = {name: "https://secret.example/" + name.lower() for name in _MONITOR_VARIABLES}


def commented_firm_example() -> str:
    text = (REPO / "monitor.yaml").read_text()
    block = text[text.index("# firm:\n") :].splitlines()
    return "\n".join(line[2:] for line in block[: next(i for i, line in enumerate(block) if not line.startswith("#"))])


def test_the_commented_example_in_monitor_yaml_is_a_valid_firm_section() -> None:
    config = parse_config(BASE + commented_firm_example() + "\n", "monitor.yaml", {})
    assert config.firm is not None
    assert config.firm.instances == 3
    assert [entry.market for entry in config.firm.limits.max_net_notional_usd] == ["SOL", "*"]
    assert config.firm.limits.pending_for == 60.0


def test_monitor_yaml_validates_with_its_documented_environment() -> None:
    config = parse_config((REPO / "monitor.yaml").read_text(), "monitor.yaml", MONITOR_ENV)
    assert config.desks


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_prints_the_rules_or_writes_them_to_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config(FIRM_MONITOR)
    assert config.firm is not None
    expected = render_rule_file(config.firm)
    assert main(["export-rules", "-c", str(FIRM_MONITOR)]) == 0
    assert capsys.readouterr().out == expected
    output = tmp_path / "firm_rules.yaml"
    output.write_text("old rules\n")
    assert main(["export-rules", "-c", str(FIRM_MONITOR), "-o", str(output)]) == 0
    assert output.read_text() == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["firm_rules.yaml"]  # no staging file left behind
    assert capsys.readouterr().out == ""


def test_cli_exits_2_without_a_firm_section_or_with_an_invalid_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text(BASE)
    assert main(["export-rules", "-c", str(plain)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"error: {plain}: firm: no `firm` section: there are no firm-wide limits to export\n"

    broken = tmp_path / "broken.yaml"
    broken.write_text(BASE + "firm: {instances: 0}\n")
    assert main(["export-rules", "-c", str(broken)]) == 2
    assert capsys.readouterr().err == f"error: {broken}:6: firm.instances: expected at least 1\n"
    assert main(["check", "-c", str(broken)]) == 1
    assert "firm.instances: expected at least 1" in capsys.readouterr().err


def test_cli_reports_an_unwritable_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "missing-dir" / "rules.yaml"
    assert main(["export-rules", "-c", str(FIRM_MONITOR), "-o", str(output)]) == 1
    assert capsys.readouterr().err == f"error: {output}: No such file or directory\n"
