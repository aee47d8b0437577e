"""RfqConfirmationWatchdog through the engine, on virtual time: an accepted Totalis quote must be
confirmed by its confirmation_deadline; missing it raises RfqConfirmationMissed (critical) with a
ReconcileVenue, the pending exposure stays reserved until the venue releases the quote, and an
optional lead raises RfqConfirmationDue first."""

from __future__ import annotations

from decimal import Decimal

import pytest

from riskmon.alerts.fingerprints import fingerprint
from riskmon.alerts.lifecycle import AlertTransition
from riskmon.engine.actions import ReconcileVenue
from riskmon.engine.engine import Engine
from riskmon.events import FeedUp, QuoteStatus, QuoteUpdate, RfqPositionStatus, RfqPositionUpdate
from riskmon.watchdogs.journal import PersistedDeadline
from tests.watchdogs.conftest import MANGO, PX, T0, TOT, TOT_MM, brief, make_engine, quote

LOSS = Decimal("250")
DEADLINE = T0 + 30  # 2023-11-14 22:13:50 UTC
QUOTE_LABELS = {"desk": "alpha", "venue": TOT, "quote_id": "q1", "rfq_id": "rfq-1"}
MISSED_LABELS = {**QUOTE_LABELS, "alertname": "RfqConfirmationMissed", "severity": "critical"}
DUE_LABELS = {**QUOTE_LABELS, "alertname": "RfqConfirmationDue", "severity": "warning"}
RECONCILE = ReconcileVenue(TOT, "quote q1 missed its confirmation deadline")


def accept(engine: Engine, now: float = T0, deadline: float = DEADLINE) -> list[AlertTransition]:
    return engine.ingest(TOT, [quote("q1", deadline=deadline, worst_case_loss_usd=LOSS)], now)


def move(engine: Engine, status: QuoteStatus, now: float, source: str | None = None) -> list[AlertTransition]:
    return engine.ingest(TOT, [quote("q1", status)], now, source=source)


def missed_alert(ts: float = DEADLINE, extra: str = "") -> AlertTransition:
    return AlertTransition(
        ts=ts,
        status="firing",
        alertname="RfqConfirmationMissed",
        severity="critical",
        labels=MISSED_LABELS,
        annotations={
            "summary": "tot quote q1: confirmation deadline missed",
            "description": "Accepted quote q1 (RFQ rfq-1) of desk alpha was not confirmed by "
            "2023-11-14 22:13:50.000Z. The venue unwinds it; its exposure stays reserved until the venue "
            "says expired or withdrawn." + extra,
        },
        fingerprint=fingerprint(MISSED_LABELS),
        starts_at=ts,
        value=None,
    )


def test_a_quote_confirmed_in_time_raises_nothing_and_records_its_confirm_latency() -> None:
    engine = make_engine()
    rfq = engine.watchdogs.rfq
    assert accept(engine) == []
    assert rfq.pending(TOT) == 1
    assert engine.book.desk_pending("alpha") == LOSS
    assert engine.take_journal() == {
        ("rfq-confirmation", TOT, "q1"): PersistedDeadline(
            "rfq-confirmation", TOT, "q1", DEADLINE, {"desk": "alpha", "rfq_id": "rfq-1", "accepted_at": repr(T0)}
        )
    }
    assert engine.next_deadline() == DEADLINE

    assert move(engine, QuoteStatus.CONFIRMED, T0 + 12.5) == []
    assert rfq.pending(TOT) == 0
    assert engine.next_deadline() is None
    assert engine.take_journal() == {("rfq-confirmation", TOT, "q1"): None}
    assert engine.advance(T0 + 3600) == []
    assert engine.take_actions() == []
    assert (rfq.confirm_latency[TOT].count, rfq.confirm_latency[TOT].sum) == (1, 12.5)
    assert dict(rfq.confirm_latency[TOT].cumulative())["10.0"] == 0
    assert dict(rfq.confirm_latency[TOT].cumulative())["30.0"] == 1
    assert rfq.missed == {TOT: 0}
    # Confirmed: the reservation becomes confirmed risk.
    assert (engine.book.desk_pending("alpha"), engine.book.desk_worst_case_loss("alpha")) == (Decimal(0), LOSS)


def test_an_unconfirmed_quote_fires_at_its_deadline_and_keeps_its_exposure_reserved() -> None:
    engine = make_engine()
    accept(engine)
    assert engine.advance(DEADLINE - 0.001) == []
    assert engine.advance(DEADLINE + 20) == [missed_alert()]
    assert engine.take_actions() == [RECONCILE]
    assert engine.watchdogs.rfq.missed == {TOT: 1}
    assert engine.book.desk_pending("alpha") == LOSS  # the venue has not released it yet
    assert engine.watchdogs.rfq.pending(TOT) == 1
    assert engine.advance(T0 + 3600) == []  # fires once
    assert engine.take_actions() == []


