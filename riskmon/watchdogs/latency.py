"""Latency distributions kept as plain bucket counts, read by the metrics collector at scrape time."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field

# Seconds: from a fast activation (tens of ms) to a confirmation near a long deadline.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
# Seconds the engine spends on one inbound item: a few microseconds for a fill, milliseconds when
# a change re-evaluates many rules; above 100 ms the venue's socket is backing up.
ENGINE_STEP_BUCKETS = (
    0.000005,
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.1,
    0.5,
)


@dataclass(slots=True)
class LatencyHistogram:
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    counts: list[int] = field(default_factory=list)  # per bucket, not cumulative; last is +Inf
    count: int = 0
    sum: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.buckets) + 1)

    def observe(self, seconds: float) -> None:
        # On the engine's hot path (once per inbound item): a comparison, not max(), saves 40 ns.
        if seconds < 0.0:
            # A venue timestamp ahead of our clock can make a latency negative; it is still a sample.
            seconds = 0.0
        self.counts[bisect_left(self.buckets, seconds)] += 1
        self.count += 1
        self.sum += seconds

    def observe_all(self, samples: Sequence[float]) -> None:
        """`observe` each sample in turn (the same counts and the same float sum), in one call:
        the engine task gathers a batch's step times and hands them over before it yields."""
        counts, buckets = self.counts, self.buckets
        total = self.sum
        for seconds in samples:
            if seconds < 0.0:
                seconds = 0.0
            counts[bisect_left(buckets, seconds)] += 1
            total += seconds
        self.count += len(samples)
        self.sum = total

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, count) pairs in the Prometheus histogram convention."""
        out: list[tuple[str, int]] = []
        running = 0
        for bound, n in zip(self.buckets, self.counts, strict=False):
            running += n
            out.append((repr(bound), running))
        out.append(("+Inf", self.count))
        return out
