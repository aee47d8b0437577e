"""Section `e2e`: riskmon end to end over loopback websockets, against a bare floor, in one run.

A frame server process (frame_server.py, `bulk`) serves the same Mango fill frames (`frames` of
them, one in ten a fill of the desk) to each connection in large pre-framed writes. In turn:

1. floor: a `websockets` asyncio client that receives each frame and `json.loads` it, nothing else;
2. riskmon: a real `Monitor` (its Mango session from `build_session`, the bounded inbound queue,
   the engine task, the deadline timer, the state file) whose engine applies every frame;
3. sender: a raw socket that only drains the bytes (to the last byte read), which shows what the
   sender alone can push.

Each pass runs from the server's handshake to the last frame handled (the floor's last
`json.loads`; for riskmon the engine's frame counter reaching `frames`, polled every 2 ms),
both ends read on this machine's one monotonic clock. The rates are frames (venue events) per
second; riskmon's normalized events per second are reported beside them.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from riskmon.bench.mango_feed import DESK_ACCOUNT, MANGO, MARKET
from riskmon.bench.sender_process import FrameServerProcess, SenderFailed
from riskmon.config import MonitorConfig, parse_config
from riskmon.runtime.monitor import Monitor

_POLL = 0.002
_MAX_FRAME_BYTES = 4 * 1024 * 1024
_DRAIN_CLOSE = b"\x88\x82\x00\x00\x00\x00\x03\xe8"  # a client close frame (code 1000, zero mask)


@dataclass(frozen=True, slots=True)
class E2eResult:
    frames: int  # per pass
    frame_bytes: int  # on the wire per pass, headers included
    riskmon_frames_per_s: float
    riskmon_events_per_s: float  # normalized events the engine applied
    floor_frames_per_s: float
    ratio_to_floor: float  # riskmon / floor, frames per second
    sender_frames_per_s: float  # into a socket that only drains
    riskmon_s: float
    floor_s: float
    sender_s: float
    riskmon_malformed: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def e2e_config(url: str, state_path: Path, max_usd: int = 1_000_000_000, extra: str = "") -> MonitorConfig:
    """One Mango venue and one desk; `extra` adds top-level sections (receivers, routes...)."""
    text = f"""
state: {{path: "{state_path}"}}
venues:
  {MANGO}: {{kind: mango_v3_fills, urls: ["{url}"], reconnect: {{initial: 50ms, max: 1s}}}}
desks:
  bench-desk:
    accounts: {{{MANGO}: [{DESK_ACCOUNT}]}}
    limits:
      max_net_notional_usd: [{{market: {MARKET}, max_usd: {max_usd}}}]
{extra}"""
    return parse_config(text, "bench-e2e.yaml", {})


def run_e2e_bench(frames: int = 200_000, profiler: cProfile.Profile | None = None) -> E2eResult:
    if frames < 1:
        raise ValueError("frames must be positive")
    return asyncio.run(_run(frames, profiler))


async def _run(frames: int, profiler: cProfile.Profile | None) -> E2eResult:
    sender = await FrameServerProcess.start("bulk", "--frames", str(frames))
    try:
        floor_s = await _floor_pass(sender, frames)
        with tempfile.TemporaryDirectory(prefix="riskmon-bench-") as tmp:
            riskmon_s, events, malformed = await _riskmon_pass(sender, frames, Path(tmp) / "state.db", profiler)
        sender_s = await _drain_pass(sender)
    finally:
        await sender.stop()
    return E2eResult(
        frames=frames,
        frame_bytes=int(sender.ready["bytes"]),
        riskmon_frames_per_s=round(frames / riskmon_s, 1),
        riskmon_events_per_s=round(events / riskmon_s, 1),
        floor_frames_per_s=round(frames / floor_s, 1),
        ratio_to_floor=round(floor_s / riskmon_s, 4),
        sender_frames_per_s=round(frames / sender_s, 1),
        riskmon_s=round(riskmon_s, 4),
        floor_s=round(floor_s, 4),
        sender_s=round(sender_s, 4),
        riskmon_malformed=malformed,
    )


def _limit(frames: int) -> float:
    return 60.0 + frames / 5_000  # generous: a pass is only cut short when something is stuck


async def _floor_pass(sender: FrameServerProcess, frames: int) -> float:
    received = 0
    async with connect(
        sender.url, compression=None, max_size=_MAX_FRAME_BYTES, ping_interval=None, close_timeout=1
    ) as ws:
        async with asyncio.timeout(_limit(frames)):
            async for message in ws:
                json.loads(message)
                received += 1
                if received == frames:
                    break
        done_at = time.monotonic()
    served = await sender.next_record("served", 30)
    return done_at - float(served["handshake_at"])


async def _riskmon_pass(
    sender: FrameServerProcess, frames: int, state: Path, profiler: cProfile.Profile | None
) -> tuple[float, int, int]:
    monitor = Monitor(e2e_config(sender.url, state), http=False, console=io.StringIO())
    stats = monitor.engine.venue_stats(MANGO)
    stop = asyncio.Event()
    if profiler is not None:
        profiler.enable()
    runner = asyncio.create_task(monitor.run(stop), name="bench-monitor")
    try:
        async with asyncio.timeout(_limit(frames)):
            # Polled, not awaited per step: waking this task after every frame would cost riskmon time.
            while stats.frames < frames:
                if runner.done():
                    raise SenderFailed("the monitor stopped before it applied every frame")
                await asyncio.sleep(_POLL)
        done_at = time.monotonic()
    finally:
        if profiler is not None:
            profiler.disable()
        stop.set()
        await runner
    served = await sender.next_record("served", 30)
    events = stats.events - 1  # the session's FeedUp is not from a frame
    return done_at - float(served["handshake_at"]), events, stats.malformed


async def _drain_pass(sender: FrameServerProcess) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", sender.port)
    writer.write(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await reader.readuntil(b"\r\n\r\n")
    remaining = int(sender.ready["bytes"])
    async with asyncio.timeout(60):
        while remaining > 0 and (data := await reader.read(1 << 20)):
            remaining -= len(data)
    done_at = time.monotonic()
    writer.write(_DRAIN_CLOSE)
    served = await sender.next_record("served", 30)
    writer.close()
    return done_at - float(served["handshake_at"])
