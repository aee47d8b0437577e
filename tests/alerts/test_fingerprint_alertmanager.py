"""The real Alertmanager computes, for the alerts riskmon posts, the very fingerprints riskmon
carries (empty label values and non-ASCII values included), so receivers can correlate both."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from riskmon.alerts.fingerprints import fingerprint
from riskmon.alerts.lifecycle import AlertTransition
from riskmon.notify.alertmanager import alertmanager_body
from tests.integration.conftest import Program, require_program, wait_for_http
from tests.runtime.process_support import free_port

CONFIG = """\
route:
  receiver: blackhole
receivers:
  - name: blackhole
"""
T0 = 1_700_000_000.0


def transition(labels: dict[str, str]) -> AlertTransition:
    return AlertTransition(
        ts=T0,
        status="firing",
        alertname=labels["alertname"],
        severity=labels["severity"],
        labels=labels,
        annotations={"summary": labels["alertname"]},
        fingerprint=fingerprint(labels),
        starts_at=T0,
    )


ALERTS = [
    transition(
        {"alertname": "ExposureLimitBreach", "severity": "critical", "desk": "alpha", "market": "SOL", "limit": "net"}
    ),
    # An empty label value: Alertmanager drops it before it fingerprints the alert.
    transition({"alertname": "RfqConfirmationMissed", "severity": "critical", "venue": "tot", "rfq_id": ""}),
    transition({"alertname": "FeedDown", "severity": "warning", "venue": "zürich-ÿ"}),
]


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    program_path = require_program("prometheus-alertmanager")
    config = tmp_path / "alertmanager.yml"
    config.write_text(CONFIG)
    base = f"http://127.0.0.1:{free_port()}"
    log = tmp_path / "alertmanager.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                program_path,
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address={base.removeprefix('http://')}",
                "--cluster.listen-address=",  # no gossip port on every interface
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        wait_for_http(f"{base}/-/ready", Program(process, log), 10.0)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def stored(base: str, count: int) -> list[dict[str, Any]]:
    """A bounded poll of the API: a separate process has no event to await."""
    deadline = time.monotonic() + 5
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while True:
            alerts: list[dict[str, Any]] = client.get(f"{base}/api/v2/alerts").json()
            if len(alerts) >= count or time.monotonic() > deadline:
                return alerts
            time.sleep(0.05)


@pytest.mark.integration
def test_alertmanager_fingerprints_what_we_post_as_we_do(alertmanager: str) -> None:
    now = time.time()  # Alertmanager compares endsAt with its own clock: post alerts still active
    posted = [msgspec.structs.replace(a, ts=now, starts_at=now) for a in ALERTS]
    body = alertmanager_body(posted, now, 60.0, "http://riskmon.invalid")
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        answer = client.post(
            f"{alertmanager}/api/v2/alerts", content=body, headers={"Content-Type": "application/json"}
        )
    assert answer.status_code == 200, answer.text
    by_name = {a["labels"]["alertname"]: a["fingerprint"] for a in stored(alertmanager, len(ALERTS))}
    assert by_name == {a.alertname: a.fingerprint for a in ALERTS}