@pytest.mark.parametrize("status", [QuoteStatus.EXPIRED, QuoteStatus.WITHDRAWN, QuoteStatus.REJECTED])
@pytest.mark.parametrize("source", [None, "reconcile_quotes"], ids=["stream", "rest"])
def test_a_release_after_the_miss_resolves_it_and_releases_the_pending_exposure(
    status: QuoteStatus, source: str | None
) -> None:
    engine = make_engine()
    accept(engine)
    engine.advance(DEADLINE)
    assert move(engine, status, T0 + 45, source) == [
        AlertTransition(
            ts=T0 + 45,
            status="resolved",
            alertname="RfqConfirmationMissed",
            severity="critical",
            labels=MISSED_LABELS,
            annotations={  # resolved as it fired, and why: released, so no exposure is left
                **missed_alert().annotations,
                "resolution": f"the venue released it ({status.value}); its pending exposure is released",
            },
            fingerprint=fingerprint(MISSED_LABELS),
            starts_at=DEADLINE,
            value=None,
        )
    ]
    assert (engine.book.desk_pending("alpha"), engine.book.desk_worst_case_loss("alpha")) == (Decimal(0), Decimal(0))
    assert engine.watchdogs.rfq.pending(TOT) == 0
    assert engine.watchdogs.rfq.confirm_latency[TOT].count == 0  # released, not confirmed
    assert engine.alerts.active() == []


def test_a_late_confirmation_resolves_the_miss() -> None:
    engine = make_engine()
    accept(engine)
    engine.advance(DEADLINE)
    (resolved,) = move(engine, QuoteStatus.CONFIRMED, T0 + 45)
    assert (resolved.status, resolved.labels, resolved.ts, resolved.starts_at) == (
        "resolved",
        MISSED_LABELS,
        T0 + 45,
        DEADLINE,
    )
    assert resolved.annotations == {  # confirmed late, not released: the exposure is real
        **missed_alert().annotations,
        "resolution": "the venue reports it confirmed after the deadline",
    }
    assert (engine.book.desk_pending("alpha"), engine.book.desk_worst_case_loss("alpha")) == (Decimal(0), LOSS)
    latency = engine.watchdogs.rfq.confirm_latency[TOT]
    assert (latency.count, latency.sum) == (1, 45.0)
    # Executed later: nothing more to resolve.
    assert move(engine, QuoteStatus.EXECUTED, T0 + 50) == []


def test_confirmation_lead_warns_before_the_deadline_and_the_confirmation_resolves_it() -> None:
    engine = make_engine(tot={"confirmation_lead": "10s"})
    accept(engine)
    assert engine.advance(T0 + 19.999) == []
    assert engine.advance(T0 + 25) == [
        AlertTransition(
            ts=T0 + 20,
            status="firing",
            alertname="RfqConfirmationDue",
            severity="warning",
            labels=DUE_LABELS,
            annotations={
                "summary": "tot quote q1: confirmation due at 2023-11-14 22:13:50.000Z",
                "description": "Accepted quote q1 of desk alpha is still unconfirmed 10s before its deadline.",
            },
            fingerprint=fingerprint(DUE_LABELS),
            starts_at=T0 + 20,
            value=None,
        )
    ]
    assert engine.take_actions() == []
    assert move(engine, QuoteStatus.CONFIRMED, T0 + 26) == [
        AlertTransition(
            ts=T0 + 26,
            status="resolved",
            alertname="RfqConfirmationDue",
            severity="warning",
            labels=DUE_LABELS,
            annotations={  # as it fired, and why it resolved
                "summary": "tot quote q1: confirmation due at 2023-11-14 22:13:50.000Z",
                "description": "Accepted quote q1 of desk alpha is still unconfirmed 10s before its deadline.",
                "resolution": "the venue reports it confirmed",
            },
            fingerprint=fingerprint(DUE_LABELS),
            starts_at=T0 + 20,
            value=None,
        )
    ]
    assert engine.advance(T0 + 3600) == []
    assert engine.watchdogs.rfq.missed == {TOT: 0}


