"""The venue side of the loopback benchmarks, run as its own process so that it never competes with
riskmon for the interpreter: `python -m riskmon.bench.frame_server MODE [options]`.

A websocket server written for speed, not generality: it completes the opening handshake by hand
(RFC 6455 §4.2.2) and then writes Mango fill frames, framed once, many frames per `write`:

- `bulk`: every connection gets the same `--frames` frames, built and framed before `ready`, in
  writes of about `--batch-bytes`; the time of the handshake and of the last write are reported
  per connection, so both sides of a pass are timed on the one monotonic clock of this machine;
- `paced`: the first connection gets marks at `--rate` frames/s (one write per millisecond tick)
  and, every `--cross-every` seconds, a fill of the desk that takes it over its limit, alone in its
  write and timed, then `--clear-after` seconds later one that brings it back. Breach k buys
  `--cross-lots` + k lots, so the notional its alert reports names it. The marks are framed
  before `ready`, so a tick only slices a buffer. A webhook receiver in this process
  (notification_receiver.py) times each notification's first bytes on the same clock.

Lines of JSON on stdout talk to the parent: `ready` (ports, sizes), `served` per connection in bulk
mode, `paced` once the paced stream is done; the process ends when stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from websockets.utils import accept_key

from riskmon.bench.mango_feed import DESK_ACCOUNT, MANGO, MangoFeed
from riskmon.bench.notification_receiver import NotificationReceiver
from riskmon.config import MonitorConfig, parse_config
from riskmon.events import Side

_CLOSE_OPCODE = 0x8
_CLOSE_NORMAL = b"\x88\x02\x03\xe8"  # a server close frame, code 1000
_WRITE_BUFFER_HIGH = 4 * 1024 * 1024
_SETTLE_S = 10.0
_PACE_SLACK_S = 1.0  # marks framed beyond the run, for a sender that starts late


def feed_config() -> MonitorConfig:
    """What MangoFeed needs to build frames: the Mango venue and the desk's account."""
    text = f"""
venues: {{{MANGO}: {{kind: mango_v3_fills, urls: ["ws://127.0.0.1:9"]}}}}
desks: {{frame-server-desk: {{accounts: {{{MANGO}: [{DESK_ACCOUNT}]}}}}}}
"""
    return parse_config(text, "frame-server.yaml", {})


def ws_frame(text: str) -> bytes:
    """One unmasked, final text frame (a server never masks)."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        header = bytes((0x81, n))
    elif n < 1 << 16:
        header = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return header + payload


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def request_key(request: bytes) -> str | None:
    """The Sec-WebSocket-Key of an opening handshake's request head, if it has one."""
    for line in request.split(b"\r\n"):
        if line.lower().startswith(b"sec-websocket-key:"):
            return line.split(b":", 1)[1].strip().decode("ascii", "replace")
    return None


def upgrade_response(key: str) -> bytes:
    """The server's 101 answer to an opening handshake that sent `key` (RFC 6455 §4.2.2)."""
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n"
    )


async def _handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    key = request_key(await reader.readuntil(b"\r\n\r\n"))
    if key is None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        return False
    writer.write(upgrade_response(key))
    writer.transport.set_write_buffer_limits(high=_WRITE_BUFFER_HIGH)
    return True


async def _until_client_closes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer the client's close frame (the only frame a client sends here) and hang up."""
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            if data[0] & 0x0F == _CLOSE_OPCODE:
                writer.write(_CLOSE_NORMAL)
                break
    writer.close()


class BulkSender:
    def __init__(self, frames: int, batch_bytes: int) -> None:
        feed = MangoFeed(feed_config(), frames=True, timestamp=int(time.time()))
        framed = [ws_frame(feed.next_frame()) for _ in range(frames)]
        self.batches: list[bytes] = []
        batch: list[bytes] = []
        size = 0
        for frame in framed:
            batch.append(frame)
            size += len(frame)
            if size >= batch_bytes:
                self.batches.append(b"".join(batch))
                batch, size = [], 0
        if batch:
            self.batches.append(b"".join(batch))
        self.frames = frames
        self.bytes = sum(len(b) for b in self.batches)
        self._connections = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections += 1
        connection = self._connections
        if not await _handshake(reader, writer):
            writer.close()
            return
        handshake_at = time.monotonic()
        try:
            for batch in self.batches:
                writer.write(batch)
                await writer.drain()
        except ConnectionError:
            _emit({"event": "served", "connection": connection, "error": "client went away"})
            return
        written_at = time.monotonic()
        _emit(
            {
                "event": "served",
                "connection": connection,
                "frames": self.frames,
                "bytes": self.bytes,
                "handshake_at": handshake_at,
                "written_at": written_at,
            }
        )
        await _until_client_closes(reader, writer)


