"""Mango v3 fills session: fail over across `urls`, hand frames on.

The legacy feed has no heartbeat and never answers pings, so the session sends none and never
treats silence as death: a quiet market is normal. Liveness is the TCP connection itself.
"""

from __future__ import annotations

import itertools

from riskmon.config.schema import MangoV3FillsVenue
from riskmon.venues.base import VenueCodec
from riskmon.venues.stream_session import StreamTarget
from riskmon.venues.venue_session import VenueStreamSession


class MangoV3FillsSession(VenueStreamSession[MangoV3FillsVenue, VenueCodec]):
    # No transport pings (the base settings): the server never answers, so a ping timeout would kill a live feed.

    def setup(self) -> None:
        self._urls = itertools.cycle(self.config.urls)

    async def prepare(self) -> StreamTarget:
        # Every connection attempt moves to the next server: a failing one is not retried first.
        return StreamTarget(next(self._urls))
