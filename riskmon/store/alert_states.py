"""Alert states and notification groups in the state file, so a restart neither re-fires an alert
that was already firing (a new episode, a new idempotency key) nor forgets to announce the
resolution of one the receivers were told about.

Two tables beside the engine's books, one row per active alert (AlertTracker: status,
fingerprint, startsAt, the `for` or event-resolve deadline, value, annotations) and one per
notification group (what it last told its receiver, its timers, its episode and sequence). Rows
are msgpack bodies keyed by fingerprint or (route, group key). A third holds the revision they
are as of.

Ordering against the outbox, which is another SQLite file written by another process:

- Revisions. Each flush of the notifier that hands messages to the outbox stamps the alert and
  group states those messages reflect (each alert in them, as the tracker holds it then, and each
  group flushed) with the next revision, and the outbox commits them in the messages' own
  transaction. A state file write says which revision its alert states are as of: the last one
  stamped when its batch was taken (the engine is one task, so every flush up to it came before).
- A barrier. A batch's alert states are written only once every notification submitted before
  the take is committed, so a stored group that says "told" always has its notification in the
  outbox. The engine's books are written first, without waiting (riskmon.runtime.persistence).
- Restore. The state file is read, then (once the previous run's delivery process has let go of
  the outbox: it commits what it was handed after its engine process died) every outbox row with
  a revision above the file's overrides the file's row for its key: the outbox saw that alert or
  group change after the file's last write. Revisions go on past the newest in either file.
  A crash anywhere thus restores, per key, the newer of the two: after a crash between the
  outbox commit and the state write the alert that fired is known, with its startsAt, and its
  group knows it told the receiver, so nothing fires again as a new episode, and the resolution
  later goes out in the same episode. A notification whose state did not reach the
  outbox either is owed again and re-derived with the same idempotency key (a function of the
  group's episode, sequence and each alert's fingerprint, startsAt and status), which the outbox
  and the receiver drop. The overridden rows go into the state file with the first write, whose
  revision makes them obsolete; the outbox drops obsolete rows with its next commit.

The restore does not cover alert states that changed without a notification (a pending alert, a
muted one) after the state file's last write: they restore as of that write, as before.

An unreadable row is skipped with a warning naming its table (never its contents): one alert
re-firing as a new episode beats refusing the whole state file.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

import msgspec

from riskmon.alerts.grouping import GroupId, StoredGroup
from riskmon.alerts.lifecycle import StoredAlert
from riskmon.engine.state_journal import AlertStateChanges, AlertStateSnapshot
from riskmon.notify.outbox_states import StateRows, StoredStateRows

log = logging.getLogger(__name__)
_T = TypeVar("_T")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS alert_states (fingerprint TEXT PRIMARY KEY, body BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS notification_groups (route_id TEXT NOT NULL, group_key TEXT NOT NULL,"
    " body BLOB NOT NULL, PRIMARY KEY (route_id, group_key)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS alert_states_revision (one INTEGER PRIMARY KEY CHECK (one = 1),"
    " revision INTEGER NOT NULL)",
)

_encoder = msgspec.msgpack.Encoder()
_alert_decoder = msgspec.msgpack.Decoder(StoredAlert)
_group_decoder = msgspec.msgpack.Decoder(StoredGroup)


def create_alert_state_tables(db: sqlite3.Connection) -> None:
    for statement in _SCHEMA:
        db.execute(statement)


def read_alert_states(db: sqlite3.Connection, path: Path) -> AlertStateSnapshot:
    snapshot = AlertStateSnapshot()
    for (body,) in db.execute("SELECT body FROM alert_states"):
        if (alert := _decoded(_alert_decoder, body, f"state file {path}", "alert_states")) is not None:
            snapshot.alerts.append(alert)
    for (body,) in db.execute("SELECT body FROM notification_groups"):
        if (group := _decoded(_group_decoder, body, f"state file {path}", "notification_groups")) is not None:
            snapshot.groups.append(group)
    snapshot.groups.sort(key=lambda g: g.order)
    return snapshot


def read_alert_states_revision(db: sqlite3.Connection) -> int:
    """The revision the stored alert states are as of (0: none stamped yet)."""
    row = db.execute("SELECT revision FROM alert_states_revision").fetchone()
    return 0 if row is None else int(row[0])


def write_alert_state_changes(db: sqlite3.Connection, changes: AlertStateChanges, revision: int | None = None) -> None:
    """Apply changes (None deletes) inside the caller's transaction; `revision`: what they are as of."""
    if changes.alerts:
        gone = [(fp,) for fp, alert in changes.alerts.items() if alert is None]
        kept = [(fp, _encoder.encode(alert)) for fp, alert in changes.alerts.items() if alert is not None]
        if gone:
            db.executemany("DELETE FROM alert_states WHERE fingerprint = ?", gone)
        if kept:
            db.executemany("INSERT OR REPLACE INTO alert_states VALUES (?, ?)", kept)
    if changes.groups:
        ended = [key for key, group in changes.groups.items() if group is None]
        held = [(*key, _encoder.encode(group)) for key, group in changes.groups.items() if group is not None]
        if ended:
            db.executemany("DELETE FROM notification_groups WHERE route_id = ? AND group_key = ?", ended)
        if held:
            db.executemany("INSERT OR REPLACE INTO notification_groups VALUES (?, ?, ?)", held)
    if revision is not None:
        db.execute("INSERT OR REPLACE INTO alert_states_revision VALUES (1, ?)", (revision,))


def state_rows(
    revision: int,
    confirmed: int,
    alerts: Mapping[str, StoredAlert | None],
    groups: Mapping[GroupId, StoredGroup | None],
) -> StateRows:
    """The states a flush's messages reflect, encoded for the outbox (which never decodes them)."""
    return StateRows(
        revision,
        confirmed,
        tuple((fp, None if alert is None else _encoder.encode(alert)) for fp, alert in alerts.items()),
        tuple((*key, None if group is None else _encoder.encode(group)) for key, group in groups.items()),
    )


def decode_state_rows(rows: StoredStateRows, path: Path) -> tuple[AlertStateChanges, int]:
    """The outbox's newer rows as changes to lay over the state file's, and the newest revision."""
    changes = AlertStateChanges()
    newest = 0
    for fp, revision, body in rows.alerts:
        alert = None if body is None else _decoded(_alert_decoder, body, f"outbox {path}", "outbox_alert_states")
        if body is None or alert is not None:
            changes.alerts[fp] = alert
            newest = max(newest, revision)
    for route_id, group_key, revision, body in rows.groups:
        group = None if body is None else _decoded(_group_decoder, body, f"outbox {path}", "outbox_group_states")
        if body is None or group is not None:
            changes.groups[(route_id, group_key)] = group
            newest = max(newest, revision)
    return changes, newest


def overlay(snapshot: AlertStateSnapshot, newer: AlertStateChanges) -> None:
    """Replace (or drop, for None) the snapshot's rows for every key in `newer`, in place."""
    if newer.alerts:
        kept = [a for a in snapshot.alerts if a.fingerprint not in newer.alerts]
        snapshot.alerts = kept + [a for a in newer.alerts.values() if a is not None]
    if newer.groups:
        held = [g for g in snapshot.groups if (g.match.route_id, g.match.group_key) not in newer.groups]
        snapshot.groups = sorted(held + [g for g in newer.groups.values() if g is not None], key=lambda g: g.order)


def _decoded(decoder: msgspec.msgpack.Decoder[_T], body: bytes, where: str, table: str) -> _T | None:
    try:
        return decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.warning("%s (table %s): skipped a row: %s", where, table, type(exc).__name__)
        return None
