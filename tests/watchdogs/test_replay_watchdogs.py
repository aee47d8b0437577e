"""Replay of the activation watchdog's timeline from a capture: intake lines, ProphetX stream
frames, REST get_order answers and session reports, on virtual time; deterministic, and the same
through `riskmon replay --json --run-on`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from riskmon.capture import CaptureWriter, decode_events, decode_intake, read_capture
from riskmon.cli import main
from riskmon.config.schema import MonitorConfig
from riskmon.engine.actions import LookupOrder, ReconnectCause, ReconnectVenue
from riskmon.engine.engine import Engine
from riskmon.events import Event, FeedDown, OrderIntake, OrderLookupFailed, ReconciliationFinished
from riskmon.replay import replay
from riskmon.venues.prophetx.sim_frames import dumps, event_frame, private_channel
from riskmon.watchdogs.context import at
from tests.watchdogs.conftest import PX, PX_ACCOUNT, PX_MARKET, T0, config_text, make_config

ALERT = "OrderActivationTimeout"
SETTINGS: dict[str, Any] = {"alerts": {"event_resolve_after": "15s"}}


def config() -> MonitorConfig:
    return make_config(**SETTINGS)


def info(order_id: str, status: str, sequence: int, **extra: Any) -> dict[str, Any]:
    """A ProphetX order as the private channel and get_order carry it (protocols.md §3.2)."""
    return {
        "id": order_id,
        "status": status,
        "sequence_number": sequence,
        "user_id": int(PX_ACCOUNT),
        "sport_event_id": 10,
        "market_id": 20,
        "outcome_id": 30,
        "odds": 150,
        "stake": 100,
        **extra,
    }


def order_frame(ts: float, order_id: str, status: str, sequence: int) -> str:
    """A `wagers` frame on desk alpha's private channel, triple-encoded as ProphetX sends it."""
    payload = {"info": info(order_id, status, sequence)}
    return event_frame("wagers", private_channel(PX_ACCOUNT), round(ts * 1000) * 1_000_000, "wager", "u", payload)


def get_order_body(order_id: str, status: str, sequence: int, **extra: Any) -> str:
    return dumps({"data": info(order_id, status, sequence, **extra)})


def write_timeline(path: Path) -> Path:
    """o1 declared and activated only as the lookup finds it; o2 activated in time on the stream;
    o3 declared and its lookup fails; o4 first seen pending on the stream and found invalid."""
    writer = CaptureWriter(path)
    writer.write_report(T0, PX, [OrderIntake(PX, "o1", T0)])
    writer.write(T0 + 0.25, PX, order_frame(T0 + 0.25, "o2", "inactive", 1))
    writer.write(T0 + 0.5, PX, order_frame(T0 + 0.5, "o2", "open", 2))
    writer.write(T0 + 10.5, PX, get_order_body("o1", "open", 3), rest="get_order")
    writer.write_report(T0 + 20, PX, [OrderIntake(PX, "o3", T0 + 20)])
    writer.write_report(T0 + 30.5, PX, [OrderLookupFailed(PX, "o3", "HTTP 503", 503)])
    writer.write(T0 + 31, PX, order_frame(T0 + 31, "o4", "inactive", 1))
    writer.write(T0 + 45, PX, get_order_body("o4", "invalid", 2, reason="odds_changed"), rest="get_order")
    writer.close()
    return path


def timeline(alerts: list[dict[str, Any]]) -> list[tuple[float, str, str, str, str]]:
    return [
        (a["ts"], a["status"], a["severity"], a["labels"]["order_id"], a["labels"]["outcome"])
        for a in alerts
        if a["alertname"] == ALERT
    ]


EXPECTED_TIMELINE = [
    (T0 + 10.5, "firing", "warning", "o1", "activated_late"),
    (T0 + 25.5, "resolved", "warning", "o1", "activated_late"),
    (T0 + 30.5, "firing", "critical", "o3", "lookup_failed"),
    (T0 + 45, "firing", "warning", "o4", "invalid"),
    (T0 + 60, "resolved", "warning", "o4", "invalid"),  # only within run_on
]


def test_a_capture_replays_the_exact_activation_timeline(tmp_path: Path) -> None:
    result = replay(write_timeline(tmp_path / "capture.jsonl"), config(), run_on=30)
    out = result.to_json()
    assert [a["alertname"] for a in out["alerts"]] == [ALERT] * 5
    assert timeline(out["alerts"]) == EXPECTED_TIMELINE
    late, _, failed, invalid, _ = out["alerts"]
    assert late["labels"] == {
        "desk": "alpha",
        "venue": PX,
        "order_id": "o1",
        "outcome": "activated_late",
        "alertname": ALERT,
        "severity": "warning",
    }
    assert late["annotations"]["description"] == (
        f"Order o1 of desk alpha on {PX_MARKET}, placed at {at(T0)}, was not activated within 10s: "
        "the activation message was lost; the REST lookup reports it open."
    )
    assert failed["annotations"]["description"] == (
        f"Order o3 of desk alpha, placed at {at(T0 + 20)}, was not activated within 10s: the REST lookup failed: "
        "HTTP 503; its state at the venue is unknown."
    )
    assert invalid["annotations"]["reason"] == "odds_changed"
    assert invalid["annotations"]["description"] == (
        f"Order o4 of desk alpha on {PX_MARKET}, placed at {at(T0 + 31)}, was not activated within 10s: "
        "activation failed: odds_changed."
    )
    # Three stream frames; REST answers, intakes and reports are not frames. One event a line.
    assert (out["exposure"], out["instruments"]) == ([], [])  # nothing matched: no stake at risk
    assert out["stats"] == {"frames": 3, "events": 8, "malformed": 0, "duplicates": 0, "revoked": 0}
    assert result.skipped_lines == 0
    watchdog = result.engine.watchdogs.activation
    assert watchdog.outcomes == {(PX, "activated_late"): 1, (PX, "lookup_failed"): 1, (PX, "invalid"): 1}
    # o2 in time (0.25 s), o1 late (10.5 s), o4 refused late (14 s); o3 never answered.
    assert (watchdog.latency[PX].count, watchdog.latency[PX].sum) == (3, 24.75)
    # Replay carries out no remedy; the ones decided stay with the engine, in the order of the deadlines.
    assert result.engine.take_actions() == [
        ReconnectVenue(PX, "order o1 not activated within 10s", ReconnectCause.ACTIVATION_TIMEOUT),
        LookupOrder(PX, "o1"),
        ReconnectVenue(PX, "order o3 not activated within 10s", ReconnectCause.ACTIVATION_TIMEOUT),
        LookupOrder(PX, "o3"),
        ReconnectVenue(PX, "order o4 not activated within 10s", ReconnectCause.ACTIVATION_TIMEOUT),
        LookupOrder(PX, "o4"),
    ]
    # Without run_on the last verdict is still firing when the capture ends.
    short = replay(tmp_path / "capture.jsonl", config())
    assert timeline(short.to_json()["alerts"]) == EXPECTED_TIMELINE[:-1]


