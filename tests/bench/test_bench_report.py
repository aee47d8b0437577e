"""The readable `riskmon bench` report (riskmon/bench/report.py) shows what each section measured."""

from __future__ import annotations

from typing import Any

from riskmon.bench.report import format_report, targets


def result(pipeline: dict[str, Any]) -> dict[str, Any]:
    headline = {"pipeline_events_per_s": 96_464.0}
    return {
        "targets": targets(headline),
        "sections": {"pipeline": pipeline},
        "errors": {},
        "section_seconds": {"pipeline": 2.5},
        "total_s": 2.5,
        "quick": False,
        "machine": {"note": "2 cores"},
    }


PIPELINE = {
    "frames": 200_000,
    "events": 240_000,
    "seconds": 2.49,
    "us_per_frame": 12.4,
    "malformed": 0,
    "engine_errors": 0,
    "mix": {"mango": 0.5, "phoenix": 0.5},
}


def pipeline_line(report: str) -> str:
    [line] = [line for line in report.splitlines() if line.startswith("pipeline ")]
    return line


def test_the_pipeline_line_says_how_many_frames_a_read_carries() -> None:
    line = pipeline_line(format_report(result({**PIPELINE, "read_frames": 32})))
    assert "200,000 frames, 240,000 events in 2.49 s (12.4 us/frame, 32 frames a read)" in line
    assert line.endswith("malformed 0, engine errors 0")


def test_a_result_without_read_frames_still_reports() -> None:
    line = pipeline_line(format_report(result(PIPELINE)))
    assert "(12.4 us/frame, - frames a read)" in line
