"""Mango v3 fills session: fail over across `urls`, hand frames on.

The legacy feed has no heartbeat and never answers pings, so the session sends none and never
treats silence as death: a quiet market is normal. Liveness is the TCP connection itself.
"""

from __future__ import annotations

import asyncio
import itertools
import random

from riskmon.clock import Clock
from riskmon.config.schema import MangoV3FillsVenue
from riskmon.venues.base import InboundSink, VenueCodec
from riskmon.venues.stream_session import Sleep, StreamSession, StreamSettings, StreamTarget


class MangoV3FillsSession(StreamSession):
    def __init__(
        self,
        venue: str,
        config: MangoV3FillsVenue,
        codec: VenueCodec,
        sink: InboundSink,
        clock: Clock,
        *,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        settings = StreamSettings(
            reconnect=config.reconnect,
            max_frame_bytes=config.max_frame_bytes,
            open_timeout=config.open_timeout,
            # No transport pings: the server never answers, so a ping timeout would kill a live feed.
        )
        super().__init__(venue, codec, sink, clock, settings, rng=rng, sleep=sleep)
        self._urls = itertools.cycle(config.urls)

    async def prepare(self) -> StreamTarget:
        # Every connection attempt moves to the next server: a failing one is not retried first.
        return StreamTarget(next(self._urls))
