"""The ProphetX activation watchdog on virtual time: arming (intake or a pending sighting), an
activation or rejection in time, the deadline's reconnect + REST lookup, and every way the
venue's answer (or its silence) decides the OrderActivationTimeout outcome."""

from __future__ import annotations

import logging
from typing import Literal

import msgspec
import pytest

from riskmon.alerts.fingerprints import fingerprint
from riskmon.alerts.lifecycle import AlertTransition
from riskmon.engine.actions import LookupOrder, ReconnectCause, ReconnectVenue
from riskmon.engine.engine import Engine
from riskmon.events import OrderLookupFailed, OrderStatus, OrderUpdate
from riskmon.watchdogs.context import at
from riskmon.watchdogs.journal import PersistedDeadline
from tests.watchdogs.conftest import MANGO, PX, PX_MARKET, T0, TOT, brief, intake, make_engine, order

TIMEOUT = 10.0
LOOKUP_WAIT = 21.0  # 2 * rest_timeout (10 s) + 1 s
RESOLVE_AFTER = 60.0
ALERT = "OrderActivationTimeout"
PLACED = at(T0)  # "2023-11-14 22:13:20.000Z"


def new_engine() -> Engine:
    return make_engine(alerts={"event_resolve_after": "60s"})


def declare(engine: Engine, order_id: str, now: float, placed_at: float | None = None) -> list[AlertTransition]:
    return engine.ingest(PX, [intake(order_id, placed_at)], now, is_frame=False)


def answer(engine: Engine, update: OrderUpdate, now: float) -> list[AlertTransition]:
    """The REST get_order answer the watchdog asked for."""
    return engine.ingest(PX, [update], now, source="get_order")


def lookup_failed(engine: Engine, order_id: str, now: float, reason: str, status: int | None) -> list[AlertTransition]:
    return engine.ingest(PX, [OrderLookupFailed(PX, order_id, reason, status)], now, is_frame=False)


def timed_out(order_id: str = "o1") -> Engine:
    """An order declared at T0 that nobody activated: its deadline has passed and the lookup is out."""
    engine = new_engine()
    declare(engine, order_id, T0, placed_at=T0)
    assert engine.advance(T0 + TIMEOUT) == []
    assert engine.take_actions() == [
        ReconnectVenue(PX, f"order {order_id} not activated within 10s", ReconnectCause.ACTIVATION_TIMEOUT),
        LookupOrder(PX, order_id),
    ]
    engine.take_journal()
    return engine


def timeout_alert(
    ts: float,
    outcome: str,
    why: str,
    *,
    order_id: str = "o1",
    status: Literal["firing", "resolved"] = "firing",
    starts_at: float | None = None,
    market: str | None = PX_MARKET,
    placed_at: float = T0,
    extra: dict[str, str] | None = None,
) -> AlertTransition:
    severity = "warning" if outcome in ("activated_late", "invalid") else "critical"
    labels = {
        "desk": "alpha",
        "venue": PX,
        "order_id": order_id,
        "outcome": outcome,
        "alertname": ALERT,
        "severity": severity,
    }
    on = f" on {market}" if market else ""
    annotations = {
        "summary": f"px order {order_id}: no activation within 10s ({outcome})",
        "description": f"Order {order_id} of desk alpha{on}, placed at {at(placed_at)}, "
        f"was not activated within 10s: {why}.",
        "order_id": order_id,
        "outcome": outcome,
        "placed_at": at(placed_at),
        **(extra or {}),
    }
    return AlertTransition(
        ts=ts,
        status=status,
        alertname=ALERT,
        severity=severity,
        labels=labels,
        annotations=annotations,
        fingerprint=fingerprint(labels),
        starts_at=ts if starts_at is None else starts_at,
    )


def resolved_critical(
    ts: float, outcome: str, why: str, venue_word: str, starts_at: float, market: str | None = None
) -> AlertTransition:
    """A critical verdict answered at last: resolved with the annotations it fired with, and a
    `resolution` saying what the venue now reports."""
    return timeout_alert(
        ts,
        outcome,
        f"{why}; its state at the venue is unknown",
        status="resolved",
        starts_at=starts_at,
        market=market,
        extra={"resolution": f"the venue now reports {venue_word}"},
    )


