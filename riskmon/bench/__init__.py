"""Benchmarks that print numbers (they never assert timing).

`riskmon bench` (riskmon.bench.suite): the whole of riskmon held against the floor in one run,
section by section: the in-process pipeline on all five venues, end to end over loopback against a
bare websockets client, alert latency to a webhook, watchdog lateness, memory per open order and
restart to ready.

`riskmon bench-watchdogs` (riskmon.bench.watchdogs): watchdog lateness with a million pending
deadlines while events flow, and bytes per pending deadline.

This module stays light (argparse only), so the command line can describe the benchmarks
without importing the engine.
"""

from __future__ import annotations

import argparse


def add_watchdog_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the watchdog benchmark, shared by `riskmon bench-watchdogs` and its `main`."""
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--pending", type=int, default=1_000_000, help="activation deadlines armed (default 1000000)")
    parser.add_argument(
        "--firing", type=int, default=20_000, help="of them, due during the measurement window (default 20000)"
    )
    parser.add_argument(
        "--event-rate",
        type=float,
        default=50_000.0,
        help="offered Mango fill frames per second (0: no events, the timer alone; default 50000)",
    )
    parser.add_argument("--duration", type=float, default=20.0, help="measurement window in seconds (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--frames",
        action="store_true",
        help="feed text frames through the real Mango codec (the session's work) instead of decoded events",
    )
    parser.add_argument(
        "--burst",
        type=int,
        default=128,
        help="most frames a session hands the engine per wake-up when behind (about one socket read)",
    )
    parser.add_argument(
        "--full-trace",
        action="store_true",
        help="size memory by tracing the arming of every pending deadline (exact, about 3x slower setup)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="cProfile the measurement window and print its top N functions to stderr (distorts timing)",
    )


BENCH_SECTIONS = ("pipeline", "e2e", "alerts", "watchdogs", "memory", "restart")


def _sections(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(BENCH_SECTIONS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"sections are {', '.join(BENCH_SECTIONS)}; not {', '.join(unknown) or text!r}"
        )
    return names


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `riskmon bench`: every section in one run, or the ones named."""
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds): a smoke run, not a measurement")
    parser.add_argument(
        "--only",
        type=_sections,
        default=list(BENCH_SECTIONS),
        metavar="SECTIONS",
        help=f"comma-separated sections to run (default: all of {','.join(BENCH_SECTIONS)})",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="cProfile the pipeline and the e2e riskmon side; print each one's top N by tottime to stderr "
        "(distorts their timings)",
    )
    parser.add_argument("--seed", type=int, default=0)
