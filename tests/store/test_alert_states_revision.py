"""Alert states in the outbox beside the state file's: revisions, the overlay on restore, and
pruning once the state file holds them (riskmon.store.alert_states)."""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from riskmon.alerts.grouping import StoredGroup
from riskmon.alerts.lifecycle import StoredAlert
from riskmon.alerts.routing import Route
from riskmon.engine.state_journal import AlertStateChanges, AlertStateSnapshot, StateChanges
from riskmon.notify.outbox import Outbox
from riskmon.notify.outbox_states import read_state_rows
from riskmon.store.alert_states import decode_state_rows, overlay, state_rows
from riskmon.store.state import StateStore

T0 = 1_700_000_000.0
ROW = ("hook", '{}:{desk="a"}', "key-1", b"{}")


def alert(fp: str, fired_at: float | None = T0) -> StoredAlert:
    return StoredAlert(
        fp,
        "ExposureLimitBreach",
        "critical",
        {"desk": fp},
        {"summary": "over"},
        "firing",
        T0,
        fired_at,
        3.0,
        False,
        None,
    )


def group(key: str, order: int, sequence: int) -> StoredGroup:
    [match] = Route.from_dict({"receiver": "hook", "group_by": ["desk"]}).route({"desk": key})
    return StoredGroup(order, match, T0, T0 + 60, [], [], T0, 0, 0, T0, sequence)


def test_the_state_file_keeps_the_revision_its_alert_states_are_as_of(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    assert store.alerts_revision() == 0
    store.write(StateChanges(alerts=AlertStateChanges({"a": alert("a")})), alerts_revision=4)
    store.write(StateChanges(alerts=AlertStateChanges({"a": None})))  # no revision: the stored one stays
    assert store.alerts_revision() == 4
    store.write(StateChanges(), alerts_revision=9)  # a revision alone is written too
    store.close()
    reopened = StateStore(tmp_path / "state.db")
    assert reopened.alerts_revision() == 9
    assert reopened.load().alerts.alerts == []
    reopened.close()


def test_rows_commit_with_their_batch_and_read_back_newer_than_a_revision(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db", sync="normal")
    g = group("a", 1, 1)
    key = (g.match.route_id, g.match.group_key)
    outbox.enqueue_many([ROW], T0, [state_rows(3, 0, {"a": alert("a"), "b": None}, {key: g})])
    later = alert("a", fired_at=T0 + 5)
    outbox.enqueue_many([(*ROW[:2], "key-2", b"{}")], T0, [state_rows(4, 0, {"a": later}, {})])
    outbox.close()

    rows = read_state_rows(tmp_path / "o.db", 3, wait=0)
    assert [(fp, rev) for fp, rev, _ in rows.alerts] == [("a", 4)]  # the latest commit per key only
    assert rows.groups == []  # revision 3 is not newer than 3
    changes, newest = decode_state_rows(read_state_rows(tmp_path / "o.db", 0, wait=0), tmp_path / "o.db")
    assert (changes.alerts, changes.groups, newest) == ({"a": later, "b": None}, {key: g}, 4)


def test_a_commit_drops_the_rows_the_state_file_confirmed(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db", sync="normal")
    outbox.enqueue_many([ROW], T0, [state_rows(1, 0, {"a": alert("a")}, {})])
    outbox.enqueue_many([(*ROW[:2], "key-2", b"{}")], T0, [state_rows(2, 0, {"b": alert("b")}, {})])
    outbox.enqueue_many([(*ROW[:2], "key-3", b"{}")], T0, [state_rows(3, 2, {"c": None}, {})])
    outbox.close()
    with closing(sqlite3.connect(tmp_path / "o.db")) as db:
        assert db.execute("SELECT fingerprint, revision FROM outbox_alert_states").fetchall() == [("c", 3)]
        assert db.execute("SELECT COUNT(*) FROM notify_outbox").fetchall() == [(3,)]


def test_a_batch_that_fails_commits_neither_messages_nor_states(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db", sync="normal")
    with closing(sqlite3.connect(tmp_path / "o.db")) as db:
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON outbox_alert_states BEGIN SELECT RAISE(ABORT, 'no'); END")
        db.commit()
    with pytest.raises(Exception, match="no"):
        outbox.enqueue_many([ROW], T0, [state_rows(1, 0, {"a": alert("a")}, {})])
    assert outbox.counts() == {}
    outbox.close()


def test_no_outbox_or_one_from_before_the_state_rows_reads_as_none(tmp_path: Path) -> None:
    assert read_state_rows(tmp_path / "missing.db", 0, wait=0).alerts == []
    assert not (tmp_path / "missing.db").exists()
    with closing(sqlite3.connect(tmp_path / "old.db")) as db:
        db.execute("CREATE TABLE notify_outbox (id INTEGER PRIMARY KEY)")
    rows = read_state_rows(tmp_path / "old.db", 0, wait=0)
    assert (rows.alerts, rows.groups) == ([], [])


def test_an_unreadable_outbox_row_is_skipped_by_name_not_contents(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(tmp_path / "o.db", sync="normal")
    outbox.enqueue_many([ROW], T0, [state_rows(1, 0, {"a": alert("a"), "b": alert("b")}, {})])
    outbox.close()
    with closing(sqlite3.connect(tmp_path / "o.db")) as db:
        db.execute("UPDATE outbox_alert_states SET body = x'c1c1c1' WHERE fingerprint = 'b'")
        db.commit()
    with caplog.at_level(logging.WARNING):
        changes, newest = decode_state_rows(read_state_rows(tmp_path / "o.db", 0, wait=0), tmp_path / "o.db")
    assert (list(changes.alerts), newest) == (["a"], 1)
    assert [r.getMessage() for r in caplog.records] == [
        f"outbox {tmp_path / 'o.db'} (table outbox_alert_states): skipped a row: DecodeError"
    ]


def test_overlay_replaces_drops_and_adds_by_key_keeping_group_order() -> None:
    g1, g2, g3 = group("a", 1, 1), group("b", 2, 1), group("c", 3, 1)
    snapshot = AlertStateSnapshot([alert("a"), alert("b")], [g1, g2])
    newer_g1 = group("a", 1, 2)
    overlay(
        snapshot,
        AlertStateChanges(
            {"a": None, "c": alert("c"), "b": alert("b", fired_at=T0 + 1)},
            {(g2.match.route_id, g2.match.group_key): None, (g3.match.route_id, g3.match.group_key): g3,
             (g1.match.route_id, g1.match.group_key): newer_g1},
        ),
    )  # fmt: skip
    assert sorted((a.fingerprint, a.fired_at) for a in snapshot.alerts) == [("b", T0 + 1), ("c", T0)]
    assert snapshot.groups == [newer_g1, g3]