def but_description(transitions: list[AlertTransition]) -> list[AlertTransition]:
    """The transitions with the description annotation left out (compared on its own)."""
    return [
        msgspec.structs.replace(t, annotations={k: v for k, v in t.annotations.items() if k != "description"})
        for t in transitions
    ]


# ---- arming ------------------------------------------------------------------------------------


def test_an_intake_arms_the_deadline_and_journals_it() -> None:
    engine = new_engine()
    assert declare(engine, "o1", T0 + 0.5, placed_at=T0) == []
    watchdog = engine.watchdogs.activation
    assert (len(watchdog), watchdog.pending(PX)) == (1, 1)
    assert engine.next_deadline() == T0 + TIMEOUT  # from placed_at, not from the intake's receipt
    assert engine.take_journal() == {
        ("activation", PX, "o1"): PersistedDeadline(
            "activation", PX, "o1", T0 + TIMEOUT, {"desk": "alpha", "placed_at": repr(T0)}
        )
    }
    assert engine.take_actions() == []
    # Without placed_at the intake's receipt time is the placement time; an explicit desk is kept.
    engine.ingest(PX, [intake("o2", desk="beta")], T0 + 2, is_frame=False)
    assert engine.take_journal() == {
        ("activation", PX, "o2"): PersistedDeadline(
            "activation", PX, "o2", T0 + 2 + TIMEOUT, {"desk": "beta", "placed_at": repr(T0 + 2)}
        )
    }
    assert engine.advance(T0 + 9.999) == []
    assert engine.take_actions() == []


def test_an_activation_in_time_records_latency_cancels_the_deadline_and_drops_the_journal_row() -> None:
    engine = new_engine()
    declare(engine, "o1", T0, placed_at=T0)
    declare(engine, "o2", T0 + 3, placed_at=T0 + 3)
    engine.take_journal()
    assert engine.next_deadline() == T0 + TIMEOUT

    assert engine.ingest(PX, [order("o1", OrderStatus.PENDING, sequence=1)], T0 + 0.125) == []
    assert engine.ingest(PX, [order("o1", OrderStatus.OPEN, sequence=2)], T0 + 0.25) == []
    assert engine.next_deadline() == T0 + 3 + TIMEOUT  # o1's deadline is gone, o2's is next
    assert engine.take_journal() == {("activation", PX, "o1"): None}
    watchdog = engine.watchdogs.activation
    latency = watchdog.latency[PX]
    assert (latency.count, latency.sum) == (1, 0.25)
    assert dict(latency.cumulative())["0.1"] == 0
    assert dict(latency.cumulative())["0.25"] == 1  # le=0.25 holds exactly 0.25
    assert dict(latency.cumulative())["+Inf"] == 1
    assert (len(watchdog), watchdog.pending(PX)) == (1, 1)

    # o1's deadline passes unnoticed; o2's still fires.
    assert engine.advance(T0 + 12) == []
    assert engine.take_actions() == []
    assert engine.advance(T0 + 13) == []
    assert engine.take_actions() == [
        ReconnectVenue(PX, "order o2 not activated within 10s", ReconnectCause.ACTIVATION_TIMEOUT),
        LookupOrder(PX, "o2"),
    ]
    assert watchdog.outcomes == {}


