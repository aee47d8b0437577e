"""Carries out what the engine's watchdogs decide: reconnect a venue, look an order up over REST,
reconcile a venue now.

Every outcome goes back to the engine through the inbound queue (a REST answer through the
codec, a failure as OrderLookupFailed), so it is captured and replays like any frame. Nothing
here decides anything.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, runtime_checkable

from riskmon.clock import Clock
from riskmon.engine.actions import Action, LookupOrder, ReconcileVenue, ReconnectCause, ReconnectVenue
from riskmon.events import DisconnectCause, Event, OrderLookupFailed
from riskmon.venues.base import Inbound, InboundSink
from riskmon.venues.registry import VenueSession
from riskmon.venues.session_failures import VenueUnavailable

log = logging.getLogger(__name__)

# REST lookups in flight per venue: a burst of timed-out orders must not trip the venue's rate limit.
_LOOKUPS_PER_VENUE = 8


@runtime_checkable
class OrderLookupSession(Protocol):
    async def fetch_order(self, order_id: str) -> list[Event]: ...


def disconnect_cause(cause: ReconnectCause) -> DisconnectCause:
    """The reconnect metric's cause for a watchdog's reconnect: the DisconnectCause of the same name
    (the metric's label set is DisconnectCause, a fixed set). A ReconnectCause added without its
    DisconnectCause is counted as `requested` rather than break the reconnect."""
    try:
        return DisconnectCause(cause.value)
    except ValueError:
        return DisconnectCause.REQUESTED


class Remedies:
    def __init__(
        self,
        sessions: Mapping[str, VenueSession],
        inbound: InboundSink,
        clock: Clock,
        reconcile_now: Callable[[str, str], Awaitable[None]],
    ) -> None:
        self._sessions = sessions
        self._inbound = inbound
        self._clock = clock
        self._reconcile_now = reconcile_now
        self._tasks: set[asyncio.Task[None]] = set()
        self._limits = {venue: asyncio.Semaphore(_LOOKUPS_PER_VENUE) for venue in sessions}

    def carry_out(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, ReconnectVenue):
                self._reconnect(action)
            elif isinstance(action, LookupOrder):
                self._spawn(self._lookup(action))
            elif isinstance(action, ReconcileVenue):
                log.info("%s: reconciling now: %s", action.venue, action.reason)
                self._spawn(self._reconcile_now(action.venue, action.reason))

    def _reconnect(self, action: ReconnectVenue) -> None:
        session = self._sessions.get(action.venue)
        if session is None:
            return
        log.warning("%s: reconnecting: %s (%s)", action.venue, action.reason, action.cause)
        session.drop_connection(action.reason, disconnect_cause(action.cause))

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            await work

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _lookup(self, action: LookupOrder) -> None:
        session = self._sessions.get(action.venue)
        if not isinstance(session, OrderLookupSession):
            await self._failed(action, "the venue has no order lookup", None)
            return
        async with self._limits.setdefault(action.venue, asyncio.Semaphore(_LOOKUPS_PER_VENUE)):
            try:
                await session.fetch_order(action.order_id)
            except VenueUnavailable as exc:
                await self._failed(action, str(exc), exc.status)
            except Exception as exc:
                # Whatever broke, the watchdog must hear that the lookup did not answer.
                log.exception("%s: lookup of order %s broke", action.venue, action.order_id)
                await self._failed(action, type(exc).__name__, None)

    async def _failed(self, action: LookupOrder, reason: str, status: int | None) -> None:
        failure = OrderLookupFailed(action.venue, action.order_id, reason, status)
        await self._inbound(Inbound(action.venue, self._clock.now(), None, [failure]))

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
