"""The alerting shell around the pure notifier: silences kept in the state file, one timer for
group waits, repeats and silence expiries, console lines, and the durable delivery.

The engine task hands it every alert transition (`observe`, synchronous and cheap); everything
slow (SQLite, HTTP) happens on other tasks or threads, so alerting never holds up the engine.
It is also what the silence HTTP API and `riskmon silence` talk to.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.alerts.silences import Silence, Silences, SilenceState
from riskmon.clock import Clock
from riskmon.config.schema import MonitorConfig
from riskmon.notify.notifier import Notifier
from riskmon.runtime.deadline_timer import DeadlineTimer
from riskmon.runtime.delivery_process import DeliveryProcess
from riskmon.store.deadlines import StoreError
from riskmon.store.silences import SilenceStore

log = logging.getLogger(__name__)

# Expired silences stay listed this long (as Alertmanager keeps them for its retention), then go.
_KEEP_EXPIRED = 5 * 86400.0


class AlertPipeline:
    def __init__(
        self,
        config: MonitorConfig,
        clock: Clock,
        *,
        console: TextIO | None = None,
    ) -> None:
        self._clock = clock
        self._path = config.state.path
        self._console = console
        self.silences = Silences()
        self.notifier = Notifier(config, self.silences)
        self.delivery = DeliveryProcess(
            config.state.outbox_path, config.receivers, config.delivery, clock, adopt_from=config.state.path
        )
        self._timer = DeadlineTimer(clock, self.notifier.next_due, self._flush)
        self._store: SilenceStore | None = None
        # The store's connection takes one caller at a time; two API writes may overlap.
        self._store_lock = asyncio.Lock()
        # Called after each flush of the notifier, so the state file saves what its groups now hold.
        self.flushed: Callable[[], None] | None = None

    async def start(self) -> None:
        try:
            self._store = await asyncio.to_thread(SilenceStore, self._path)
            stored = await asyncio.to_thread(self._store.load)
        except StoreError as exc:
            log.error("silences will not survive a restart: %s", exc)
            self._store, stored = None, []
        self.silences.load(stored)
        gone = self.silences.prune(self._clock.now(), _KEEP_EXPIRED)
        if gone and self._store is not None:
            await asyncio.to_thread(self._store.delete, gone)
        await self.delivery.start()
        self.notifier.mutes_changed(self._clock.now())
        self._timer.rearm()

    async def stop(self) -> None:
        self._timer.cancel()
        self._flush()
        self._timer.cancel()
        await self.delivery.stop()
        if self._store is not None:
            store, self._store = self._store, None
            await asyncio.to_thread(store.close)

    def observe(self, transitions: Sequence[AlertTransition]) -> None:
        if transitions:
            now = self._clock.now()
            self.notifier.observe(transitions, now)
            if (due := self.notifier.next_due()) is not None and due <= now:
                self._flush()  # group_wait 0: out now, not at the next loop turn
        self._timer.rearm()

    def reload(self, config: MonitorConfig) -> None:
        self.notifier.reload(config, self._clock.now())
        self.delivery.reload(config.receivers, config.delivery)
        self._timer.rearm()

    # The silence API (riskmon.runtime.silence_api.SilenceApi) ------------------------------------

    async def add(
        self, matchers: Sequence[str], *, starts_at: float | None, ends_at: float, created_by: str, comment: str
    ) -> Silence:
        silence = self.silences.add(
            matchers,
            starts_at=starts_at,
            ends_at=ends_at,
            created_by=created_by,
            comment=comment,
            now=self._clock.now(),
        )
        await self._persist(silence)
        return silence

    async def expire(self, silence_id: str) -> Silence:
        silence = self.silences.expire(silence_id, self._clock.now())
        await self._persist(silence)
        return silence

    def get(self, silence_id: str) -> Silence | None:
        return self.silences.get(silence_id)

    def list(self, state: SilenceState | None) -> list[Silence]:
        return self.silences.list(self._clock.now(), state)

    async def _persist(self, silence: Silence) -> None:
        self.notifier.mutes_changed(self._clock.now())
        self._flush()
        if self._store is None:
            log.warning("silence %s is in effect but will not survive a restart (no state file)", silence.id)
            return
        try:
            async with self._store_lock:
                await asyncio.to_thread(self._store.save, silence)
        except StoreError as exc:
            log.error("silence %s is in effect but could not be saved: %s", silence.id, exc)

    def _flush(self) -> None:
        due = self.notifier.due(self._clock.now())
        if due.console:
            stream = self._console or sys.stdout
            stream.write("".join(line + "\n" for line in due.console))
            stream.flush()
        self.delivery.submit(due.outgoing)
        self._timer.rearm()
        if self.flushed is not None:
            self.flushed()
