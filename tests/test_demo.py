"""`riskmon demo` as a user runs it: a real process, real loopback sockets, a scrape of /metrics."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import httpx
import pytest

pytestmark = pytest.mark.integration

Demo = tuple[subprocess.Popen[str], list[str], threading.Event, threading.Event]

URL = re.compile(r"metrics at (http://127\.0\.0\.1:\d+/metrics)")


@pytest.fixture
def demo() -> Iterator[Demo]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "riskmon", "demo", "--duration", "12", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    url_seen = threading.Event()
    first_alert = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if URL.search(line):
                url_seen.set()
            if "FIRING" in line:
                first_alert.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    yield proc, lines, url_seen, first_alert
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    reader.join(timeout=10)
    assert proc.stdout is not None
    proc.stdout.close()


def test_demo_fires_a_mango_limit_alert_serves_metrics_and_exits_cleanly(
    demo: Demo,
) -> None:
    proc, lines, url_seen, first_alert = demo
    assert url_seen.wait(timeout=30), "".join(lines)
    url = next(m.group(1) for line in lines if (m := URL.search(line)))
    # The first alert means fills were applied; the demo must show one within 30 s.
    assert first_alert.wait(timeout=30), "".join(lines)
    body = httpx.get(url, timeout=5).text
    assert 'riskmon_feed_up{venue="mango"} 1.0' in body
    assert re.search(r'riskmon_fills_total\{venue="mango"\} [1-9]', body), body
    assert "riskmon_build_info" in body

    assert proc.wait(timeout=60) == 0
    output = "".join(lines)
    assert re.search(
        r"FIRING\s+ExposureLimitBreach \[critical\] desk=sol-desk limit=net_notional market=SOL-PERP", output
    )
    assert re.search(r"FIRING\s+FillRevoked \[warning\] account=\S+ desk=sol-desk", output)
    assert re.search(r"RESOLVED\s+ExposureLimitBreach \[critical\] desk=sol-desk", output)
    assert "dropped a malformed frame" in output
    assert "Traceback" not in output


def test_demo_stops_cleanly_on_ctrl_c(demo: Demo) -> None:
    proc, lines, url_seen, _ = demo
    assert url_seen.wait(timeout=30), "".join(lines)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0, "".join(lines)
    assert "Traceback" not in "".join(lines)
