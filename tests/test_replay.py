"""Replay on virtual time: exact positions from real frames, revokes, checkpoints, alerts, CLI."""

from __future__ import annotations

import base64
import json
import logging
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from riskmon.capture import CaptureError, CaptureWriter, read_capture
from riskmon.cli import main
from riskmon.config import parse_config
from riskmon.config.schema import MonitorConfig
from riskmon.replay import replay
from riskmon.venues.mango_v3.sim_events import SimFill, decode_fill_event_for_tests, encode_fill_event

ALPHA = "CGcrpkxyx92vjyQApsr1jTN6M5PeERKSEaH1zskzccRG"
BETA = "3Ux4jMr9S5ZtUyuR9jPSj4oeZ25cFr3gh7J6XMwpuyjP"
GAMMA = "FE8o2cp5PmvTxwwk5JowWUXSFJusK7WoiZGhWT7mgXvT"
STREET = "GJw8MDxaeVh4sSNsi6cEWSHW5bp93UAtCBuMo18hW2nX"
SOL_QUEUE = "31cKs646dt1YkA3zPyxZ7rUAkxTBz279w4XEobFXcAKP"

CONFIG = f"""
venues:
  mango:
    kind: mango_v3_fills
    urls: ["ws://127.0.0.1:9"]
desks:
  alpha:
    accounts: {{mango: [{ALPHA}]}}
    limits:
      max_net_notional_usd: [{{market: SOL-PERP, max_usd: 1000}}]
      warn_at: 0.8
      for: LIMIT_FOR
  beta:
    accounts: {{mango: [{BETA}]}}
  gamma:
    accounts: {{mango: [{GAMMA}]}}
"""


def config(pending_for: str = "0s") -> MonitorConfig:
    return parse_config(CONFIG.replace("LIMIT_FOR", pending_for), "test.yaml", {})


def write_capture(path: Path, frames: list[tuple[float, str]]) -> Path:
    writer = CaptureWriter(path)
    for ts, frame in frames:
        writer.write(ts, "mango", frame)
    writer.close()
    return path


def positions(result: dict[str, Any]) -> dict[str, str]:
    return {row["desk"]: row["position"] for row in result["exposure"]}


def independent_positions(encoded_events: list[str]) -> dict[str, Decimal]:
    """Positions per account computed with the simulator's own decoder, not the codec's."""
    out: dict[str, Decimal] = defaultdict(Decimal)
    for encoded in encoded_events:
        fill = decode_fill_event_for_tests(base64.b64decode(encoded))
        qty = Decimal(int(fill["quantity_lots"])) / 100  # SOL-PERP: 100 base lots = 1 SOL
        signed = qty if fill["taker_side"] == "bid" else -qty
        out[str(fill["taker"])] += signed
        out[str(fill["maker"])] -= signed
    return out


def as_plain(amount: Decimal) -> str:
    return "0" if amount == 0 else format(amount.normalize(), "f")


@pytest.fixture
def checkpoint(mango_real: dict[str, Any]) -> str:
    return str(mango_real["checkpoint_frame"])


@pytest.fixture
def update(mango_real: dict[str, Any]) -> str:
    return str(mango_real["update_frame"])


def revoke_of(update_frame: str) -> str:
    frame = json.loads(update_frame)
    frame["status"] = "Revoke"
    return json.dumps(frame)


def test_real_checkpoint_gives_exact_positions(tmp_path: Path, checkpoint: str) -> None:
    result = replay(write_capture(tmp_path / "c.jsonl", [(100.0, checkpoint)]), config()).to_json()
    expected = independent_positions(json.loads(checkpoint)["events"])
    assert positions(result) == {
        "alpha": as_plain(expected[ALPHA]),
        "beta": as_plain(expected[BETA]),
        "gamma": as_plain(expected[GAMMA]),
    }
    alpha = next(row for row in result["exposure"] if row["desk"] == "alpha")
    assert alpha["venue"] == "mango"
    assert alpha["account"] == ALPHA
    assert alpha["market"] == "SOL-PERP"
    assert alpha["notional_usd"] == pytest.approx(float(expected[ALPHA]) * 90.7)  # newest checkpoint price
    assert alpha["pending_usd"] == 0.0
    assert result["stats"]["frames"] == 1
    assert result["stats"]["malformed"] == 0


