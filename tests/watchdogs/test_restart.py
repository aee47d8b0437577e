"""Deadlines across a restart: the engine's journal written to a real DeadlineStore (SQLite WAL),
read back by a new store, and re-armed by a new engine's start(): a deadline still ahead fires
at its own time, one that passed while riskmon was down fires at once and says so."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from riskmon.alerts.fingerprints import fingerprint
from riskmon.alerts.lifecycle import AlertTransition, StoredAlert
from riskmon.engine.actions import LookupOrder, ReconcileVenue, ReconnectCause, ReconnectVenue
from riskmon.engine.engine import Engine
from riskmon.events import Event, OrderIntake, OrderLookupFailed, OrderStatus, QuoteStatus
from riskmon.store.deadlines import DeadlineStore, StoreError
from riskmon.watchdogs.context import at
from riskmon.watchdogs.journal import PersistedDeadline
from tests.watchdogs.conftest import PX, PX_MARKET, T0, TOT, brief, intake, make_engine, order, quote

Step = tuple[float, str, list[Event]]  # (time, venue, events of one engine step)
LONG_GRACE = {"feed_down_grace": "1h"}  # keep the startup feed grace out of these timelines


def new_engine(tot_lead: str | None = None) -> Engine:
    tot = dict(LONG_GRACE) if tot_lead is None else {**LONG_GRACE, "confirmation_lead": tot_lead}
    return make_engine(px=LONG_GRACE, tot=tot, mango=LONG_GRACE, alerts={"event_resolve_after": "60s"})


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "riskmon.db"


@pytest.fixture
def opened(state_path: Path) -> Iterator[list[DeadlineStore]]:
    """Stores a test opened; each is closed at the end, even when the test fails."""
    stores: list[DeadlineStore] = []
    yield stores
    for store in stores:
        store.close()


def open_store(path: Path, opened: list[DeadlineStore]) -> DeadlineStore:
    store = DeadlineStore(path)
    opened.append(store)
    return store


def run_before_restart(path: Path, opened: list[DeadlineStore], steps: list[Step]) -> None:
    """Run an engine over `steps` (time, venue, events), persisting its journal after every step as
    the runtime does, then close the store."""
    engine = new_engine()
    store = open_store(path, opened)
    for now, venue, events in steps:
        is_report = all(isinstance(e, OrderIntake | OrderLookupFailed) for e in events)
        engine.ingest(venue, events, now, is_frame=not is_report)
        store.write(engine.take_journal())
    store.close()
    opened.remove(store)


def restarted(path: Path, opened: list[DeadlineStore], now: float, tot_lead: str | None = None) -> Engine:
    records = open_store(path, opened).load()
    engine = new_engine(tot_lead)
    engine.start(now, records)
    return engine


O1 = PersistedDeadline("activation", PX, "o1", T0 + 10, {"desk": "alpha", "placed_at": repr(T0)})
Q1 = PersistedDeadline(
    "rfq-confirmation", TOT, "q1", T0 + 60, {"desk": "alpha", "rfq_id": "rfq-1", "accepted_at": repr(T0 + 3)}
)

ACTIVATION_STEPS: list[Step] = [
    (T0, PX, [intake("o1", T0)]),
    (T0 + 1, PX, [intake("o2", T0 + 1)]),
    (T0 + 2, PX, [order("o2", OrderStatus.OPEN, sequence=2)]),  # o2 activated in time
]
QUOTE_STEPS: list[Step] = [(T0 + 3, TOT, [quote("q1", deadline=T0 + 60)])]


def missed_description(why: str) -> str:
    return (
        f"Order o1 of desk alpha on {PX_MARKET}, placed at {at(T0)}, was not activated within 10s: {why}. "
        f"The deadline ({at(T0 + 10)}) passed while riskmon was down."
    )


# ---- what is stored ----------------------------------------------------------------------------


def test_the_store_holds_armed_deadlines_and_not_the_order_activated_before_the_restart(
    state_path: Path, opened: list[DeadlineStore]
) -> None:
    run_before_restart(state_path, opened, [*ACTIVATION_STEPS, *QUOTE_STEPS])
    assert sorted(open_store(state_path, opened).load(), key=lambda r: r.key) == [O1, Q1]


def test_restoring_rearms_without_rewriting_and_ignores_what_no_watchdog_owns(
    state_path: Path, opened: list[DeadlineStore]
) -> None:
    store = open_store(state_path, opened)
    store.write(
        {
            O1.key: O1,
            ("activation", TOT, "x"): PersistedDeadline("activation", TOT, "x", T0 + 10),  # not a ProphetX venue
            ("retired-kind", PX, "y"): PersistedDeadline("retired-kind", PX, "y", T0 + 10),
        }
    )
    engine = restarted(state_path, opened, T0 + 5)
    assert engine.take_journal() == {}  # the file holds the record as it stands: no rewrite
    assert len(engine.watchdogs.activation) == 1
    assert engine.next_deadline() == T0 + 10
    engine.ingest(PX, [order("o1", OrderStatus.OPEN, sequence=2)], T0 + 6)
    assert engine.take_journal() == {O1.key: None}  # activated: the stored record goes


def test_a_restored_record_whose_due_time_moved_with_the_timeout_is_rewritten(
    state_path: Path, opened: list[DeadlineStore]
) -> None:
    stored_under_20s = PersistedDeadline("activation", PX, "o1", T0 + 20, {"desk": "alpha", "placed_at": repr(T0)})
    open_store(state_path, opened).write({stored_under_20s.key: stored_under_20s})
    engine = restarted(state_path, opened, T0 + 5)  # activation_timeout is 10 s now
    assert engine.take_journal() == {O1.key: O1}
    assert engine.next_deadline() == T0 + 10


# ---- activation deadlines ----------------------------------------------------------------------


def test_an_activation_deadline_still_ahead_fires_at_its_original_time(
    state_path: Path, opened: list[DeadlineStore]
) -> None:
    run_before_restart(state_path, opened, ACTIVATION_STEPS)
    engine = restarted(state_path, opened, T0 + 5)
    assert engine.next_deadline() == T0 + 10
    assert engine.advance(T0 + 9.5) == []
    assert engine.take_actions() == []
    assert engine.advance(T0 + 12) == []
    assert engine.take_actions() == [
        ReconnectVenue(PX, "order o1 not activated within 10s", ReconnectCause.ACTIVATION_TIMEOUT),
        LookupOrder(PX, "o1"),
    ]
    assert engine.next_deadline() == T0 + 10 + 21  # the lookup deadline counts from the original due time
    (critical,) = engine.ingest(PX, [OrderLookupFailed(PX, "o1", "HTTP 404", 404)], T0 + 13, is_frame=False)
    assert brief([critical]) == [
        (
            T0 + 13,
            "firing",
            "OrderActivationTimeout",
            "critical",
            {"desk": "alpha", "venue": PX, "order_id": "o1", "outcome": "unknown"},
        )
    ]
    assert "missed_while_down" not in critical.annotations
    assert "passed while riskmon was down" not in critical.annotations["description"]


def test_an_activation_deadline_passed_while_down_fires_at_start_and_says_so(
    state_path: Path, opened: list[DeadlineStore]
) -> None:
    run_before_restart(state_path, opened, ACTIVATION_STEPS)
    engine = restarted(state_path, opened, T0 + 100)
    assert engine.next_deadline() == T0 + 100
    assert engine.advance(T0 + 100) == []
    assert engine.take_actions() == [
        ReconnectVenue(PX, "order o1 not activated within 10s", ReconnectCause.ACTIVATION_TIMEOUT),
        LookupOrder(PX, "o1"),
    ]
    (late,) = engine.ingest(PX, [order("o1", OrderStatus.OPEN, sequence=2)], T0 + 101, source="get_order")
    labels = {
        "desk": "alpha",
        "venue": PX,
        "order_id": "o1",
        "outcome": "activated_late",
        "alertname": "OrderActivationTimeout",
        "severity": "warning",
    }
    assert late == AlertTransition(
        ts=T0 + 101,
        status="firing",
        alertname="OrderActivationTimeout",
        severity="warning",
        labels=labels,
        annotations={
            "summary": "px order o1: no activation within 10s (activated_late)",
            "description": missed_description("the activation message was lost; the REST lookup reports it open"),
            "order_id": "o1",
            "outcome": "activated_late",
            "placed_at": at(T0),
            "missed_while_down": "true",
        },
        fingerprint=fingerprint(labels),
        starts_at=T0 + 101,
    )
    assert engine.take_journal() == {O1.key: None}
    assert engine.watchdogs.activation.latency[PX].sum == 101.0  # from the stored placement time


def test_a_lookup_unanswered_after_a_restart_is_critical_and_marked_missed_while_down(
    state_path: Path, opened: list[DeadlineStore]
) -> None:
    run_before_restart(state_path, opened, ACTIVATION_STEPS)
    engine = restarted(state_path, opened, T0 + 100)
    assert engine.advance(T0 + 100) == []  # the runtime advances right after start()
    (critical,) = engine.advance(T0 + 200)
    assert brief([critical]) == [
        (
            T0 + 121,
            "firing",
            "OrderActivationTimeout",
            "critical",
            {"desk": "alpha", "venue": PX, "order_id": "o1", "outcome": "lookup_failed"},
        )
    ]
    assert critical.annotations["missed_while_down"] == "true"
    assert critical.annotations["description"] == (
        f"Order o1 of desk alpha, placed at {at(T0)}, was not activated within 10s: no REST answer within 21s; "
        f"its state at the venue is unknown. The deadline ({at(T0 + 10)}) passed while riskmon was down."
    )


def test_several_orders_missed_while_down_share_one_reconnect(state_path: Path, opened: list[DeadlineStore]) -> None:
    run_before_restart(state_path, opened, [(T0, PX, [intake("o1", T0), intake("o2", T0 + 1), intake("o3", T0 + 2)])])
    engine = restarted(state_path, opened, T0 + 100)
    engine.advance(T0 + 100)
    actions = engine.take_actions()
    # All three fall due at the start; the first to fire asks for the one reconnect.
    lookups = [a.order_id for a in actions if isinstance(a, LookupOrder)]
    assert sorted(lookups) == ["o1", "o2", "o3"]
    assert [a for a in actions if isinstance(a, ReconnectVenue)] == [
        ReconnectVenue(PX, f"order {lookups[0]} not activated within 10s", ReconnectCause.ACTIVATION_TIMEOUT)
    ]


# ---- RFQ confirmation deadlines ----------------------------------------------------------------


def test_a_quote_deadline_passed_while_down_is_missed_at_once_and_resolves_when_released(
    state_path: Path, opened: list[DeadlineStore]
) -> None:
    run_before_restart(state_path, opened, QUOTE_STEPS)
    engine = restarted(state_path, opened, T0 + 90)
    assert engine.take_journal() == {Q1.key: Q1}
    (missed,) = engine.advance(T0 + 90)
    labels = {
        "desk": "alpha",
        "venue": TOT,
        "quote_id": "q1",
        "rfq_id": "rfq-1",
        "alertname": "RfqConfirmationMissed",
        "severity": "critical",
    }
    assert missed == AlertTransition(
        ts=T0 + 90,
        status="firing",
        alertname="RfqConfirmationMissed",
        severity="critical",
        labels=labels,
        annotations={
            "summary": "tot quote q1: confirmation deadline missed",
            "description": f"Accepted quote q1 (RFQ rfq-1) of desk alpha was not confirmed by {at(T0 + 60)}. "
            "The venue unwinds it; its exposure stays reserved until the venue says expired or withdrawn. "
            "The deadline passed while riskmon was down.",
            "missed_while_down": "true",
        },
        fingerprint=fingerprint(labels),
        starts_at=T0 + 90,
    )
    assert engine.take_actions() == [ReconcileVenue(TOT, "quote q1 missed its confirmation deadline")]
    assert engine.watchdogs.rfq.missed[TOT] == 1
    # The reconciliation finds it expired: the alert resolves.
    (resolved,) = engine.ingest(TOT, [quote("q1", QuoteStatus.EXPIRED)], T0 + 95, source="reconcile_quotes")
    assert (resolved.ts, resolved.status, resolved.labels, resolved.starts_at) == (T0 + 95, "resolved", labels, T0 + 90)
    assert resolved.annotations == {  # resolved as it fired, and why: released, not confirmed late
        **missed.annotations,
        "resolution": "the venue released it (expired); its pending exposure is released",
    }
    assert engine.take_journal() == {Q1.key: None}


def test_a_quote_restored_before_its_deadline_and_then_confirmed_fires_nothing(
    state_path: Path, opened: list[DeadlineStore]
) -> None:
    run_before_restart(state_path, opened, QUOTE_STEPS)
    engine = restarted(state_path, opened, T0 + 30)
    engine.take_journal()
    assert engine.advance(T0 + 30) == []
    assert engine.next_deadline() == T0 + 60
    assert engine.ingest(TOT, [quote("q1", QuoteStatus.CONFIRMED)], T0 + 40) == []
    assert engine.take_journal() == {Q1.key: None}
    latency = engine.watchdogs.rfq.confirm_latency[TOT]
    assert (latency.count, latency.sum) == (1, 37.0)  # from the stored acceptance time
    assert engine.next_deadline() == T0 + 30 + 3600  # only the startup feed grace is left
    assert engine.advance(T0 + 1000) == []
    assert engine.take_actions() == []
    assert engine.watchdogs.rfq.missed[TOT] == 0


def test_the_confirmation_lead_is_re_armed_after_a_restart(state_path: Path, opened: list[DeadlineStore]) -> None:
    run_before_restart(state_path, opened, QUOTE_STEPS)
    engine = restarted(state_path, opened, T0 + 30, tot_lead="10s")
    (due,) = engine.advance(T0 + 55)
    assert brief([due]) == [
        (
            T0 + 50,
            "firing",
            "RfqConfirmationDue",
            "warning",
            {"desk": "alpha", "venue": TOT, "quote_id": "q1", "rfq_id": "rfq-1"},
        )
    ]
    assert [
        (t.ts, t.status, t.alertname) for t in engine.ingest(TOT, [quote("q1", QuoteStatus.CONFIRMED)], T0 + 56)
    ] == [(T0 + 56, "resolved", "RfqConfirmationDue")]


# ---- the store itself --------------------------------------------------------------------------


def test_store_writes_upserts_and_deletes_in_batches(state_path: Path, opened: list[DeadlineStore]) -> None:
    store = open_store(state_path, opened)
    store.write({})  # nothing to do
    store.write({O1.key: O1, Q1.key: Q1})
    moved = PersistedDeadline("activation", PX, "o1", T0 + 20, {"desk": "beta", "placed_at": repr(T0 + 10)})
    store.write({O1.key: moved, Q1.key: None, ("activation", PX, "never-stored"): None})
    assert open_store(state_path, opened).load() == [moved]  # a second connection reads it (WAL)


def test_store_skips_rows_it_cannot_read(state_path: Path, opened: list[DeadlineStore]) -> None:
    open_store(state_path, opened).write({O1.key: O1})
    with sqlite3.connect(state_path) as db:
        db.executemany(
            "INSERT INTO watchdog_deadlines (kind, venue, subject, due, data) VALUES (?, ?, ?, ?, ?)",
            [
                ("activation", PX, "not-json", T0, "{not json"),
                ("activation", PX, "a-list", T0, '["desk"]'),
                ("activation", PX, "not-strings", T0, '{"desk": 1}'),
                ("activation", PX, "bad-due", "soon", "{}"),
            ],
        )
    db.close()
    assert open_store(state_path, opened).load() == [O1]


def test_store_says_which_row_it_skipped(
    state_path: Path, opened: list[DeadlineStore], caplog: pytest.LogCaptureFixture
) -> None:
    open_store(state_path, opened)
    with sqlite3.connect(state_path) as db:
        db.execute(
            "INSERT INTO watchdog_deadlines (kind, venue, subject, due, data) VALUES (?, ?, ?, ?, ?)",
            ("activation", PX, "o7", T0, "{not json"),
        )
    db.close()
    with caplog.at_level(logging.DEBUG):
        assert open_store(state_path, opened).load() == []
    assert any("o7" in record.getMessage() for record in caplog.records)


def test_an_unreadable_state_file_is_a_store_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not an SQLite database, just text" * 100)
    with pytest.raises(StoreError) as raised:
        DeadlineStore(garbage)
    assert str(raised.value) == f"state file {garbage}: file is not a database"
    with pytest.raises(StoreError, match=r"^state file .*: unable to open database file$"):
        DeadlineStore(tmp_path)  # a directory


@pytest.mark.parametrize(
    "record",
    [
        PersistedDeadline("activation", PX, "o1", T0 + 10, {"desk": "alpha", "placed_at": "yesterday"}),
        PersistedDeadline("rfq-confirmation", TOT, "q1", T0 + 10, {"desk": "alpha", "accepted_at": "yesterday"}),
    ],
    ids=["activation", "rfq-confirmation"],
)
def test_a_stored_row_with_an_unparsable_time_does_not_stop_the_start(
    record: PersistedDeadline, state_path: Path, opened: list[DeadlineStore]
) -> None:
    open_store(state_path, opened).write({record.key: record})
    engine = restarted(state_path, opened, T0 + 5)  # raises ValueError today
    assert engine.next_deadline() == T0 + 10  # the deadline itself is intact: still watched


def test_a_restored_quote_of_a_venue_no_longer_configured_is_dropped(
    state_path: Path, opened: list[DeadlineStore]
) -> None:
    gone = PersistedDeadline("rfq-confirmation", "old-totalis", "q9", T0 + 60, {"desk": "alpha"})
    open_store(state_path, opened).write({gone.key: gone})
    engine = restarted(state_path, opened, T0 + 90)
    assert engine.watchdogs.rfq.pending("old-totalis") == 0
    assert engine.advance(T0 + 90) == []
    assert engine.take_actions() == []


# ---- critical activation verdicts across a restart -------------------------------------------------


def critical_before_restart(*, keep_placed_at: bool = True) -> StoredAlert:
    """o1 placed at T0, never activated, its REST lookup unanswered: critical at T0 + 31, kept by the state file."""
    before = new_engine()
    before.alerts.restore([])
    before.start(T0)
    before.ingest(PX, [intake("o1", T0)], T0, is_frame=False)
    before.advance(T0 + 10)
    (critical,) = before.advance(T0 + 31)
    assert (critical.severity, critical.labels["outcome"]) == ("critical", "lookup_failed")
    stored = before.alerts.stored(critical.fingerprint)
    assert stored is not None
    if not keep_placed_at:  # as an older version kept it
        annotations = {k: v for k, v in stored.annotations.items() if k != "placed_at"}
        stored = msgspec.structs.replace(stored, annotations=annotations)
    return stored


@pytest.mark.parametrize("keep_placed_at", [True, False], ids=["placed_at kept", "older alert"])
def test_a_critical_activation_verdict_restored_firing_is_answered_by_the_venue_after_the_restart(
    keep_placed_at: bool,
) -> None:
    stored = critical_before_restart(keep_placed_at=keep_placed_at)
    engine = new_engine()
    engine.alerts.restore([stored])
    engine.start(T0 + 100)
    assert engine.advance(T0 + 100) == []
    out = engine.ingest(PX, [order("o1", OrderStatus.OPEN, sequence=2)], T0 + 101)
    assert [(t.status, t.severity, t.labels["outcome"]) for t in out] == [
        ("resolved", "critical", "lookup_failed"),
        ("firing", "warning", "activated_late"),
    ]
    resolved, late = out
    assert (resolved.fingerprint, resolved.starts_at) == (stored.fingerprint, T0 + 31)
    assert resolved.annotations["resolution"] == "the venue now reports open"
    # The placement time comes from the alert; an older alert's is its deadline's, less the timeout
    # (it fired once the lookup also went unanswered, 21 s after the deadline).
    placed_at = T0 if keep_placed_at else T0 + 21
    assert late.annotations["placed_at"] == at(placed_at)
    assert engine.watchdogs.activation.latency[PX].sum == T0 + 101 - placed_at
    assert [a.severity for a in engine.alerts.active() if a.alertname == "OrderActivationTimeout"] == ["warning"]
