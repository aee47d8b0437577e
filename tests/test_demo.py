"""`riskmon demo` as a user runs it: a real process, real loopback sockets, a scrape of /metrics."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

pytestmark = pytest.mark.integration

Demo = tuple[subprocess.Popen[str], list[str], threading.Event, threading.Event]

VENUES = ("mango", "mobula", "prophetx", "totalis", "phoenix")
URL = re.compile(r"metrics at (http://127\.0\.0\.1:\d+/metrics)")


@pytest.fixture
def demo() -> Iterator[Demo]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "riskmon", "demo", "--duration", "16", "--port", "0"],
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


def test_demo_shows_all_five_venues_alerts_metrics_and_exits_cleanly(
    demo: Demo,
) -> None:
    proc, lines, url_seen, first_alert = demo
    assert url_seen.wait(timeout=30), "".join(lines)
    url = next(m.group(1) for line in lines if (m := URL.search(line)))
    # The first alert means fills were applied; the demo must show one within 30 s.
    assert first_alert.wait(timeout=30), "".join(lines)
    body = _scrape_all_up(url)
    assert re.search(r'riskmon_fills_total\{venue="mango"\} [1-9]', body), body
    assert "riskmon_build_info" in body

    assert proc.wait(timeout=60) == 0
    output = "".join(lines)
    # The SOL limit is on the cross-venue net (Mango fills + the Phoenix position).
    assert re.search(r"FIRING\s+ExposureLimitBreach \[critical\] desk=sol-desk limit=net_notional market=SOL ", output)
    assert re.search(r"FIRING\s+FillRevoked \[warning\] account=\S+ desk=sol-desk", output)
    assert re.search(r"RESOLVED\s+ExposureLimitBreach \[critical\] desk=sol-desk", output)
    assert "dropped a malformed frame" in output
    # One alert from each of the other venues' scripts.
    assert re.search(r"FIRING\s+Liquidation \[critical\] .*venue=mobula", output)
    assert re.search(r"FIRING\s+OrderActivationFailed \[warning\] .*venue=prophetx", output)
    assert re.search(r"FIRING\s+RfqPositionError \[critical\] .*venue=totalis", output)
    assert re.search(r"FIRING\s+SequenceGap \[warning\] stream=exchange venue=phoenix", output)
    # The watchdogs: a lost activation message, found open over REST after the timeout...
    assert re.search(
        r"FIRING\s+OrderActivationTimeout \[warning\] desk=mm-desk order_id=\S+ outcome=activated_late venue=prophetx",
        output,
    ), output
    assert re.search(r"prophetx: reconnecting: order \S+ not activated within 3s", output), output
    # ... a health_check silence: reconnect, and health checks resume on the new connection ...
    assert re.search(r"FIRING\s+VenueHealthCheckGap \[\w+\] venue=prophetx", output), output
    # A resolved alert's console line keeps the summary it fired with and says why it resolved.
    gap = r"VenueHealthCheckGap \[\w+\] venue=prophetx"
    assert re.search(
        rf"RESOLVED\s+{gap} prophetx: no health_check for \d+s, reconnecting — health_check resumed", output
    ), output
    # ... and a quote never confirmed: warned before its deadline, missed, then withdrawn.
    quote = r"desk=mm-desk quote_id=q-4 rfq_id=rfq-4 venue=totalis"
    assert re.search(rf"FIRING\s+RfqConfirmationDue \[warning\] {quote}", output), output
    assert re.search(rf"FIRING\s+RfqConfirmationMissed \[critical\] {quote}", output), output
    missed = "totalis quote q-4: confirmation deadline missed"
    assert re.search(rf"RESOLVED\s+RfqConfirmationMissed \[critical\] {quote} {missed} — .*withdrawn", output), output
    assert re.search(r"FIRING\s+MarketClosedWithExposure \[critical\] .*market=ETH venue=phoenix", output)
    assert re.search(r"RESOLVED\s+MarketClosedWithExposure \[critical\] .*market=ETH venue=phoenix", output)
    # The final tables show the cross-venue SOL net, bet and RFQ risk.
    assert "Exposure by underlying" in output
    assert re.search(r"sol-desk\s+│ SOL\s+│", output), output
    assert "10078829/219/4" in output
    # Feed states and what the watchdogs watched and caught.
    assert re.search(r"│ phoenix\s+│ (up|resyncing|down)\s+│", output), output
    assert "Watchdogs" in output
    assert re.search(r"│ prophetx\s+│ \d+ orders? pending activation\s+│ activation: [1-9]", output), output
    assert "activation timeout activated_late: 1" in output
    assert "health_check gap: 1" in output
    assert re.search(r"│ totalis\s+│ \d+ quotes? awaiting confirmation\s+│ confirm: [1-9]", output), output
    assert "confirmation missed: 1" in output
    assert re.search(r"│ phoenix\s+│ -\s+│ resync: 1,", output), output
    assert "Traceback" not in output


def _scrape_all_up(url: str) -> str:
    """A /metrics scrape showing all five feeds up. The scenario drops some connections on
    purpose (a Mango disconnect, two ProphetX reconnects), so a scrape may land in one of them."""
    body = ""
    for _ in range(40):
        body = httpx.get(url, timeout=5).text
        if all(f'riskmon_feed_up{{venue="{venue}"}} 1.0' in body for venue in VENUES):
            return body
        time.sleep(0.25)
    raise AssertionError(f"not every feed up: {body}")


def test_demo_stops_cleanly_on_ctrl_c(demo: Demo) -> None:
    proc, lines, url_seen, _ = demo
    assert url_seen.wait(timeout=30), "".join(lines)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0, "".join(lines)
    assert "Traceback" not in "".join(lines)
