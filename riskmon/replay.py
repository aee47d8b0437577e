"""Replay a capture on virtual time: deterministic, as fast as the CPU allows.

The same codecs and engine as a live run; only the clock differs. Each line's `ts` is `now`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.capture import decode_events, decode_intake, read_capture
from riskmon.clock import VirtualClock
from riskmon.config.schema import MonitorConfig
from riskmon.engine.engine import Engine
from riskmon.engine.exposure import plain_decimal
from riskmon.venues.base import VenueCodec
from riskmon.venues.registry import AdapterUnavailable, build_codec

log = logging.getLogger(__name__)


@dataclass
class ReplayResult:
    engine: Engine
    transitions: list[AlertTransition] = field(default_factory=list)
    skipped_lines: int = 0

    def stats(self) -> dict[str, int]:
        venues = self.engine.stats.values()
        return {
            "frames": sum(s.frames for s in venues),
            "events": sum(s.events for s in venues),
            "malformed": sum(s.malformed for s in venues),
            "duplicates": sum(s.duplicates for s in venues),
            "revoked": sum(s.revoked + s.voided for s in venues),
        }

    def exposure(self) -> list[dict[str, Any]]:
        book = self.engine.book
        rows: list[dict[str, Any]] = [
            {
                "desk": row.key.desk,
                "venue": row.key.venue,
                "account": row.key.account,
                "market": row.key.market,
                "position": plain_decimal(row.position),
                "notional_usd": None if row.notional_usd is None else float(row.notional_usd),
                "worst_case_loss_usd": None,
                "pending_usd": 0.0,
            }
            for row in book.rows()
        ]
        rows.extend(
            {
                "desk": row.key.desk,
                "venue": row.key.venue,
                "account": row.key.account,
                "market": row.key.market,
                "position": None,
                "notional_usd": None,
                "worst_case_loss_usd": float(row.worst_case_loss_usd),
                "pending_usd": float(row.pending_usd),
            }
            for row in book.risk_rows()
        )
        return rows

    def instruments(self) -> list[dict[str, Any]]:
        """The cross-venue view: each desk's net position per underlying."""
        return [
            {
                "desk": desk,
                "instrument": instrument,
                "position": plain_decimal(quantity),
                "net_notional_usd": None if notional is None else float(notional),
            }
            for desk, instrument, quantity, notional in self.engine.book.instrument_rows()
        ]

    def alerts(self) -> list[dict[str, Any]]:
        return [
            {
                "ts": t.ts,
                "status": t.status,
                "alertname": t.alertname,
                "severity": t.severity,
                "labels": t.labels,
                "annotations": t.annotations,
            }
            for t in self.transitions
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "alerts": self.alerts(),
            "exposure": self.exposure(),
            "instruments": self.instruments(),
            "stats": self.stats(),
        }


def replay(path: str | Path, config: MonitorConfig, *, run_on: float = 0.0) -> ReplayResult:
    """Replay a capture; virtual time then runs on `run_on` seconds past the last line, so
    deadlines armed near the end of the capture (an activation timeout) still fire."""
    engine = Engine(config)
    result = ReplayResult(engine)
    clock = VirtualClock()
    codecs: dict[str, VenueCodec | None] = {}
    for lineno, line in read_capture(path):
        if line.intake is not None:
            intake = decode_intake(line.intake)
            if intake.venue not in config.venues:
                result.skipped_lines += 1
                continue
            clock.set(line.ts)
            result.transitions.extend(engine.ingest(intake.venue, [intake], clock.now(), is_frame=False))
            continue
        if line.venue is not None and line.report is not None:
            if line.venue not in config.venues:
                result.skipped_lines += 1
                continue
            clock.set(line.ts)
            reported = decode_events(line.report)
            result.transitions.extend(engine.ingest(line.venue, reported, clock.now(), is_frame=False))
            continue
        payload = line.payload()
        if line.venue is None or payload is None:
            result.skipped_lines += 1  # a line kind this build does not replay
            continue
        if line.venue not in codecs:
            codecs[line.venue] = _codec_for(config, line.venue, lineno)
        codec = codecs[line.venue]
        if codec is None:
            result.skipped_lines += 1
            continue
        clock.set(line.ts)
        if line.rest is not None:
            body = payload if isinstance(payload, str) else payload.decode("utf-8", "replace")
            events = codec.receive_rest(line.rest, body)
        elif isinstance(payload, str):
            events = codec.receive_text(payload)
        else:
            events = codec.receive_bytes(payload)
        result.transitions.extend(
            engine.ingest(line.venue, events, clock.now(), is_frame=line.rest is None, source=line.rest)
        )
    # Deadlines that fall due after the last line still belong to the timeline.
    if run_on > 0:
        clock.advance(run_on)
        result.transitions.extend(engine.advance(clock.now()))
    return result


def _codec_for(config: MonitorConfig, venue: str, lineno: int) -> VenueCodec | None:
    if venue not in config.venues:
        log.warning("capture line %d: venue %s is not in the config; its frames are skipped", lineno, venue)
        return None
    try:
        return build_codec(config, venue)
    except AdapterUnavailable as exc:
        log.warning("capture line %d: %s; its frames are skipped", lineno, exc)
        return None
