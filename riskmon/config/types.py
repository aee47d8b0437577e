"""Config value types that YAML has no word for: durations and secrets."""

from __future__ import annotations

import math
import re
from typing import Any

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
# Prometheus' compound form (1h30m, 2d12h): integer parts, largest unit first, each at most once.
_COMPOUND = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?")
_COMPOUND_UNITS = (7 * 86400.0, 86400.0, 3600.0, 60.0, 1.0, 0.001)
UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_EXPECTED = "expected a duration like 250ms, 10s, 15m, 1h or 1h30m"


class Duration(float):
    """Seconds, written in config as `250ms`, `10s`, `15m`, `1h`, a Prometheus compound such as
    `1h30m`, or a bare number of seconds. One parser serves every duration in monitor.yaml, routes
    included, so the same text means the same time everywhere."""

    @classmethod
    def parse(cls, value: object) -> Duration:
        if isinstance(value, bool):
            raise ValueError(_EXPECTED)
        if isinstance(value, int | float):
            if not math.isfinite(value) or value < 0:
                raise ValueError("expected a finite, non-negative duration")
            return cls(value)
        if isinstance(value, str):
            match = _DURATION.match(value)
            if match:
                return cls(float(match.group(1)) * UNIT_SECONDS[match.group(2) or "s"])
            compound = _COMPOUND.fullmatch(value.strip())
            if compound is not None and any(compound.groups()):
                parts = zip(compound.groups(), _COMPOUND_UNITS, strict=True)
                return cls(sum(int(n) * unit for n, unit in parts if n))
        raise ValueError(_EXPECTED)


class Secret:
    """A credential. Its repr and str never show the value, so it cannot leak into a log line."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def decode_hook(typ: type, value: Any) -> Any:
    if typ is Duration:
        return Duration.parse(value)
    if typ is Secret:
        if not isinstance(value, str) or not value:
            raise ValueError("expected a non-empty string (use ${ENV_VAR})")
        return Secret(value)
    raise NotImplementedError
