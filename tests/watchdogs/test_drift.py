"""DriftCheck through the engine, on virtual time: a scheduled reconciliation's REST answers
(`source` reconcile_order / markets / reconcile_quotes) that the stream did not confirm within
`watchdogs.drift_grace` after ReconciliationFinished raise StreamDrift; a failed run raises
ReconciliationFailed until one succeeds."""

from __future__ import annotations

from decimal import Decimal

import pytest

from riskmon.alerts.fingerprints import fingerprint
from riskmon.alerts.lifecycle import AlertTransition
from riskmon.engine.engine import Engine
from riskmon.events import (
    BookLevel,
    BookSide,
    BookSnapshot,
    FeedDown,
    FeedUp,
    OrderStatus,
    QuoteStatus,
    ReconciliationFinished,
)
from tests.watchdogs.conftest import PX, T0, TOT, brief, make_engine, order, quote

DRIFT_LABELS = {"venue": PX, "alertname": "StreamDrift", "severity": "warning"}
FAILED_LABELS = {"venue": PX, "alertname": "ReconciliationFailed", "severity": "warning"}
MARKET = "10/20"
APPLIED = ". REST's state was applied; the stream missed or garbled these."


def engine_with_feed_up(venue: str = PX) -> Engine:
    # A long health_check gap keeps the heartbeat watchdog out of these timelines.
    engine = make_engine(px={"health_check_gap": "1h"})
    engine.ingest(venue, [FeedUp(venue, f"wss://{venue}.invalid/")], T0, is_frame=False)
    return engine


def finished(
    engine: Engine,
    now: float,
    venue: str = PX,
    *,
    checked: int = 0,
    error: str | None = None,
    unknown_at_venue: tuple[str, ...] = (),
) -> list[AlertTransition]:
    scope = "quotes" if venue == TOT else "orders+books"
    event = ReconciliationFinished(venue, scope, checked, error, unknown_at_venue)
    return engine.ingest(venue, [event], now, is_frame=False)


def drift_alert(ts: float, items: list[str], summary_count: int | None = None) -> AlertTransition:
    count = len(items) if summary_count is None else summary_count
    return AlertTransition(
        ts=ts,
        status="firing",
        alertname="StreamDrift",
        severity="warning",
        labels=DRIFT_LABELS,
        annotations={
            "summary": f"px: {count} difference(s) between the stream and REST",
            "description": "; ".join(items) + APPLIED,
        },
        fingerprint=fingerprint(DRIFT_LABELS),
        starts_at=ts,
        value=float(count),
    )


def levels(price: str, size: str = "250") -> tuple[BookSide, ...]:
    return (BookSide("outcome-1", (BookLevel(Decimal(price), Decimal(size)),)),)


def book(sequence: int | None, price: str, market: str = MARKET) -> BookSnapshot:
    return BookSnapshot(PX, market, levels(price), sequence)


# ---- orders ---------------------------------------------------------------------------------------

CANCELED_DRIFT = "order o1: the stream said open (filled 0), REST says canceled (filled 0)"


def order_rest_differs(engine: Engine) -> None:
    engine.ingest(PX, [order("o1", OrderStatus.OPEN, sequence=3)], T0 + 1)
    assert engine.ingest(PX, [order("o1", OrderStatus.CANCELED, sequence=4)], T0 + 10, source="reconcile_order") == []
    assert engine.orders.get(PX, "o1").status is OrderStatus.CANCELED  # type: ignore[union-attr]
    assert finished(engine, T0 + 11, checked=1) == []


