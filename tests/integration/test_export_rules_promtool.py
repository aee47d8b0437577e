"""The rules `riskmon export-rules` writes, run by the real promtool: `check rules` (syntax, RE2 regexes,
lint), `test rules` with tests/data/firm_rules_test.yaml, and the glob translation in Prometheus' engine."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from riskmon.config import load_config
from riskmon.config.schema import FirmConfig, FirmLimits, NetNotionalLimit
from riskmon.export_rules import FIRM_NET, promql_string, render_rule_file

DATA = Path(__file__).resolve().parents[1] / "data"
NET_METRIC = "riskmon_desk_exposure_net_notional_usd"
pytestmark = pytest.mark.integration


def firm_rules() -> str:
    config = load_config(DATA / "firm_monitor.yaml")
    assert config.firm is not None
    return render_rule_file(config.firm)


def promtool_test(promtool: str, directory: Path, rules: str) -> subprocess.CompletedProcess[str]:
    # promtool resolves rule_files relative to the test file.
    (directory / "firm_rules.yaml").write_text(rules)
    shutil.copy(DATA / "firm_rules_test.yaml", directory / "firm_rules_test.yaml")
    return subprocess.run(
        [promtool, "test", "rules", "firm_rules_test.yaml"], cwd=directory, capture_output=True, text=True, timeout=30
    )


def test_promtool_check_rules_accepts_the_generated_rules(promtool: str, tmp_path: Path) -> None:
    rules = tmp_path / "firm_rules.yaml"
    rules.write_text(firm_rules())
    result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 17 rules found" in result.stdout


def test_promtool_test_rules_passes_on_the_committed_test_file(promtool: str, tmp_path: Path) -> None:
    result = promtool_test(promtool, tmp_path, firm_rules())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("broken", "why"),
    [
        (" >= 800000 < 1000000", " >= 800000"),  # the warning would fire alongside the critical
        (', underlying!~"SOL"', ""),  # SOL would also alert under the catch-all `*`
        (' or label_replace(vector(0), "job", "riskmon", "", "")', ""),  # no instance at all: silence
        (' (riskmon_desk_exposure_gross_notional_usd{job="riskmon"})', " (riskmon_desk_exposure_gross_notional_usd)"),
        (" > 1\n", " > 0\n"),
    ],
)
def test_the_committed_test_file_fails_rules_with_known_mistakes(
    promtool: str, tmp_path: Path, broken: str, why: str
) -> None:
    rules = firm_rules()
    assert broken in rules
    result = promtool_test(promtool, tmp_path, rules.replace(broken, why))
    assert result.returncode == 1
    assert "FAILED" in result.stdout + result.stderr


# Names and patterns full of characters that mean something in a regex, in PromQL strings or in fnmatch.
UNDERLYINGS = [
    "SOL",
    "sol",
    "SOL-PERP",
    "ETH.PERP",
    "ETHxPERP",
    "BTC/USD",
    "a+b(c)",
    "[x]",
    "x$y",
    "^z",
    "we{ird}",
    "back\\slash",
    'quote"d',
    "pipe|or",
    "7day",
    "eth.perp",
]
PATTERNS = [
    "SOL",
    "ETH.PERP",
    "BTC/*",
    "a+b(?)",
    "[[]x]",
    "x$?",
    "^*",
    "*{ird}",
    "back\\*",
    'quote"*',
    "*|*",
    "[!a-z]*",
]


def test_prometheus_applies_the_first_matching_glob_exactly_as_fnmatch_does(promtool: str, tmp_path: Path) -> None:
    firm = FirmConfig(
        instances=1,
        limits=FirmLimits(max_net_notional_usd=[NetNotionalLimit(market=p, max_usd=Decimal(100)) for p in PATTERNS]),
    )
    (tmp_path / "firm_rules.yaml").write_text(render_rule_file(firm))
    series = [
        {
            "series": f'{NET_METRIC}{{job="riskmon", desk="d", underlying={promql_string(name)}}}',
            "values": "1000x3",
        }
        for name in UNDERLYINGS
    ]
    expected = []
    unmatched = set()
    for name in UNDERLYINGS:
        pattern = next((p for p in PATTERNS if fnmatch.fnmatchcase(name, p)), None)
        if pattern is None:
            unmatched.add(name)
        else:
            labels = (
                f'ALERTS{{alertname="FirmNetNotionalLimit", alertstate="firing", job="riskmon", scope="firm",'
                f' severity="critical", underlying={promql_string(name)}, pattern={promql_string(pattern)}}}'
            )
            expected.append({"labels": labels, "value": 1})
    assert unmatched == {"sol", "eth.perp"}  # the case-sensitive misses: the test covers both outcomes
    test_file = {
        "rule_files": ["firm_rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": 'ALERTS{alertname="FirmNetNotionalLimit"}',
                        "eval_time": "1m",
                        "exp_samples": expected,
                    },
                    {"expr": f"count({FIRM_NET})", "eval_time": "1m", "exp_samples": [{"value": len(UNDERLYINGS)}]},
                ],
            }
        ],
    }
    (tmp_path / "globs_test.yaml").write_text(yaml.safe_dump(test_file, allow_unicode=True))
    result = subprocess.run(
        [promtool, "test", "rules", "globs_test.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