def test_update_adds_1_98_sol_and_its_revoke_restores_the_exact_position(
    tmp_path: Path, checkpoint: str, update: str
) -> None:
    before = replay(write_capture(tmp_path / "a.jsonl", [(100.0, checkpoint)]), config()).to_json()
    after = replay(write_capture(tmp_path / "b.jsonl", [(100.0, checkpoint), (101.0, update)]), config()).to_json()
    assert Decimal(positions(after)["alpha"]) - Decimal(positions(before)["alpha"]) == Decimal("1.98")
    assert Decimal(positions(after)["beta"]) - Decimal(positions(before)["beta"]) == Decimal("-1.98")

    frames = [(100.0, checkpoint), (101.0, update), (102.0, revoke_of(update))]
    revoked = replay(write_capture(tmp_path / "r.jsonl", frames), config()).to_json()
    assert positions(revoked) == positions(before)  # exact strings, not approximately
    assert revoked["stats"]["revoked"] == 2
    fired = [a for a in revoked["alerts"] if a["alertname"] == "FillRevoked"]
    assert {a["labels"]["desk"] for a in fired} == {"alpha", "beta"}
    assert all(a["status"] == "firing" and a["ts"] == 102.0 for a in fired)


def test_a_repeated_checkpoint_and_a_replayed_update_change_nothing(
    tmp_path: Path, checkpoint: str, update: str
) -> None:
    once = replay(write_capture(tmp_path / "1.jsonl", [(100.0, checkpoint), (101.0, update)]), config()).to_json()
    frames = [(100.0, checkpoint), (101.0, update), (102.0, checkpoint), (103.0, update), (104.0, checkpoint)]
    again = replay(write_capture(tmp_path / "2.jsonl", frames), config()).to_json()
    assert positions(again) == positions(once)
    # A fill between two desks is two desk fills (one per side).
    ours = sum(len(_parties(e) & {ALPHA, BETA, GAMMA}) for e in json.loads(checkpoint)["events"])
    assert again["stats"]["duplicates"] == 2 * ours + 2  # two checkpoints again, two sides of the update


def test_malformed_frames_are_counted_logged_without_content_and_change_nothing(
    tmp_path: Path, checkpoint: str, update: str, caplog: pytest.LogCaptureFixture
) -> None:
    clean = replay(write_capture(tmp_path / "1.jsonl", [(100.0, checkpoint), (101.0, update)]), config()).to_json()
    secret = "api_key=SUPERSECRET"
    bad = [f"{{not json {secret}", json.dumps({"market": secret, "queue": 3}), update.replace('"New"', '"Nope"')]
    frames = [(100.0, checkpoint), (100.5, bad[0]), (100.6, bad[1]), (101.0, update), (101.5, bad[2])]
    with caplog.at_level(logging.WARNING):
        dirty = replay(write_capture(tmp_path / "2.jsonl", frames), config()).to_json()
    assert positions(dirty) == positions(clean)
    assert dirty["stats"]["malformed"] == 3
    assert dirty["stats"]["frames"] == 5
    assert sum("malformed frame" in r.getMessage() for r in caplog.records) == 3
    assert "SUPERSECRET" not in caplog.text


def test_fill_missing_from_a_later_checkpoint_is_voided(tmp_path: Path, checkpoint: str) -> None:
    # A fork while disconnected: the next checkpoint no longer holds one of alpha's fills.
    frame = json.loads(checkpoint)
    alpha_events = [e for e in frame["events"] if ALPHA in _parties(e)]
    dropped = alpha_events[-1]
    forked = dict(frame, events=[e for e in frame["events"] if e != dropped])
    result = replay(
        write_capture(tmp_path / "f.jsonl", [(100.0, checkpoint), (200.0, json.dumps(forked))]), config()
    ).to_json()
    expected = independent_positions(forked["events"])
    assert positions(result)["alpha"] == as_plain(expected[ALPHA])
    assert result["stats"]["revoked"] == 1 + (BETA in _parties(dropped)) + (GAMMA in _parties(dropped))
    (alert,) = [a for a in result["alerts"] if a["alertname"] == "FillRevoked" and a["labels"]["desk"] == "alpha"]
    assert "missing from the venue's checkpoint" in alert["annotations"]["description"]


