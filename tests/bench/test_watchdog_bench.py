"""Smoke test of the watchdog benchmark at tiny sizes: well-formed results, every deadline armed to
fire fired once and no other did. Correctness only: the benchmark's timings are never asserted."""

from __future__ import annotations

import json

import pytest

from riskmon.bench.measure import Percentiles
from riskmon.bench.watchdogs import WatchdogBenchResult, run_watchdog_bench
from riskmon.cli import main


def _well_formed(p: Percentiles) -> None:
    assert p.p50 is not None
    assert p.p99 is not None
    assert p.max is not None
    assert 0.0 <= p.p50 <= p.p99 <= p.max


def test_every_deadline_armed_to_fire_fires_once_and_no_other() -> None:
    result = run_watchdog_bench(pending=2000, firing=200, event_rate=2000, duration=0.3, seed=1, floor_probes=10)
    assert isinstance(result, WatchdogBenchResult)
    assert (result.pending, result.firing) == (2000, 200)
    assert result.fired == 200
    assert result.unexpected_fired == 0
    assert 0 <= result.fired_by_timer <= result.fired
    # Every armed deadline is in the heap when the run starts (plus the health-check gap).
    assert result.heap_at_start >= 2000
    _well_formed(result.lateness_ms)
    _well_formed(result.event_delay_ms)
    _well_formed(result.loop_floor_ms)
    assert result.events_applied > 0
    assert result.events_per_s > 0
    assert result.mode == "events"
    # A heap entry, a dict entry, a WatchedOrder and an order id cannot fit in 100 bytes.
    assert result.bytes_per_pending_deadline > 100
    assert result.journal_bytes_per_record > 0
    assert result.setup_s > 0
    assert result.arm_us > 0
    assert json.loads(json.dumps(result.to_json()))["fired"] == 200


def test_cli_subcommand_prints_one_json_object_with_frames_through_the_codec(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["bench-watchdogs", "--json", "--pending", "500", "--firing", "50", "--duration", "0.3", "--frames"]
    assert main([*argv, "--event-rate", "2000"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "frames"
    assert out["fired"] == out["firing"] == 50
    assert out["unexpected_fired"] == 0
    assert set(out["lateness_ms"]) == {"p50", "p99", "max"}


def test_no_events_leaves_the_timer_alone_to_fire() -> None:
    result = run_watchdog_bench(pending=300, firing=30, event_rate=0, duration=0.2, floor_probes=5)
    assert result.fired == 30
    assert result.events_applied == 0
    assert result.fired_by_timer == 30


def test_rejects_a_run_with_nothing_left_pending() -> None:
    with pytest.raises(ValueError, match="firing < pending"):
        run_watchdog_bench(pending=10, firing=10)