def test_a_rest_answer_the_stream_never_confirms_is_drift_at_finished_plus_grace() -> None:
    engine = engine_with_feed_up()
    order_rest_differs(engine)
    assert engine.next_deadline() == T0 + 16
    assert engine.advance(T0 + 15.999) == []
    assert engine.advance(T0 + 20) == [drift_alert(T0 + 16, [CANCELED_DRIFT])]
    drift = engine.watchdogs.drift
    assert (drift.runs[PX], drift.failures[PX], drift.drifts[PX]) == (1, 0, 1)
    assert engine.take_actions() == []
    # The stream catching up after the verdict does not take it back; the next clean run does.
    engine.ingest(PX, [order("o1", OrderStatus.CANCELED, sequence=4)], T0 + 30)
    assert engine.advance(T0 + 600) == []
    assert finished(engine, T0 + 900, checked=1) == []
    (resolved,) = engine.advance(T0 + 905)
    assert resolved == AlertTransition(
        ts=T0 + 905,
        status="resolved",
        alertname="StreamDrift",
        severity="warning",
        labels=DRIFT_LABELS,
        # As it fired, and why it resolved.
        annotations={
            **drift_alert(T0 + 16, [CANCELED_DRIFT]).annotations,
            "resolution": "the stream and REST agree again",
        },
        fingerprint=fingerprint(DRIFT_LABELS),
        starts_at=T0 + 16,
        value=None,
    )
    assert (drift.runs[PX], drift.drifts[PX]) == (2, 1)


@pytest.mark.parametrize("sequence", [4, 5], ids=["same-sequence", "newer-sequence"])
def test_a_stream_update_within_the_grace_confirms_the_rest_answer(sequence: int) -> None:
    engine = engine_with_feed_up()
    order_rest_differs(engine)
    assert engine.ingest(PX, [order("o1", OrderStatus.CANCELED, sequence=sequence)], T0 + 15.5) == []
    assert engine.advance(T0 + 600) == []
    assert engine.watchdogs.drift.drifts[PX] == 0
    assert engine.alerts.active() == []


def test_an_older_stream_update_in_flight_does_not_confirm_the_rest_answer() -> None:
    engine = engine_with_feed_up()
    order_rest_differs(engine)
    engine.ingest(PX, [order("o1", OrderStatus.OPEN, sequence=3)], T0 + 12)  # a duplicate of what we held
    assert engine.advance(T0 + 16) == [drift_alert(T0 + 16, [CANCELED_DRIFT])]


def test_rest_answers_that_agree_or_are_older_are_no_drift() -> None:
    engine = engine_with_feed_up()
    engine.ingest(PX, [order("o1", OrderStatus.OPEN, sequence=3), order("o2", OrderStatus.OPEN, sequence=8)], T0 + 1)
    rest = [
        order("o1", OrderStatus.OPEN, sequence=4),  # newer, same state
        order("o2", OrderStatus.CANCELED, sequence=7),  # older than what the stream gave: stale
    ]
    engine.ingest(PX, rest, T0 + 10, source="reconcile_order")
    assert engine.orders.get(PX, "o2").status is OrderStatus.OPEN  # type: ignore[union-attr]
    finished(engine, T0 + 11, checked=2)
    assert engine.advance(T0 + 600) == []


def test_a_rest_order_differing_at_the_same_sequence_is_drift() -> None:
    # As for books (levels differing at one sequence): the stream garbled it and cannot clear it.
    engine = engine_with_feed_up()
    engine.ingest(PX, [order("o1", OrderStatus.OPEN, sequence=4)], T0 + 1)
    engine.ingest(PX, [order("o1", OrderStatus.CANCELED, sequence=4)], T0 + 10, source="reconcile_order")
    finished(engine, T0 + 11, checked=1)
    assert brief(engine.advance(T0 + 16)) == [(T0 + 16, "firing", "StreamDrift", "warning", {"venue": PX})]


