"""FeedWatchdog through the engine, on virtual time: quiet versus dead, the FeedDown grace, its
severity by exposure, the startup grace, and up / down / resyncing with the resync histogram."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import msgspec
import pytest

from riskmon.alerts.fingerprints import fingerprint
from riskmon.alerts.lifecycle import AlertTransition, StoredAlert
from riskmon.engine.engine import Engine
from riskmon.events import (
    Event,
    FeedDown,
    FeedUp,
    FillReceived,
    Liquidity,
    OrderStatus,
    PositionsReported,
    ReportedPosition,
    SequenceGap,
    Side,
    StreamResynced,
)
from riskmon.watchdogs.feeds import FeedState
from tests.watchdogs.conftest import MANGO, MANGO_ALPHA, MANGO_BETA, PX, T0, TOT, make_engine, order, quote


def up(engine: Engine, venue: str, now: float) -> list[AlertTransition]:
    return engine.ingest(venue, [FeedUp(venue, f"wss://{venue}.invalid/")], now, is_frame=False)


def down(engine: Engine, venue: str, now: float, reason: str = "connection closed (1006)") -> list[AlertTransition]:
    return engine.ingest(venue, [FeedDown(venue, f"wss://{venue}.invalid/", reason)], now, is_frame=False)


def mango_fill(key: str, qty: str, side: Side = Side.BUY, desk: str = "alpha") -> FillReceived:
    return FillReceived(
        venue=MANGO,
        desk=desk,
        account=MANGO_ALPHA if desk == "alpha" else MANGO_BETA,
        market="SOL-PERP",
        side=side,
        quantity=Decimal(qty),
        price=Decimal("90"),
        fill_key=key,
        stream="queue",
        sequence=int(key[1:]),
        liquidity=Liquidity.TAKER,
        fee_rate=Decimal(0),
        venue_ts=T0,
    )


def feed_down_alert(
    venue: str, severity: str, ts: float, since: str, description: str, value: float = 15.0
) -> AlertTransition:
    labels = {"venue": venue, "alertname": "FeedDown", "severity": severity}
    return AlertTransition(
        ts=ts,
        status="firing",
        alertname="FeedDown",
        severity=severity,
        labels=labels,
        annotations={"summary": f"{venue} feed down since {since}", "description": description},
        fingerprint=fingerprint(labels),
        starts_at=ts,
        value=value,
    )


# ---- quiet is not dead ----------------------------------------------------------------------------


def test_hours_of_silence_on_a_connected_mango_feed_raise_nothing() -> None:
    engine = make_engine()
    assert up(engine, MANGO, T0) == []
    assert engine.ingest(MANGO, [mango_fill("f1", "2")], T0 + 1) == []
    # Mango has no heartbeat: nothing is even armed, so nothing can fire however long it is quiet.
    assert engine.next_deadline() is None
    assert engine.advance(T0 + 6 * 3600) == []
    assert engine.watchdogs.feeds.state(MANGO) is FeedState.UP
    assert engine.take_actions() == []
    assert engine.alerts.active() == []


def test_a_feed_back_within_its_grace_raises_nothing() -> None:
    engine = make_engine()
    up(engine, MANGO, T0)
    assert down(engine, MANGO, T0 + 10) == []
    assert engine.watchdogs.feeds.state(MANGO) is FeedState.DOWN
    assert engine.next_deadline() == T0 + 25
    assert engine.advance(T0 + 24.999) == []
    assert up(engine, MANGO, T0 + 24.999) == []
    assert engine.watchdogs.feeds.state(MANGO) is FeedState.UP
    assert engine.next_deadline() is None  # the grace deadline is cancelled, not just ignored
    assert engine.advance(T0 + 3600) == []
    assert engine.alerts.active() == []


# ---- FeedDown past the grace ----------------------------------------------------------------------


def test_feed_down_past_its_grace_warns_at_exactly_down_plus_grace_and_feed_up_resolves_it() -> None:
    engine = make_engine()
    up(engine, MANGO, T0)
    down(engine, MANGO, T0 + 100)
    assert engine.advance(T0 + 114.999) == []
    fired = engine.advance(T0 + 500)  # a sparse clock: the transition carries its due time
    assert fired == [
        feed_down_alert(
            "mango",
            "warning",
            T0 + 115,
            "2023-11-14 22:15:00.000Z",
            "The mango feed has been down for 15s (last reason: connection closed (1006)). "
            "No desk holds exposure on it.",
        )
    ]
    assert engine.stats[MANGO].reconnects == 1
    assert engine.advance(T0 + 3600) == []  # fires once, stays firing

    (resolved,) = up(engine, MANGO, T0 + 3600)
    labels = {"venue": MANGO, "alertname": "FeedDown", "severity": "warning"}
    assert resolved == AlertTransition(
        ts=T0 + 3600,
        status="resolved",
        alertname="FeedDown",
        severity="warning",
        labels=labels,
        # Resolved as it fired, and how.
        annotations={**fired[0].annotations, "resolution": "connected again (down since 2023-11-14 22:15:00.000Z)"},
        fingerprint=fingerprint(labels),
        starts_at=T0 + 115,
        value=None,
    )
    assert engine.alerts.active() == []

    # A new outage gets a new grace, from its own first FeedDown.
    down(engine, MANGO, T0 + 4000, "ping timeout")
    (again,) = engine.advance(T0 + 4015)
    assert (again.status, again.ts, again.fingerprint) == ("firing", T0 + 4015, resolved.fingerprint)
    assert again.annotations["description"].startswith(
        "The mango feed has been down for 15s (last reason: ping timeout)"
    )


def test_a_feed_up_at_exactly_down_plus_grace_comes_after_the_alert() -> None:
    # A deadline due at `now` fires before the events received at `now` are applied.
    engine = make_engine()
    up(engine, MANGO, T0)
    down(engine, MANGO, T0 + 10)
    assert [(t.status, t.ts) for t in up(engine, MANGO, T0 + 25)] == [("firing", T0 + 25), ("resolved", T0 + 25)]
    assert engine.alerts.active() == []


def _position_on_mango() -> list[Event]:
    return [mango_fill("f1", "3")]


def _positions_of_two_desks_on_mango() -> list[Event]:
    position = (ReportedPosition("SOL-PERP", Decimal("-1.5")),)
    return [PositionsReported(MANGO, "beta", MANGO_BETA, position, complete=True), mango_fill("f1", "3")]


def _bet_risk_on_px() -> list[Event]:
    return [order("o1", OrderStatus.OPEN, worst_case_loss_usd=Decimal("110"))]


def _rfq_pending_on_tot() -> list[Event]:
    # Accepted, not yet confirmed: pending exposure (no deadline here, so no RFQ watchdog).
    return [quote("q1", worst_case_loss_usd=Decimal("250"))]


@pytest.mark.parametrize(
    ("venue", "desk", "exposure"),
    [
        (MANGO, "alpha", _position_on_mango),
        (MANGO, "alpha, beta", _positions_of_two_desks_on_mango),
        (PX, "alpha", _bet_risk_on_px),
        (TOT, "alpha", _rfq_pending_on_tot),
    ],
    ids=["fill", "positions-reported", "bet-risk", "rfq-pending"],
)
def test_feed_down_is_critical_when_a_desk_has_exposure_on_the_venue(
    venue: str, desk: str, exposure: Callable[[], list[Event]]
) -> None:
    engine = make_engine()
    up(engine, venue, T0)
    engine.ingest(venue, exposure(), T0 + 1)
    assert engine.watchdogs.ctx.exposed_desks(venue) == desk.split(", ")
    down(engine, venue, T0 + 100)
    fired = engine.advance(T0 + 115)
    assert fired == [
        feed_down_alert(
            venue,
            "critical",
            T0 + 115,
            "2023-11-14 22:15:00.000Z",
            f"The {venue} feed has been down for 15s (last reason: connection closed (1006)). "
            f"Desks with exposure on it, now unobserved: {desk}.",
        )
    ]
    (resolved,) = up(engine, venue, T0 + 200)
    assert (resolved.status, resolved.severity, resolved.starts_at) == ("resolved", "critical", T0 + 115)


def test_a_position_closed_flat_is_no_exposure() -> None:
    engine = make_engine()
    up(engine, MANGO, T0)
    engine.ingest(MANGO, [mango_fill("f1", "3"), mango_fill("f2", "3", Side.SELL)], T0 + 1)
    down(engine, MANGO, T0 + 10)
    (fired,) = engine.advance(T0 + 25)
    assert fired.severity == "warning"


def test_exposure_on_another_venue_does_not_make_a_feed_down_critical() -> None:
    engine = make_engine()
    up(engine, PX, T0)
    engine.ingest(MANGO, [mango_fill("f1", "3")], T0 + 1)
    down(engine, PX, T0 + 10)
    (fired,) = engine.advance(T0 + 25)
    assert (fired.labels["venue"], fired.severity) == (PX, "warning")


def test_repeated_feed_down_reports_do_not_restart_the_grace() -> None:
    engine = make_engine()
    up(engine, MANGO, T0)
    down(engine, MANGO, T0 + 10, "connection closed (1006)")
    down(engine, MANGO, T0 + 12, "connect refused")  # each failed retry reports again
    assert engine.next_deadline() == T0 + 25
    down(engine, MANGO, T0 + 20, "open timeout")
    assert engine.advance(T0 + 24.999) == []
    assert engine.advance(T0 + 40) == [
        feed_down_alert(
            "mango",
            "warning",
            T0 + 25,
            "2023-11-14 22:13:30.000Z",
            "The mango feed has been down for 15s (last reason: open timeout). No desk holds exposure on it.",
        )
    ]
    # Still down, still reporting: no second alert, no new deadline.
    assert down(engine, MANGO, T0 + 50, "connect refused") == []
    assert engine.next_deadline() is None
    assert engine.advance(T0 + 3600) == []
    assert engine.stats[MANGO].reconnects == 1


def test_a_per_venue_grace_is_honoured() -> None:
    engine = make_engine(px={"feed_down_grace": "40s"})
    up(engine, PX, T0)
    down(engine, PX, T0 + 1)
    assert engine.advance(T0 + 40.999) == []
    (fired,) = engine.advance(T0 + 41)
    assert (fired.alertname, fired.ts, fired.value) == ("FeedDown", T0 + 41, 40.0)
    assert fired.annotations["description"].startswith("The px feed has been down for 40s")


# ---- startup ----------------------------------------------------------------------------------------


def test_start_reports_every_venue_that_never_connects_after_its_grace() -> None:
    engine = make_engine(px={"feed_down_grace": "40s"})
    engine.start(T0)
    assert engine.next_deadline() == T0 + 15
    up(engine, MANGO, T0 + 5)  # connects in time: never reported
    fired = engine.advance(T0 + 100)
    assert fired == [
        feed_down_alert(
            "tot",
            "warning",
            T0 + 15,
            "2023-11-14 22:13:20.000Z",
            "The tot feed has been down for 15s (last reason: not connected yet). No desk holds exposure on it.",
        ),
        feed_down_alert(
            "px",
            "warning",
            T0 + 40,
            "2023-11-14 22:13:20.000Z",
            "The px feed has been down for 40s (last reason: not connected yet). No desk holds exposure on it.",
            value=40.0,
        ),
    ]
    assert engine.watchdogs.feeds.states() == {PX: FeedState.DOWN, TOT: FeedState.DOWN, MANGO: FeedState.UP}
    (resolved,) = up(engine, TOT, T0 + 120)
    assert resolved.annotations == {  # resolved as it fired, and how
        **fired[0].annotations,
        "resolution": "connected again (down since 2023-11-14 22:13:20.000Z)",
    }


def test_connection_failures_after_start_keep_the_startup_grace() -> None:
    engine = make_engine()
    engine.start(T0)
    up(engine, PX, T0)
    up(engine, MANGO, T0)
    down(engine, TOT, T0 + 10, "login refused")
    (fired,) = engine.advance(T0 + 15)
    assert fired == feed_down_alert(
        "tot",
        "warning",
        T0 + 15,
        "2023-11-14 22:13:20.000Z",
        "The tot feed has been down for 15s (last reason: login refused). No desk holds exposure on it.",
    )
    assert engine.stats[TOT].reconnects == 0  # it was never up


def test_without_start_a_venue_that_never_connects_is_not_reported() -> None:
    # Replay does not call start(): only the session's own FeedDown can start a grace there.
    engine = make_engine()
    assert engine.next_deadline() is None
    assert engine.advance(T0 + 3600) == []
    assert engine.watchdogs.feeds.state(PX) is FeedState.DOWN


# ---- up / down / resyncing ------------------------------------------------------------------------


def test_a_sequence_gap_puts_the_feed_into_resyncing_until_the_fresh_snapshot() -> None:
    engine = make_engine()
    feeds = engine.watchdogs.feeds
    assert feeds.state(MANGO) is FeedState.DOWN  # before any connection
    up(engine, MANGO, T0)
    assert feeds.state(MANGO) is FeedState.UP
    (gap_alert,) = engine.ingest(MANGO, [SequenceGap(MANGO, "SOL-PERP", expected=7, received=10)], T0 + 1)
    assert (gap_alert.alertname, gap_alert.labels["stream"], gap_alert.value) == ("SequenceGap", "SOL-PERP", 3.0)
    assert feeds.state(MANGO) is FeedState.RESYNCING
    # A second gap on another stream, and a repeat on the first (which keeps its first time).
    engine.ingest(MANGO, [SequenceGap(MANGO, "BTC-PERP", expected=1, received=4)], T0 + 2)
    engine.ingest(MANGO, [SequenceGap(MANGO, "SOL-PERP", expected=12, received=15)], T0 + 2.5)
    assert engine.ingest(MANGO, [StreamResynced(MANGO, "SOL-PERP")], T0 + 3.5, is_frame=False) == []
    assert feeds.state(MANGO) is FeedState.RESYNCING  # BTC-PERP still resyncing
    engine.ingest(MANGO, [StreamResynced(MANGO, "BTC-PERP")], T0 + 4.25, is_frame=False)
    assert feeds.state(MANGO) is FeedState.UP

    histogram = feeds.resync_seconds[MANGO]
    assert (histogram.count, histogram.sum) == (2, 2.5 + 2.25)
    cumulative = dict(histogram.cumulative())
    assert (cumulative["1.0"], cumulative["2.5"], cumulative["5.0"], cumulative["+Inf"]) == (0, 2, 2, 2)

    # A resync of a stream that had no gap records nothing and changes nothing.
    engine.ingest(MANGO, [StreamResynced(MANGO, "ETH-PERP")], T0 + 10, is_frame=False)
    assert (histogram.count, feeds.state(MANGO)) == (2, FeedState.UP)
    assert feeds.resync_seconds[PX].count == 0
    assert engine.stats[MANGO].sequence_gaps == 3
    # Nothing else happens: only the SequenceGap event alerts resolve by themselves
    # (alerts.event_resolve_after, 300s); the SOL-PERP repeat refreshed its alert, not re-fired it.
    assert [(t.status, t.labels["stream"], t.ts, t.starts_at) for t in engine.advance(T0 + 3600)] == [
        ("resolved", "BTC-PERP", T0 + 302, T0 + 2),
        ("resolved", "SOL-PERP", T0 + 302.5, T0 + 1),
    ]


def test_a_gap_seen_while_down_leaves_the_feed_resyncing_after_it_reconnects() -> None:
    engine = make_engine()
    feeds = engine.watchdogs.feeds
    up(engine, MANGO, T0)
    down(engine, MANGO, T0 + 1)
    engine.ingest(MANGO, [SequenceGap(MANGO, "SOL-PERP", expected=7, received=9)], T0 + 2)
    assert feeds.state(MANGO) is FeedState.DOWN  # down outranks resyncing
    assert up(engine, MANGO, T0 + 5) == []
    assert feeds.state(MANGO) is FeedState.RESYNCING
    engine.ingest(MANGO, [StreamResynced(MANGO, "SOL-PERP")], T0 + 7, is_frame=False)
    assert feeds.state(MANGO) is FeedState.UP
    assert (feeds.resync_seconds[MANGO].count, feeds.resync_seconds[MANGO].sum) == (1, 5.0)


def test_a_feed_lost_while_resyncing_is_down_and_comes_back_resyncing() -> None:
    engine = make_engine()
    feeds = engine.watchdogs.feeds
    up(engine, MANGO, T0)
    engine.ingest(MANGO, [SequenceGap(MANGO, "SOL-PERP", expected=7, received=9)], T0 + 1)
    down(engine, MANGO, T0 + 2)
    assert feeds.state(MANGO) is FeedState.DOWN
    (fired,) = engine.advance(T0 + 17)
    assert (fired.alertname, fired.ts) == ("FeedDown", T0 + 17)
    (resolved,) = up(engine, MANGO, T0 + 20)
    assert resolved.status == "resolved"
    assert feeds.state(MANGO) is FeedState.RESYNCING
    engine.ingest(MANGO, [StreamResynced(MANGO, "SOL-PERP")], T0 + 21, is_frame=False)
    assert feeds.state(MANGO) is FeedState.UP
    assert feeds.resync_seconds[MANGO].sum == 20.0


# ---- across a restart -----------------------------------------------------------------------------


def mango_feed_down_before_restart() -> StoredAlert:
    """Mango never connected: its FeedDown fired at the end of the startup grace, and the state file kept it."""
    before = make_engine()
    before.alerts.restore([])
    before.start(T0)
    [fired] = [t for t in before.advance(T0 + 60) if t.labels["venue"] == MANGO]
    assert (fired.alertname, fired.severity, fired.starts_at) == ("FeedDown", "warning", T0 + 15)
    stored = before.alerts.stored(fired.fingerprint)
    assert stored is not None
    return stored


def restarted_with(stored: StoredAlert) -> Engine:
    engine = make_engine()
    engine.alerts.restore([stored])
    engine.start(T0 + 100)
    return engine


def mango_alerts(engine: Engine) -> list[str]:
    return [a.severity for a in engine.alerts.active() if a.labels["venue"] == MANGO]


def test_a_feed_down_restored_firing_resolves_when_its_feed_comes_up_within_the_startup_grace() -> None:
    stored = mango_feed_down_before_restart()
    engine = restarted_with(stored)
    [resolved] = up(engine, MANGO, T0 + 101)
    assert (resolved.status, resolved.fingerprint, resolved.starts_at) == ("resolved", stored.fingerprint, T0 + 15)
    assert resolved.annotations["resolution"].startswith("connected again")
    assert mango_alerts(engine) == []


def test_a_restored_feed_down_of_another_severity_is_superseded_when_the_feed_stays_down() -> None:
    stored = mango_feed_down_before_restart()
    # As if a desk had held exposure on Mango when it fired: critical.
    labels = {**stored.labels, "severity": "critical"}
    engine = restarted_with(
        msgspec.structs.replace(stored, severity="critical", labels=labels, fingerprint=fingerprint(labels))
    )
    out = [t for t in engine.advance(T0 + 115) if t.labels["venue"] == MANGO]  # the startup grace: no exposure now
    assert [(t.status, t.severity) for t in out] == [("resolved", "critical"), ("firing", "warning")]
    assert out[0].annotations["resolution"] == "superseded by a warning FeedDown"
    [resolved] = up(engine, MANGO, T0 + 120)
    assert (resolved.status, resolved.severity) == ("resolved", "warning")
    assert mango_alerts(engine) == []
