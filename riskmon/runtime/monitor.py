"""The runtime shell: venue sessions -> one engine task -> receivers, plus the HTTP server.

Composition only: every decision is made by the pure engine. The engine runs in one task (the
only writer of state) and its deadlines are served by one re-armed loop timer. After each engine
step the shell carries out the remedies the watchdogs asked for and writes the changed deadlines
to the state file (off the event loop, batched), so a restart re-arms them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from time import perf_counter
from typing import Protocol, TextIO

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.capture import CaptureWriter
from riskmon.clock import Clock, SystemClock
from riskmon.config.loader import ConfigError, load_config
from riskmon.config.schema import MonitorConfig
from riskmon.engine.engine import Engine
from riskmon.events import OrderIntake
from riskmon.metrics import DeliveryCollector, RuntimeCollector, engine_registry, engine_step_histograms
from riskmon.runtime.alerting import AlertPipeline
from riskmon.runtime.deadline_timer import DeadlineTimer
from riskmon.runtime.delivery_process import DeliveryState
from riskmon.runtime.http import HttpServer
from riskmon.runtime.intake import OrderIntakePolicy
from riskmon.runtime.persistence import StatePersistence
from riskmon.runtime.readiness import Readiness, ReadinessCollector, readiness
from riskmon.runtime.reconciler import Reconciler
from riskmon.runtime.reload import RELOAD_PATH, ReloadEndpoint, ReloadOutcome, plan_reload
from riskmon.runtime.remedies import Remedies
from riskmon.runtime.silence_api import SILENCES_PATH, SilenceEndpoint
from riskmon.runtime.state_api import state_mounts
from riskmon.venues.base import Inbound, InboundQueue
from riskmon.venues.registry import AdapterUnavailable, VenueSession, build_codec, build_session

log = logging.getLogger(__name__)

# Engine work between yields to the loop: short enough that a notification's few dozen loop turns
# (outbox write, POST) take milliseconds under load, long enough that yielding costs ~1%.
_ENGINE_SLICE_S = 0.002


class AlertListener(Protocol):
    """Sees every alert transition as the engine makes it (the demo's live view, tests)."""

    def deliver(self, transition: AlertTransition) -> None: ...


class Monitor:
    def __init__(
        self,
        config: MonitorConfig,
        *,
        clock: Clock | None = None,
        record: Path | None = None,
        listeners: Sequence[AlertListener] = (),
        config_path: Path | None = None,
        console: TextIO | None = None,
        http: bool = True,
        http_port: int | None = None,
        inbound_capacity: int = 10_000,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.engine = Engine(config)
        self.registry = engine_registry(self.engine, self.clock)
        # Configured venues whose adapter this build lacks: never ready (/readyz, riskmon_venue_ready).
        self.unavailable_venues: set[str] = set()
        self.registry.register(ReadinessCollector(self.engine, self.unavailable_venues, self._delivery_state))
        self.recent_alerts: deque[AlertTransition] = deque(maxlen=100)
        self._listeners = list(listeners)
        self._config_path = config_path
        # Routing, grouping, silences and the durable delivery of notifications.
        self.alerting = AlertPipeline(config, self.clock, console=console)
        delivery = self.alerting.delivery
        self.registry.register(
            DeliveryCollector(
                delivery.outcomes, delivery.depths, lambda: len(self.alerting.notifier.muted()), delivery.latency
            )
        )
        self._recorder = CaptureWriter(record) if record is not None else None
        # Bounded: a venue faster than the engine is slowed at its socket, never buffered without limit.
        self._inbound = InboundQueue(inbound_capacity)
        # Seconds per engine step and venue: measured with perf_counter, not business time.
        self.engine_seconds = engine_step_histograms()
        self.registry.register(RuntimeCollector(self.engine_seconds, self._inbound.qsize))
        tracked = frozenset(v for v in config.venues if self.engine.watchdogs.activation.tracks(v))
        intake_policy = OrderIntakePolicy(
            venues=tracked,
            untracked_venues=frozenset(config.venues) - tracked,
            desks=frozenset(config.desks),
            token=config.server.token,
        )
        self._http = (
            HttpServer(
                self.registry,
                config.server.host,
                config.server.port if http_port is None else http_port,
                intake=self.declare_order,
                intake_policy=intake_policy,
                mounts={
                    SILENCES_PATH: SilenceEndpoint(self.alerting, config.server.token, clock=self.clock),
                    SILENCES_PATH + "/": SilenceEndpoint(self.alerting, config.server.token, clock=self.clock),
                    RELOAD_PATH: ReloadEndpoint(self.reload, config.server.token),
                    **state_mounts(
                        self.engine, self.alerting.notifier, self.unavailable_venues, self.clock, self._delivery_state
                    ),
                },
            )
            if http
            else None
        )
        # Set after each inbound item is applied, so callers can await progress instead of sleeping.
        self.applied = asyncio.Event()
        self.items_applied = 0  # of the inbound queue's, in its order
        # Set once the HTTP server listens and the sessions and engine run.
        self.started = asyncio.Event()
        self._timer = DeadlineTimer(self.clock, self.engine.next_deadline, self._on_timer)
        self.sessions: list[VenueSession] = []
        for venue in config.venues:
            try:
                codec = build_codec(config, venue)
                self.sessions.append(build_session(config, venue, codec, self._inbound, self.clock))
            except AdapterUnavailable as exc:
                self.unavailable_venues.add(venue)
                log.warning("%s; it is not monitored", exc)
        by_venue = {session.venue: session for session in self.sessions}
        self.reconciler = Reconciler(config, self.engine, by_venue, self._inbound, self.clock)
        self._remedies = Remedies(by_venue, self._inbound, self.clock, self.reconciler.reconcile)
        # Books and deadlines in the state file: restored before the venues connect.
        self.persistence = StatePersistence(
            self.engine,
            config.state,
            notifier=self.alerting.notifier,
            outbox_committed=self.alerting.delivery.drain,
        )
        self.alerting.flushed = self.persistence.after_step  # a group's timer sent: save what it told

    async def declare_order(self, intake: OrderIntake) -> None:
        """The trading system placed an order (HTTP intake): arm its activation watchdog. Returns
        once the watch is in the state file, so an intake answered 202 survives a kill."""
        await self._inbound(Inbound(intake.venue, self.clock.now(), None, [intake]))
        ours = self._inbound.pushed
        while self.items_applied < ours:
            self.applied.clear()
            await self.applied.wait()
        await self.persistence.drain()

    @property
    def http_port(self) -> int | None:
        return self._http.port if self._http is not None else None

    def _delivery_state(self) -> DeliveryState:
        return self.alerting.delivery.state

    def readiness(self) -> Readiness:
        """What /readyz answers: every venue ready and alert delivery started."""
        return readiness(self.engine, self.unavailable_venues, self._delivery_state())

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; then close everything in order.

        A restart's slow parts overlap: the delivery process (a fork server importing httpx and
        riskmon, the slowest; it opens the outbox once the restore has read it) and the venues'
        connects and logins start before the state file loads. Nothing a venue sends is applied
        before the restore: it waits in the bounded inbound queue (a full queue pauses the
        sockets), and the engine loop starts only after the restore, so a replayed fill meets the
        restored ledger and is a duplicate.
        """
        self.alerting.delivery.prepare()
        tasks = [asyncio.create_task(session.run(), name=f"session:{session.venue}") for session in self.sessions]
        stopper = asyncio.create_task(stop.wait())
        try:
            await self._start_engine()
            tasks.append(asyncio.create_task(self._engine_loop(), name="engine"))
            self.started.set()
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            stopper.cancel()
            await self._cancel(tasks)
            self._timer.cancel()
            self.reconciler.shutdown()
            await self._remedies.aclose()
            await self.persistence.close()
            await self.alerting.stop()
            if self._http is not None:
                await self._http.stop()
            if self._recorder is not None:
                self._recorder.close()

    @staticmethod
    async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _start_engine(self) -> None:
        """Restore the state file, load the silences (before the first notification can be
        formed), judge what the restart carried, then serve HTTP."""
        restored = await self.persistence.open()
        await self.alerting.start()
        now = self.clock.now()
        self.engine.start(now, restored)
        if self.persistence.restored:
            # The restored books (open orders, the fill ledger) live as long as the process: keep the
            # cyclic collector from walking them again on every full collection, a 30-50 ms pause of
            # the engine at 100k orders and 1M fills.
            gc.freeze()
        transitions = self.engine.advance(now)
        if self.persistence.restored:
            # Limits are judged when a fill or a mark moves them: judge the restored books and
            # alerts once now, so what the restart carried is not left waiting for a price.
            transitions += self.engine.limits.evaluate_all(self.engine.book, self.engine.alerts, now)
        self._after_step(transitions)
        self.reconciler.start()
        if self._http is not None:
            await self._http.start()
            log.info("serving /metrics on %s:%s", self.config.server.host, self._http.port)

    async def _engine_loop(self) -> None:
        inbound = self._inbound
        ingest = self.engine.ingest
        recorder = self._recorder
        histograms = self.engine_seconds
        while True:
            # One batch: every frame of one socket read (or one report). Each item is its own
            # engine step and publishes its own transitions, so notification grouping sees them
            # exactly as before; re-arming, remedies and the journal run once per slice of the
            # batch, which is the same since nothing else runs in between.
            batch = await inbound.get()
            if recorder is not None:
                # The whole read as received, before any of it is applied: a frame the engine
                # chokes on is in the capture.
                for item in batch:
                    if item.frame is not None:
                        recorder.write(item.received_at, item.venue, item.frame, item.rest)
                    else:
                        recorder.write_report(item.received_at, item.venue, item.events)
            last = batch[-1]
            before = self.items_applied
            # Step times go to the venue's histogram in one call before the loop next yields (a
            # scrape reads them only then), gathered per run of one venue's items.
            venue = batch[0].venue
            steps: list[float] = []
            # One clock read per step: the end of one is the start of the next.
            sliced_at = started = perf_counter()
            for done, item in enumerate(batch, 1):
                if item.venue is not venue:
                    histograms[venue].observe_all(steps)
                    venue, steps = item.venue, []
                rest = item.rest
                transitions = ingest(
                    venue, item.events, item.received_at, is_frame=item.frame is not None and rest is None, source=rest
                )
                ended = perf_counter()
                steps.append(ended - started)
                started = ended
                if transitions:
                    self._publish(transitions)
                    started = perf_counter()  # publishing is not part of the next step
                if ended - sliced_at >= _ENGINE_SLICE_S and item is not last:
                    # A long batch: let alert delivery and HTTP have their turn meanwhile.
                    histograms[venue].observe_all(steps)
                    steps = []
                    self._after_step([])
                    self.items_applied = before + done
                    self.applied.set()
                    await asyncio.sleep(0)
                    sliced_at = started = perf_counter()
            histograms[venue].observe_all(steps)
            self._after_step([])
            self.items_applied = before + len(batch)
            self.applied.set()
            if inbound.qsize():
                # get() would return at once: yield first, so HTTP and alert delivery are not
                # starved while the venues keep the queue full.
                await asyncio.sleep(0)

    def _after_step(self, transitions: list[AlertTransition]) -> None:
        self._publish(transitions)
        self._timer.rearm()
        self._remedies.carry_out(self.engine.take_actions())
        self.persistence.after_step()

    def _on_timer(self) -> None:
        self._after_step(self.engine.advance(self.clock.now()))

    def _publish(self, transitions: list[AlertTransition]) -> None:
        for transition in transitions:
            self.recent_alerts.append(transition)
            for listener in self._listeners:
                try:
                    listener.deliver(transition)
                except Exception:
                    log.exception("alert listener %s failed", type(listener).__name__)
        self.alerting.observe(transitions)

    async def reload(self) -> ReloadOutcome:
        """Re-read the config file (SIGHUP, POST /-/reload); a bad one is rejected and the running one stays."""
        if self._config_path is None:
            return ReloadOutcome("rejected", ["this monitor was not started from a config file"])
        try:
            new = await asyncio.to_thread(load_config, self._config_path)
        except ConfigError as exc:
            errors = [str(issue) for issue in exc.issues]
            log.error("reload rejected; the running config stays:\n  %s", "\n  ".join(errors))
            return ReloadOutcome("rejected", errors)
        except OSError as exc:
            log.error("reload rejected: %s", exc)
            return ReloadOutcome("rejected", [f"{self._config_path}: {exc.strerror}"])
        applied, restart = plan_reload(self.config, new)
        # Synchronous from here: no engine step can interleave with the swap.
        transitions = self.engine.reload(applied, self.clock.now())
        self.config = applied
        self.alerting.reload(applied)
        self._after_step(transitions)
        if restart:
            log.warning("reloaded; these changes wait for a restart: %s", ", ".join(restart))
        else:
            log.info("reloaded %s", self._config_path)
        return ReloadOutcome("reloaded", restart_required=restart)
