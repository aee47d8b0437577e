"""The state file for the runtime: restore before the venues connect, then batched writes.

All SQLite work runs on one worker thread, so the event loop never waits on the disk and writes
never overlap. After an engine step the Monitor calls after_step(); when no write is in flight it
starts one with everything the engine journaled since the last, and while one is in flight the
engine's journal coalesces what follows (a key changed a thousand times is written once). A write
that fails is logged once and its batch retried ahead of the next one; the engine never waits and
never sees the error. A file that cannot be opened or read is reported once and monitoring goes on
from empty state without persistence, leaving the file as it is for an operator to inspect.

Alert states (the engine's AlertTracker) and the notifier's groups go in the same batches, behind
a barrier (riskmon.store.alert_states explains why): a batch is taken and its books written, then
every notification submitted to the outbox before the take is committed, then its alert states
written with the revision they are as of. Each batch of notifications carries the states it
reflects into the outbox, stamped with the next revision (`_stamp`); on open, the outbox's rows
newer than the state file's are laid over it and saved with the first write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Protocol, TypeVar

from riskmon.alerts.grouping import GroupId, StoredGroup
from riskmon.alerts.lifecycle import AlertTransition
from riskmon.config.schema import StateConfig
from riskmon.engine.engine import Engine
from riskmon.engine.state_journal import AlertStateChanges, StateChanges
from riskmon.notify.notifier import AlertStateStamp
from riskmon.notify.outbox_states import StateRows, StateRowsUnreadable, read_state_rows
from riskmon.store.alert_states import decode_state_rows, overlay, state_rows
from riskmon.store.state import StateStore, StoreError
from riskmon.watchdogs.journal import JournalKey, PersistedDeadline

log = logging.getLogger(__name__)

# A failing disk must not grow memory without bound: past this many unwritten fill steps the
# backlog is dropped (loudly); positions and orders are absolute, so the next writes repair them.
_RETRY_FILL_STEPS = 1_000_000
_T = TypeVar("_T")
Deadlines = dict[JournalKey, PersistedDeadline | None]
# How long close() waits for the outbox before it gives up writing the last alert states.
_BARRIER_ON_CLOSE_S = 5.0
# How long open() waits for a previous run's delivery process to let go of the outbox (as a new one does).
_OUTBOX_WAIT_S = 15.0


class NotificationGroupsJournal(Protocol):
    """The notifier's side of the state file (riskmon.notify.notifier.Notifier)."""

    def restore(self, groups: Iterable[StoredGroup], firing: Iterable[AlertTransition]) -> None: ...

    def changed(self) -> bool: ...

    def take_changes(self) -> dict[GroupId, StoredGroup | None]: ...

    stamp_alert_states: AlertStateStamp | None


async def _no_barrier() -> None:
    return None


