"""`riskmon bench`: every measurement of issue 7 in one run, one section after another.

Sections (each runnable alone with `--only`):

- pipeline: codecs + engine on the five-venue mix, in process (pipeline.py);
- e2e: a real Monitor over loopback websockets against a bare `websockets` client (e2e.py);
- alerts: breach frame written -> webhook received, under paced background traffic (alert_latency.py);
- watchdogs: lateness with a million pending deadlines while events flow (watchdogs.py);
- memory: bytes per open order, its activation deadline included (open_orders.py);
- restart: Monitor construction to ready with the state file of the open orders (restart.py).

Nothing here asserts a timing: the targets are printed beside the values with whether they are met.
The machine is shared (2 cores, other work running), so absolute figures are noisy; the ratio to
the floor, measured in the same run, is the steadier number.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from riskmon.bench import BENCH_SECTIONS
from riskmon.bench.report import format_report, targets

NOISE_NOTE = (
    "2 shared cores with other work running: absolute figures are noisy (compare runs with care); "
    "the e2e ratio is measured against the floor in the same run"
)


@dataclass(frozen=True, slots=True)
class BenchSizes:
    pipeline_frames: int = 200_000
    e2e_frames: int = 200_000
    alert_rate: float = 50_000.0
    alert_duration_s: float = 20.0  # ~380 breaches: the p99 is the 4th worst, not the 2nd
    watchdog_pending: int = 1_000_000
    watchdog_firing: int = 20_000
    watchdog_rate: float = 50_000.0
    watchdog_duration_s: float = 10.0
    open_orders: int = 100_000
    restart_fill_history: int = 1_000_000


QUICK = BenchSizes(
    pipeline_frames=2_000,
    e2e_frames=2_000,
    alert_rate=2_000.0,
    alert_duration_s=0.4,
    watchdog_pending=2_000,
    watchdog_firing=100,
    watchdog_rate=2_000.0,
    watchdog_duration_s=0.3,
    open_orders=500,
    restart_fill_history=5_000,
)


@dataclass
class BenchRun:
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    profiles: dict[str, str] = field(default_factory=dict)


def _profiled(top: int) -> cProfile.Profile | None:
    return cProfile.Profile() if top > 0 else None


def _profile_text(profiler: cProfile.Profile | None, top: int) -> str | None:
    if profiler is None:
        return None
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def run_sections(
    only: Sequence[str] = BENCH_SECTIONS,
    sizes: BenchSizes = BenchSizes(),
    *,
    seed: int = 0,
    profile_top: int = 0,
    progress: Callable[[str], None] | None = None,
) -> BenchRun:
    """Run the named sections in the canonical order; a failing section is recorded, not raised."""
    run = BenchRun()
    for name in BENCH_SECTIONS:
        if name not in only:
            continue
        if progress is not None:
            progress(name)
        started = time.perf_counter()
        try:
            run.sections[name] = _run_section(name, sizes, seed, profile_top, run.profiles)
        except Exception as exc:  # one broken section must not lose the others' numbers
            run.errors[name] = f"{type(exc).__name__}: {exc}"
        run.seconds[name] = round(time.perf_counter() - started, 2)
    return run


def _run_section(name: str, sizes: BenchSizes, seed: int, top: int, profiles: dict[str, str]) -> dict[str, Any]:
    if name == "pipeline":
        from riskmon.bench.pipeline import run_pipeline_bench

        profiler = _profiled(top)
        pipeline = run_pipeline_bench(sizes.pipeline_frames, seed, profiler=profiler)
        if (text := _profile_text(profiler, top)) is not None:
            profiles[name] = text
        return pipeline.to_json()
    if name == "e2e":
        from riskmon.bench.e2e import run_e2e_bench

        profiler = _profiled(top)
        e2e = run_e2e_bench(sizes.e2e_frames, profiler=profiler)
        if (text := _profile_text(profiler, top)) is not None:
            profiles["e2e riskmon side"] = text
        return e2e.to_json()
    if name == "alerts":
        from riskmon.bench.alert_latency import run_alert_latency_bench

        return run_alert_latency_bench(sizes.alert_rate, sizes.alert_duration_s).to_json()
    if name == "watchdogs":
        from riskmon.bench.watchdogs import run_watchdog_bench

        watchdogs = run_watchdog_bench(
            sizes.watchdog_pending, sizes.watchdog_firing, sizes.watchdog_rate, sizes.watchdog_duration_s, seed
        )
        return watchdogs.to_json()
    if name == "memory":
        from riskmon.bench.open_orders import run_open_order_memory_bench

        return run_open_order_memory_bench(sizes.open_orders).to_json()
    if name == "restart":
        from riskmon.bench.restart import run_restart_bench

        return run_restart_bench(sizes.open_orders, sizes.restart_fill_history).to_json()
    raise ValueError(f"unknown section {name!r}")


def _get(run: BenchRun, section: str, *path: str) -> Any:
    value: Any = run.sections.get(section)
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def summary(run: BenchRun, *, quick: bool, total_s: float) -> dict[str, Any]:
    """The one JSON object of `riskmon bench --json`: the headline keys first, then every detail."""
    lateness = _get(run, "watchdogs", "lateness_ms")
    alert = _get(run, "alerts", "latency_ms")
    headline: dict[str, Any] = {
        "pipeline_events_per_s": _get(run, "pipeline", "events_per_s"),
        "e2e_events_per_s": _get(run, "e2e", "riskmon_frames_per_s"),
        "floor_events_per_s": _get(run, "e2e", "floor_frames_per_s"),
        "e2e_ratio_to_floor": _get(run, "e2e", "ratio_to_floor"),
        "sender_events_per_s": _get(run, "e2e", "sender_frames_per_s"),
        "alert_latency_ms": None if alert is None else {"p50": alert["p50"], "p99": alert["p99"]},
        "watchdog_lateness_ms": lateness,
        "bytes_per_open_order": _get(run, "memory", "bytes_per_open_order"),
        "restart_to_ready_s": _get(run, "restart", "restart_to_ready_s"),
        "restart_note": _get(run, "restart", "note"),
    }
    return {
        **headline,
        "targets": targets(headline),
        "quick": quick,
        "sections": run.sections,
        "errors": run.errors,
        "section_seconds": run.seconds,
        "total_s": round(total_s, 2),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "note": NOISE_NOTE,
        },
    }


def run_from_args(args: argparse.Namespace) -> int:
    sizes = QUICK if args.quick else BenchSizes()
    started = time.perf_counter()

    def progress(name: str) -> None:
        print(f"bench: {name}...", file=sys.stderr, flush=True)

    run = run_sections(args.only, sizes, seed=args.seed, profile_top=args.profile, progress=progress)
    result = summary(run, quick=args.quick, total_s=time.perf_counter() - started)
    print(json.dumps(result) if args.json else format_report(result))
    for name, text in run.profiles.items():
        print(f"\n== cProfile: {name} (top {args.profile} by tottime) ==\n{text}", file=sys.stderr)
    return 1 if run.errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    from riskmon.bench import add_bench_arguments

    parser = argparse.ArgumentParser(prog="riskmon bench", description=(__doc__ or "").split("\n\n")[0])
    add_bench_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
