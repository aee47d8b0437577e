"""The dashboards against the real thing: `riskmon demo` scraped by the real Prometheus.

Every panel target of every dashboard is run as Grafana would run it ("All" selected for $desk
and $venue) while the demo still runs, and must return at least one series: a panel that would
be blank on the demo is a broken panel (a renamed metric, a label filter that matches nothing,
a metric the demo never produces).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Program, free_port, wait_for_http

pytestmark = pytest.mark.integration

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"
LABEL_VALUES = re.compile(r"^label_values\((.+),\s*(\w+)\)$")
# Grafana's built-ins, as the brief fixes them for this check.
BUILT_INS = {"$__rate_interval": "1m", "$__interval": "5s", "$__range": "5m"}
# The scenario's last milestones (seconds into the scenario: the quote's deadline ~6 s, the
# receiver's outage and dead letter ~3-10 s, the Mango drop and the lost activation ~10 s, the
# liquidation ~11 s). Before they are all in, some panels legitimately have nothing to show.
MILESTONES = {
    "an RFQ confirmation deadline missed": "riskmon_rfq_confirmation_deadlines_missed_total",
    "an order activated late": 'riskmon_order_activation_timeouts_total{outcome="activated_late"}',
    "an order activation refused": "riskmon_order_activation_failures_total",
    "a reconnect": "riskmon_feed_reconnects_total",
    "a fill voided while the feed was down": 'riskmon_fill_revokes_total{reason="absent_from_checkpoint"}',
    "a resync": "riskmon_resync_seconds_count",
    "a notification sent": 'riskmon_notifications_total{outcome="sent"}',
    "a notification retried": 'riskmon_notifications_total{outcome="retried"}',
    "a notification dead-lettered": 'riskmon_notifications_total{outcome="dead"}',
    "a liquidation": 'riskmon_alerts_firing{alertname="Liquidation"}',
    "a delivery latency observed": "riskmon_notification_delivery_latency_seconds_count",
}
MILESTONE_TIMEOUT = 90.0


def promql_regex(values: list[str]) -> str:
    """What Grafana's Prometheus datasource puts for a multi-value or All variable: the values,
    regex-escaped for a PromQL string, as an alternation."""
    escaped = [re.sub(r"([\\^$.|?*+()\[\]{}'])", r"\\\\\1", value) for value in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


class PrometheusApi:
    def __init__(self, url: str) -> None:
        self._client = httpx.Client(base_url=url, timeout=10.0, trust_env=False)

    def close(self) -> None:
        self._client.close()

    def query(self, expr: str) -> dict[str, Any]:
        body: dict[str, Any] = self._client.get("/api/v1/query", params={"query": expr}).json()
        return body

    def label_values(self, selector: str, label: str) -> list[str]:
        body = self._client.get(f"/api/v1/label/{label}/values", params={"match[]": selector}).json()
        assert body["status"] == "success", body
        return sorted(body["data"])


def substitute(expr: str, variables: dict[str, str]) -> str:
    for name, value in sorted({**BUILT_INS, **variables}.items(), key=lambda item: -len(item[0])):
        bare = name.removeprefix("$")
        expr = expr.replace("${" + bare + "}", value).replace(name, value)
    return expr


def resolve_variables(board: dict[str, Any], prometheus: PrometheusApi) -> dict[str, str]:
    resolved: dict[str, str] = {}
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = LABEL_VALUES.match(variable["definition"])
        assert match is not None, variable["definition"]
        values = prometheus.label_values(match.group(1), match.group(2))
        assert values, f"{board['uid']}: ${variable['name']} has no values ({variable['definition']})"
        resolved["$" + variable["name"]] = promql_regex(values)
    return resolved


def blank_targets(board: dict[str, Any], prometheus: PrometheusApi) -> list[str]:
    variables = resolve_variables(board, prometheus)
    failures = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = substitute(target["expr"], variables)
            answer = prometheus.query(expr)
            if answer.get("status") != "success":
                failures.append(f"{board['uid']} / {panel['title']} / {target['refId']}: {expr} -> {answer}")
            elif not answer["data"]["result"]:
                failures.append(f"{board['uid']} / {panel['title']} / {target['refId']}: {expr} -> no series")
    return failures


def wait_for_milestones(prometheus: PrometheusApi, demo: Program) -> None:
    """A bounded poll: the scenario runs in another process, there is nothing to await."""
    deadline = time.monotonic() + MILESTONE_TIMEOUT
    missing = dict(MILESTONES)
    while missing and time.monotonic() < deadline:
        assert demo.process.poll() is None, f"the demo exited early:\n{demo.output()[-4000:]}"
        for what, selector in list(missing.items()):
            # Positive, and scraped at least twice: rate() and increase() need two samples.
            answer = prometheus.query(f"({selector} > 0) and count_over_time({selector}[1m]) >= 2")
            if answer.get("status") == "success" and answer["data"]["result"]:
                del missing[what]
        time.sleep(0.5)
    assert not missing, f"not reached within {MILESTONE_TIMEOUT}s: {sorted(missing)}\n{demo.output()[-4000:]}"


def test_every_dashboard_panel_has_data_from_the_demo_in_real_prometheus(
    tmp_path: Path, start_program: Callable[..., Program], prometheus_program: str, promtool: str
) -> None:
    demo_port, prometheus_port = free_port(), free_port()
    demo = start_program(sys.executable, "-m", "riskmon", "demo", "--port", str(demo_port), "--duration", "90")
    metrics_url = f"http://127.0.0.1:{demo_port}/metrics"
    wait_for_http(metrics_url, demo, timeout=60)

    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "riskmon", "static_configs": [{"targets": [f"127.0.0.1:{demo_port}"]}]}
                ],
            }
        )
    )
    server = start_program(
        prometheus_program,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prometheus_port}",
    )
    prometheus_url = f"http://127.0.0.1:{prometheus_port}"
    wait_for_http(f"{prometheus_url}/-/ready", server, timeout=60)
    prometheus = PrometheusApi(prometheus_url)
    try:
        wait_for_milestones(prometheus, demo)

        body = httpx.get(metrics_url, timeout=10, trust_env=False).text
        lint = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True, check=False)
        problems = f"promtool check metrics ({lint.returncode}):\n{lint.stdout}{lint.stderr}"
        assert (lint.returncode, lint.stdout.strip(), lint.stderr.strip()) == (0, "", ""), problems

        failures = []
        boards = sorted(DASHBOARDS.glob("*.json"))
        assert len(boards) == 3, boards
        for path in boards:
            failures.extend(blank_targets(json.loads(path.read_text()), prometheus))
        assert demo.process.poll() is None, "the demo ended before every panel was checked: series went stale"
        assert not failures, "panel targets without data on the demo:\n" + "\n".join(failures)
    finally:
        prometheus.close()
        if demo.process.poll() is None:
            demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(timeout=30) == 0, demo.output()[-4000:]
    assert "Traceback" not in demo.output()
