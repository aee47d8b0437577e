"""Mango v3 fills session: connect, fail over across `urls`, back off, hand frames on.

The legacy feed has no heartbeat and never answers pings, so the session sends none and never
treats silence as death: a quiet market is normal. Liveness is the TCP connection itself.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from riskmon.clock import Clock
from riskmon.config.schema import MangoV3FillsVenue
from riskmon.events import FeedDown, FeedUp, FrameMalformed
from riskmon.venues.backoff import ReconnectBackoff
from riskmon.venues.base import INVALID_URL, Inbound, InboundSink, VenueCodec, redact_endpoint

log = logging.getLogger(__name__)
# websockets logs request lines (paths, queries: possibly tokens) at DEBUG; never let them out.
_wire_log = logging.getLogger(f"{__name__}.wire")
_wire_log.setLevel(logging.INFO)

_MESSAGE_TOO_BIG = 1009


class MangoV3FillsSession:
    def __init__(
        self,
        venue: str,
        config: MangoV3FillsVenue,
        codec: VenueCodec,
        sink: InboundSink,
        clock: Clock,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.venue = venue
        self._config = config
        self._codec = codec
        self._sink = sink
        self._clock = clock
        self._backoff = ReconnectBackoff(config.reconnect.initial, config.reconnect.max, rng)
        self._sleep = sleep

    async def run(self) -> None:
        """Stream until cancelled, moving to the next URL after every failure."""
        for url in itertools.cycle(self._config.urls):
            endpoint = redact_endpoint(url)
            reason = await self._stream(url, endpoint) if endpoint != INVALID_URL else "invalid URL"
            await self._report(FeedDown(self.venue, endpoint, reason))
            delay = self._backoff.next_delay()
            log.info("%s: reconnecting in %.2fs", self.venue, delay)
            await self._sleep(delay)

    async def _stream(self, url: str, endpoint: str) -> str:
        try:
            async with connect(
                url,
                max_size=self._config.max_frame_bytes,
                open_timeout=self._config.open_timeout,
                ping_interval=None,  # the server never answers, so a ping timeout would kill a live feed
                compression=None,
                logger=_wire_log,
            ) as ws:
                await self._report(FeedUp(self.venue, endpoint))
                first = True
                async for message in ws:
                    now = self._clock.now()
                    if isinstance(message, str):
                        events = self._codec.receive_text(message)
                    else:
                        events = self._codec.receive_bytes(message)
                    if first:
                        # The server sends checkpoints at once, so a first frame means a healthy link.
                        self._backoff.reset()
                        first = False
                    await self._sink(Inbound(self.venue, now, message, events))
                return "server closed the connection"
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else (exc.sent.code if exc.sent is not None else 1006)
            if code == _MESSAGE_TOO_BIG:
                await self._report(FrameMalformed(self.venue, "frame larger than max_frame_bytes"))
            return f"connection closed (code {code})"
        except InvalidURI:
            return "invalid URL"
        except InvalidHandshake as exc:
            return f"handshake failed ({type(exc).__name__})"
        except (OSError, TimeoutError) as exc:
            return f"cannot connect ({type(exc).__name__})"

    async def _report(self, event: FeedUp | FeedDown | FrameMalformed) -> None:
        await self._sink(Inbound(self.venue, self._clock.now(), None, [event]))
