"""The read-only JSON API: the pure exposure and alert views on a real engine (virtual time), then
/readyz, /api/v1/exposure and /api/v1/alerts through a real Monitor's HTTP server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from riskmon.alerts.fingerprints import fingerprint
from riskmon.alerts.matchers import parse_matchers
from riskmon.alerts.silences import Silences
from riskmon.config.loader import parse_config
from riskmon.engine.engine import Engine
from riskmon.events import FillReceived, FillRevoked, Liquidity, MarkKind, MarkPrice, QuoteStatus, QuoteUpdate, Side
from riskmon.notify.notifier import Notifier
from riskmon.runtime.monitor import Monitor
from riskmon.runtime.state_views import UnknownName, alerts_view, exposure_view
from riskmon.venues.mango_v3.simulator import MangoV3FillsSimulator
from riskmon.watchdogs.feeds import FeedState
from tests.runtime.mango_desk import DESK, SOL, STREET, trade, until
from tests.runtime.process_support import free_port

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
TOKEN = "read-api-T0ken-that-must-never-leak"
CONFIG = f"""
venues:
  mango: {{kind: mango_v3_fills, urls: ["ws://127.0.0.1:1"]}}
  tot: {{kind: totalis_rfq, api_key: totalis-K3y-that-must-never-leak}}
desks:
  sol-desk:
    accounts: {{mango: ["{DESK}"], tot: ["mm1"]}}
    limits:
      max_net_notional_usd: [{{market: SOL-PERP, max_usd: 2500}}]
      max_gross_notional_usd: 10000
      max_pending_rfq_usd: 1000
      max_worst_case_loss_usd: 500
      for: 30s
  idle-desk:
    accounts: {{mango: ["{STREET}"]}}
receivers:
  hook: {{kind: webhook, url: "http://127.0.0.1:9/hook/receiver-secret-path"}}