def test_a_rejection_in_time_is_the_engines_activation_failed_not_a_timeout() -> None:
    engine = new_engine()
    declare(engine, "o1", T0, placed_at=T0)
    engine.take_journal()
    (failed,) = engine.ingest(PX, [order("o1", OrderStatus.REJECTED, reason="odds_changed")], T0 + 1)
    labels = {
        "desk": "alpha",
        "venue": PX,
        "market": PX_MARKET,
        "order_id": "o1",
        "alertname": "OrderActivationFailed",
        "severity": "warning",
    }
    assert failed == AlertTransition(
        ts=T0 + 1,
        status="firing",
        alertname="OrderActivationFailed",
        severity="warning",
        labels=labels,
        annotations={
            "summary": "px rejected order o1: odds_changed",
            "description": f"Order o1 of desk alpha on {PX_MARKET} failed to activate (invalid): odds_changed.",
            "order_id": "o1",
            "reason": "odds_changed",
        },
        fingerprint=fingerprint(labels),
        starts_at=T0 + 1,
        value=1.0,
    )
    latency = engine.watchdogs.activation.latency[PX]
    assert (latency.count, latency.sum) == (1, 1.0)
    assert engine.take_journal() == {("activation", PX, "o1"): None}
    assert len(engine.watchdogs.activation) == 0
    # No timeout later: only the event alert resolving by itself.
    assert brief(engine.advance(T0 + 1 + RESOLVE_AFTER)) == [
        (
            T0 + 61,
            "resolved",
            "OrderActivationFailed",
            "warning",
            {"desk": "alpha", "venue": PX, "market": PX_MARKET, "order_id": "o1"},
        )
    ]
    assert engine.take_actions() == []
    assert engine.watchdogs.activation.outcomes == {}


def test_a_pending_order_first_seen_on_the_stream_arms_the_same_watchdog() -> None:
    engine = new_engine()
    assert engine.ingest(PX, [order("o1", OrderStatus.PENDING, sequence=1)], T0) == []
    assert engine.next_deadline() == T0 + TIMEOUT
    assert engine.take_journal() == {
        ("activation", PX, "o1"): PersistedDeadline(
            "activation", PX, "o1", T0 + TIMEOUT, {"desk": "alpha", "placed_at": repr(T0), "market": PX_MARKET}
        )
    }
    # A second pending update and a later intake of the same order: still one watchdog.
    assert engine.ingest(PX, [order("o1", OrderStatus.PENDING, sequence=2)], T0 + 1) == []
    assert declare(engine, "o1", T0 + 2, placed_at=T0 + 2) == []
    assert len(engine.watchdogs.activation) == 1
    assert engine.next_deadline() == T0 + TIMEOUT
    assert engine.take_journal() == {}
    assert engine.advance(T0 + TIMEOUT) == []
    assert engine.take_actions() == [
        ReconnectVenue(PX, "order o1 not activated within 10s", ReconnectCause.ACTIVATION_TIMEOUT),
        LookupOrder(PX, "o1"),
    ]
    # Lookup 404: the critical alert names the market the stream gave.
    (critical,) = lookup_failed(engine, "o1", T0 + 11, "HTTP 404: wager_not_found", 404)
    assert critical == timeout_alert(
        T0 + 11, "unknown", "the venue does not know the order; its state at the venue is unknown"
    )


def test_a_duplicate_intake_keeps_one_watchdog() -> None:
    engine = new_engine()
    declare(engine, "o1", T0, placed_at=T0)
    engine.take_journal()
    declare(engine, "o1", T0 + 5)  # re-sent without placed_at
    declare(engine, "o1", T0 + 6, placed_at=T0 + 6)
    assert (len(engine.watchdogs.activation), engine.next_deadline(), engine.take_journal()) == (1, T0 + TIMEOUT, {})
    engine.advance(T0 + 30)
    assert engine.take_actions() == [
        ReconnectVenue(PX, "order o1 not activated within 10s", ReconnectCause.ACTIVATION_TIMEOUT),
        LookupOrder(PX, "o1"),
    ]


def test_an_intake_after_the_stream_showed_the_order_open_arms_nothing() -> None:
    engine = new_engine()
    engine.ingest(PX, [order("o1", OrderStatus.OPEN, sequence=2)], T0 + 0.1)
    engine.ingest(PX, [order("o2", OrderStatus.REJECTED, reason="odds_changed")], T0 + 0.1)
    engine.take_journal()
    assert declare(engine, "o1", T0 + 0.2, placed_at=T0) == []
    assert declare(engine, "o2", T0 + 0.2, placed_at=T0) == []
    assert len(engine.watchdogs.activation) == 0
    assert engine.take_journal() == {}
    assert engine.next_deadline() == T0 + 0.1 + RESOLVE_AFTER  # only OrderActivationFailed's expiry


