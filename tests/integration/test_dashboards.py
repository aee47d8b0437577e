"""The Grafana dashboards and provisioning files, checked statically against the running code.

Metric names and labels come from a populated registry of a real Monitor built from the demo
config (every collector it registers), never from a hand-written list, so a renamed metric or a
dropped label fails here before a dashboard goes blank.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from riskmon.config.loader import parse_config
from riskmon.events import (
    FeedUp,
    FillReceived,
    FrameMalformed,
    Heartbeat,
    Liquidity,
    MarkPrice,
    OrderIntake,
    OrderStatus,
    OrderUpdate,
    QuoteStatus,
    QuoteUpdate,
    ReconciliationFinished,
    SequenceGap,
    Side,
    StreamResynced,
)
from riskmon.runtime.monitor import Monitor

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"
BOARD_FILES = ("riskmon-overview.json", "riskmon-venue-health.json", "riskmon-alert-delivery.json")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
PANEL_TYPES = {"timeseries", "stat", "table", "bargauge"}
# Where the provider reads dashboards: the README mounts (or copies) dashboards/ there.
PROVIDER_PATH = "/var/lib/grafana/dashboards/riskmon"
METRIC = re.compile(r"\b(riskmon_[a-z0-9_]+)\b\s*(\{[^}]*\})?")
LABEL_VALUES = re.compile(r"^label_values\((.+),\s*(\w+)\)$")
# The demo's addresses; nothing is started, the Monitor is only built to read its registry.
DEMO_ENV = {
    "RISKMON_DEMO_MANGO_URL": "ws://127.0.0.1:9/",
    "RISKMON_DEMO_MOBULA_URL": "ws://127.0.0.1:9/",
    "RISKMON_DEMO_PHOENIX_URL": "ws://127.0.0.1:9/v1/ws",
    "RISKMON_DEMO_TOTALIS_WS_URL": "ws://127.0.0.1:9/ws",
    "RISKMON_DEMO_TOTALIS_REST_URL": "http://127.0.0.1:9",
    "RISKMON_DEMO_PROPHETX_URL": "http://127.0.0.1:9/partner",
    "RISKMON_DEMO_WEBHOOK_URL": "http://127.0.0.1:9/alerts",
    "RISKMON_DEMO_MOBULA_KEY": "k",
    "RISKMON_DEMO_PROPHETX_ACCESS_KEY": "k",
    "RISKMON_DEMO_PROPHETX_SECRET_KEY": "k",
    "RISKMON_DEMO_TOTALIS_KEY": "k",
}
SOL_DESK_MANGO = "DMjLV5AdbdnAxEE9CCJYdzGhEDVAaKPJDRTZQ7kgMZwm"


def load_board(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DASHBOARDS / name).read_text())
    return loaded


@pytest.fixture(scope="module")
def boards() -> dict[str, dict[str, Any]]:
    return {name: load_board(name) for name in BOARD_FILES}


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def exprs(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    for panel in panels(board):
        for target in panel.get("targets", []):
            yield f"{board['uid']} / {panel['title']} / {target['refId']}", target["expr"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            yield f"{board['uid']} / ${variable['name']}", variable["definition"]


def variable(board: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((v for v in board["templating"]["list"] if v["name"] == name), None)


@pytest.fixture(scope="module")
def monitor(tmp_path_factory: pytest.TempPathFactory) -> Monitor:
    """A Monitor on the demo config (never started), its engine fed one of each kind of event."""
    state = tmp_path_factory.mktemp("state") / "state.db"
    text = resources.files("riskmon.demo").joinpath("demo.yaml").read_text(encoding="utf-8")
    config = parse_config(text, "demo.yaml", {**DEMO_ENV, "RISKMON_DEMO_STATE": str(state)})
    built = Monitor(config, http=False)
    populate(built)
    return built


@pytest.fixture(scope="module")
def exported(monitor: Monitor) -> dict[str, frozenset[str]]:
    """Series name -> label names, from the populated registry (every collector the Monitor registers)."""
    return series_labels(monitor.registry)


def populate(monitor: Monitor) -> None:
    """One of each kind of thing the dashboards show, so every family has samples to read labels from."""
    engine = monitor.engine
    for venue in monitor.config.venues:
        engine.ingest(venue, [FeedUp(venue, "ws://127.0.0.1:9")], 100.0, is_frame=False)
    fill = FillReceived(
        "mango",
        "sol-desk",
        SOL_DESK_MANGO,
        "SOL-PERP",
        Side.BUY,
        Decimal(200),
        Decimal(150),
        "fill-1",
        "sol-eq",
        1,
        Liquidity.TAKER,
        Decimal("0.0004"),
        100.0,
    )
    engine.ingest("mango", [MarkPrice("mango", "SOL-PERP", Decimal(150), 100.0), fill], 101.0)
    engine.ingest("mango", [FrameMalformed("mango", "bad_base64")], 101.5)
    engine.ingest("prophetx", [Heartbeat("prophetx", "c1"), OrderIntake("prophetx", "o1", 100.0, "mm-desk")], 102.0)
    order = OrderUpdate("prophetx", "mm-desk", "acct-demo", "o1", "1/2/3", OrderStatus.OPEN, "open", 1, 102.0)
    engine.ingest("prophetx", [order], 102.5)
    quote = QuoteUpdate(
        "totalis",
        "mm-desk",
        "did:privy:mm-demo",
        "q1",
        "r1",
        QuoteStatus.ACCEPTED,
        worst_case_loss_usd=Decimal(90),
        confirmation_deadline=110.0,
    )
    engine.ingest("totalis", [quote], 103.0)
    engine.ingest(
        "totalis", [QuoteUpdate("totalis", "mm-desk", "did:privy:mm-demo", "q1", "r1", QuoteStatus.CONFIRMED)], 104.0
    )
    engine.ingest("totalis", [ReconciliationFinished("totalis", "quotes", 1)], 104.5, source="reconcile_quotes")
    engine.ingest("phoenix", [SequenceGap("phoenix", "exchange", 5, 7)], 105.0)
    engine.ingest("phoenix", [StreamResynced("phoenix", "exchange")], 105.5)
    delivery = monitor.alerting.delivery
    delivery.outcomes[("webhook", "sent")] += 1
    delivery.depths["webhook"] = 0


_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("", "_count", "_sum"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}


def series_labels(registry: CollectorRegistry) -> dict[str, frozenset[str]]:
    found: dict[str, set[str]] = {}
    for family in registry.collect():
        # Declared label names: a family with no sample yet names them nowhere else.
        declared = set(getattr(family, "_labelnames", ()))
        for suffix in _SUFFIXES.get(family.type, ("",)):
            found.setdefault(family.name + suffix, set()).update(declared)
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(set(sample.labels) - {"le", "quantile"})
    return {name: frozenset(labels) for name, labels in found.items()}


def test_each_dashboard_is_a_grafana_model_with_its_own_uid_and_unique_panel_ids(
    boards: dict[str, dict[str, Any]],
) -> None:
    assert sorted(p.name for p in DASHBOARDS.glob("*.json")) == sorted(BOARD_FILES)
    uids = [board["uid"] for board in boards.values()]
    assert len(set(uids)) == len(uids), uids
    for name, board in boards.items():
        assert board["schemaVersion"] == 39, name
        assert board["title"].startswith("riskmon"), name
        ids = [panel["id"] for panel in panels(board)]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in panels(board):
            grid = panel["gridPos"]
            assert min(grid["w"], grid["h"]) > 0, (name, panel["title"])
            assert grid["x"] + grid["w"] <= 24, (name, panel["title"])
            assert panel["type"] in PANEL_TYPES | {"row"}, (name, panel["title"], panel["type"])


def test_every_panel_and_target_uses_the_datasource_variable(boards: dict[str, dict[str, Any]]) -> None:
    for name, board in boards.items():
        shown = [p for p in panels(board) if p["type"] != "row"]
        assert len(shown) >= 5, name
        for panel in shown:
            assert panel["datasource"] == DATASOURCE, (name, panel["title"])
            assert panel["targets"], (name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"] == DATASOURCE, (name, panel["title"], target["refId"])
                assert target["expr"].strip(), (name, panel["title"], target["refId"])
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs)), (name, panel["title"])
        # Grafana must find the variable to resolve ${datasource}.
        source = variable(board, "datasource")
        assert source is not None, name
        assert (source["type"], source["query"]) == ("datasource", "prometheus"), name


def test_desk_and_venue_variables_are_multi_all_label_values_queries(boards: dict[str, dict[str, Any]]) -> None:
    seen = set()
    for name, board in boards.items():
        for label in ("desk", "venue"):
            var = variable(board, label)
            if var is None:
                continue
            seen.add(label)
            assert (var["type"], var["multi"], var["includeAll"]) == ("query", True, True), (name, label)
            assert var["datasource"] == DATASOURCE, (name, label)
            match = LABEL_VALUES.match(var["definition"])
            assert match is not None, (name, var["definition"])
            assert match.group(2) == label, (name, var["definition"])
            assert var["query"]["query"] == var["definition"], (name, label)
    assert seen == {"desk", "venue"}


def test_every_metric_in_the_dashboards_is_one_the_code_exports(
    boards: dict[str, dict[str, Any]], exported: dict[str, frozenset[str]]
) -> None:
    unknown = sorted(
        {
            f"{where}: {metric}"
            for board in boards.values()
            for where, expr in exprs(board)
            for metric, _ in METRIC.findall(expr)
            if metric not in exported
        }
    )
    assert not unknown, "metrics the running code does not export:\n" + "\n".join(unknown)


def test_desk_and_venue_filters_wherever_the_metric_has_those_labels(
    boards: dict[str, dict[str, Any]], exported: dict[str, frozenset[str]]
) -> None:
    problems = []
    for name, board in boards.items():
        for panel in panels(board):
            for target in panel.get("targets", []):
                for metric, selector in METRIC.findall(target["expr"]):
                    labels = exported.get(metric, frozenset())
                    for label in ("desk", "venue"):
                        filtered = f'{label}=~"${label}' in selector
                        if label in labels and not filtered:
                            problems.append(f"{name} / {panel['title']}: {metric} lacks the ${label} filter")
                        if label not in labels and f"${label}" in selector:
                            problems.append(f"{name} / {panel['title']}: {metric} has no {label} label to filter")
                        if filtered and variable(board, label) is None:
                            problems.append(f"{name}: ${label} used but not defined")
    assert not problems, "\n".join(problems)


def test_no_desk_or_venue_name_is_hard_coded(boards: dict[str, dict[str, Any]]) -> None:
    config = parse_config(
        resources.files("riskmon.demo").joinpath("demo.yaml").read_text(encoding="utf-8"),
        "demo.yaml",
        {**DEMO_ENV, "RISKMON_DEMO_STATE": "unused.db"},
    )
    names = {*config.desks, *config.venues}
    for board in boards.values():
        for where, expr in exprs(board):
            hard_coded = [n for n in names if re.search(rf"\b{re.escape(n)}\b", expr, re.IGNORECASE)]
            assert not hard_coded, (where, expr)


def test_units_follow_the_metric_base_units(boards: dict[str, dict[str, Any]]) -> None:
    expected = {"usd": "currencyUSD", "seconds": "s", "ratio": "percentunit"}
    for board in boards.values():
        for panel in panels(board):
            if panel["type"] in ("row", "table"):
                continue
            kinds = set()
            for target in panel["targets"]:
                for metric, _ in METRIC.findall(target["expr"]):
                    for suffix, kind in (("_usd", "usd"), ("_seconds", "seconds"), ("_seconds_bucket", "seconds")):
                        if metric.endswith(suffix):
                            kinds.add(kind)
                    if metric.endswith("_ratio"):
                        kinds.add("ratio")
            unit = panel["fieldConfig"]["defaults"].get("unit")
            assert unit, (board["uid"], panel["title"])
            assert len(kinds) <= 1, (board["uid"], panel["title"], kinds)
            if kinds:
                assert unit == expected[kinds.pop()], (board["uid"], panel["title"], unit)


def test_rates_use_the_rate_interval(boards: dict[str, dict[str, Any]]) -> None:
    for board in boards.values():
        for where, expr in exprs(board):
            for window in re.findall(r"\b(?:rate|increase)\([^\[]*\[([^\]]+)\]", expr):
                assert window in ("$__rate_interval", "$__range"), (where, expr)


def test_provisioning_files_parse_and_point_at_the_dashboards() -> None:
    sources = yaml.safe_load((DASHBOARDS / "provisioning/datasources/riskmon.yaml").read_text())
    assert sources["apiVersion"] == 1
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"].startswith("http")
    # The datasource variable defaults to the provisioned datasource.
    for name in BOARD_FILES:
        current = variable(load_board(name), "datasource")
        assert current is not None, name
        assert current["current"]["value"] == source["uid"], name

    providers = yaml.safe_load((DASHBOARDS / "provisioning/dashboards/riskmon.yaml").read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == PROVIDER_PATH


def test_prometheus_example_scrapes_riskmon_and_names_the_exported_rules() -> None:
    text = (DASHBOARDS / "prometheus.yml").read_text()
    config = yaml.safe_load(text)
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "riskmon"
    assert job["static_configs"] == [{"targets": ["127.0.0.1:9860"]}]
    assert job.get("scrape_interval", config["global"]["scrape_interval"]) == "5s"
    # Commented until the operator has written the rules file.
    assert "rule_files" not in config
    assert re.search(r"^# rule_files:\n#   - \S+\.yml$", text, re.MULTILINE), text
    assert "riskmon export-rules" in text


def test_stream_drift_is_zero_not_absent_for_a_venue_that_reconciled_cleanly(monitor: Monitor) -> None:
    registry = monitor.registry
    assert registry.get_sample_value("riskmon_reconciliation_runs_total", {"venue": "totalis", "outcome": "ok"}) == 1
    assert registry.get_sample_value("riskmon_stream_drift_total", {"venue": "totalis"}) == 0
