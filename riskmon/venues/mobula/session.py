"""Mobula perp events session: subscribe first, JSON ping/pong, reconnect.

The stream closes an idle socket with 4001 about 10 s after open when no subscription arrived;
the codec sends the subscribe as the very first frame, so a 4001 means the endpoint is not the
perp events stream (the positions host answers that way) or the envelope was refused: a
misconfiguration, reported as such rather than retried in silence.

Nothing flows on this stream until the venue acknowledges the subscription, so the feed counts
as up only from the `subscribed` ack, not from the socket opening: a refused subscription must
not show the desk a live feed while it is blind.
"""

from __future__ import annotations

from dataclasses import replace

from riskmon.config.schema import MobulaPerpEventsVenue
from riskmon.events import Event, Subscribed, SubscriptionFailed
from riskmon.venues.base import VenueCodec
from riskmon.venues.mobula.codec import AUTH_WORDS
from riskmon.venues.stream_session import StreamSettings, StreamTarget
from riskmon.venues.venue_session import VenueStreamSession

IDLE_NO_SUBSCRIPTION = 4001
# Words in a close reason that mean the key is wrong: reconnecting with the same config cannot help.


class MobulaPerpEventsSession(VenueStreamSession[MobulaPerpEventsVenue, VenueCodec]):
    up_on_open = False  # up once the venue acknowledged the subscription

    def settings(self, config: MobulaPerpEventsVenue) -> StreamSettings:
        return replace(super().settings(config), ping_interval=config.ping_interval, pong_timeout=config.pong_timeout)

    def setup(self) -> None:
        self._subscribed = False

    async def prepare(self) -> StreamTarget:
        return StreamTarget(self.config.url)

    async def after_frame(self, events: list[Event]) -> None:
        if not self._subscribed and any(isinstance(event, Subscribed) for event in events):
            self._subscribed = True
            await self.report_up()

    async def on_disconnected(self) -> None:
        self._subscribed = False

    def on_close(self, code: int, reason: str) -> list[Event]:
        if code == IDLE_NO_SUBSCRIPTION:
            return [
                SubscriptionFailed(
                    self.venue,
                    "perp-events",
                    "closed 4001 (idle, no subscription): check that `url` is the perp events stream, "
                    "not the positions host, and that the API key is valid",
                    misconfigured=True,
                )
            ]
        if 4000 <= code < 5000:
            # The venue's reason text is only classified, never quoted: it may echo what it refused.
            misconfigured = any(word in reason.lower() for word in AUTH_WORDS)
            return [
                SubscriptionFailed(
                    self.venue, "perp-events", f"closed by the venue with code {code}", misconfigured=misconfigured
                )
            ]
        return []