def test_an_intake_placed_longer_ago_than_the_timeout_is_checked_at_once() -> None:
    engine = new_engine()
    declare(engine, "o1", T0 + 30, placed_at=T0)
    assert engine.next_deadline() == T0 + 30
    # The journal keeps the real deadline; the check happens now.
    assert engine.take_journal() == {
        ("activation", PX, "o1"): PersistedDeadline(
            "activation", PX, "o1", T0 + TIMEOUT, {"desk": "alpha", "placed_at": repr(T0)}
        )
    }
    assert engine.advance(T0 + 30) == []
    assert engine.take_actions() == [
        ReconnectVenue(PX, "order o1 not activated within 10s", ReconnectCause.ACTIVATION_TIMEOUT),
        LookupOrder(PX, "o1"),
    ]
    assert engine.next_deadline() == T0 + 30 + LOOKUP_WAIT
    (critical,) = engine.advance(T0 + 60)
    assert critical == timeout_alert(
        T0 + 51, "lookup_failed", "no REST answer within 21s; its state at the venue is unknown", market=None
    )


def test_two_orders_timing_out_together_share_one_reconnect() -> None:
    engine = new_engine()
    declare(engine, "o1", T0, placed_at=T0)
    declare(engine, "o2", T0, placed_at=T0)
    declare(engine, "o3", T0, placed_at=T0 + 4.5)  # due within 5 s of the reconnect: coalesced
    declare(engine, "o4", T0, placed_at=T0 + 5)  # due 5 s later: a new reconnect
    assert engine.advance(T0 + 10) == []
    assert engine.take_actions() == [
        ReconnectVenue(PX, "order o1 not activated within 10s", ReconnectCause.ACTIVATION_TIMEOUT),
        LookupOrder(PX, "o1"),
        LookupOrder(PX, "o2"),
    ]
    engine.advance(T0 + 14.5)
    assert engine.take_actions() == [LookupOrder(PX, "o3")]
    engine.advance(T0 + 15)
    assert engine.take_actions() == [
        ReconnectVenue(PX, "order o4 not activated within 10s", ReconnectCause.ACTIVATION_TIMEOUT),
        LookupOrder(PX, "o4"),
    ]


