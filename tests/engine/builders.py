"""Builders for the engine tests: an Engine from a config written as data, and the exact alert
transition a rule must emit, so each test states only what is particular to it."""

from __future__ import annotations

from typing import Any

import msgspec

from riskmon.alerts.fingerprints import fingerprint
from riskmon.alerts.lifecycle import AlertTransition
from riskmon.config.schema import MonitorConfig
from riskmon.config.types import decode_hook
from riskmon.engine.engine import Engine


def engine_for(config: dict[str, Any]) -> Engine:
    """An Engine on a MonitorConfig given as the data a monitor.yaml would hold."""
    return Engine(msgspec.convert(config, MonitorConfig, dec_hook=decode_hook, strict=False))


def firing(ts: float, labels: dict[str, str], annotations: dict[str, str], *, value: float) -> AlertTransition:
    """The transition of an alert that fires at `ts`: name and severity are its labels'."""
    return AlertTransition(
        ts=ts,
        status="firing",
        alertname=labels["alertname"],
        severity=labels["severity"],
        labels=labels,
        annotations=annotations,
        fingerprint=fingerprint(labels),
        starts_at=ts,
        value=value,
    )
