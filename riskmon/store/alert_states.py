"""Alert states and notification groups in the state file, so a restart neither re-fires an alert
that was already firing (a new episode, a new idempotency key) nor forgets to announce the
resolution of one the receivers were told about.

Two tables beside the engine's books, written inside the StateStore's batch transaction: one row
per active alert (AlertTracker: status, fingerprint, startsAt, the `for` or event-resolve deadline,
value, annotations) and one per notification group (what it last told its receiver, its timers,
its episode and sequence). Rows are msgpack bodies keyed by fingerprint or (route, group key).

Ordering against the outbox: a barrier. The runtime (riskmon.runtime.persistence) takes the
alert states of a batch, then waits until every notification submitted to the outbox before that
take is committed, and only then writes the batch. So a stored group that says "told" always has
its notification in the outbox, and a stored "firing" alert always has either that notification
or a group that still owes it. A crash between the outbox commit and the state write leaves the
older state: the restarted notifier owes the notification again and re-derives it with the same
idempotency key (a function of the group's episode, sequence and each alert's fingerprint,
startsAt and status), which the outbox and the receiver drop as a duplicate.

An unreadable row is skipped with a warning naming its table (never its contents): one alert
re-firing as a new episode beats refusing the whole state file.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import msgspec

from riskmon.alerts.grouping import StoredGroup
from riskmon.alerts.lifecycle import StoredAlert
from riskmon.engine.state_journal import AlertStateChanges, AlertStateSnapshot

log = logging.getLogger(__name__)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS alert_states (fingerprint TEXT PRIMARY KEY, body BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS notification_groups (route_id TEXT NOT NULL, group_key TEXT NOT NULL,"
    " body BLOB NOT NULL, PRIMARY KEY (route_id, group_key)) WITHOUT ROWID",
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
        try:
            snapshot.alerts.append(_alert_decoder.decode(body))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("state file %s (table alert_states): skipped a row: %s", path, type(exc).__name__)
    for (body,) in db.execute("SELECT body FROM notification_groups"):
        try:
            snapshot.groups.append(_group_decoder.decode(body))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("state file %s (table notification_groups): skipped a row: %s", path, type(exc).__name__)
    snapshot.groups.sort(key=lambda g: g.order)
    return snapshot


def write_alert_state_changes(db: sqlite3.Connection, changes: AlertStateChanges) -> None:
    """Apply changes (None deletes) inside the caller's transaction."""
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