def _parties(encoded: str) -> set[str]:
    fill = decode_fill_event_for_tests(base64.b64decode(encoded))
    return {str(fill["maker"]), str(fill["taker"])}


def _sim_frame(seq: int, qty_lots: int, price_lots: int, taker_side: str = "bid", status: str = "New") -> str:
    raw = encode_fill_event(
        SimFill(
            maker=STREET,
            taker=ALPHA,
            taker_side=taker_side,
            price_lots=price_lots,
            quantity_lots=qty_lots,
            timestamp=1_700_000_000,
        ),  # type: ignore[arg-type]
        seq,
    )
    return json.dumps(
        {"event": base64.b64encode(raw).decode(), "market": "SOL-PERP", "queue": SOL_QUEUE, "status": status}
    )


def test_limit_alerts_warn_then_breach_and_clear_with_hysteresis(tmp_path: Path) -> None:
    # 1 SOL = 100 lots; $100 = 10_000 price lots. The limit is $1000 net, warning at $800.
    frames = [
        (10.0, _sim_frame(1, 500, 10_000)),  # 5 SOL  $500
        (20.0, _sim_frame(2, 400, 10_000)),  # 9 SOL  $900  -> warning
        (30.0, _sim_frame(3, 200, 10_000)),  # 11 SOL $1100 -> critical
        (40.0, _sim_frame(4, 150, 10_000, "ask")),  # 9.5 SOL $950: at 95% of the limit, not below it
        (50.0, _sim_frame(5, 100, 10_000, "ask")),  # 8.5 SOL $850 -> critical clears
        (60.0, _sim_frame(6, 500, 10_000, "ask")),  # 3.5 SOL $350 -> warning clears
    ]
    alerts = replay(write_capture(tmp_path / "l.jsonl", frames), config()).to_json()["alerts"]
    timeline = [(a["ts"], a["status"], a["severity"]) for a in alerts]
    assert timeline == [
        (20.0, "firing", "warning"),
        (30.0, "firing", "critical"),
        (50.0, "resolved", "critical"),
        (60.0, "resolved", "warning"),
    ]
    critical = alerts[1]
    assert critical["alertname"] == "ExposureLimitBreach"
    assert critical["labels"] == {
        "desk": "alpha",
        "market": "SOL-PERP",
        "limit": "net_notional",
        "alertname": "ExposureLimitBreach",
        "severity": "critical",
    }
    assert "$1,100" in critical["annotations"]["summary"]
    assert "$1,000" in critical["annotations"]["summary"]


def test_for_duration_runs_on_virtual_time(tmp_path: Path) -> None:
    frames = [
        (0.0, _sim_frame(1, 1_200, 10_000)),  # $1200: pending
        (10.0, _sim_frame(2, 1, 10_000)),  # still breached, 10 s in
        (95.0, _sim_frame(3, 1, 10_000)),  # the 30 s deadline passed at 30.0
    ]
    alerts = replay(write_capture(tmp_path / "p.jsonl", frames), config("30s")).to_json()["alerts"]
    critical = [a for a in alerts if a["severity"] == "critical"]
    assert [(a["ts"], a["status"]) for a in critical] == [(30.0, "firing")]


def test_replay_is_deterministic(tmp_path: Path, checkpoint: str, update: str) -> None:
    frames = [(100.0, checkpoint), (101.0, update), (102.0, revoke_of(update)), (103.0, checkpoint)]
    path = write_capture(tmp_path / "d.jsonl", frames)
    assert replay(path, config()).to_json() == replay(path, config()).to_json()


