"""Section `pipeline`: the in-process pipeline on the five-venue mix, with no I/O at all.

Per frame, what the Monitor does between a socket read and the next one: the venue's real codec
(typed decode and normalization), one `Engine.ingest` (exposure, watchdogs, limits, rules), the
actions and journal taken as the runtime takes them, the codec's outbox drained as the session
drains it. The clock is read per frame, as the session reads it. Frames are built before the clock
starts (see venue_mix.py); each venue's codec first sees its connection handshake, untimed.

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
from riskmon.engine.engine import Engine
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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_pipeline_bench(
    frames: int = 200_000, seed: int = 0, profiler: cProfile.Profile | None = None
) -> PipelineResult:
    if frames < len(MIX):
        raise ValueError(f"need at least {len(MIX)} frames, one per venue")
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

    transitions = 0
    ingest = engine.ingest
    take_actions = engine.take_actions
    take_journal = engine.take_journal
    read_clock = clock.now
    if profiler is not None:
        profiler.enable()
    started = time.perf_counter()
    for venue, text in mix.frames:
        codec = codecs[venue]
        transitions += len(ingest(venue, codec.receive_text(text), read_clock()))
        take_actions()
        take_journal()
        codec.data_to_send()
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
    )