"""


def fill(key: str, qty: str, side: Side = Side.BUY) -> FillReceived:
    return FillReceived(
        "mango", "sol-desk", DESK, "SOL-PERP", side, Decimal(qty), Decimal("150"), key, "q", 1, Liquidity.TAKER,
        Decimal(0), T0,
    )  # fmt: skip


def quote(quote_id: str, rfq_id: str, status: QuoteStatus, loss: str | None = None) -> QuoteUpdate:
    return QuoteUpdate(
        "tot", "sol-desk", "mm1", quote_id, rfq_id, status, worst_case_loss_usd=None if loss is None else Decimal(loss)
    )


def trading_engine() -> Engine:
    engine = Engine(parse_config(CONFIG, "t.yaml", {}))
    engine.ingest("mango", [fill("f1", "10"), fill("f2", "0.5", Side.SELL)], T0)
    engine.ingest("mango", [MarkPrice("mango", "SOL-PERP", Decimal("150.10"), T0, MarkKind.MARK)], T0 + 1)
    engine.ingest("tot", [quote("q1", "r1", QuoteStatus.ACCEPTED, "81.25")], T0 + 2)
    engine.ingest(
        "tot", [quote("q2", "r2", QuoteStatus.ACCEPTED, "200"), quote("q2", "r2", QuoteStatus.CONFIRMED)], T0 + 3
    )
    return engine


# --- the pure views -------------------------------------------------------------------------------


def test_exposure_view_has_exact_positions_limits_and_totals() -> None:
    view = exposure_view(trading_engine(), T0 + 10)
    assert view["generated_at"] == T0 + 10
    assert view["generated_at_rfc3339"] == "2023-11-14T22:13:30Z"
    assert view["positions"] == [
        {
            "desk": "sol-desk",
            "venue": "mango",
            "account": DESK,
            "market": "SOL-PERP",
            "underlying": "SOL-PERP",
            "position": "9.5",
            "mark": "150.1",
            "notional_usd": "1425.95",
        }
    ]
    assert view["at_risk"] == [
        {"desk": "sol-desk", "venue": "tot", "account": "mm1", "market": "rfq:r1", "worst_case_loss_usd": "0",
         "pending_rfq_usd": "81.25"},
        {"desk": "sol-desk", "venue": "tot", "account": "mm1", "market": "rfq:r2", "worst_case_loss_usd": "200",
         "pending_rfq_usd": "0"},
    ]  # fmt: skip
    desks: dict[str, Any] = view["desks"]  # type: ignore[assignment]
    assert list(desks) == ["idle-desk", "sol-desk"]
    sol = desks["sol-desk"]
    assert sol["net_by_underlying"] == [
        {"underlying": "SOL-PERP", "position": "9.5", "net_notional_usd": "1425.95", "limit_usd": "2500",
         "utilisation": "0.57038"},
    ]  # fmt: skip
    assert sol["gross_notional_usd"] == {"value": "1425.95", "limit_usd": "10000", "utilisation": "0.142595"}
    assert sol["pending_rfq_usd"] == {"value": "81.25", "limit_usd": "1000", "utilisation": "0.08125"}
    assert sol["worst_case_loss_usd"] == {
        "value": "200",
        "limit_usd_per_event": "500",
        "utilisation": "0.4",
        "by_event": [{"event": "rfq:r2", "value": "200", "utilisation": "0.4"}],
    }
    assert (sol["configured"], sol["open_positions"]) == (True, 1)
    idle = desks["idle-desk"]
    assert idle["gross_notional_usd"] == {"value": "0", "limit_usd": None, "utilisation": None}
    assert idle["worst_case_loss_usd"]["utilisation"] is None
    assert view["firm"] == {
        "gross_notional_usd": "1425.95",
        "pending_rfq_usd": "81.25",
        "worst_case_loss_usd": "200",
        "open_positions": 1,
    }


def test_exposure_filters_narrow_rows_and_keep_desk_totals() -> None:
    engine = trading_engine()
    by_venue = exposure_view(engine, T0, venue="tot")
    assert by_venue["positions"] == []
    assert [r["market"] for r in by_venue["at_risk"]] == ["rfq:r1", "rfq:r2"]  # type: ignore[attr-defined]
    sol = by_venue["desks"]["sol-desk"]  # type: ignore[index]
    assert sol["net_by_underlying"] == []  # no SOL held on tot
    assert sol["gross_notional_usd"]["value"] == "1425.95"  # what the gross limit compares
    by_desk = exposure_view(engine, T0, desk="idle-desk")
    assert (by_desk["positions"], list(by_desk["desks"])) == ([], ["idle-desk"])  # type: ignore[call-overload]
    assert by_desk["filters"] == {"desk": "idle-desk", "venue": None}
    with pytest.raises(UnknownName, match=r"no desk named 'nope'; known desks: idle-desk, sol-desk"):
        exposure_view(engine, T0, desk="nope")
    with pytest.raises(UnknownName, match=r"no venue named 'x'; known venues: mango, tot"):
        exposure_view(engine, T0, venue="x")


def test_a_revoke_leaves_the_exposure_view_exactly_where_it_was() -> None:
    engine = trading_engine()
    before = exposure_view(engine, T0)
    engine.ingest("mango", [fill("f3", "0.000000000000000001")], T0 + 4)
    assert exposure_view(engine, T0)["positions"] != before["positions"]
    engine.ingest("mango", [FillRevoked("mango", "f3", "q", "SOL-PERP", 1)], T0 + 5)
    after = exposure_view(engine, T0)
    assert after["positions"] == before["positions"]
    assert after["firm"] == before["firm"]


def test_alerts_view_shows_pending_then_firing_with_muting() -> None:
    config = parse_config(CONFIG, "t.yaml", {})
    engine = Engine(config)
    silences = Silences(id_factory=lambda: "sil-1")
    notifier = Notifier(config, silences)
    engine.start(T0)
    engine.ingest("mango", [MarkPrice("mango", "SOL-PERP", Decimal("150"), T0, MarkKind.MARK)], T0)
    notifier.observe(engine.ingest("mango", [fill("big", "20")], T0 + 1), T0 + 1)  # $3000 > $2500
    pending = alerts_view(engine, notifier, T0 + 1)["alerts"]
    assert [(a["severity"], a["state"], a["startsAt"]) for a in pending] == [  # type: ignore[attr-defined]
        ("critical", "pending", "2023-11-14T22:13:21Z"),
        ("warning", "pending", "2023-11-14T22:13:21Z"),
    ]
    notifier.observe(engine.advance(T0 + 31), T0 + 31)  # `for: 30s`; mango's FeedDown grace ran out at T0+15
    silences.add(['severity="critical"'], starts_at=None, ends_at=T0 + 3600, created_by="ops", comment="c", now=T0 + 32)
    notifier.mutes_changed(T0 + 32)
    view = alerts_view(
        engine, notifier, T0 + 40, state="firing", matchers=parse_matchers(['alertname="ExposureLimitBreach"'])
    )
    alerts: list[dict[str, Any]] = view["alerts"]  # type: ignore[assignment]
    assert [(a["severity"], a["muted"], a["silenced_by"], a["inhibited"]) for a in alerts] == [
        ("critical", True, ["sil-1"], False),
        ("warning", False, [], False),
    ]
    critical = alerts[0]
    assert critical["labels"] == {
        "desk": "sol-desk", "market": "SOL-PERP", "limit": "net_notional", "alertname": "ExposureLimitBreach",
        "severity": "critical",
    }  # fmt: skip
    assert (
        critical["annotations"]["summary"]
        == "Desk sol-desk net notional on SOL-PERP is $3,000, 120% of its $2,500 limit"
    )
    assert (critical["startsAt"], critical["startsAtUnix"], critical["activeAt"]) == (
        "2023-11-14T22:13:51Z",
        T0 + 31,
        "2023-11-14T22:13:21Z",
    )
    assert critical["value"] == 3000.0
    assert len(critical["fingerprint"]) == 16
    everything = alerts_view(engine, notifier, T0 + 40)["alerts"]
    assert {a["alertname"] for a in everything} == {"ExposureLimitBreach", "FeedDown"}  # type: ignore[attr-defined]
    assert alerts_view(engine, notifier, T0 + 40, state="pending")["alerts"] == []


def test_an_alert_muted_by_inhibition_says_so() -> None:
    config = parse_config(CONFIG, "t.yaml", {})
    engine = Engine(config)
    notifier = Notifier(config, Silences())
    engine.start(T0)
    notifier.observe(engine.advance(T0 + 15), T0 + 15)  # FeedDown for both venues
    stale = engine.alerts.fire_event(
        "NoFills", "warning", {"venue": "mango", "rule_kind": "absent"}, {}, resolve_after=600, now=T0 + 16
    )
    assert stale is not None
    notifier.observe([stale], T0 + 16)
    view = alerts_view(engine, notifier, T0 + 16, matchers=parse_matchers(['alertname="NoFills"']))
    assert [(a["muted"], a["inhibited"], a["silenced_by"]) for a in view["alerts"]] == [(True, True, [])]  # type: ignore[attr-defined]


def test_alerts_view_orders_firing_then_oldest_then_name_then_severity_rank_then_fingerprint() -> None:
    config = parse_config(CONFIG, "t.yaml", {})
    engine = Engine(config)
    notifier = Notifier(config, Silences())
    tracker = engine.alerts

    def fire(name: str, severity: str, at: float, **labels: str) -> None:
        tracker.fire_event(name, severity, {"venue": "mango", **labels}, {}, resolve_after=3600, now=at)

    def hold(name: str, severity: str, at: float) -> None:  # pending: held `for` 1h
        tracker.observe(
            name, severity, {"venue": "mango"}, breached=True, cleared=False, value=None, annotations={},
            pending_for=3600, now=at,
        )  # fmt: skip

    hold("Held", "critical", T0)  # the oldest of all, but pending: after every firing alert
    fire("Zeta", "info", T0 + 1)
    # Same time and name: critical, warning, info (alphabetically info would sort between them).
    for severity in ("info", "warning", "critical"):
        fire("Alpha", severity, T0 + 2)
    fire("Alpha", "page-me", T0 + 2)  # an unknown severity comes after the known ones
    fire("Alpha", "warning", T0 + 2, market="b")  # same name and severity: by fingerprint
    fire("Beta", "critical", T0 + 2)
    view = alerts_view(engine, notifier, T0 + 3)["alerts"]
    order = [(a["state"], a["alertname"], a["severity"], a["labels"].get("market", "")) for a in view]  # type: ignore[attr-defined]
    warnings = {
        market: fingerprint({"venue": "mango", "alertname": "Alpha", "severity": "warning", "market": market})
        for market in ("", "b")
    }
    same = [("firing", "Alpha", "warning", market) for market in sorted(warnings, key=warnings.__getitem__)]
    assert order == [
        ("firing", "Zeta", "info", ""),
        ("firing", "Alpha", "critical", ""),
        *same,
        ("firing", "Alpha", "info", ""),
        ("firing", "Alpha", "page-me", ""),
        ("firing", "Beta", "critical", ""),
        ("pending", "Held", "critical", ""),
    ]
    assert alerts_view(engine, notifier, T0 + 3)["alerts"] == view  # the same state, the same order


# --- through a real Monitor on loopback -----------------------------------------------------------

LIVE = f"""
state: {{path: "${{STATE}}"}}
server: {{token: "{TOKEN}"}}
venues:
  mango-a: {{kind: mango_v3_fills, urls: ["${{URL_A}}"], reconnect: {{initial: 10ms, max: 50ms}}}}
  mango-b: {{kind: mango_v3_fills, urls: ["${{URL_B}}"], reconnect: {{initial: 10ms, max: 50ms}}}}