def test_an_order_the_stream_never_showed_is_drift_until_the_stream_shows_it() -> None:
    engine = engine_with_feed_up()
    engine.ingest(PX, [order("o5", OrderStatus.OPEN, sequence=2)], T0 + 10, source="reconcile_order")
    finished(engine, T0 + 11)
    assert engine.advance(T0 + 16) == [drift_alert(T0 + 16, ["order o5: open at the venue, never seen on the stream"])]

    engine2 = engine_with_feed_up()
    engine2.ingest(PX, [order("o5", OrderStatus.OPEN, sequence=2)], T0 + 10, source="reconcile_order")
    finished(engine2, T0 + 11)
    engine2.ingest(PX, [order("o5", OrderStatus.OPEN, sequence=2)], T0 + 12)
    assert engine2.advance(T0 + 16) == []


def test_a_lookup_answer_is_not_judged_for_drift() -> None:
    engine = engine_with_feed_up()
    engine.ingest(PX, [order("o1", OrderStatus.OPEN, sequence=3)], T0 + 1)
    engine.ingest(PX, [order("o1", OrderStatus.CANCELED, sequence=4)], T0 + 10, source="get_order")
    finished(engine, T0 + 11)
    assert engine.advance(T0 + 600) == []


@pytest.mark.parametrize("reconnecting", [True, False], ids=["during-reconnect", "never-up"])
def test_rest_read_while_the_feed_is_not_up_is_no_drift(reconnecting: bool) -> None:
    engine = engine_with_feed_up() if reconnecting else make_engine(px={"health_check_gap": "1h"})
    if reconnecting:
        engine.ingest(PX, [order("o1", OrderStatus.OPEN, sequence=3)], T0 + 1)
        engine.ingest(PX, [FeedDown(PX, "wss://px.invalid/", "closed")], T0 + 5, is_frame=False)
    # The read that recovers state after a reconnect differs from the stream by nature.
    engine.ingest(PX, [order("o1", OrderStatus.CANCELED, sequence=4)], T0 + 6, source="reconcile_order")
    if reconnecting:
        engine.ingest(PX, [FeedUp(PX, "wss://px.invalid/")], T0 + 8, is_frame=False)
    assert finished(engine, T0 + 9) == []
    assert engine.advance(T0 + 14) == []
    assert engine.watchdogs.drift.runs[PX] == 1
    assert engine.orders.get(PX, "o1").status is OrderStatus.CANCELED  # type: ignore[union-attr]


# ---- books ----------------------------------------------------------------------------------------


def test_a_newer_rest_book_is_drift_unless_the_stream_reaches_its_sequence() -> None:
    engine = engine_with_feed_up()
    engine.ingest(PX, [book(5, "-110")], T0 + 1)
    engine.ingest(PX, [book(7, "+105")], T0 + 10, source="markets")
    finished(engine, T0 + 11)
    assert engine.advance(T0 + 16) == [drift_alert(T0 + 16, [f"book {MARKET}: the stream is at sequence 5, REST at 7"])]

    engine2 = engine_with_feed_up()
    engine2.ingest(PX, [book(5, "-110")], T0 + 1)
    engine2.ingest(PX, [book(7, "+105")], T0 + 10, source="markets")
    finished(engine2, T0 + 11)
    engine2.ingest(PX, [book(6, "+101")], T0 + 12)  # not yet where REST was
    engine2.ingest(PX, [book(7, "+105")], T0 + 13)
    assert engine2.advance(T0 + 600) == []


def test_different_levels_at_the_same_sequence_are_drift_the_stream_cannot_clear() -> None:
    engine = engine_with_feed_up()
    engine.ingest(PX, [book(5, "-110")], T0 + 1)
    engine.ingest(PX, [book(5, "+120")], T0 + 10, source="markets")
    finished(engine, T0 + 11)
    engine.ingest(PX, [book(6, "+120")], T0 + 12)
    what = f"book {MARKET}: levels differ at the same sequence 5"
    assert engine.advance(T0 + 16) == [drift_alert(T0 + 16, [what])]


