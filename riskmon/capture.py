"""Capture files: one received frame a line, the contract replay and other tools rely on.

`{"ts": <unix seconds>, "venue": "<venue name>", "frame": "<text frame>"}`; a binary frame
carries `"frame_b64"` instead of `"frame"`. A REST response the session fetched (ProphetX channel
registration, Totalis quote reconciliation) is a line with `"rest": "<call>"` and its body as
`"frame"`, so replay feeds it to the codec the same way.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import msgspec


class CaptureLine(msgspec.Struct, frozen=True):
    ts: float
    venue: str | None = None
    frame: str | None = None
    frame_b64: str | None = None
    rest: str | None = None
    # Later line kinds (order intake) carry their own keys; readers skip what they do not know.
    intake: dict[str, Any] | None = None

    def payload(self) -> str | bytes | None:
        if self.frame is not None:
            return self.frame
        if self.frame_b64 is not None:
            return base64.b64decode(self.frame_b64, validate=True)
        return None


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
            except (msgspec.DecodeError, binascii.Error) as exc:
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
    return {k: v for k, v in msgspec.structs.asdict(record).items() if v is not None}
