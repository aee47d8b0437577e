"""riskmon's alert fingerprint is Alertmanager's (prometheus/common model.LabelSet.Fingerprint).

The vectors are prometheus/common's own (model/signature_test.go: TestMetricToFingerprint and the
BenchmarkMetricToFingerprint* expectations), and each is also derived here step by step from the Go
algorithm (fnv.go's hashAdd / hashAddByte over name, SeparatorByte, value, SeparatorByte per
sorted label), so a wrong vector and a wrong implementation cannot agree by accident.
"""

from __future__ import annotations

import json

import pytest

from riskmon.alerts.fingerprints import fingerprint
from riskmon.alerts.lifecycle import AlertTransition
from riskmon.notify.alertmanager import alertmanager_body

OFFSET64 = 14695981039346656037
PRIME64 = 1099511628211


def go_fingerprint(labels: dict[str, str]) -> int:
    """labelSetToFingerprint transcribed: FNV-1a 64, one byte at a time, modulo 2**64."""
    h = OFFSET64
    for name in sorted(labels):
        for byte in (*name.encode(), 0xFF, *labels[name].encode(), 0xFF):
            h = ((h ^ byte) * PRIME64) % 2**64
    return h


# (label set, prometheus/common's expected uint64)
GO_VECTORS = [
    ({}, 14695981039346656037),
    ({"name": "garland, briggs", "fear": "love is not enough"}, 5799056148416392346),
    ({"first-label": "first-label-value"}, 5146282821936882169),
    ({"first-label": "first-label-value", "second-label": "second-label-value"}, 3195800080984914717),
    (
        {"first-label": "first-label-value", "second-label": "second-label-value", "third-label": "third-label-value"},
        13843036195897128121,
    ),
]


@pytest.mark.parametrize(("labels", "expected"), GO_VECTORS)
def test_matches_prometheus_common_vectors(labels: dict[str, str], expected: int) -> None:
    assert go_fingerprint(labels) == expected
    assert fingerprint(labels) == f"{expected:016x}"


def test_the_empty_set_is_the_fnv_offset_basis_and_output_is_16_lower_case_hex_digits() -> None:
    assert fingerprint({}) == "cbf29ce484222325"
    fp = fingerprint({"alertname": "VenueDown", "venue": "px"})
    assert len(fp) == 16
    assert fp == fp.lower()
    assert int(fp, 16) == go_fingerprint({"alertname": "VenueDown", "venue": "px"})


def test_a_small_value_keeps_its_leading_zeros() -> None:
    # Go prints %016x: find a label set whose hash is below 2**60 and check it is zero-padded.
    value = next(v for v in map(str, range(10_000)) if go_fingerprint({"n": v}) < 2**60)
    fp = fingerprint({"n": value})
    assert fp.startswith("0")
    assert len(fp) == 16
    assert int(fp, 16) == go_fingerprint({"n": value})


def test_non_ascii_values_hash_their_utf8_bytes() -> None:
    labels = {"desk": "zürich", "market": "ÿ-PERP"}  # U+00FF must not be confused with the separator byte
    assert fingerprint(labels) == f"{go_fingerprint(labels):016x}"


def test_order_does_not_matter_but_every_label_does() -> None:
    a = fingerprint({"x": "1", "y": "2"})
    assert a == fingerprint({"y": "2", "x": "1"})
    assert a != fingerprint({"x": "1", "y": "3"})
    assert a != fingerprint({"x": "1"})
    # The separator keeps name/value boundaries apart.
    assert fingerprint({"ab": "c"}) != fingerprint({"a": "bc"})


def test_an_empty_label_value_counts_as_absent_as_in_alertmanager() -> None:
    assert fingerprint({"alertname": "A", "rfq_id": ""}) == fingerprint({"alertname": "A"})


def test_the_fingerprint_of_what_we_post_to_alertmanager_is_ours() -> None:
    """Alertmanager drops empty label values from a posted alert, then fingerprints its labels: the
    result must be the fingerprint riskmon carries for that alert."""
    labels = {"alertname": "RfqConfirmationMissed", "severity": "critical", "venue": "tot", "rfq_id": "", "desk": "a"}
    transition = AlertTransition(
        ts=10.0,
        status="firing",
        alertname="RfqConfirmationMissed",
        severity="critical",
        labels=labels,
        annotations={"summary": "s"},
        fingerprint=fingerprint(labels),
        starts_at=10.0,
    )
    (posted,) = json.loads(alertmanager_body([transition], 10.0, 60.0, "http://riskmon"))
    assert "rfq_id" not in posted["labels"]
    as_alertmanager_stores_it = {k: v for k, v in posted["labels"].items() if v}
    assert f"{go_fingerprint(as_alertmanager_stores_it):016x}" == transition.fingerprint