def test_rest_books_that_seed_agree_or_are_older_are_no_drift() -> None:
    engine = engine_with_feed_up()
    engine.ingest(PX, [book(5, "-110"), book(9, "+150", market="11/21")], T0 + 1)
    rest = [
        book(3, "+200", market="12/22"),  # a market the stream never sent: REST seeds it
        book(5, "-110"),  # same sequence, same levels
        book(8, "+140", market="11/21"),  # older than the stream's
    ]
    engine.ingest(PX, rest, T0 + 10, source="markets")
    assert engine.markets.books[(PX, "12/22")] == book(3, "+200", market="12/22")
    finished(engine, T0 + 11, checked=3)
    assert engine.advance(T0 + 600) == []


def test_unsequenced_books_with_different_levels_are_drift_until_the_stream_sends_one() -> None:
    engine = engine_with_feed_up()
    engine.ingest(PX, [book(None, "-110")], T0 + 1)
    engine.ingest(PX, [book(None, "+105")], T0 + 10, source="markets")
    finished(engine, T0 + 11)
    assert engine.advance(T0 + 16) == [drift_alert(T0 + 16, [f"book {MARKET}: levels differ"])]


# ---- quotes ---------------------------------------------------------------------------------------


def quote_drift(ts: float, items: list[str]) -> AlertTransition:
    labels = {**DRIFT_LABELS, "venue": TOT}
    alert = drift_alert(ts, items)
    summary = alert.annotations["summary"].replace("px:", "tot:")
    annotations = {**alert.annotations, "summary": summary}
    return AlertTransition(
        ts=ts,
        status="firing",
        alertname="StreamDrift",
        severity="warning",
        labels=labels,
        annotations=annotations,
        fingerprint=fingerprint(labels),
        starts_at=ts,
        value=alert.value,
    )


def test_a_quote_status_ahead_on_rest_is_drift_unless_the_stream_confirms_it() -> None:
    engine = engine_with_feed_up(TOT)
    engine.ingest(TOT, [quote("q1", deadline=T0 + 600), quote("q2", deadline=T0 + 600)], T0 + 1)
    rest = [
        quote("q1", QuoteStatus.CONFIRMED),  # ahead of the stream
        quote("q2", QuoteStatus.CONFIRMED),  # ahead too, but the stream catches up in time
        quote("q3", QuoteStatus.ACCEPTED, deadline=T0 + 600),  # never seen on the stream
        quote("q4", QuoteStatus.EXPIRED),  # released and never seen: nothing to miss
    ]
    engine.ingest(TOT, rest, T0 + 10, source="reconcile_quotes")
    finished(engine, T0 + 11, venue=TOT, checked=4)
    engine.ingest(TOT, [quote("q2", QuoteStatus.CONFIRMED)], T0 + 12)
    engine.ingest(TOT, [quote("q1", QuoteStatus.ACCEPTED)], T0 + 13)  # a repeat of the old stage
    assert engine.advance(T0 + 16) == [
        quote_drift(
            T0 + 16,
            [
                "quote q1: the stream said accepted, REST says confirmed",
                "quote q3: accepted at the venue, never seen on the stream",
            ],
        )
    ]


# ---- run outcomes ---------------------------------------------------------------------------------


def test_entries_unknown_at_the_venue_are_drift_the_stream_cannot_clear() -> None:
    engine = engine_with_feed_up()
    engine.ingest(PX, [order("o7", OrderStatus.OPEN, sequence=1)], T0 + 1)
    assert finished(engine, T0 + 11, checked=2, unknown_at_venue=("order o7", "order o8")) == []
    engine.ingest(PX, [order("o7", OrderStatus.OPEN, sequence=2)], T0 + 12)
    assert engine.advance(T0 + 16) == [
        drift_alert(
            T0 + 16,
            ["order o7: held by riskmon, unknown to the venue", "order o8: held by riskmon, unknown to the venue"],
        )
    ]
    assert engine.watchdogs.drift.drifts[PX] == 2


