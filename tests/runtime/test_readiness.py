"""Readiness as a pure function of engine state, driven with session events on virtual time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from riskmon.config.loader import parse_config
from riskmon.engine.engine import Engine
from riskmon.events import FeedDown, FeedUp, ReconciliationFinished, SequenceGap, StreamResynced
from riskmon.runtime.delivery_process import DeliveryState
from riskmon.runtime.readiness import ReadinessCollector, readiness, readiness_json, venue_readiness
from tests.runtime.mango_desk import DESK

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
CONFIG = f"""
venues:
  mango: {{kind: mango_v3_fills, urls: ["ws://127.0.0.1:1"], feed_down_grace: 15s}}
  mobula: {{kind: mobula_perp_events, api_key: k, chain_ids: ["evm:42161"]}}
  px: {{kind: prophetx, rest_url: "http://127.0.0.1:1/partner", access_key: k, secret_key: s}}
  tot: {{kind: totalis_rfq, api_key: k}}
  phx: {{kind: phoenix, authority: {DESK}, symbols: [SOL]}}
desks:
  books: {{accounts: {{mango: ["{DESK}"], px: ["u1"], tot: ["mm1"]}}}}
"""
VENUES = ["mango", "mobula", "phx", "px", "tot"]


def started() -> Engine:
    engine = Engine(parse_config(CONFIG, "t.yaml", {}))
    engine.start(T0)
    return engine


def up(engine: Engine, venue: str, now: float) -> None:
    engine.ingest(venue, [FeedUp(venue, "ws://127.0.0.1:1")], now, is_frame=False)


def down(engine: Engine, venue: str, reason: str, now: float) -> None:
    engine.ingest(venue, [FeedDown(venue, "ws://127.0.0.1:1", reason)], now, is_frame=False)


def test_before_any_connection_every_venue_says_what_its_feed_waits_for() -> None:
    verdict = readiness(started())
    assert not verdict.ready
    assert [v.venue for v in verdict.venues] == VENUES
    assert {v.venue: v.reason for v in verdict.venues} == {
        "mango": "not connected yet",
        "mobula": "not connected yet (up once the venue acknowledges the subscription)",
        "phx": "not connected yet (up once the traderState subscription is confirmed)",
        "px": "not connected yet (up once every registered channel is subscribed)",
        "tot": "awaiting first reconciliation (up once connected, authenticated and GET /mm/quotes answered)",
    }
    assert {v.state for v in verdict.venues} == {"down"}
    assert {v.down_since for v in verdict.venues} == {T0}  # the startup grace runs from start()


def test_ready_only_once_every_venue_is_up() -> None:
    engine = started()
    for i, venue in enumerate(VENUES):
        assert not readiness(engine).ready
        up(engine, venue, T0 + 1 + i)
        assert venue_readiness(engine, venue).ready
    verdict = readiness(engine)
    assert verdict.ready
    assert readiness_json(verdict) == {
        "status": "ready",
        "venues": {
            "mango": {"ready": True, "kind": "mango_v3_fills", "state": "up"},
            "mobula": {"ready": True, "kind": "mobula_perp_events", "state": "up"},
            "phx": {"ready": True, "kind": "phoenix", "state": "up"},
            "px": {"ready": True, "kind": "prophetx", "state": "up"},
            "tot": {"ready": True, "kind": "totalis_rfq", "state": "up"},
        },
        "delivery": {"ready": True, "state": "up"},
    }


def test_a_lost_feed_says_since_when_and_the_latest_reason() -> None:
    engine = started()
    for venue in VENUES:
        up(engine, venue, T0 + 1)
    down(engine, "mango", "connection closed (code 1006)", T0 + 60)
    down(engine, "mango", "cannot connect (ConnectionRefusedError)", T0 + 61)  # a failed retry
    verdict = readiness(engine)
    assert not verdict.ready
    mango = venue_readiness(engine, "mango")
    assert (mango.ready, mango.state, mango.down_since) == (False, "down", T0 + 60)
    assert mango.reason == "feed down since 2023-11-14T22:14:20Z: cannot connect (ConnectionRefusedError)"
    assert readiness_json(verdict)["venues"]["mango"] == {  # type: ignore[index]
        "ready": False,
        "kind": "mango_v3_fills",
        "state": "down",
        "reason": "feed down since 2023-11-14T22:14:20Z: cannot connect (ConnectionRefusedError)",
        "down_since": T0 + 60,
        "down_since_rfc3339": "2023-11-14T22:14:20Z",
    }
    assert readiness_json(verdict)["status"] == "not ready"
    up(engine, "mango", T0 + 62)
    assert readiness(engine).ready


def test_a_venue_that_never_connected_reports_its_connect_failure() -> None:
    engine = started()
    down(engine, "tot", "handshake refused (HTTP 401)", T0 + 0.5)
    tot = venue_readiness(engine, "tot")
    assert tot.reason == "feed down since 2023-11-14T22:13:20Z: handshake refused (HTTP 401)"


def test_a_sequence_gap_is_not_ready_until_the_fresh_snapshot() -> None:
    engine = started()
    for venue in VENUES:
        up(engine, venue, T0 + 1)
    engine.ingest("phx", [SequenceGap("phx", "exchange", 10, 14)], T0 + 5)
    phx = venue_readiness(engine, "phx")
    assert (phx.ready, phx.state) == (False, "resyncing")
    assert phx.reason == "resyncing: a sequence gap was seen; waiting for the fresh snapshot"
    engine.ingest("phx", [StreamResynced("phx", "exchange")], T0 + 5.2)
    assert readiness(engine).ready


def test_a_failed_scheduled_reconciliation_raises_its_alert_but_keeps_the_venue_ready() -> None:
    engine = started()
    for venue in VENUES:
        up(engine, venue, T0 + 1)
    fired = engine.ingest("px", [ReconciliationFinished("px", "orders+books", 0, "HTTP 503")], T0 + 20)
    assert [t.alertname for t in fired] == ["ReconciliationFailed"]
    assert readiness(engine).ready  # an audit that failed is an alert, not a lost feed


def test_a_venue_without_an_adapter_is_never_ready() -> None:
    engine = started()
    for venue in VENUES:
        up(engine, venue, T0 + 1)
    verdict = readiness(engine, {"phx"})
    assert not verdict.ready
    phx = next(v for v in verdict.venues if v.venue == "phx")
    assert (phx.state, phx.reason) == ("unavailable", "adapter unavailable: this build has no adapter for kind phoenix")


def test_an_engine_that_was_never_started_has_no_down_time() -> None:
    engine = Engine(parse_config(CONFIG, "t.yaml", {}))  # replay: no startup grace
    mango = venue_readiness(engine, "mango")
    assert (mango.ready, mango.reason, mango.down_since) == (False, "not connected yet", None)


def test_the_collector_exports_venue_ready_as_readyz_judges_it() -> None:
    engine = started()
    unavailable: set[str] = set()
    registry = CollectorRegistry()
    registry.register(ReadinessCollector(engine, unavailable))
    up(engine, "mango", T0 + 1)
    assert registry.get_sample_value("riskmon_venue_ready", {"venue": "mango"}) == 1.0
    assert registry.get_sample_value("riskmon_venue_ready", {"venue": "tot"}) == 0.0
    unavailable.add("mango")  # the Monitor's live set, read at each scrape
    assert registry.get_sample_value("riskmon_venue_ready", {"venue": "mango"}) == 0.0
    assert [s.labels["venue"] for s in next(iter(registry.collect())).samples] == VENUES


def every_venue_up() -> Engine:
    engine = started()
    for i, venue in enumerate(VENUES):
        up(engine, venue, T0 + 1 + i)
    return engine


def test_every_venue_up_is_not_ready_until_alert_delivery_has_started() -> None:
    engine = every_venue_up()
    for state in (DeliveryState.STARTING, DeliveryState.RESTARTING):
        verdict = readiness(engine, (), state)
        assert all(v.ready for v in verdict.venues)
        assert not verdict.ready
        body = readiness_json(verdict)
        assert body["status"] == "not ready"
        delivery = body["delivery"]
        assert isinstance(delivery, dict)
        assert (delivery["ready"], delivery["state"]) == (False, state.value)
        assert str(delivery["reason"]).startswith(f"alert delivery is {state.value}: ")
    assert readiness(engine, (), DeliveryState.UP).ready


def test_delivery_that_is_off_counts_as_started_and_says_so() -> None:
    verdict = readiness(every_venue_up(), (), DeliveryState.OFF)
    assert verdict.ready
    body = readiness_json(verdict)
    assert body["status"] == "ready"
    assert body["delivery"] == {
        "ready": True,
        "state": "off",
        "reason": "alert delivery is off: the outbox could not be opened, so no notification is sent (see the log)",
    }


def test_riskmon_ready_is_the_whole_verdict_and_venue_ready_the_venues_alone() -> None:
    engine = every_venue_up()
    delivery = DeliveryState.STARTING
    registry = CollectorRegistry()
    registry.register(ReadinessCollector(engine, set(), lambda: delivery))
    assert registry.get_sample_value("riskmon_ready") == 0.0
    assert registry.get_sample_value("riskmon_venue_ready", {"venue": "mango"}) == 1.0
    delivery = DeliveryState.UP  # read at each scrape
    assert registry.get_sample_value("riskmon_ready") == 1.0
    down(engine, "tot", "closed", T0 + 20)
    assert registry.get_sample_value("riskmon_ready") == 0.0