desks:
  sol-desk:
    accounts: {{mango-a: ["{DESK}"], mango-b: ["{DESK}"]}}
    limits: {{max_net_notional_usd: [{{market: SOL-PERP, max_usd: 500}}]}}
receivers:
  hook: {{kind: webhook, url: "http://127.0.0.1:9/hook/receiver-secret-path"}}
"""


@pytest.mark.integration
@pytest.mark.asyncio
async def test_readyz_flips_as_venues_come_up_and_the_read_api_serves_state(tmp_path: Path) -> None:
    sim_a = MangoV3FillsSimulator([SOL])
    await sim_a.start()
    await sim_a.push_fill(SOL.name, trade(500))  # 5 SOL at $150
    port_b = free_port()
    sim_b = MangoV3FillsSimulator([SOL], port=port_b)
    env = {"STATE": str(tmp_path / "state.db"), "URL_A": sim_a.url, "URL_B": f"ws://127.0.0.1:{port_b}"}
    monitor = Monitor(parse_config(LIVE, "t.yaml", env), http_port=0, console=io.StringIO())
    stop = asyncio.Event()
    runner = asyncio.create_task(monitor.run(stop))
    feeds = monitor.engine.watchdogs.feeds
    bodies: list[str] = []
    try:
        await asyncio.wait_for(monitor.started.wait(), timeout=5)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{monitor.http_port}") as client:
            await until(
                monitor, lambda: feeds.state("mango-a") is FeedState.UP and monitor.engine.stats["mango-a"].fills == 1
            )
            response = await client.get("/readyz")
            bodies.append(response.text)
            assert response.status_code == 503
            venues = response.json()["venues"]
            assert response.json()["status"] == "not ready"
            assert venues["mango-a"] == {"ready": True, "kind": "mango_v3_fills", "state": "up"}
            assert venues["mango-b"]["ready"] is False
            assert venues["mango-b"]["reason"] == "not connected yet" or venues["mango-b"]["reason"].startswith(
                "feed down since "
            )
            metrics = (await client.get("/metrics")).text
            assert 'riskmon_venue_ready{venue="mango-a"} 1.0' in metrics
            assert 'riskmon_venue_ready{venue="mango-b"} 0.0' in metrics
            assert (await client.get("/healthz")).status_code == 200  # alive, though not ready

            await sim_b.start()
            await until(monitor, lambda: feeds.state("mango-b") is FeedState.UP)
            await asyncio.wait_for(monitor.alerting.delivery.started(), timeout=5)
            response = await client.get("/readyz")
            bodies.append(response.text)
            assert response.status_code == 200
            assert response.json() == {
                "status": "ready",
                "venues": {
                    "mango-a": {"ready": True, "kind": "mango_v3_fills", "state": "up"},
                    "mango-b": {"ready": True, "kind": "mango_v3_fills", "state": "up"},
                },
                "delivery": {"ready": True, "state": "up"},
            }
            assert "riskmon_ready 1.0" in (await client.get("/metrics")).text
            head = await client.head("/readyz")
            assert (head.status_code, head.content) == (200, b"")

            exposure = await client.get("/api/v1/exposure", params={"venue": "mango-a"})
            bodies.append(exposure.text)
            assert exposure.status_code == 200
            [position] = exposure.json()["positions"]
            assert (position["venue"], position["account"], position["position"]) == ("mango-a", DESK, "5")
            assert (position["mark"], position["notional_usd"]) == ("150", "750")
            assert exposure.json()["desks"]["sol-desk"]["net_by_underlying"][0]["utilisation"] == "1.5"

            alerts = await client.get("/api/v1/alerts", params={"filter": 'alertname="ExposureLimitBreach"'})
            bodies.append(alerts.text)
            assert alerts.status_code == 200
            assert [(a["severity"], a["state"], a["muted"]) for a in alerts.json()["alerts"]] == [
                ("critical", "firing", False),
                ("warning", "firing", False),
            ]

            for method, path in [("POST", "/readyz"), ("DELETE", "/api/v1/exposure"), ("PUT", "/api/v1/alerts")]:
                refused = await client.request(method, path)
                assert (refused.status_code, refused.headers["allow"]) == (405, "GET, HEAD")
            errors = {
                "/api/v1/exposure?desk=nope": (404, "no desk named 'nope'; known desks: sol-desk"),
                "/api/v1/exposure?dsk=sol-desk": (400, 'unknown query parameter "dsk"; allowed: desk, venue'),
                "/api/v1/exposure?desk=a&desk=b": (400, "give desk at most once"),
                "/api/v1/alerts?state=resolved": (400, "state must be one of pending, firing"),
            }
            for path, (status, message) in errors.items():
                answer = await client.get(path)
                bodies.append(answer.text)
                assert (answer.status_code, answer.json()) == (status, {"error": message})
            bad_filter = await client.get("/api/v1/alerts", params={"filter": 'alertname=~"("'})
            assert bad_filter.status_code == 400
            assert "invalid regular expression" in bad_filter.json()["error"]
            assert (await client.get("/api/v1/exposure/extra")).status_code == 404
            assert (await client.get("/api/v1/nothing")).status_code == 404
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await sim_a.stop()
        await sim_b.stop()
    for body in bodies:
        assert TOKEN not in body
        assert "receiver-secret-path" not in body