class PacedSender:
    def __init__(self, rate: float, duration: float, cross_every: float, clear_after: float, cross_lots: int) -> None:
        self._feed = MangoFeed(feed_config(), frames=True, timestamp=int(time.time()), own_fill_every=0)
        # The background marks are framed before `ready`, one buffer sliced per tick, so that the
        # sender (a stand-in for a venue on another machine) takes little of the CPU riskmon runs on.
        marks = int(rate * (duration + _PACE_SLACK_S))
        framed = [ws_frame(self._feed.next_frame()) for _ in range(marks)]
        self._marks = memoryview(b"".join(framed))
        self._ends = list(itertools.accumulate(map(len, framed), initial=0))
        self._rate = rate
        self._duration = duration
        self._cross_every = cross_every
        self._clear_after = clear_after
        self._cross_lots = cross_lots
        self.crossings: list[float] = []
        self.hook = NotificationReceiver()
        self._busy = False

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._busy or not await _handshake(reader, writer):
            writer.close()
            return
        self._busy = True
        try:
            sent, started = await self._stream(writer)
        except ConnectionError:
            _emit({"event": "paced", "error": "client went away"})
            return
        elapsed = time.monotonic() - started
        # Let the last breaches' notifications land before reporting (riskmon may be running behind).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_SETTLE_S):
                while self.hook.log.firing() < len(self.crossings):
                    self.hook.log.arrived.clear()
                    await self.hook.log.arrived.wait()
        _emit(
            {
                "event": "paced",
                "frames": sent,
                "seconds": elapsed,
                "crossings": self.crossings,
                "notifications": self.hook.log.notifications,
                "rejected": self.hook.log.rejected,
            }
        )
        await _until_client_closes(reader, writer)

    async def _stream(self, writer: asyncio.StreamWriter) -> tuple[int, float]:
        feed, rate, marks, ends = self._feed, self._rate, self._marks, self._ends
        started = time.monotonic()
        end = started + self._duration
        next_cross = started + self._cross_every
        clear_at: float | None = None
        sent = 0
        while (now := time.monotonic()) < end:
            if clear_at is not None and now >= clear_at:
                writer.write(ws_frame(feed.own_fill_frame(Side.SELL, self._cross_lots + len(self.crossings) - 1)))
                clear_at = None
            elif clear_at is None and now >= next_cross:
                # Breach k buys cross_lots + k lots: its notional (the alert's value) says which breach it is.
                crossing = ws_frame(feed.own_fill_frame(Side.BUY, self._cross_lots + len(self.crossings)))
                self.crossings.append(time.monotonic())
                writer.write(crossing)
                clear_at = now + self._clear_after
                next_cross += self._cross_every
            owed = min(int((now - started) * rate), len(ends) - 1) - sent
            if owed > 0:
                writer.write(marks[ends[sent] : ends[sent + owed]])
                sent += owed
            await writer.drain()
            await asyncio.sleep(0.001)
        return sent, started


async def _main(args: argparse.Namespace) -> None:
    hook: NotificationReceiver | None = None
    sender: BulkSender | PacedSender
    ready: dict[str, Any] = {"event": "ready"}
    if args.mode == "bulk":
        sender = BulkSender(args.frames, args.batch_bytes)
        ready.update(frames=sender.frames, bytes=sender.bytes, batches=len(sender.batches))
    else:
        sender = PacedSender(args.rate, args.duration, args.cross_every, args.clear_after, args.cross_lots)
        hook = sender.hook
        ready["hook_port"] = await hook.start()
    server = await asyncio.start_server(sender.serve, "127.0.0.1", 0)
    ready["port"] = server.sockets[0].getsockname()[1]
    _emit(ready)
    try:
        # The parent ends the run by closing stdin: one blocking read, off the loop.
        await asyncio.to_thread(sys.stdin.buffer.read)
    finally:
        server.close()
        if hook is not None:
            await hook.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m riskmon.bench.frame_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["bulk", "paced"])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--batch-bytes", type=int, default=256 * 1024)
    parser.add_argument("--rate", type=float, default=50_000.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--cross-every", type=float, default=0.05)
    parser.add_argument("--clear-after", type=float, default=0.02)
    parser.add_argument("--cross-lots", type=int, default=1000)
    asyncio.run(_main(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
