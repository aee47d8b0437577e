"""Scheduled REST reconciliation (APScheduler: a low-rate chore, not a per-order timer).

Every `reconcile_interval` (15 minutes by default, protocols.md §3.5) riskmon reads the venue's
REST view of what it holds: ProphetX open orders (`get_order` each) and the books it built from
market_selections (`get_multiple_markets`); Totalis quotes (`GET /mm/quotes`). The answers go
through the codec into the engine, which judges drift; the run ends with a ReconciliationFinished
report, carrying the error when the run could not finish, so a failed check is an alert and
never a silent skip. A watchdog can ask for a run at once (a missed RFQ deadline).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from riskmon.clock import Clock
from riskmon.config.schema import MonitorConfig, ProphetXVenue, TotalisRfqVenue
from riskmon.engine.engine import Engine
from riskmon.events import OrderStatus, ReconciliationFinished
from riskmon.venues.base import Inbound, InboundSink
from riskmon.venues.prophetx.session import ProphetXSession
from riskmon.venues.registry import VenueSession
from riskmon.venues.session_failures import VenueUnavailable
from riskmon.venues.totalis.session import TotalisRfqSession

log = logging.getLogger(__name__)

# Concurrent get_order calls: well under ProphetX's 50 req/s limit.
_ORDER_READS_IN_FLIGHT = 5
_LIVE = frozenset({OrderStatus.PENDING, OrderStatus.OPEN})


class Reconciler:
    def __init__(
        self,
        config: MonitorConfig,
        engine: Engine,
        sessions: Mapping[str, VenueSession],
        inbound: InboundSink,
        clock: Clock,
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self._inbound = inbound
        self._clock = clock
        self.intervals: dict[str, float] = {
            name: venue.reconcile_interval
            for name, venue in config.venues.items()
            if isinstance(venue, ProphetXVenue | TotalisRfqVenue) and name in sessions
        }
        self._locks = {name: asyncio.Lock() for name in self.intervals}
        self._scheduler: AsyncIOScheduler | None = None

    def start(self) -> None:
        scheduler = AsyncIOScheduler()
        for venue, interval in self.intervals.items():
            scheduler.add_job(
                self.reconcile,
                "interval",
                seconds=interval,
                args=[venue, "scheduled"],
                id=f"reconcile:{venue}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(interval)),  # a run late by less than an interval still runs
            )
        scheduler.start()
        self._scheduler = scheduler

    def shutdown(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    async def reconcile(self, venue: str, reason: str) -> None:
        """One run for the venue; a run already in progress covers a second request."""
        lock = self._locks.get(venue)
        session = self._sessions.get(venue)
        if lock is None or session is None or lock.locked():
            return
        async with lock:
            log.info("%s: reconciling (%s)", venue, reason)
            checked, scope = 0, "quotes"
            unknown: list[str] = []
            error: str | None = None
            try:
                if isinstance(session, ProphetXSession):
                    scope = "orders+books"
                    checked, unknown = await self._prophetx(venue, session)
                elif isinstance(session, TotalisRfqSession):
                    checked = await session.reconcile("reconcile_quotes")
            except VenueUnavailable as exc:
                error = str(exc)
            except Exception as exc:
                log.exception("%s: reconciliation broke", venue)
                error = type(exc).__name__
            finished = ReconciliationFinished(venue, scope, checked, error, tuple(unknown))
            await self._inbound(Inbound(venue, self._clock.now(), None, [finished]))

    async def _prophetx(self, venue: str, session: ProphetXSession) -> tuple[int, list[str]]:
        order_ids = [o.order_id for o in self._engine.orders.orders() if o.venue == venue and o.status in _LIVE]
        event_ids = sorted({market.split("/", 1)[0] for v, market in self._engine.markets.books if v == venue})
        unknown: list[str] = []
        gate = asyncio.Semaphore(_ORDER_READS_IN_FLIGHT)

        async def read(order_id: str) -> None:
            async with gate:
                try:
                    await session.fetch_order(order_id, source="reconcile_order")
                except VenueUnavailable as exc:
                    if exc.status != 404:
                        raise
                    unknown.append(f"order {order_id}")

        results = await asyncio.gather(*(read(order_id) for order_id in order_ids), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result  # every read has ended: nothing of this run arrives after its report
        books = await session.fetch_books(event_ids) if event_ids else []
        return len(order_ids) + len(books), unknown
