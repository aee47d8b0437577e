"""`riskmon bench` at tiny sizes: every section runs and reports well-formed, plausible values.

Correctness only: no timing is asserted (the machine is shared), only that each instrument counts
what it says it counts: every frame of the five-venue mix decoded and applied, every e2e frame
applied by the real Monitor, every breach notified, every open order and deadline held, every
persisted deadline restored.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from riskmon.bench.alert_latency import CROSS_LOTS, LOT_USD, match_breaches, run_alert_latency_bench
from riskmon.bench.e2e import run_e2e_bench
from riskmon.bench.frame_server import ws_frame
from riskmon.bench.measure import Percentiles
from riskmon.bench.open_orders import DUE_AHEAD, run_open_order_memory_bench
from riskmon.bench.pipeline import run_pipeline_bench
from riskmon.bench.report import targets
from riskmon.bench.restart import restart_config, run_restart_bench, seed_restart_state
from riskmon.bench.venue_mix import MIX, build_mix
from riskmon.cli import main
from riskmon.events import (
    BookSnapshot,
    FillReceived,
    FrameMalformed,
    Heartbeat,
    MarkPrice,
    OrderUpdate,
    PositionsReported,
    QuoteUpdate,
    RfqPositionUpdate,
    TradeExecuted,
)
from riskmon.store.deadlines import DeadlineStore


def _well_formed(p: Percentiles) -> None:
    assert p.p50 is not None
    assert p.p99 is not None
    assert p.max is not None
    assert 0.0 <= p.p50 <= p.p99 <= p.max


def test_the_mix_holds_every_venue_in_proportion_and_each_codec_reads_its_frames() -> None:
    mix = build_mix(1000, seed=3)
    assert dict(mix.counts) == {venue: round(1000 * share) for venue, share in MIX.items()}
    assert Counter(venue for venue, _ in mix.frames) == mix.counts
    codecs = mix.fresh_codecs()
    kinds: dict[str, set[type]] = {venue: set() for venue in MIX}
    for venue, handshake in mix.handshakes.items():
        for text in handshake:
            assert not any(isinstance(e, FrameMalformed) for e in codecs[venue].receive_text(text))
    for venue, text in mix.frames:
        events = codecs[venue].receive_text(text)
        assert not any(isinstance(e, FrameMalformed) for e in events), (venue, text[:200])
        kinds[venue].update(type(e) for e in events)
    # What each venue's stream is about reaches the engine as the events that carry it.
    assert {FillReceived, MarkPrice} <= kinds["mango"]
    assert {PositionsReported, TradeExecuted, MarkPrice} <= kinds["phoenix"]
    assert {FillReceived, MarkPrice} <= kinds["mobula"]
    assert {OrderUpdate, BookSnapshot, Heartbeat} <= kinds["prophetx"]
    assert {QuoteUpdate, RfqPositionUpdate} <= kinds["totalis"]


def test_pipeline_applies_every_frame_of_every_venue() -> None:
    result = run_pipeline_bench(frames=600, seed=1)
    assert result.frames == 600
    assert sum(v["frames"] for v in result.per_venue.values()) == 600
    assert all(v["frames"] > 0 and v["events"] > 0 for v in result.per_venue.values())
    assert result.events == sum(v["events"] for v in result.per_venue.values())
    assert result.malformed == 0
    assert result.engine_errors == 0
    assert result.alert_transitions == 0  # the limits and rules are set beyond the mix
    assert result.events_per_s > 0
    assert result.frames_per_s > 0
    assert result.us_per_frame == pytest.approx(1e6 / result.frames_per_s, rel=0.01)


def test_pipeline_rejects_fewer_frames_than_venues() -> None:
    with pytest.raises(ValueError, match="one per venue"):
        run_pipeline_bench(frames=3)


@pytest.mark.integration
def test_e2e_monitor_applies_every_frame_and_the_floor_receives_them_all() -> None:
    result = run_e2e_bench(frames=1500)
    assert result.frames == 1500
    # 1500 frames: one mark each, a desk fill in one of ten.
    assert result.riskmon_events_per_s == pytest.approx(result.riskmon_frames_per_s * 1650 / 1500, rel=1e-3)
    assert result.riskmon_malformed == 0
    assert result.frame_bytes > 1500 * 300  # a Mango update frame is about 370 bytes
    assert result.floor_frames_per_s > 0
    assert result.sender_frames_per_s > 0
    assert result.ratio_to_floor == pytest.approx(result.floor_s / result.riskmon_s, rel=0.02)  # both rounded


@pytest.mark.integration
def test_every_breach_reaches_the_webhook_and_its_latency_splits_at_the_engine() -> None:
    # Long enough to be ready (the delivery process starts in a fork server) and then see breaches.
    result = run_alert_latency_bench(rate=1000, duration=2.0, cross_every=0.05, clear_after=0.02)
    assert result.ready_after_s is not None
    assert result.startup_excluded == pytest.approx(result.ready_after_s / 0.05, abs=2)
    assert result.crossings >= 3
    assert result.firing_notifications == result.crossings
    assert result.resolved_notifications >= result.crossings
    assert result.unmatched == 0
    assert result.warmup_excluded == 1
    for p in (result.latency_ms, result.to_engine_ms, result.engine_to_receiver_ms):
        _well_formed(p)
    assert result.latency_ms.max is not None
    assert result.to_engine_ms.max is not None
    assert result.latency_ms.max >= result.to_engine_ms.max  # each part is inside its whole
    assert result.frames_applied > 0


def test_a_late_notification_is_paired_with_the_breach_its_value_names() -> None:
    def value(k: int) -> str:
        return f"{(CROSS_LOTS + k) * LOT_USD:.2f}"

    crossings = [10.0, 10.05, 10.10, 10.15]
    notifications = [
        (10.004, "firing", [value(0), value(0)]),  # the warm-up breach: warning and critical
        (10.01, "resolved", [value(0)]),
        (10.12, "firing", [value(1)]),  # 70 ms late: it arrives after breach 2 was sent
        (10.125, "firing", [value(2)]),
        (10.2, "firing", ["999.00"]),  # names no breach
    ]
    engine = [(10.06, value(1)), (10.06, value(1)), (10.11, value(2))]
    times = match_breaches(crossings, notifications, engine)
    assert times.warmup == 1
    assert times.unmatched == 1
    assert times.latency == pytest.approx([0.07, 0.025])
    assert times.to_engine == pytest.approx([0.01, 0.01])
    assert times.engine_to_receiver == pytest.approx([0.06, 0.015])


def test_breaches_sent_before_riskmon_was_ready_are_start_up_and_the_next_one_the_warm_up() -> None:
    def value(k: int) -> str:
        return f"{(CROSS_LOTS + k) * LOT_USD:.2f}"

    crossings = [10.0, 10.05, 10.10, 10.15]
    notifications = [
        (10.6, "firing", [value(0)]),  # both waited for alert delivery to come up at 10.55
        (10.6, "firing", [value(1)]),
        (10.603, "firing", [value(2)]),  # the first one sent once ready: opens the connection
        (10.152, "firing", [value(3)]),
    ]
    engine = [(10.001, value(0)), (10.051, value(1)), (10.101, value(2)), (10.151, value(3))]
    times = match_breaches(crossings, notifications, engine, ready_at=10.08)
    assert (times.startup, times.warmup) == (2, 1)
    assert times.startup_latency == pytest.approx([0.6, 0.55])
    assert times.latency == pytest.approx([0.002])
    never = match_breaches(crossings, notifications, engine, ready_at=None)
    assert (never.startup, never.warmup, never.latency) == (4, 0, [])


def test_open_orders_are_held_with_their_deadlines() -> None:
    result = run_open_order_memory_bench(orders=300)
    assert result.orders == 300
    assert result.open_orders == 302  # plus the warm-up order and the one for the journal figure
    assert result.pending_deadlines >= 302
    # An OrderUpdate with its Decimals, ids, a heap entry and a WatchedOrder cannot fit in 300 bytes.
    assert result.bytes_per_open_order > 300
    assert result.journal_bytes_per_order > 0


def test_the_seeded_state_file_holds_one_activation_deadline_per_open_order(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    before = time.time()
    seed = seed_restart_state(path, restart_config(path, "http://127.0.0.1:9", "ws://127.0.0.1:9"), 250)
    assert (seed.open_orders, seed.deadlines_written, seed.fill_history) == (250, 250, 0)
    store = DeadlineStore(path)
    try:
        records = store.load()
    finally:
        store.close()
    assert len({r.subject for r in records}) == 250
    assert {(r.kind, r.venue) for r in records} == {("activation", "prophetx")}
    assert all(r.due > before + DUE_AHEAD for r in records)  # none falls due during the restart


@pytest.mark.integration
def test_restart_restores_every_persisted_deadline_before_ready() -> None:
    result = run_restart_bench(open_orders=200)
    assert result.seed.deadlines_written == 200
    assert result.deadlines_restored >= 200
    assert result.restart_to_ready_s > 0
    assert result.deadline_load_s > 0
    assert "activation deadlines" in result.note


def test_targets_say_met_not_met_or_not_run() -> None:
    verdict = targets(
        {
            "pipeline_events_per_s": 450_000.0,
            "e2e_ratio_to_floor": 0.5,
            "alert_latency_ms": {"p50": 0.5, "p99": 1.9},
            "watchdog_lateness_ms": None,
            "bytes_per_open_order": 600.0,
            "restart_to_ready_s": 1.2,
        }
    )
    assert {name: t["met"] for name, t in verdict.items()} == {
        "in-process pipeline": True,
        "e2e ratio to the floor": False,
        "alert latency p99": True,
        "watchdog lateness p99": None,
        "bytes per open order": True,
        "restart to ready": False,
    }
    assert verdict["alert latency p99"]["key"] == "alert_latency_ms.p99"


def test_server_frames_carry_each_payload_length_encoding() -> None:
    assert ws_frame("a" * 125)[:2] == b"\x81\x7d"
    assert ws_frame("a" * 126)[:4] == b"\x81\x7e\x00\x7e"
    assert ws_frame("a" * 65536)[:10] == b"\x81\x7f" + (65536).to_bytes(8, "big")
    assert ws_frame("é").endswith("é".encode())


def test_cli_prints_one_json_object_with_every_headline_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--quick", "--json", "--only", "pipeline,memory"]) == 0
    out = json.loads(capsys.readouterr().out)
    headline = {
        "pipeline_events_per_s",
        "e2e_events_per_s",
        "floor_events_per_s",
        "e2e_ratio_to_floor",
        "alert_latency_ms",
        "watchdog_lateness_ms",
        "bytes_per_open_order",
        "restart_to_ready_s",
        "restart_note",
    }
    assert headline <= set(out)
    assert out["pipeline_events_per_s"] > 0
    assert out["bytes_per_open_order"] > 300
    assert out["e2e_ratio_to_floor"] is None  # not run
    assert out["targets"]["in-process pipeline"]["met"] in (True, False)
    assert out["targets"]["e2e ratio to the floor"]["met"] is None
    assert set(out["sections"]) == {"pipeline", "memory"}
    assert out["errors"] == {}
    assert out["quick"] is True


def test_cli_table_shows_each_target_and_rejects_unknown_sections(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--quick", "--only", "memory"]) == 0
    table = capsys.readouterr().out
    assert "bytes per open order" in table
    assert "<= 600 B" in table
    with pytest.raises(SystemExit):
        main(["bench", "--only", "pipeline,warp"])
    assert "warp" in capsys.readouterr().err
