"""Section `pipeline`: the in-process pipeline on the five-venue mix, with no I/O at all.

What the Monitor does per socket read, without the socket: the clock read once, each frame through
its venue's real codec (typed decode and normalization), the read's frames applied by one
`Engine.ingest_batch` (exposure, watchdogs, limits, rules; exactly `ingest` frame by frame), then
the actions and the deadline journal taken once and the codecs' outboxes drained, as the session
and the engine task do once per read. A read is `read_frames` consecutive frames of the mix
(default 32, a modest socket read at these rates; 1 is the frame-at-a-time shell). Frames are
built before the clock starts (see venue_mix.py); each venue's codec first sees its connection
handshake, untimed.

Left out: the websocket layer and the event loop (section `e2e` measures those), receivers.
"""

from __future__ import annotations

import cProfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from riskmon.bench.venue_mix import MIX, build_mix
from riskmon.clock import SystemClock
from riskmon.engine.engine import Engine, IngestItem
from riskmon.events import FeedUp


@dataclass(frozen=True, slots=True)
class PipelineResult:
    frames: int
    events: int  # normalized events the codecs produced and the engine applied
    seconds: float
    frames_per_s: float
    events_per_s: float
    us_per_frame: float
    alert_transitions: int
    malformed: int  # frames a codec could not read (must be 0: the mix is well formed)
    engine_errors: int  # events the engine could not apply (must be 0)
    per_venue: Mapping[str, Mapping[str, int]]  # venue -> frames, events
    mix: Mapping[str, float]
    build_s: float  # building the frames with the simulators (untimed)
    read_frames: int  # frames per socket read: one clock read, one ingest_batch, one take

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_pipeline_bench(
    frames: int = 200_000, seed: int = 0, profiler: cProfile.Profile | None = None, read_frames: int = 32
) -> PipelineResult:
    if frames < len(MIX):
        raise ValueError(f"need at least {len(MIX)} frames, one per venue")
    if read_frames < 1:
        raise ValueError("a read holds at least one frame")
    mix = build_mix(frames, seed)
    codecs = mix.fresh_codecs()
    engine = Engine(mix.config)
    clock = SystemClock()
    now = clock.now()
    engine.start(now)
    for venue, handshake in mix.handshakes.items():
        engine.ingest(venue, [FeedUp(venue, "bench")], now, is_frame=False)
        for text in handshake:
            engine.ingest(venue, codecs[venue].receive_text(text), now)
        codecs[venue].data_to_send()
    engine.take_actions()
    engine.take_journal()
    before = {venue: (engine.venue_stats(venue).frames, engine.venue_stats(venue).events) for venue in codecs}

    reads = [mix.frames[i : i + read_frames] for i in range(0, len(mix.frames), read_frames)]
    outboxes = [codec.data_to_send for codec in codecs.values()]
    transitions = 0
    ingest_batch = engine.ingest_batch
    take_actions = engine.take_actions
    take_journal = engine.take_journal
    read_clock = clock.now
    if profiler is not None:
        profiler.enable()
    started = time.perf_counter()
    for read in reads:
        now = read_clock()
        transitions += len(
            ingest_batch([IngestItem(venue, codecs[venue].receive_text(text), now) for venue, text in read])
        )
        take_actions()
        take_journal()
        for drain in outboxes:
            drain()
    seconds = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()

    per_venue: dict[str, dict[str, int]] = {}
    for venue, (frames_before, events_before) in before.items():
        stats = engine.venue_stats(venue)
        per_venue[venue] = {"frames": stats.frames - frames_before, "events": stats.events - events_before}
    events = sum(v["events"] for v in per_venue.values())
    n = len(mix.frames)
    return PipelineResult(
        frames=n,
        events=events,
        seconds=round(seconds, 4),
        frames_per_s=round(n / seconds, 1),
        events_per_s=round(events / seconds, 1),
        us_per_frame=round(seconds / n * 1e6, 3),
        alert_transitions=transitions,
        malformed=sum(engine.venue_stats(venue).malformed for venue in codecs),
        engine_errors=sum(engine.venue_stats(venue).engine_errors for venue in codecs),
        per_venue=per_venue,
        mix=dict(MIX),
        build_s=round(mix.build_s, 3),
        read_frames=read_frames,
    )
