"""RFQ confirmation alerts across a restart, through a real state file (StateStore: books, deadlines
and alert states), restored in the runtime's order: books, then alert states, then start().

The watchdog does not persist whether it warned or missed; it takes that from the restored alert
states, so a warning raised before the restart resolves when the quote confirms after it, and a
miss raised before it is neither raised nor counted again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.engine.engine import Engine
from riskmon.engine.state_journal import AlertStateChanges, StateSnapshot
from riskmon.events import QuoteStatus
from riskmon.store.state import StateStore
from tests.watchdogs.conftest import T0, TOT, brief, make_engine, quote

DEADLINE = T0 + 60
QUOTE = {"desk": "alpha", "venue": TOT, "quote_id": "q1", "rfq_id": "rfq-1"}


def new_engine() -> Engine:
    grace = {"feed_down_grace": "1h"}  # keep the startup feed grace out of these timelines
    return make_engine(px=grace, mango=grace, tot={**grace, "confirmation_lead": "10s"})


def first_run() -> Engine:
    engine = new_engine()
    engine.restore(StateSnapshot())  # an empty state file: journal from the start
    engine.alerts.restore([])
    engine.start(T0)
    assert engine.ingest(TOT, [quote("q1", deadline=DEADLINE)], T0 + 3) == []
    return engine


def persist(engine: Engine, path: Path) -> None:
    """What the runtime writes after a step: books, deadlines and alert states in one batch."""
    changes = engine.take_state_changes()
    changes.alerts = AlertStateChanges(engine.alerts.take_changes(), {})
    store = StateStore(path)
    try:
        store.write(changes, engine.take_journal())
    finally:
        store.close()


def restarted(path: Path, now: float) -> Engine:
    store = StateStore(path)
    try:
        snapshot = store.load()
    finally:
        store.close()
    engine = new_engine()
    engine.restore(snapshot)
    engine.alerts.restore(snapshot.alerts.alerts)
    engine.start(now, snapshot.deadlines)
    return engine


def stored_alerts(path: Path) -> list[str]:
    store = StateStore(path)
    try:
        return sorted(a.alertname for a in store.load().alerts.alerts)
    finally:
        store.close()


@pytest.fixture
def warned(tmp_path: Path) -> tuple[Path, AlertTransition]:
    """The due warning fired at deadline - lead, then riskmon was killed."""
    engine = first_run()
    (due,) = engine.advance(T0 + 52)
    assert brief([due]) == [(T0 + 50, "firing", "RfqConfirmationDue", "warning", QUOTE)]
    persist(engine, tmp_path / "state.db")
    return tmp_path / "state.db", due


def test_a_warning_restored_from_the_state_file_resolves_when_the_quote_confirms(
    warned: tuple[Path, AlertTransition],
) -> None:
    path, due = warned
    engine = restarted(path, T0 + 55)
    assert engine.advance(T0 + 55) == []  # not warned twice
    (firing,) = engine.alerts.firing()
    assert (firing.fingerprint, firing.starts_at) == (due.fingerprint, T0 + 50)
    (resolved,) = engine.ingest(TOT, [quote("q1", QuoteStatus.CONFIRMED)], T0 + 56)
    assert brief([resolved]) == [(T0 + 56, "resolved", "RfqConfirmationDue", "warning", QUOTE)]
    assert (resolved.fingerprint, resolved.starts_at, resolved.annotations) == (
        due.fingerprint,
        T0 + 50,
        {**due.annotations, "resolution": "the venue reports it confirmed"},
    )
    assert engine.alerts.active() == []
    persist(engine, path)
    assert stored_alerts(path) == []  # and it does not come back at the next restart
    assert engine.advance(T0 + 3600) == []
    assert engine.watchdogs.rfq.missed[TOT] == 0


def test_a_restored_warning_is_superseded_when_the_deadline_passes_after_the_restart(
    warned: tuple[Path, AlertTransition],
) -> None:
    path, _ = warned
    engine = restarted(path, T0 + 55)
    assert brief(engine.advance(DEADLINE)) == [
        (DEADLINE, "resolved", "RfqConfirmationDue", "warning", QUOTE),
        (DEADLINE, "firing", "RfqConfirmationMissed", "critical", QUOTE),
    ]
    assert engine.watchdogs.rfq.missed[TOT] == 1
    (resolved,) = engine.ingest(TOT, [quote("q1", QuoteStatus.EXPIRED)], DEADLINE + 5)
    assert brief([resolved]) == [(DEADLINE + 5, "resolved", "RfqConfirmationMissed", "critical", QUOTE)]
    assert engine.alerts.active() == []


def test_a_warning_whose_deadline_passed_while_down_is_superseded_at_start(
    warned: tuple[Path, AlertTransition],
) -> None:
    path, _ = warned
    engine = restarted(path, T0 + 90)
    fired = engine.advance(T0 + 90)
    assert brief(fired) == [
        (T0 + 90, "resolved", "RfqConfirmationDue", "warning", QUOTE),
        (T0 + 90, "firing", "RfqConfirmationMissed", "critical", QUOTE),
    ]
    assert fired[1].annotations["missed_while_down"] == "true"
    assert engine.alerts.active()[0].alertname == "RfqConfirmationMissed"


def test_a_miss_restored_from_the_state_file_is_not_missed_again_and_resolves_on_release(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    engine = first_run()
    assert brief(engine.advance(DEADLINE)) == [
        (T0 + 50, "firing", "RfqConfirmationDue", "warning", QUOTE),
        (DEADLINE, "resolved", "RfqConfirmationDue", "warning", QUOTE),
        (DEADLINE, "firing", "RfqConfirmationMissed", "critical", QUOTE),
    ]
    engine.take_actions()
    persist(engine, path)
    assert stored_alerts(path) == ["RfqConfirmationMissed"]

    again = restarted(path, DEADLINE + 100)
    assert again.advance(DEADLINE + 100) == []  # missed before the restart: not raised, counted or reconciled again
    assert again.take_actions() == []
    assert again.watchdogs.rfq.missed[TOT] == 0
    assert again.watchdogs.rfq.pending(TOT) == 1  # still waiting for the venue's word
    (resolved,) = again.ingest(TOT, [quote("q1", QuoteStatus.WITHDRAWN)], DEADLINE + 101)
    assert brief([resolved]) == [(DEADLINE + 101, "resolved", "RfqConfirmationMissed", "critical", QUOTE)]
    assert resolved.starts_at == DEADLINE
    persist(again, path)
    assert stored_alerts(path) == []
