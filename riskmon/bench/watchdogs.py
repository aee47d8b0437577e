"""Watchdog lateness with a million pending deadlines while events flow (DESIGN.md §2, §5).

A benchmark, not a test: it prints numbers and asserts nothing about time. The method:

1. A real Engine from a config with one ProphetX venue (activation_timeout 10 s) and one Mango
   v3 fills venue on which the desk holds a position, so every mark price evaluates a limit.
   The engine is started and both feeds are up, as in a live run.
2. `pending` activation deadlines are armed through the real path: one `engine.ingest` of an
   OrderIntake each. `pending - firing` fall due a day or more ahead, in random order (beyond
   the run); `firing` fall due evenly over the measurement window (`placed_at` sets the due
   time). The journal is taken and dropped after every step, as the runtime does once it has
   persisted the records.
3. Bytes per pending deadline (heap entry, due-dict entry, WatchedOrder, order-dict entry and
   the order id): the containers (heap list, due dict, order dict) are sized exactly before and
   after arming all far deadlines, their growth amortized over them; the objects each arming
   leaves behind are traced with tracemalloc over the last `memory_sample` armings
   (`full_trace`: over all of them, about 3x slower; both agree within a few bytes). The
   journal record an arming holds until the runtime takes it is reported apart.
4. An asyncio loop then runs what the Monitor runs (riskmon.bench.watchdog_loop): the engine task
   on the Monitor's bounded inbound queue and the runtime's DeadlineTimer, fed by a producer
   standing in for a Mango session at `event_rate`. The events are decoded once by the real
   Mango codec and given fresh fill keys; with `frames=True` the producer builds text frames and
   decodes each through the codec, the session's work on the same loop. ProphetX heartbeats
   arrive every 5 s.
5. A deadline's lateness is the wall time at which the engine step that fired it hands back
   the watchdog's LookupOrder action (when the runtime starts the REST lookup) minus its due
   time. The step is either the timer's `advance` or an `ingest` (which advances first).

Left out on purpose: alert receivers, the remedies (no reconnect, no REST lookup is answered;
the lookup deadlines fall due after the run) and the SQLite flush of the journal.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import pstats
import random
import sys
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from riskmon.bench import add_watchdog_bench_arguments
from riskmon.bench.mango_feed import DESK_ACCOUNT, MANGO, MARKET, MangoFeed
from riskmon.bench.measure import GcWatch, Percentiles, resident_bytes, timer_floor
from riskmon.bench.watchdog_loop import PROPHETX, Measurement, measure_window
from riskmon.clock import SystemClock
from riskmon.config import MonitorConfig, parse_config
from riskmon.engine.engine import Engine
from riskmon.events import FeedUp, Heartbeat, OrderIntake

DESK = "bench-desk"
FAR_AHEAD = 86_400.0  # far deadlines fall due between one and two days ahead
_ORDER_ID_BASE = 1_800_000_000_000_000_000  # 19-character numeric order ids


@dataclass(frozen=True, slots=True)
class WatchdogBenchResult:
    pending: int  # activation deadlines armed through engine.ingest (far + firing)
    firing: int  # of them, due during the measurement window
    fired: int  # LookupOrder actions seen for those
    unexpected_fired: int  # LookupOrder actions for any other order (must be 0)
    fired_by_timer: int  # fired by the DeadlineTimer's step; the rest by an event's ingest
    lateness_ms: Percentiles  # effect time minus due time
    heap_at_start: int  # deadlines in the engine's heap when the measurement began
    bytes_per_pending_deadline: float  # journal taken and dropped, as the runtime does
    journal_bytes_per_record: float  # held per arming until the runtime takes the journal
    rss_bytes_per_pending_deadline: float | None  # resident set growth over the untraced armings (Linux)
    memory_method: str
    setup_s: float  # engine, feed and arming of every deadline (memory tracing included)
    arm_us: float  # one untraced arming: engine.ingest of one OrderIntake
    duration_s: float
    mode: str  # "events" (decoded once) or "frames" (through the Mango codec per frame)
    event_rate_offered: float
    events_applied: int  # Mango frames the engine applied during the window (heartbeats apart)
    events_per_s: float  # achieved
    kept_up: bool  # achieved at least 98% of the offered rate
    event_delay_ms: Percentiles  # time an event waited in the inbound queue
    loop_floor_ms: Percentiles  # a bare loop timer's lateness on this machine just before the run
    alert_transitions: int
    gc_full_collections: int  # during the measurement window
    gc_max_pause_ms: float
    gc_full_collection_ms: float  # one explicit full collection after the run, deadlines still pending

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def bench_config(activation_timeout: float = 10.0, rest_timeout: float = 10.0) -> MonitorConfig:
    text = f"""