def test_a_failed_run_raises_reconciliation_failed_until_a_run_succeeds() -> None:
    engine = engine_with_feed_up()
    drift = engine.watchdogs.drift
    assert finished(engine, T0 + 10, error="HTTP 503: upstream unavailable") == [
        AlertTransition(
            ts=T0 + 10,
            status="firing",
            alertname="ReconciliationFailed",
            severity="warning",
            labels=FAILED_LABELS,
            annotations={
                "summary": "px: reconciliation of orders+books failed",
                "description": "riskmon could not compare its state with the venue's REST: HTTP 503: upstream "
                "unavailable. Until a reconciliation succeeds, drift would go unnoticed.",
            },
            fingerprint=fingerprint(FAILED_LABELS),
            starts_at=T0 + 10,
            value=None,
        )
    ]
    assert engine.deadlines.due_at(("drift-verdict", PX)) is None  # no verdict for a run that did not finish
    assert finished(engine, T0 + 910, error="timed out") == []  # still failing: no second alert
    assert (drift.runs[PX], drift.failures[PX]) == (2, 2)
    assert finished(engine, T0 + 1810, checked=12) == [
        AlertTransition(
            ts=T0 + 1810,
            status="resolved",
            alertname="ReconciliationFailed",
            severity="warning",
            labels=FAILED_LABELS,
            annotations={  # as it last fired: the second failure re-worded it
                "summary": "px: reconciliation of orders+books failed",
                "description": "riskmon could not compare its state with the venue's REST: timed out. "
                "Until a reconciliation succeeds, drift would go unnoticed.",
                "resolution": "reconciliation of orders+books succeeded again",
            },
            fingerprint=fingerprint(FAILED_LABELS),
            starts_at=T0 + 10,
            value=None,
        )
    ]
    assert engine.advance(T0 + 2000) == []
    assert (drift.runs[PX], drift.failures[PX], drift.drifts[PX]) == (3, 2, 0)


def test_a_second_drift_run_refreshes_the_alert_without_firing_again() -> None:
    engine = engine_with_feed_up()
    order_rest_differs(engine)
    engine.advance(T0 + 16)
    engine.ingest(PX, [order("o2", OrderStatus.OPEN, sequence=1)], T0 + 900, source="reconcile_order")
    finished(engine, T0 + 901)
    assert engine.advance(T0 + 906) == []
    (active,) = engine.alerts.active()
    assert (active.fired_at, active.value) == (T0 + 16, 1.0)
    assert active.annotations["description"] == "order o2: open at the venue, never seen on the stream" + APPLIED
    assert engine.watchdogs.drift.drifts[PX] == 2


def test_more_than_ten_differences_list_ten_and_count_the_rest() -> None:
    engine = engine_with_feed_up()
    rest = [order(f"o{n}", OrderStatus.OPEN, sequence=1) for n in range(10, 23)]
    engine.ingest(PX, rest, T0 + 10, source="reconcile_order")
    finished(engine, T0 + 11, checked=13)
    (fired,) = engine.advance(T0 + 16)
    listed = [f"order o{n}: open at the venue, never seen on the stream" for n in range(10, 20)]
    assert fired.annotations == {
        "summary": "px: 13 difference(s) between the stream and REST",
        "description": "; ".join(listed) + "; and 3 more" + APPLIED,
    }
    assert (fired.value, engine.watchdogs.drift.drifts[PX]) == (13.0, 13)


def test_a_configured_drift_grace_is_honoured() -> None:
    engine = make_engine(px={"health_check_gap": "1h"}, watchdogs={"drift_grace": "30s"})
    engine.ingest(PX, [FeedUp(PX, "wss://px.invalid/")], T0, is_frame=False)
    order_rest_differs(engine)
    assert engine.advance(T0 + 40.999) == []
    assert brief(engine.advance(T0 + 41)) == [(T0 + 41, "firing", "StreamDrift", "warning", {"venue": PX})]