def test_a_missed_deadline_supersedes_the_due_warning() -> None:
    engine = make_engine(tot={"confirmation_lead": "10s"})
    accept(engine)
    fired = engine.advance(T0 + 60)
    assert brief(fired) == [
        (T0 + 20, "firing", "RfqConfirmationDue", "warning", QUOTE_LABELS),
        (DEADLINE, "resolved", "RfqConfirmationDue", "warning", QUOTE_LABELS),
        (DEADLINE, "firing", "RfqConfirmationMissed", "critical", QUOTE_LABELS),
    ]
    # The warning resolves as it fired, and says the miss superseded it.
    assert fired[1].annotations == {**fired[0].annotations, "resolution": "superseded: deadline missed"}
    assert fired[2] == missed_alert()
    assert "resolution" not in fired[0].annotations  # firing: never (nor fired[2], as missed_alert() says)
    assert engine.take_actions() == [RECONCILE]
    # The release resolves only the miss: the warning is already gone.
    assert brief(move(engine, QuoteStatus.EXPIRED, T0 + 70)) == [
        (T0 + 70, "resolved", "RfqConfirmationMissed", "critical", QUOTE_LABELS)
    ]


def test_a_lead_longer_than_the_time_left_skips_the_warning() -> None:
    engine = make_engine(tot={"confirmation_lead": "10s"})
    accept(engine, deadline=T0 + 8)
    fired = engine.advance(T0 + 60)
    assert brief(fired) == [(T0 + 8, "firing", "RfqConfirmationMissed", "critical", QUOTE_LABELS)]


def test_a_quote_learned_after_its_deadline_fires_at_once() -> None:
    engine = make_engine()
    # E.g. the REST read after a reconnect finds a quote accepted while riskmon was not listening.
    assert (
        engine.ingest(TOT, [quote("q1", deadline=DEADLINE, worst_case_loss_usd=LOSS)], T0 + 100, source="quotes") == []
    )
    assert engine.next_deadline() == T0 + 100  # the runtime's timer fires it right away
    assert engine.advance(T0 + 100) == [missed_alert(ts=T0 + 100)]
    assert engine.take_actions() == [RECONCILE]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # quote:accepted first (with the RFQ), then mm_quote:accepted (with the deadline)
        (
            quote("q1", worst_case_loss_usd=LOSS),
            quote("q1", rfq_id=None, deadline=DEADLINE, worst_case_loss_usd=LOSS),
        ),
        # mm_quote:accepted first (deadline, no RFQ yet), then quote:accepted
        (
            quote("q1", rfq_id=None, deadline=DEADLINE, worst_case_loss_usd=LOSS),
            quote("q1", worst_case_loss_usd=LOSS),
        ),
        # both frames carry everything
        (
            quote("q1", deadline=DEADLINE, worst_case_loss_usd=LOSS),
            quote("q1", deadline=DEADLINE, worst_case_loss_usd=LOSS),
        ),
    ],
    ids=["rfq-then-deadline", "deadline-then-rfq", "both-complete"],
)
def test_both_accept_frames_make_one_watchdog(first: QuoteUpdate, second: QuoteUpdate) -> None:
    engine = make_engine()
    assert engine.ingest(TOT, [first], T0) == []
    assert engine.ingest(TOT, [second], T0 + 0.05) == []
    assert engine.watchdogs.rfq.pending(TOT) == 1
    assert engine.book.desk_pending("alpha") == LOSS  # one reservation, not two
    assert engine.advance(T0 + 60) == [missed_alert()]
    assert engine.take_actions() == [RECONCILE]
    assert engine.watchdogs.rfq.missed == {TOT: 1}


@pytest.mark.parametrize("position", [RfqPositionStatus.SETTLED, RfqPositionStatus.CANCELLED])
def test_the_rfq_position_settling_or_cancelling_disarms_the_deadline(position: RfqPositionStatus) -> None:
    engine = make_engine()
    accept(engine)
    engine.take_journal()
    update = RfqPositionUpdate(TOT, "alpha", TOT_MM, "rfq-1", position)
    assert engine.ingest(TOT, [update], T0 + 10) == []
    assert engine.watchdogs.rfq.pending(TOT) == 0
    assert engine.take_journal() == {("rfq-confirmation", TOT, "q1"): None}
    assert engine.next_deadline() is None
    assert engine.advance(T0 + 3600) == []
    assert engine.take_actions() == []
    assert engine.book.desk_pending("alpha") == 0
    assert engine.watchdogs.rfq.confirm_latency[TOT].count == 0


def test_the_rfq_position_closing_after_the_miss_resolves_it() -> None:
    engine = make_engine()
    accept(engine)
    engine.advance(DEADLINE)
    update = RfqPositionUpdate(TOT, "alpha", TOT_MM, "rfq-1", RfqPositionStatus.CANCELLED, detail="unwound")
    (resolved,) = engine.ingest(TOT, [update], T0 + 40)
    assert (resolved.status, resolved.alertname, resolved.labels, resolved.ts) == (
        "resolved",
        "RfqConfirmationMissed",
        MISSED_LABELS,
        T0 + 40,
    )
    assert resolved.annotations == {  # resolved as it fired, naming the position event that closed it
        **missed_alert().annotations,
        "resolution": "the RFQ position was cancelled; its exposure is released",
    }
    assert engine.book.desk_pending("alpha") == 0


