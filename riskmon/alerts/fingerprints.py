"""The fingerprint of an alert's label set, as Alertmanager computes it (prometheus/common
`LabelSet.Fingerprint`), so a receiver can correlate riskmon's webhook alerts with the same alerts
routed through Alertmanager. An alert's identity in the tracker, the state file, grouping and
inhibition is this fingerprint; it changes only when Alertmanager's scheme does (the tracker's
`restore()` re-keys alerts stored under an older one).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

_FNV64_OFFSET = 0xCBF29CE484222325
_FNV64_PRIME = 0x100000001B3
_U64 = 0xFFFFFFFFFFFFFFFF
_SEPARATOR = b"\xff"
"""prometheus/common's SeparatorByte: no UTF-8 text contains it."""


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint of a label set, as 16 lower-case hex digits.

    FNV-1a 64 over each label, sorted by name, as name 0xff value 0xff. Labels with an empty value
    are left out: Alertmanager drops them from a posted alert before fingerprinting it (and
    Prometheus treats an empty label as an absent one).
    """
    parts = [part.encode() for name, value in sorted(labels.items()) if value for part in (name, value)]
    return _fnv1a64_hex(_SEPARATOR.join(parts) + _SEPARATOR if parts else b"")


@lru_cache(maxsize=16_384)
def _fnv1a64_hex(data: bytes) -> str:
    # Cached: label sets are few and recur, and the byte loop costs ~0.1 us a byte in Python.
    h = _FNV64_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV64_PRIME) & _U64
    return f"{h:016x}"
