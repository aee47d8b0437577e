"""HealthCheckWatchdog through the engine, on virtual time: ProphetX health_check every 5 s keeps
it quiet; a gap of `health_check_gap` raises VenueHealthCheckGap and asks for a reconnect, re-armed
every gap (reconnect requests coalesced), until the next health_check resolves it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from riskmon.alerts.fingerprints import fingerprint
from riskmon.alerts.lifecycle import AlertTransition
from riskmon.engine.actions import LookupOrder, ReconnectCause, ReconnectVenue
from riskmon.engine.engine import Engine
from riskmon.engine.state_journal import AlertStateChanges, StateChanges
from riskmon.events import FeedDown, FeedUp, OrderStatus
from riskmon.store.state import StateStore
from tests.watchdogs.conftest import MANGO, PX, T0, TOT, brief, heartbeat, intake, make_engine, order

GAP_LABELS = {"venue": PX, "alertname": "VenueHealthCheckGap", "severity": "warning"}
RECONNECT = ReconnectVenue(PX, "no health_check for 30s", ReconnectCause.HEALTH_CHECK_GAP)


def up(engine: Engine, venue: str, now: float) -> list[AlertTransition]:
    return engine.ingest(venue, [FeedUp(venue, f"wss://{venue}.invalid/")], now, is_frame=False)


def beat(engine: Engine, now: float, venue: str = PX) -> list[AlertTransition]:
    return engine.ingest(venue, [heartbeat(venue)], now)


def beats_every_5s(engine: Engine, start: float, until: float) -> None:
    now = start
    while now <= until:
        assert beat(engine, now) == []
        now += 5


def test_health_checks_every_5s_keep_the_watchdog_quiet() -> None:
    engine = make_engine()
    assert up(engine, PX, T0) == []
    assert engine.next_deadline() == T0 + 30  # FeedUp arms the clock before any health_check
    beats_every_5s(engine, T0 + 5, T0 + 600)
    assert engine.next_deadline() == T0 + 630
    assert engine.advance(T0 + 629.999) == []
    assert engine.take_actions() == []
    assert engine.watchdogs.health_check.gaps_detected == {PX: 0}
    assert engine.watchdogs.health_check.last_health_check(PX) == T0 + 600
    assert engine.stats[PX].heartbeats == 120


def test_a_gap_fires_with_a_reconnect_at_last_plus_gap_rearms_and_the_next_health_check_resolves() -> None:
    engine = make_engine()
    health = engine.watchdogs.health_check
    up(engine, PX, T0)
    beats_every_5s(engine, T0 + 5, T0 + 60)
    assert engine.advance(T0 + 89.999) == []
    assert engine.take_actions() == []

    fired = engine.advance(T0 + 100)
    assert fired == [
        AlertTransition(
            ts=T0 + 90,
            status="firing",
            alertname="VenueHealthCheckGap",
            severity="warning",
            labels=GAP_LABELS,
            annotations={
                "summary": "px: no health_check for 30s, reconnecting",
                "description": "The venue sends health_check every 5s; the last one arrived at "
                "2023-11-14 22:14:20.000Z. The private channel (orders, fills) may be dead. Reconnecting.",
            },
            fingerprint=fingerprint(GAP_LABELS),
            starts_at=T0 + 90,
            value=30.0,
        )
    ]
    assert engine.take_actions() == [RECONNECT]
    assert health.gaps_detected[PX] == 1
    assert engine.next_deadline() == T0 + 120  # re-armed a gap later

    # Still nothing: another reconnect, but the alert does not fire twice.
    assert engine.advance(T0 + 120) == []
    assert engine.take_actions() == [RECONNECT]
    assert engine.advance(T0 + 150) == []
    assert engine.take_actions() == [RECONNECT]
    assert health.gaps_detected[PX] == 3
    (active,) = engine.alerts.active()
    assert (active.alertname, active.fired_at) == ("VenueHealthCheckGap", T0 + 90)

    (resolved,) = beat(engine, T0 + 155)
    assert resolved == AlertTransition(
        ts=T0 + 155,
        status="resolved",
        alertname="VenueHealthCheckGap",
        severity="warning",
        labels=GAP_LABELS,
        # Resolved as it fired, and how.
        annotations={
            **fired[0].annotations,
            "resolution": "health_check resumed (received at 2023-11-14 22:15:55.000Z)",
        },
        fingerprint=fingerprint(GAP_LABELS),
        starts_at=T0 + 90,
        value=None,
    )
    assert engine.next_deadline() == T0 + 185
    assert engine.take_actions() == []
    assert beat(engine, T0 + 160) == []  # resolved once

    # A later gap is a new incident: it fires again.
    assert brief(engine.advance(T0 + 190)) == [(T0 + 190, "firing", "VenueHealthCheckGap", "warning", {"venue": PX})]
    assert engine.take_actions() == [RECONNECT]


def test_the_reconnect_it_asks_for_restarts_the_clock_and_the_alert_waits_for_a_health_check() -> None:
    engine = make_engine()
    up(engine, PX, T0)
    beats_every_5s(engine, T0 + 5, T0 + 60)
    assert brief(engine.advance(T0 + 90)) == [(T0 + 90, "firing", "VenueHealthCheckGap", "warning", {"venue": PX})]
    assert engine.take_actions() == [RECONNECT]
    # The runtime reconnects: the session reports the socket closed, then the new connection.
    engine.ingest(PX, [FeedDown(PX, "wss://px.invalid/", "reconnect requested")], T0 + 90.2, is_frame=False)
    assert up(engine, PX, T0 + 91) == []  # back within the feed grace: no FeedDown; the gap alert stays
    assert engine.next_deadline() == T0 + 121
    assert [a.alertname for a in engine.alerts.active()] == ["VenueHealthCheckGap"]
    # The new connection is silent too: another gap and another reconnect, still one alert.
    assert engine.advance(T0 + 121) == []
    assert engine.take_actions() == [RECONNECT]
    assert engine.stats[PX].reconnects == 1
    assert brief(beat(engine, T0 + 125)) == [(T0 + 125, "resolved", "VenueHealthCheckGap", "warning", {"venue": PX})]


def test_no_health_check_at_all_after_feed_up_fires_a_gap_after_feed_up() -> None:
    engine = make_engine()
    up(engine, PX, T0)
    (fired,) = engine.advance(T0 + 30)
    assert fired.ts == T0 + 30
    assert fired.annotations["description"] == (
        "The venue sends health_check every 5s; none arrived on this connection. The private channel "
        "(orders, fills) may be dead. Reconnecting."
    )
    assert engine.take_actions() == [RECONNECT]


def test_reconnect_requests_within_5s_of_each_other_are_merged() -> None:
    engine = make_engine(px={"health_check_gap": "3s"})
    up(engine, PX, T0)
    reconnect = ReconnectVenue(PX, "no health_check for 3s", ReconnectCause.HEALTH_CHECK_GAP)
    fired = engine.advance(T0 + 3)
    assert brief(fired) == [(T0 + 3, "firing", "VenueHealthCheckGap", "warning", {"venue": PX})]
    assert engine.take_actions() == [reconnect]
    # Re-armed every 3 s: +6 is within 5 s of the reconnect asked at +3 and merges into it; +9 is
    # 6 s after it and asks again; +12 merges into that one.
    expected = {6: [], 9: [reconnect], 12: [], 15: [reconnect]}
    for offset, actions in expected.items():
        assert engine.next_deadline() == T0 + offset
        assert engine.advance(T0 + offset) == []
        assert engine.take_actions() == actions
    assert engine.watchdogs.health_check.gaps_detected[PX] == 5


def test_one_sparse_advance_fires_every_rearmed_gap_due_by_then() -> None:
    engine = make_engine()
    up(engine, PX, T0)
    fired = engine.advance(T0 + 100)  # e.g. replay's final advance, or the next frame long after
    assert brief(fired) == [(T0 + 30, "firing", "VenueHealthCheckGap", "warning", {"venue": PX})]
    assert engine.watchdogs.health_check.gaps_detected[PX] == 3  # +30, +60, +90
    assert engine.take_actions() == [RECONNECT] * 3
    assert engine.next_deadline() == T0 + 120


def test_a_health_check_gap_and_an_activation_deadline_share_one_reconnect() -> None:
    engine = make_engine()
    up(engine, PX, T0)
    engine.ingest(PX, [intake("o1", placed_at=T0 + 22)], T0 + 22, is_frame=False)
    assert engine.advance(T0 + 32) == [
        AlertTransition(
            ts=T0 + 30,
            status="firing",
            alertname="VenueHealthCheckGap",
            severity="warning",
            labels=GAP_LABELS,
            annotations=engine.alerts.active()[0].annotations,
            fingerprint=fingerprint(GAP_LABELS),
            starts_at=T0 + 30,
            value=30.0,
        )
    ]
    # The order's deadline (+32) comes 2 s after the gap's reconnect: one reconnect serves both.
    assert engine.take_actions() == [RECONNECT, LookupOrder(PX, "o1")]


def test_feed_down_cancels_the_gap_clock_and_feed_up_restarts_it() -> None:
    engine = make_engine()
    up(engine, PX, T0)
    beat(engine, T0 + 5)
    engine.ingest(PX, [FeedDown(PX, "wss://px.invalid/", "pusher:error 4201")], T0 + 20, is_frame=False)
    # Only the feed watchdog speaks while the feed is down.
    assert brief(engine.advance(T0 + 1000)) == [(T0 + 35, "firing", "FeedDown", "warning", {"venue": PX})]
    assert engine.take_actions() == []
    assert engine.watchdogs.health_check.gaps_detected[PX] == 0

    assert brief(up(engine, PX, T0 + 1000)) == [(T0 + 1000, "resolved", "FeedDown", "warning", {"venue": PX})]
    assert engine.next_deadline() == T0 + 1030
    (fired,) = engine.advance(T0 + 1030)
    assert (fired.alertname, fired.ts) == ("VenueHealthCheckGap", T0 + 1030)
    assert engine.take_actions() == [RECONNECT]


def test_the_gap_is_critical_while_a_desk_has_exposure_on_the_venue() -> None:
    engine = make_engine()
    up(engine, PX, T0)
    engine.ingest(PX, [order("o1", OrderStatus.OPEN, worst_case_loss_usd=Decimal("110"))], T0 + 1)
    beat(engine, T0 + 5)
    labels = {**GAP_LABELS, "severity": "critical"}
    assert engine.advance(T0 + 35) == [
        AlertTransition(
            ts=T0 + 35,
            status="firing",
            alertname="VenueHealthCheckGap",
            severity="critical",
            labels=labels,
            annotations={
                "summary": "px: no health_check for 30s, reconnecting",
                "description": "The venue sends health_check every 5s; the last one arrived at "
                "2023-11-14 22:13:25.000Z. The private channel (orders, fills) may be dead. Reconnecting. "
                "Desks with exposure: alpha.",
            },
            fingerprint=fingerprint(labels),
            starts_at=T0 + 35,
            value=30.0,
        )
    ]
    # The exposure ends while it fires: the re-armed gap keeps the severity it fired with.
    engine.ingest(PX, [order("o1", OrderStatus.SETTLED, sequence=2)], T0 + 40)
    assert engine.watchdogs.ctx.exposed_desks(PX) == []
    assert engine.advance(T0 + 65) == []
    assert [(a.alertname, a.severity) for a in engine.alerts.active()] == [("VenueHealthCheckGap", "critical")]
    assert brief(beat(engine, T0 + 70)) == [(T0 + 70, "resolved", "VenueHealthCheckGap", "critical", {"venue": PX})]


def test_venues_without_health_check_never_get_a_gap() -> None:
    engine = make_engine()
    health = engine.watchdogs.health_check
    assert (health.tracks(PX), health.tracks(MANGO), health.tracks(TOT)) == (True, False, False)
    up(engine, MANGO, T0)
    up(engine, TOT, T0)
    assert beat(engine, T0 + 1, venue=MANGO) == []
    assert engine.next_deadline() is None
    assert engine.advance(T0 + 24 * 3600) == []
    assert engine.take_actions() == []
    assert health.last_health_check(MANGO) is None
    assert health.gaps_detected == {PX: 0}
    assert engine.stats[MANGO].heartbeats == 1  # counted, never judged


def test_the_gap_alert_state_is_written_to_and_read_from_a_real_state_file(tmp_path: Path) -> None:
    """Its value is the configured gap (a Duration, a float subclass): stored as a plain float."""
    engine = make_engine()
    engine.alerts.restore([])  # journal alert states, as the runtime does with a state file
    up(engine, PX, T0)
    (fired,) = engine.advance(T0 + 30)
    store = StateStore(tmp_path / "state.db")
    try:
        store.write(StateChanges(alerts=AlertStateChanges(engine.alerts.take_changes(), {})))
        (stored,) = store.load().alerts.alerts
    finally:
        store.close()
    assert (stored.fingerprint, stored.alertname, stored.value, stored.fired_at) == (
        fired.fingerprint,
        "VenueHealthCheckGap",
        30.0,
        T0 + 30,
    )
    assert type(stored.value) is float