def test_an_rfq_position_error_does_not_disarm_the_deadline() -> None:
    engine = make_engine()
    accept(engine)
    update = RfqPositionUpdate(TOT, "alpha", TOT_MM, "rfq-1", RfqPositionStatus.ERROR, detail="tx failed")
    assert brief(engine.ingest(TOT, [update], T0 + 10)) == [
        (T0 + 10, "firing", "RfqPositionError", "critical", {"desk": "alpha", "venue": TOT, "market": "rfq:rfq-1"})
    ]
    assert brief(engine.advance(DEADLINE)) == [(DEADLINE, "firing", "RfqConfirmationMissed", "critical", QUOTE_LABELS)]


def test_an_accepted_quote_without_a_deadline_is_not_watched() -> None:
    engine = make_engine()
    engine.ingest(TOT, [quote("q1", worst_case_loss_usd=LOSS)], T0)
    assert engine.watchdogs.rfq.pending(TOT) == 0
    assert engine.next_deadline() is None
    assert engine.book.desk_pending("alpha") == LOSS


# ---- restart: persisted deadlines ---------------------------------------------------------------


def persisted(due: float = DEADLINE) -> PersistedDeadline:
    return PersistedDeadline(
        "rfq-confirmation", TOT, "q1", due, {"desk": "alpha", "rfq_id": "rfq-1", "accepted_at": repr(T0)}
    )


def test_a_restored_deadline_still_ahead_fires_at_its_due_time_or_is_disarmed_by_the_venue() -> None:
    engine = make_engine(tot={"confirmation_lead": "10s"})
    engine.start(T0 + 5, [persisted()])
    assert engine.watchdogs.rfq.pending(TOT) == 1
    assert engine.deadlines.due_at(("rfq-confirmation", TOT, "q1")) == DEADLINE
    assert engine.deadlines.due_at(("rfq-lead", TOT, "q1")) == T0 + 20
    for venue in (TOT, PX, MANGO):  # every feed connects within its startup grace
        engine.ingest(venue, [FeedUp(venue, f"wss://{venue}.invalid/")], T0 + 6, is_frame=False)
    # The stream re-announces the accepted quote: still one watchdog.
    accept(engine, now=T0 + 7)
    assert engine.watchdogs.rfq.pending(TOT) == 1
    assert brief(engine.advance(T0 + 20)) == [(T0 + 20, "firing", "RfqConfirmationDue", "warning", QUOTE_LABELS)]
    assert brief(move(engine, QuoteStatus.CONFIRMED, T0 + 22)) == [
        (T0 + 22, "resolved", "RfqConfirmationDue", "warning", QUOTE_LABELS)
    ]
    latency = engine.watchdogs.rfq.confirm_latency[TOT]
    assert (latency.count, latency.sum) == (1, 22.0)  # from the persisted accepted_at, across the restart
    assert engine.watchdogs.rfq.pending(TOT) == 0
    assert engine.deadlines.due_at(("rfq-confirmation", TOT, "q1")) is None
    assert engine.take_journal()[("rfq-confirmation", TOT, "q1")] is None


def test_a_deadline_that_passed_while_riskmon_was_down_fires_at_once_and_says_so() -> None:
    engine = make_engine()
    engine.start(T0 + 100, [persisted()])
    assert engine.next_deadline() == T0 + 100
    fired = engine.advance(T0 + 100)
    missed = missed_alert(T0 + 100, " The deadline passed while riskmon was down.")
    assert fired == [
        AlertTransition(
            ts=missed.ts,
            status=missed.status,
            alertname=missed.alertname,
            severity=missed.severity,
            labels=missed.labels,
            annotations={**missed.annotations, "missed_while_down": "true"},
            fingerprint=missed.fingerprint,
            starts_at=missed.starts_at,
            value=None,
        )
    ]
    assert engine.take_actions() == [RECONCILE]
    # The reconciliation it asked for finds the quote expired: resolved.
    assert brief(move(engine, QuoteStatus.EXPIRED, T0 + 102, "quotes")) == [
        (T0 + 102, "resolved", "RfqConfirmationMissed", "critical", QUOTE_LABELS)
    ]
    assert engine.take_journal()[("rfq-confirmation", TOT, "q1")] is None