class StatePersistence:
    def __init__(
        self,
        engine: Engine,
        config: StateConfig,
        *,
        notifier: NotificationGroupsJournal | None = None,
        outbox_committed: Callable[[], Awaitable[None]] = _no_barrier,
    ) -> None:
        """`outbox_committed` returns once every notification submitted so far is in the outbox."""
        self._engine = engine
        self._config = config
        self._notifier = notifier
        self._outbox_committed = outbox_committed
        self._executor: ThreadPoolExecutor | None = None
        self._store: StateStore | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._settler: asyncio.Task[None] | None = None
        self._backlog: tuple[StateChanges, Deadlines, int] | None = None
        self._revision = 0  # the last revision stamped on alert states handed to the outbox
        self._confirmed = 0  # the revision the state file's alert states are as of
        self._restored_from_outbox = False  # alert states restored from the outbox, not yet taken to write
        self.restored = False  # the state file was read into the engine (False: running without one)
        self.restore_seconds: float | None = None
        self.batches_written = 0
        self.fill_steps_written = 0
        self.write_failures = 0

    @property
    def persisting(self) -> bool:
        return self._store is not None

    async def _run(self, call: Callable[..., _T], *args: object) -> _T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="riskmon-state")
        return await asyncio.get_running_loop().run_in_executor(self._executor, call, *args)

    async def open(self) -> list[PersistedDeadline]:
        """Read the state file into the engine (before engine.start); returns the deadlines to re-arm."""
        started = time.perf_counter()
        try:
            store = await self._run(StateStore, self._config.path, self._config.fill_retention)
        except StoreError as exc:
            log.error("monitoring without persistence (nothing will survive a restart): %s", exc)
            return []
        try:
            snapshot = await self._run(store.load)
            revision = await self._run(store.alerts_revision)
        except StoreError as exc:
            log.error("could not restore state; monitoring from empty state, without persistence: %s", exc)
            await self._run(store.close)
            return []
        newer, newest = await self._outbox_alert_states(revision)
        overlay(snapshot.alerts, newer)
        self._confirmed = revision
        self._revision = max(revision, newest)
        if newer:
            self._backlog = (StateChanges(alerts=newer), {}, newest)  # the first write saves them
            self._restored_from_outbox = True
        self._engine.restore(snapshot)
        self._engine.alerts.restore(snapshot.alerts.alerts)
        if self._notifier is not None:
            self._notifier.restore(snapshot.alerts.groups, self._engine.alerts.firing())
            self._notifier.stamp_alert_states = self._stamp
        self._store = store
        self.restored = True
        self.restore_seconds = time.perf_counter() - started
        log.info(
            "restored state from %s in %.3f s: %d order(s), %d quote(s), %d position(s), %d deadline(s),"
            " %d alert(s), %d notification group(s) (%d alert state(s) newer in the outbox)",
            self._config.path,
            self.restore_seconds,
            len(snapshot.orders),
            len(snapshot.quotes),
            len(snapshot.positions),
            len(snapshot.deadlines),
            len(snapshot.alerts.alerts),
            len(snapshot.alerts.groups),
            len(newer.alerts) + len(newer.groups),
        )
        self._settler = asyncio.get_running_loop().create_task(self._settle_restored_fills())
        return snapshot.deadlines

    async def _outbox_alert_states(self, after: int) -> tuple[AlertStateChanges, int]:
        """The alert states the outbox committed after the state file's revision `after`, and the newest revision."""
        path = self._config.outbox_path
        try:
            rows = await self._run(partial(read_state_rows, path, after, wait=_OUTBOX_WAIT_S))
        except StateRowsUnreadable as exc:
            # The delivery process will not open it either; the state file's alert states stand.
            log.error("alert states in the outbox not read; restoring the state file's: %s", exc)
            return AlertStateChanges(), 0
        return decode_state_rows(rows, path)

    def _stamp(self, fingerprints: Collection[str], groups: Mapping[GroupId, StoredGroup | None]) -> StateRows:
        """The notifier hands messages to the outbox: the states they reflect, with the next revision."""
        self._revision += 1
        tracker = self._engine.alerts
        return state_rows(self._revision, self._confirmed, {fp: tracker.stored(fp) for fp in fingerprints}, groups)

    async def _settle_restored_fills(self) -> None:
        """Index the restored fill history stream by stream between events; an event on a stream
        not indexed yet indexes it at once, so this only moves the work off the first fill."""
        while True:
            if not self._engine.ledger.settle_next():
                return
            await asyncio.sleep(0)  # one stream at a time: events go in between

    def after_step(self) -> None:
        """An engine step is done: write what it changed, unless a write is in flight (then later)."""
        if self._store is None:
            self._engine.take_journal()  # no file to write them to: keep the journal from growing
            return
        if (self._flusher is None or self._flusher.done()) and self._has_changes():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    def _has_changes(self) -> bool:
        return (
            self._restored_from_outbox
            or self._engine.has_changes_to_persist()
            or self._engine.alerts.changed()
            or (self._notifier is not None and self._notifier.changed())
        )

    async def drain(self) -> None:
        """Return once everything journaled so far is written (or has failed): for tests and stop."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)
            self.after_step()

    async def _flush(self) -> None:
        while (batch := self._take()) is not None:
            store = self._store
            if store is None:
                return
            changes, deadlines, revision = batch
            # The books first, without waiting for the outbox: a crash during the wait then restores
            # books at least as new as the alert states the outbox holds, so a restored alert is not
            # judged against books from before the fill that raised it.
            alerts, changes.alerts = changes.alerts, AlertStateChanges()
            try:
                if changes or deadlines:
                    await self._run(store.write, changes, deadlines)
            except Exception as exc:
                changes.alerts = alerts
                self._failed(changes, deadlines, revision, exc)
                return  # the next engine step tries again
            self.fill_steps_written += len(changes.fills)
            if alerts:
                try:
                    await self._outbox_committed()
                    await self._run(partial(store.write, StateChanges(alerts=alerts), alerts_revision=revision))
                except Exception as exc:
                    self._failed(StateChanges(alerts=alerts), {}, revision, exc)
                    return
                self._confirmed = revision
            self.batches_written += 1
            log.debug("state: wrote %d fill step(s), %d deadline change(s)", len(changes.fills), len(deadlines))

    def _take(self) -> tuple[StateChanges, Deadlines, int] | None:
        """What changed since the last take, and the revision its alert states are as of."""
        revision = self._revision
        self._restored_from_outbox = False
        changes = self._engine.take_state_changes()
        deadlines = self._engine.take_journal()
        changes.alerts = AlertStateChanges(
            self._engine.alerts.take_changes(), self._notifier.take_changes() if self._notifier is not None else {}
        )
        if self._backlog is not None:
            older, older_deadlines, older_revision = self._backlog
            self._backlog = None
            older.merge(changes)
            older_deadlines.update(deadlines)
            changes, deadlines, revision = older, older_deadlines, max(older_revision, revision)
        if not changes and not deadlines:
            return None
        return changes, deadlines, revision

    def _failed(self, changes: StateChanges, deadlines: Deadlines, revision: int, exc: Exception) -> None:
        self.write_failures += 1
        if len(changes.fills) > _RETRY_FILL_STEPS:
            log.error(
                "state file %s: dropped %d unwritten fill step(s) after repeated failures; a restart will"
                " restore older fills: %s",
                self._config.path,
                len(changes.fills),
                exc,
            )
            changes.fills = []
        else:
            log.error("state file %s: a write failed, retrying with the next batch: %s", self._config.path, exc)
        self._backlog = (changes, deadlines, revision)

    async def close(self) -> None:
        """Write what is left and close the file (the Monitor's stop)."""
        if self._settler is not None:
            self._settler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._settler
        if self._flusher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        store = self._store
        if store is not None:
            batch = self._take()
            if batch is not None:
                changes, deadlines, revision = batch
                alerts_revision: int | None = None
                if changes.alerts:
                    try:
                        await asyncio.wait_for(self._outbox_committed(), _BARRIER_ON_CLOSE_S)
                        alerts_revision = revision
                    except TimeoutError:
                        # Their notifications may not be in the outbox: the restart owes them again.
                        log.error(
                            "state file %s: the outbox did not commit in time; alert states not saved", store.path
                        )
                        changes.alerts = AlertStateChanges()
                try:
                    await self._run(partial(store.write, changes, deadlines, alerts_revision=alerts_revision))
                except Exception as exc:
                    log.error(
                        "state file %s: the last write failed; a restart restores older state: %s",
                        self._config.path,
                        exc,
                    )
            self._store = None
            await self._run(store.close)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