@pytest.mark.parametrize("venue", [TOT, MANGO, "nowhere"])
def test_an_intake_for_a_venue_without_activation_tracking_is_dropped(
    venue: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = new_engine()
    with caplog.at_level(logging.WARNING, logger="riskmon.watchdogs.activation"):
        assert engine.ingest(venue, [intake("o1", T0, venue=venue)], T0, is_frame=False) == []
    assert [r.getMessage() for r in caplog.records] == [
        f"{venue}: order intake for a venue without activation tracking dropped"
    ]
    assert (len(engine.watchdogs.activation), engine.next_deadline(), engine.take_journal()) == (0, None, {})
    engine.advance(T0 + 100)
    assert engine.take_actions() == []


# ---- the deadline and the venue's answer -------------------------------------------------------


def test_no_activation_asks_for_reconnect_and_lookup_at_exactly_the_deadline_without_alerting() -> None:
    engine = new_engine()
    declare(engine, "o1", T0, placed_at=T0)
    assert engine.advance(T0 + 9.999999) == []
    assert engine.take_actions() == []
    # Time jumps past the deadline: everything happens at the deadline, no alert yet.
    assert engine.advance(T0 + 10) == []
    assert engine.take_actions() == [
        ReconnectVenue(PX, "order o1 not activated within 10s", ReconnectCause.ACTIVATION_TIMEOUT),
        LookupOrder(PX, "o1"),
    ]
    assert engine.next_deadline() == T0 + TIMEOUT + LOOKUP_WAIT
    assert engine.alerts.active() == []
    assert engine.watchdogs.activation.pending(PX) == 1  # still watched: waiting for the answer


def test_a_lookup_answering_open_fires_a_late_warning_that_resolves_by_itself() -> None:
    engine = timed_out()
    (late,) = answer(engine, order("o1", OrderStatus.OPEN, sequence=2), T0 + 10.5)
    assert late == timeout_alert(
        T0 + 10.5, "activated_late", "the activation message was lost; the REST lookup reports it open"
    )
    watchdog = engine.watchdogs.activation
    assert watchdog.outcomes == {(PX, "activated_late"): 1}
    assert (watchdog.latency[PX].count, watchdog.latency[PX].sum) == (1, 10.5)
    assert engine.take_journal() == {("activation", PX, "o1"): None}
    assert len(watchdog) == 0
    assert engine.next_deadline() == T0 + 10.5 + RESOLVE_AFTER  # the lookup deadline is gone
    assert engine.advance(T0 + 70.4) == []
    (resolved,) = engine.advance(T0 + 100)
    assert resolved == timeout_alert(
        T0 + 70.5,
        "activated_late",
        "the activation message was lost; the REST lookup reports it open",
        status="resolved",
        starts_at=T0 + 10.5,
    )
    assert engine.take_actions() == []


def test_a_lookup_answering_rejected_is_the_invalid_outcome_with_the_reason_and_nothing_else() -> None:
    engine = timed_out()
    transitions = answer(engine, order("o1", OrderStatus.REJECTED, sequence=2, reason="insufficient_funds"), T0 + 11)
    assert transitions == [
        timeout_alert(
            T0 + 11,
            "invalid",
            "activation failed: insufficient_funds",
            extra={"reason": "insufficient_funds"},
        )
    ]  # no separate OrderActivationFailed
    assert engine.watchdogs.activation.outcomes == {(PX, "invalid"): 1}
    assert [a.alertname for a in engine.alerts.active()] == [ALERT]


def test_a_lookup_answering_invalid_without_a_reason_names_the_venue_word() -> None:
    engine = timed_out()
    (alert,) = answer(engine, order("o1", OrderStatus.REJECTED, sequence=2), T0 + 11)
    assert alert == timeout_alert(T0 + 11, "invalid", "activation failed: invalid")


def test_a_lookup_answering_still_pending_is_critical_unknown_until_the_venue_decides() -> None:
    engine = timed_out()
    (critical,) = answer(engine, order("o1", OrderStatus.PENDING, sequence=2), T0 + 11)
    assert critical == timeout_alert(
        T0 + 11, "unknown", "the venue still reports it pending; its state at the venue is unknown"
    )
    assert engine.watchdogs.activation.outcomes == {(PX, "unknown"): 1}
    assert engine.take_journal() == {("activation", PX, "o1"): None}
    # A critical stays: no lookup deadline, no expiry.
    assert engine.next_deadline() is None
    assert engine.advance(T0 + 10_000) == []
    assert [(a.alertname, a.severity, a.state) for a in engine.alerts.active()] == [(ALERT, "critical", "firing")]


def test_a_stale_lookup_answer_is_still_judged_on_the_order_as_it_stands() -> None:
    engine = new_engine()
    declare(engine, "o1", T0, placed_at=T0)
    engine.ingest(PX, [order("o1", OrderStatus.PENDING, sequence=5)], T0 + 0.1)
    engine.advance(T0 + TIMEOUT)
    engine.take_actions()
    # The REST answer carries the sequence already held: stale for the order book, but it is the
    # answer the watchdog waits for.
    (critical,) = answer(engine, order("o1", OrderStatus.PENDING, sequence=5), T0 + 11)
    assert engine.stats[PX].stale_updates == 1
    assert critical == timeout_alert(
        T0 + 11, "unknown", "the venue still reports it pending; its state at the venue is unknown"
    )


def test_lookup_404_is_critical_unknown() -> None:
    engine = timed_out()
    assert lookup_failed(engine, "o1", T0 + 11, "HTTP 404: wager_not_found", 404) == [
        timeout_alert(
            T0 + 11, "unknown", "the venue does not know the order; its state at the venue is unknown", market=None
        )
    ]
    assert engine.watchdogs.activation.outcomes == {(PX, "unknown"): 1}
    assert engine.next_deadline() is None  # the lookup deadline is cancelled
    assert engine.take_journal() == {("activation", PX, "o1"): None}


def test_lookup_503_is_critical_lookup_failed() -> None:
    engine = timed_out()
    assert lookup_failed(engine, "o1", T0 + 11, "HTTP 503", 503) == [
        timeout_alert(
            T0 + 11, "lookup_failed", "the REST lookup failed: HTTP 503; its state at the venue is unknown", market=None
        )
    ]
    assert engine.watchdogs.activation.outcomes == {(PX, "lookup_failed"): 1}
    assert engine.advance(T0 + 100) == []  # no second verdict at the lookup deadline


def test_a_lookup_failure_for_an_order_not_being_checked_is_ignored() -> None:
    engine = new_engine()
    declare(engine, "o1", T0, placed_at=T0)
    assert lookup_failed(engine, "o1", T0 + 1, "HTTP 503", 503) == []
    assert lookup_failed(engine, "o9", T0 + 1, "HTTP 404", 404) == []
    assert engine.next_deadline() == T0 + TIMEOUT
    assert engine.watchdogs.activation.outcomes == {}


def test_no_answer_at_all_is_critical_lookup_failed_at_the_lookup_deadline() -> None:
    engine = timed_out()
    assert engine.advance(T0 + 30.999) == []
    # The next event arrives long after: the verdict is stamped with the lookup deadline.
    assert engine.ingest(PX, [], T0 + 45) == [
        timeout_alert(
            T0 + TIMEOUT + LOOKUP_WAIT,
            "lookup_failed",
            "no REST answer within 21s; its state at the venue is unknown",
            market=None,
        )
    ]
    assert engine.watchdogs.activation.outcomes == {(PX, "lookup_failed"): 1}
    assert engine.take_actions() == []  # no second reconnect or lookup
    # An answer that comes in the end resolves the critical (as it fired) and tells what happened.
    transitions = answer(engine, order("o1", OrderStatus.OPEN, sequence=2), T0 + 50)
    assert but_description(transitions) == but_description(
        [
            resolved_critical(T0 + 50, "lookup_failed", "no REST answer within 21s", "open", starts_at=T0 + 31),
            timeout_alert(
                T0 + 50, "activated_late", "the activation message was lost; the REST lookup reports it open"
            ),
        ]
    )
    assert (
        transitions[1]
        .annotations["description"]
        .endswith("was not activated within 10s: the activation message was lost; the REST lookup reports it open.")
    )
    assert engine.watchdogs.activation.outcomes == {(PX, "lookup_failed"): 1, (PX, "activated_late"): 1}


def test_a_critical_then_a_stream_activation_resolves_it_and_fires_the_late_warning() -> None:
    engine = timed_out()
    lookup_failed(engine, "o1", T0 + 11, "HTTP 404: wager_not_found", 404)
    transitions = engine.ingest(PX, [order("o1", OrderStatus.OPEN, sequence=3)], T0 + 40)
    assert but_description(transitions) == but_description(
        [
            resolved_critical(T0 + 40, "unknown", "the venue does not know the order", "open", starts_at=T0 + 11),
            timeout_alert(
                T0 + 40, "activated_late", "the activation message was lost; a late stream update reports it open"
            ),
        ]
    )
    assert (
        transitions[1]
        .annotations["description"]
        .endswith(
            "was not activated within 10s: the activation message was lost; a late stream update reports it open."
        )
    )
    assert engine.watchdogs.activation.outcomes == {(PX, "unknown"): 1, (PX, "activated_late"): 1}
    assert [(a.alertname, a.labels["outcome"]) for a in engine.alerts.active()] == [(ALERT, "activated_late")]
    # Told once: a later update of the order is no news.
    assert engine.ingest(PX, [order("o1", OrderStatus.CANCELED, sequence=4)], T0 + 41) == []


def test_a_critical_then_a_stream_rejection_is_invalid_without_activation_failed() -> None:
    engine = timed_out()
    answer(engine, order("o1", OrderStatus.PENDING, sequence=2), T0 + 11)
    transitions = engine.ingest(PX, [order("o1", OrderStatus.REJECTED, sequence=3, reason="market_closed")], T0 + 40)
    assert transitions == [
        resolved_critical(
            T0 + 40, "unknown", "the venue still reports it pending", "invalid", starts_at=T0 + 11, market=PX_MARKET
        ),
        timeout_alert(T0 + 40, "invalid", "activation failed: market_closed", extra={"reason": "market_closed"}),
    ]


def test_a_late_stream_activation_after_the_deadline_is_activated_late() -> None:
    engine = timed_out()
    (late,) = engine.ingest(PX, [order("o1", OrderStatus.OPEN, sequence=2)], T0 + 12)
    assert late == timeout_alert(
        T0 + 12, "activated_late", "the activation message was lost; a late stream update reports it open"
    )
    assert engine.watchdogs.activation.latency[PX].sum == 12.0
    # The lookup is no longer awaited, and its answer arriving now changes nothing.
    assert engine.next_deadline() == T0 + 12 + RESOLVE_AFTER
    assert answer(engine, order("o1", OrderStatus.OPEN, sequence=2), T0 + 13) == []
    assert answer(engine, order("o1", OrderStatus.OPEN, sequence=3), T0 + 14) == []
    assert engine.watchdogs.activation.outcomes == {(PX, "activated_late"): 1}


def test_an_unresolved_order_first_seen_pending_on_the_stream_still_resolves_when_activated() -> None:
    engine = timed_out()
    lookup_failed(engine, "o1", T0 + 11, "HTTP 404: wager_not_found", 404)  # critical unknown
    # The venue catches up: the stream shows the order pending, then open.
    assert engine.ingest(PX, [order("o1", OrderStatus.PENDING, sequence=1)], T0 + 20) == []
    assert engine.ingest(PX, [order("o1", OrderStatus.OPEN, sequence=2)], T0 + 21) == [
        resolved_critical(T0 + 21, "unknown", "the venue does not know the order", "open", starts_at=T0 + 11),
        timeout_alert(
            T0 + 21, "activated_late", "the activation message was lost; a late stream update reports it open"
        ),
    ]


def test_the_verdict_after_a_critical_names_the_market_the_venue_reported() -> None:
    engine = timed_out()
    lookup_failed(engine, "o1", T0 + 11, "HTTP 404: wager_not_found", 404)  # no update seen: no market yet
    (_, late) = engine.ingest(PX, [order("o1", OrderStatus.OPEN, sequence=3)], T0 + 40)
    assert late == timeout_alert(
        T0 + 40, "activated_late", "the activation message was lost; a late stream update reports it open"
    )


def test_an_intake_re_sent_after_a_critical_verdict_starts_no_second_watch() -> None:
    engine = timed_out()
    lookup_failed(engine, "o1", T0 + 11, "HTTP 503", 503)
    engine.take_journal()
    assert declare(engine, "o1", T0 + 20, placed_at=T0) == []  # the trading system retried its POST
    engine.advance(T0 + 20)
    assert (engine.take_actions(), engine.take_journal()) == ([], {})
    assert engine.watchdogs.activation.outcomes == {(PX, "lookup_failed"): 1}


def test_one_advance_over_a_long_stretch_fires_the_lookup_deadline_too() -> None:
    """The lookup deadline is armed while the activation deadline fires; one pass reaches both."""
    engine = new_engine()
    declare(engine, "o1", T0, placed_at=T0)
    assert engine.advance(T0 + 60) == [
        timeout_alert(
            T0 + TIMEOUT + LOOKUP_WAIT,
            "lookup_failed",
            "no REST answer within 21s; its state at the venue is unknown",
            market=None,
        )
    ]
    assert engine.take_actions() == [
        ReconnectVenue(PX, "order o1 not activated within 10s", ReconnectCause.ACTIVATION_TIMEOUT),
        LookupOrder(PX, "o1"),
    ]