def test_cli_replay_json_contract(
    tmp_path: Path, checkpoint: str, update: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(CONFIG.replace("LIMIT_FOR", "0s"))
    capture = write_capture(tmp_path / "c.jsonl", [(100.0, checkpoint), (101.0, update), (102.0, revoke_of(update))])
    assert main(["replay", str(capture), "-c", str(cfg), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"alerts", "exposure", "instruments", "stats"}
    assert set(out["stats"]) == {"frames", "events", "malformed", "duplicates", "revoked"}
    for alert in out["alerts"]:
        assert set(alert) == {"ts", "status", "alertname", "severity", "labels", "annotations"}
    for row in out["exposure"]:
        assert set(row) == {
            "desk",
            "venue",
            "account",
            "market",
            "position",
            "notional_usd",
            "worst_case_loss_usd",
            "pending_usd",
        }
        assert isinstance(row["position"], str)
        Decimal(row["position"])


def test_cli_replay_reports_a_broken_capture_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(CONFIG.replace("LIMIT_FOR", "0s"))
    capture = tmp_path / "bad.jsonl"
    capture.write_text('{"ts": 1, "venue": "mango", "frame": "{}"}\nnot a record\n')
    assert main(["replay", str(capture), "-c", str(cfg)]) == 1
    assert "line 2" in capsys.readouterr().err


def test_capture_round_trip_keeps_text_and_binary_frames(tmp_path: Path) -> None:
    path = tmp_path / "cap.jsonl"
    writer = CaptureWriter(path, flush_every=1)
    writer.write(1.5, "mango", '{"a": 1}')
    writer.write(2.5, "phoenix", b"\x00\xffbinary")
    writer.close()
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {"ts": 1.5, "venue": "mango", "frame": '{"a": 1}'}
    assert json.loads(lines[1]) == {
        "ts": 2.5,
        "venue": "phoenix",
        "frame_b64": base64.b64encode(b"\x00\xffbinary").decode(),
    }
    read = [line.payload() for _, line in read_capture(path)]
    assert read == ['{"a": 1}', b"\x00\xffbinary"]
    (tmp_path / "broken.jsonl").write_text('{"ts": 1, "frame_b64": "***"}\n')
    with pytest.raises(CaptureError, match="line 1"):
        list(read_capture(tmp_path / "broken.jsonl"))


def _pusher_wager(info: dict[str, Any]) -> str:
    payload = base64.b64encode(json.dumps({"info": info}).encode()).decode()
    data = {"timestamp": 1_717_689_526_365_275_600, "change_type": "wager", "op": "u", "payload": payload}
    return json.dumps(
        {"event": "wagers", "channel": "private-service=3-device_type=5-user=u1", "data": json.dumps(data)}
    )


def test_cli_replay_text_lists_bet_risk_and_rest_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(
        "venues:\n  px:\n    kind: prophetx\n    rest_url: http://127.0.0.1:9/partner\n"
        "    access_key: a\n    secret_key: b\ndesks:\n  bets:\n    accounts:\n      px: [u1]\n",
        encoding="utf-8",
    )
    info = {
        "id": 7,
        "user_id": "u1",
        "sport_event_id": 10,
        "market_id": 219,
        "outcome_id": 4,
        "odds": -110,
        "stake": 220.0,
        "matched_stake": 110.0,
        "totally_matched_stake": 110.0,
        "status": "open",
        "update_type": "matching",
        "sequence_number": 3,
    }
    capture = tmp_path / "capture.jsonl"
    writer = CaptureWriter(capture)
    writer.write(1.0, "px", _pusher_wager(info))
    # A REST read (get_order) saying the same order settled: replayed through the codec too.
    writer.write(2.0, "px", json.dumps({"data": {**info, "status": "settled", "sequence_number": 4}}), "get_order")
    writer.close()
    assert main(["replay", str(capture), "-c", str(cfg), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stats"]["frames"] == 1  # the REST line is not a stream frame
    assert out["exposure"] == []  # settled: nothing at risk any more
    capture.write_text(capture.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    assert main(["replay", str(capture), "-c", str(cfg)]) == 0
    text = capsys.readouterr().out
    assert "bets         px         10/219/4" in text
    assert "110.00 at risk, 0.00 pending USD" in text
