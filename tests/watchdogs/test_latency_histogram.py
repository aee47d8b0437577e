"""LatencyHistogram: a batch of samples handed over at once counts exactly as each observed in turn."""

from __future__ import annotations

from riskmon.watchdogs.latency import ENGINE_STEP_BUCKETS, LatencyHistogram

# On bucket bounds (le is inclusive), between them, above the last, negative, and sums whose
# float total depends on the order of addition.
SAMPLES = [0.000005, 0.0000051, -0.25, 0.1, 0.5, 0.7, 0.0, 1e-9, 0.3, 0.000012, 0.2, 0.1]


def test_observe_all_counts_and_sums_exactly_as_observe_one_by_one() -> None:
    one_by_one = LatencyHistogram(ENGINE_STEP_BUCKETS)
    one_by_one.observe(0.003)
    for seconds in SAMPLES:
        one_by_one.observe(seconds)
    batched = LatencyHistogram(ENGINE_STEP_BUCKETS)
    batched.observe(0.003)
    batched.observe_all(SAMPLES[:5])
    batched.observe_all(SAMPLES[5:])
    assert batched.counts == one_by_one.counts
    assert batched.count == one_by_one.count == len(SAMPLES) + 1
    assert batched.sum == one_by_one.sum  # the same additions in the same order: bit for bit
    assert batched.cumulative() == one_by_one.cumulative()


def test_observe_all_places_samples_in_prometheus_le_buckets() -> None:
    histogram = LatencyHistogram((0.001, 0.01))
    histogram.observe_all([0.001, 0.0010001, -1.0, 0.02])
    # -1 is clamped to 0 (le 0.001), 0.001 sits on its bound, 0.0010001 in le 0.01, 0.02 in +Inf.
    assert histogram.cumulative() == [("0.001", 2), ("0.01", 3), ("+Inf", 4)]
    assert histogram.sum == 0.001 + 0.0010001 + 0.0 + 0.02


def test_observe_all_of_nothing_changes_nothing() -> None:
    histogram = LatencyHistogram(ENGINE_STEP_BUCKETS)
    histogram.observe_all([])
    assert (histogram.count, histogram.sum, sum(histogram.counts)) == (0, 0.0, 0)
