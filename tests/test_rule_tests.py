"""`riskmon test`: the example file passes; a wrong expectation fails with a readable diff;
an unusable file is an error, not a failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from riskmon.cli import main

EXAMPLE = Path(__file__).parent / "data" / "rules_test.yaml"


def test_example_file_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert out.count("ok      ") == 2
    assert out.rstrip().endswith("2 passed, 0 failed")


def test_a_wrong_expectation_fails_with_a_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = EXAMPLE.read_text().replace("{at: 31s, receiver: console", "{at: 30s, receiver: console")
    text = text.replace(
        "- at: 1s\n        firing:\n          - {alertname: ExposureLimitBreach, severity: warning,",
        "- at: 1s\n        firing:\n          - {alertname: ExposureLimitBreach, severity: critical,",
    )
    broken = tmp_path / "t.yaml"
    broken.write_text(text)
    assert main(["test", str(broken)]) == 1
    out = capsys.readouterr().out
    assert "FAILED  warning at 80%" in out
    assert "-ExposureLimitBreach [critical] {desk=sol-desk, market=SOL-PERP}" in out
    assert "+ExposureLimitBreach [warning] {desk=sol-desk, limit=net_notional, market=SOL-PERP}" in out
    assert "-30s console: firing ['ExposureLimitBreach', 'ExposureLimitBreach'] resolved []" in out
    assert "+31s console: firing ['ExposureLimitBreach', 'ExposureLimitBreach'] resolved []" in out
    assert out.rstrip().endswith("1 passed, 1 failed")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tests: []\n", "config"),
        ("config: missing.yaml\ntests: []\n", "missing.yaml"),
        ("config: {venues: {}, desks: {}}\ntests: []\n", "expected at least one entry"),
        ("config: {venues: {}, desks: {}}\ntests: [{name: x, bogus: 1}]\n", "bogus"),
        ("config: [\n", "error"),
    ],
)
def test_unusable_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    assert main(["test", str(path)]) == 2
    assert message in capsys.readouterr().out


def test_bad_input_rows_are_errors_naming_the_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = EXAMPLE.read_text().replace("venue: mango\n        events:", "venue: nowhere\n        events:", 1)
    path = tmp_path / "t.yaml"
    path.write_text(text)
    assert main(["test", str(path)]) == 2
    assert "input at 1s: no venue named 'nowhere'" in capsys.readouterr().out