venues:
  {MANGO}:
    kind: mango_v3_fills
    urls: ["ws://127.0.0.1:9"]
  {PROPHETX}:
    kind: prophetx
    rest_url: http://127.0.0.1:9
    access_key: bench
    secret_key: bench
    activation_timeout: {activation_timeout!r}
    rest_timeout: {rest_timeout!r}
desks:
  {DESK}:
    accounts: {{{MANGO}: [{DESK_ACCOUNT}], {PROPHETX}: [bench-account]}}
    limits:
      max_net_notional_usd: [{{market: {MARKET}, max_usd: 1000000000}}]
"""
    return parse_config(text, "bench-watchdogs.yaml", {})


def _container_sizes(engine: Engine) -> tuple[int, ...]:
    """The containers a pending activation deadline occupies a slot in, sized exactly."""
    heap = engine.deadlines
    orders = engine.watchdogs.activation._orders
    containers = (heap._heap, heap._keyed, heap._due, orders, *orders.values())
    return tuple(sys.getsizeof(c) for c in containers)


def _arm(engine: Engine, order_id: str, placed_at: float, now: float) -> None:
    engine.ingest(PROPHETX, [OrderIntake(PROPHETX, order_id, placed_at)], now, is_frame=False)


def run_watchdog_bench(
    pending: int = 1_000_000,
    firing: int = 20_000,
    event_rate: float = 50_000,
    duration: float = 20.0,
    seed: int = 0,
    *,
    activation_timeout: float = 10.0,
    frames: bool = False,
    burst: int = 128,
    memory_sample: int = 50_000,
    full_trace: bool = False,
    floor_probes: int | None = None,
    profiler: cProfile.Profile | None = None,
) -> WatchdogBenchResult:
    if not 0 <= firing < pending:
        raise ValueError("need 0 <= firing < pending: some deadlines must stay pending beyond the run")
    if duration <= 0 or event_rate < 0 or burst < 1 or memory_sample < 1:
        raise ValueError("duration, burst and memory_sample must be positive, event_rate not negative")
    rng = random.Random(seed)  # noqa: S311 - reproducible due times, not secrets
    clock = SystemClock()
    # The lookup deadline (2 * rest_timeout + 1 s after an activation deadline) stays beyond the run.
    engine = Engine(bench_config(activation_timeout, max(10.0, duration)))
    setup_started = time.perf_counter()
    now = clock.now()
    engine.start(now)
    for venue in (MANGO, PROPHETX):
        engine.ingest(venue, [FeedUp(venue, "bench")], now, is_frame=False)
    feed = MangoFeed(engine.config, frames=frames, timestamp=int(now))
    for item in feed.position(now):
        engine.ingest(item.venue, item.events, now)
    engine.take_actions()
    engine.take_journal()

    far = pending - firing
    traced = far if full_trace else min(far, memory_sample)
    far_placed = now + FAR_AHEAD
    containers_before = _container_sizes(engine)
    rss_before = resident_bytes()
    started = time.perf_counter()
    for i in range(far - traced):
        _arm(engine, str(_ORDER_ID_BASE + i), far_placed + rng.random() * FAR_AHEAD, clock.now())
        engine.take_journal()
    untraced_s = time.perf_counter() - started
    rss_after = resident_bytes()
    rss_per_deadline = None
    if rss_before is not None and rss_after is not None and far - traced >= 100_000:
        rss_per_deadline = round((rss_after - rss_before) / (far - traced), 1)
    containers_mid = _container_sizes(engine)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for i in range(far - traced, far):
        _arm(engine, str(_ORDER_ID_BASE + i), far_placed + rng.random() * FAR_AHEAD, clock.now())
    with_journal = tracemalloc.get_traced_memory()[0] - base
    engine.take_journal()
    without_journal = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    containers_after = _container_sizes(engine)
    # A container that grew while traced was reallocated then, so the trace holds all of its
    # new buffer (the old one was allocated untraced): it is counted apart, amortized over all.
    regrown = sum(after for mid, after in zip(containers_mid, containers_after, strict=True) if after != mid)
    objects = (without_journal - regrown) / traced
    bytes_per_deadline = (sum(containers_after) - sum(containers_before)) / far + objects
    journal_bytes = (with_journal - without_journal) / traced
    method = (
        f"tracemalloc over all {far} far armings"
        if traced == far
        else f"containers sized over {far} far armings + objects traced over the last {traced}"
    )

    setup_s = time.perf_counter() - setup_started
    probes = floor_probes if floor_probes is not None else min(200, max(10, int(duration * 10)))
    loop_floor = asyncio.run(timer_floor(probes))

    # The firing deadlines: due evenly over the window, which opens once they are all armed.
    started = time.perf_counter()
    window_start = clock.now() + 0.05 + firing * 50e-6  # arming one takes ~15 us
    due: dict[str, float] = {}
    for i in range(firing):
        order_id = str(_ORDER_ID_BASE + far + i)
        due[order_id] = window_start + duration * (i + 0.5) / firing
        _arm(engine, order_id, due[order_id] - activation_timeout, clock.now())
        engine.take_journal()
    untraced_s += time.perf_counter() - started
    arm_us = untraced_s / max(1, far - traced + firing) * 1e6
    engine.ingest(PROPHETX, [Heartbeat(PROPHETX, "bench")], clock.now())
    engine.take_actions()
    setup_s += time.perf_counter() - started

    measurement = Measurement(engine, clock, due)
    heap_at_start = len(engine.deadlines)
    window_end = window_start + duration
    watch = GcWatch()
    gc.callbacks.append(watch)
    try:
        applied, elapsed = asyncio.run(
            measure_window(measurement, feed, event_rate, burst, window_end, profiler),
        )
    finally:
        gc.callbacks.remove(watch)

    # What a full collection would stall the loop for, were one to run while this much is pending.
    collect_started = time.perf_counter()
    gc.collect()
    full_collection_ms = (time.perf_counter() - collect_started) * 1e3
    events_per_s = applied / elapsed if elapsed > 0 else 0.0
    return WatchdogBenchResult(
        pending=pending,
        firing=firing,
        fired=len(measurement.lateness),
        unexpected_fired=measurement.unexpected,
        fired_by_timer=measurement.fired_by_timer,
        lateness_ms=Percentiles.of(measurement.lateness, 1e3),
        heap_at_start=heap_at_start,
        bytes_per_pending_deadline=round(bytes_per_deadline, 1),
        journal_bytes_per_record=round(journal_bytes, 1),
        rss_bytes_per_pending_deadline=rss_per_deadline,
        memory_method=method,
        setup_s=round(setup_s, 3),
        arm_us=round(arm_us, 2),
        duration_s=duration,
        mode="frames" if frames else "events",
        event_rate_offered=event_rate,
        events_applied=applied,
        events_per_s=round(events_per_s, 1),
        kept_up=events_per_s >= 0.98 * event_rate,
        event_delay_ms=Percentiles.of(measurement.delays, 1e3),
        loop_floor_ms=loop_floor,
        alert_transitions=measurement.transitions,
        gc_full_collections=watch.collections,
        gc_max_pause_ms=round(watch.max_pause * 1e3, 3),
        gc_full_collection_ms=round(full_collection_ms, 1),
    )


def format_table(result: WatchdogBenchResult) -> str:
    rss = result.rss_bytes_per_pending_deadline
    rate_note = "" if result.kept_up else "  (the loop could not keep up with the offered rate)"
    rows = [
        ("pending deadlines armed", f"{result.pending:,} ({result.heap_at_start:,} in the heap at start)"),
        ("due during the window", f"{result.firing:,} over {result.duration_s:g} s"),
        ("fired (LookupOrder)", f"{result.fired:,} ({result.fired_by_timer:,} by the timer, rest by an event step)"),
        ("fired unexpectedly", f"{result.unexpected_fired:,}"),
        ("lateness p50 / p99 / max", str(result.lateness_ms)),
        ("events offered", f"{result.event_rate_offered:,.0f}/s ({result.mode})"),
        ("events applied", f"{result.events_applied:,} = {result.events_per_s:,.0f}/s{rate_note}"),
        ("queue wait p50 / p99 / max", str(result.event_delay_ms)),
        ("bare loop timer p50/p99/max", f"{result.loop_floor_ms} (no engine, just before the run)"),
        ("bytes per pending deadline", f"{result.bytes_per_pending_deadline:,.0f}"),
        ("+ journal record until taken", f"{result.journal_bytes_per_record:,.0f}"),
        ("resident set growth per one", "-" if rss is None else f"{rss:,.0f} (allocator rounding included)"),
        ("memory method", result.memory_method),
        ("setup", f"{result.setup_s:.1f} s (one untraced arming {result.arm_us:.1f} us)"),
        ("full gc in window", f"{result.gc_full_collections} (max pause {result.gc_max_pause_ms:.1f} ms)"),
        ("one full gc after the run", f"{result.gc_full_collection_ms:,.0f} ms"),
        ("alert transitions", f"{result.alert_transitions:,}"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def run_from_args(args: argparse.Namespace) -> int:
    profiler = cProfile.Profile() if args.profile > 0 else None
    try:
        result = run_watchdog_bench(
            args.pending,
            args.firing,
            args.event_rate,
            args.duration,
            args.seed,
            frames=args.frames,
            burst=args.burst,
            full_trace=args.full_trace,
            profiler=profiler,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_json()) if args.json else format_table(result))
    if profiler is not None:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(args.profile)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="riskmon bench-watchdogs", description=__doc__.split("\n\n")[0])
    add_watchdog_bench_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
