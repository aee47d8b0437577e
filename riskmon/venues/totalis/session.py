"""Totalis RFQ session: authenticate, subscribe, ping, and reconcile over REST on every connect.

The venue never redelivers WebSocket events, so what happened while we were away is only in
REST: after each auth the session reads `GET /mm/quotes` through the codec and only then reports
the feed up. Frames keep flowing meanwhile; a failing REST call is retried with backoff while the
feed stays not-up.

`quote:accepted` carries no economics (only `mm_quote:accepted` does, and the venue does not
guarantee both arrive): a quote that holds exposure but came without a worst-case loss is priced
by another `GET /mm/quotes`, so its reservation is never silently zero.

The session never sends the market maker heartbeat (`POST /v1/mm/heartbeat`): that keeps the
firm's quotes alive, and a monitor must not be what keeps quotes alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from dataclasses import replace

from riskmon.config.schema import TotalisRfqVenue
from riskmon.events import Event, QuoteStatus, QuoteUpdate, SubscriptionFailed
from riskmon.venues.backoff import ReconnectBackoff
from riskmon.venues.rest import VenueRest
from riskmon.venues.session_failures import VenueUnavailable
from riskmon.venues.stream_session import StreamSettings, StreamTarget
from riskmon.venues.totalis.codec import TotalisRfqCodec
from riskmon.venues.venue_session import VenueStreamSession

log = logging.getLogger(__name__)

QUOTES_PATH = "/mm/quotes"
# Quotes in these states hold exposure, so an unknown worst-case loss understates the risk.
_HOLDING = frozenset({QuoteStatus.ACCEPTED, QuoteStatus.CONFIRMED, QuoteStatus.EXECUTED})
_PRICED_KEPT = 4096


class TotalisRfqSession(VenueStreamSession[TotalisRfqVenue, TotalisRfqCodec]):
    up_on_open = False

    def settings(self, config: TotalisRfqVenue) -> StreamSettings:
        return replace(super().settings(config), ping_interval=config.ping_interval, pong_timeout=config.pong_timeout)

    def setup(self) -> None:
        config = self.config
        self._rest = VenueRest(config.rest_url, config.rest_timeout, {"X-API-Key": config.api_key.reveal()})
        self._rest_backoff = ReconnectBackoff(config.reconnect.initial, config.reconnect.max, self._rng)
        self._reconcile: asyncio.Task[None] | None = None
        # Quote ids whose worst-case loss some event stated (bounded), and holding quotes without one.
        self._priced: OrderedDict[str, None] = OrderedDict()
        self._unpriced: set[str] = set()

    async def prepare(self) -> StreamTarget:
        return StreamTarget(self.config.ws_url)

    async def after_frame(self, events: list[Event]) -> None:
        self._note_prices(events)
        if not self.venue_codec.authenticated:
            return
        if self._reconcile is None:
            self._reconcile = asyncio.create_task(self._reconcile_then_up(up=False))
        elif self._unpriced and self._reconcile.done():
            self._reconcile = asyncio.create_task(self._reconcile_then_up(up=True))

    async def reconcile(self, source: str = "quotes") -> int:
        """Read every quote over REST into the engine; the number of quotes read.

        VenueUnavailable when REST fails. `source` names the read in captures: "reconcile_quotes"
        for the scheduled check, whose differences from the stream are drift.
        """
        body = await self._rest.call("GET", QUOTES_PATH)
        events = await self.deliver_rest(source, body)
        self._note_prices(events)
        return sum(1 for event in events if isinstance(event, QuoteUpdate))

    async def _reconcile_then_up(self, *, up: bool) -> None:
        """Read REST until it answers, report the feed up (unless it is), and again while frames
        left a holding quote without a worst-case loss."""
        while not up or self._unpriced:
            wanted = set(self._unpriced)
            try:
                await self.reconcile()
            except VenueUnavailable as exc:
                if exc.status in (401, 403):
                    # Retrying will not fix a refused key; say so, and keep trying in case it is rotated.
                    await self.report(SubscriptionFailed(self.venue, "rest:quotes", str(exc), misconfigured=True))
                delay = self._rest_backoff.next_delay()
                log.warning("%s: reconciliation failed (%s); retrying in %.2fs", self.venue, exc, delay)
                await self._sleep(delay)
                continue
            self._rest_backoff.reset()
            # The answer was read after these quotes' frames: what it does not say, no read will.
            self._unpriced -= wanted
            if not up:
                up = True
                await self.report_up()

    def _note_prices(self, events: list[Event]) -> None:
        for event in events:
            if not isinstance(event, QuoteUpdate):
                continue
            quote_id = event.quote_id
            if event.worst_case_loss_usd is not None:
                self._unpriced.discard(quote_id)
                self._priced[quote_id] = None
                self._priced.move_to_end(quote_id)
                if len(self._priced) > _PRICED_KEPT:
                    self._priced.popitem(last=False)
            elif event.status not in _HOLDING:
                self._unpriced.discard(quote_id)  # released: nothing at risk to price
            elif quote_id not in self._priced:
                self._unpriced.add(quote_id)

    async def on_disconnected(self) -> None:
        task, self._reconcile = self._reconcile, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            await self._rest.aclose()
