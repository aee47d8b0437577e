"""Capture files: one received frame a line, the contract replay and other tools rely on.

`{"ts": <unix seconds>, "venue": "<venue name>", "frame": "<text frame>"}`; a binary frame
carries `"frame_b64"` instead of `"frame"`. A REST response the session fetched (ProphetX channel
registration, Totalis quote reconciliation) is a line with `"rest": "<call>"` and its body as
`"frame"`, so replay feeds it to the codec the same way.

What the I/O shell itself reports (a feed up or down, a failed REST lookup, a reconciliation
result) is a `"report"` line holding those events, and an order declared on the intake API is an
`{"ts": ..., "intake": {"venue": ..., "order_id": ...}}` line: replay feeds both to the engine, so
the watchdogs' timelines replay exactly.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, get_args

import msgspec

from riskmon.events import Event, OrderIntake


class CaptureLine(msgspec.Struct, frozen=True):
    ts: float
    venue: str | None = None
    frame: str | None = None
    frame_b64: str | None = None
    rest: str | None = None
    intake: dict[str, Any] | None = None
    report: list[dict[str, Any]] | None = None

    def payload(self) -> str | bytes | None:
        if self.frame is not None:
            return self.frame
        if self.frame_b64 is not None:
            return base64.b64decode(self.frame_b64, validate=True)
        return None


# Events a report line can carry, by type name.
_REPORTABLE: dict[str, type[Any]] = {cls.__name__: cls for cls in get_args(Event)}


def encode_events(events: list[Event]) -> list[dict[str, Any]]:
    return [{"type": type(event).__name__, **msgspec.to_builtins(event)} for event in events]


def decode_events(rows: list[dict[str, Any]]) -> list[Event]:
    """The events of a report line; raises ValueError naming what is wrong."""
    events: list[Event] = []
    for row in rows:
        fields = dict(row)
        cls = _REPORTABLE.get(str(fields.pop("type", "")))
        if cls is None:
            raise ValueError(f"unknown report event type {row.get('type')!r}")
        try:
            events.append(msgspec.convert(fields, cls))
        except msgspec.ValidationError as exc:
            raise ValueError(f"report event {cls.__name__}: {exc}") from None
    return events


def decode_intake(intake: dict[str, Any]) -> OrderIntake:
    try:
        return msgspec.convert(intake, OrderIntake)
    except msgspec.ValidationError as exc:
        raise ValueError(f"intake: {exc}") from None


class CaptureError(ValueError):
    def __init__(self, lineno: int, message: str) -> None:
        super().__init__(f"line {lineno}: {message}")
        self.lineno = lineno


_decoder = msgspec.json.Decoder(CaptureLine)
_encoder = msgspec.json.Encoder()


def read_capture(path: str | Path) -> Iterator[tuple[int, CaptureLine]]:
    """Yield (line number, line); a line that is not a capture record raises CaptureError."""
    with open(path, "rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                line = _decoder.decode(raw)
                line.payload()
                if line.report is not None:
                    decode_events(line.report)
                if line.intake is not None:
                    decode_intake(line.intake)
            except (msgspec.DecodeError, binascii.Error, ValueError) as exc:
                raise CaptureError(lineno, f"not a capture record ({exc})") from None
            yield lineno, line


class CaptureWriter:
    """Appends frames as they arrive. Buffered: the OS write happens every `flush_every` lines."""

    def __init__(self, path: str | Path, flush_every: int = 256) -> None:
        self._handle: IO[bytes] = open(path, "ab")  # noqa: SIM115 - lives as long as the writer
        self._flush_every = flush_every
        self._pending = 0

    def write(self, ts: float, venue: str, frame: str | bytes, rest: str | None = None) -> None:
        if isinstance(frame, bytes):
            record = CaptureLine(ts=ts, venue=venue, frame_b64=base64.b64encode(frame).decode("ascii"), rest=rest)
        else:
            record = CaptureLine(ts=ts, venue=venue, frame=frame, rest=rest)
        self._write(record)

    def write_report(self, ts: float, venue: str, events: list[Event]) -> None:
        reported: list[Event] = [event for event in events if not isinstance(event, OrderIntake)]
        if reported:
            self._write(CaptureLine(ts=ts, venue=venue, report=encode_events(reported)))
        for event in events:
            if isinstance(event, OrderIntake):
                self._write(CaptureLine(ts=ts, intake=_omit_none_dict(msgspec.to_builtins(event))))

    def _write(self, record: CaptureLine) -> None:
        self._handle.write(_encoder.encode(_omit_none(record)) + b"\n")
        self._pending += 1
        if self._pending >= self._flush_every:
            self.flush()

    def flush(self) -> None:
        self._handle.flush()
        self._pending = 0

    def close(self) -> None:
        self.flush()
        self._handle.close()


def _omit_none(record: CaptureLine) -> dict[str, Any]:
    return _omit_none_dict(msgspec.structs.asdict(record))


def _omit_none_dict(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}