def test_replaying_twice_gives_identical_json(tmp_path: Path) -> None:
    capture = write_timeline(tmp_path / "capture.jsonl")
    first = json.dumps(replay(capture, config(), run_on=30).to_json())
    second = json.dumps(replay(capture, config(), run_on=30).to_json())
    assert first == second
    assert timeline(json.loads(first)["alerts"]) == EXPECTED_TIMELINE


def test_report_and_intake_lines_written_by_the_writer_read_back_as_the_same_events(tmp_path: Path) -> None:
    reported: list[Event] = [
        FeedDown(PX, "wss://px.invalid/app/key", "closed 1006"),
        OrderLookupFailed(PX, "o1", "HTTP 503", 503),
        ReconciliationFinished(PX, "orders+books", 3, None, ("o9",)),
    ]
    declared = [OrderIntake(PX, "o1", T0 + 1, "alpha"), OrderIntake(PX, "o2")]
    writer = CaptureWriter(tmp_path / "capture.jsonl")
    writer.write_report(T0 + 2, PX, [declared[0], *reported, declared[1]])
    writer.close()

    raw = [json.loads(line) for line in (tmp_path / "capture.jsonl").read_text().splitlines()]
    assert raw[1:] == [
        {"ts": T0 + 2, "intake": {"venue": PX, "order_id": "o1", "placed_at": T0 + 1, "desk": "alpha"}},
        {"ts": T0 + 2, "intake": {"venue": PX, "order_id": "o2"}},  # absent fields are left out
    ]
    lines = list(read_capture(tmp_path / "capture.jsonl"))
    assert [lineno for lineno, _ in lines] == [1, 2, 3]
    (_, report), (_, first), (_, second) = lines
    assert (report.ts, report.venue, report.intake) == (T0 + 2, PX, None)
    assert report.report is not None
    assert decode_events(report.report) == reported
    assert [decode_intake(line.intake) for line in (first, second) if line.intake is not None] == declared


def test_replaying_writer_made_lines_gives_what_the_engine_gives_live(tmp_path: Path) -> None:
    steps: list[tuple[float, list[Event]]] = [
        (T0, [OrderIntake(PX, "o1", T0)]),
        (T0 + 12, [OrderLookupFailed(PX, "o1", "HTTP 404: wager_not_found", 404)]),
        (T0 + 13, [FeedDown(PX, "wss://px.invalid/app/key", "closed 1006")]),
        (T0 + 14, [OrderIntake("nowhere", "x1")]),  # a venue the config does not have: skipped
    ]
    writer = CaptureWriter(tmp_path / "capture.jsonl")
    for ts, events in steps:
        writer.write_report(ts, PX, events)
    writer.close()

    live = Engine(config())
    expected = []
    for ts, events in steps[:3]:
        expected.extend(live.ingest(PX, events, ts, is_frame=False))
    expected.extend(live.advance(T0 + 14 + 20))

    result = replay(tmp_path / "capture.jsonl", config(), run_on=20)
    assert result.transitions == expected
    assert [(t.ts, t.alertname, t.severity) for t in expected] == [
        (T0 + 12, ALERT, "critical"),
        (T0 + 28, "FeedDown", "warning"),  # feed_down_grace (15 s) after the reported FeedDown
    ]
    assert result.skipped_lines == 1


def test_cli_replay_json_with_run_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = write_timeline(tmp_path / "capture.jsonl")
    config_path = tmp_path / "monitor.yaml"
    config_path.write_text(config_text(**SETTINGS))
    code = main(["replay", str(capture), "-c", str(config_path), "--json", "--run-on", "30"])
    out = capsys.readouterr().out
    assert code == 0
    printed = json.loads(out)
    assert timeline(printed["alerts"]) == EXPECTED_TIMELINE
    assert printed == json.loads(json.dumps(replay(capture, config(), run_on=30).to_json()))


def test_run_on_reaches_the_lookup_verdict_of_an_order_declared_at_the_end(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path / "capture.jsonl")
    writer.write_report(T0, PX, [OrderIntake(PX, "o1", T0)])
    writer.close()
    result = replay(tmp_path / "capture.jsonl", config(), run_on=60)
    assert [(t.ts, t.severity, t.labels["outcome"]) for t in result.transitions] == [
        (T0 + 31, "critical", "lookup_failed")
    ]
