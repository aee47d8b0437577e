"""A venue's stream session as built from its config section, with the test seams every venue takes.

StreamSession (riskmon.venues.stream_session) is the connection lifecycle; this is the one
constructor the five venue sessions share, so each says only how it keeps its socket alive
(`settings`) and what state of its own it needs (`setup`).
"""

from __future__ import annotations

import random
from typing import Generic, Protocol, TypedDict, TypeVar, Unpack

from riskmon.clock import Clock
from riskmon.config.schema import Backoff
from riskmon.venues.base import InboundSink, VenueCodec
from riskmon.venues.stream_session import Sleep, StreamSession, StreamSettings


class VenueConfig(Protocol):
    """What every websocket venue's config section says about its connection."""

    @property
    def reconnect(self) -> Backoff: ...
    @property
    def max_frame_bytes(self) -> int: ...
    @property
    def open_timeout(self) -> float: ...


class SessionSeams(TypedDict, total=False):
    """What tests swap in a session: the backoff's random source, the reconnect and heartbeat sleeps."""

    rng: random.Random | None
    sleep: Sleep
    heartbeat_sleep: Sleep


ConfigT = TypeVar("ConfigT", bound=VenueConfig)
CodecT = TypeVar("CodecT", bound=VenueCodec)


class VenueStreamSession(StreamSession, Generic[ConfigT, CodecT]):
    """A venue's session, built from its config section with the test seams every venue takes.

    A venue says how it keeps the socket alive in `settings`, and sets up its own state in `setup`.
    """

    def __init__(
        self,
        venue: str,
        config: ConfigT,
        codec: CodecT,
        sink: InboundSink,
        clock: Clock,
        **seams: Unpack[SessionSeams],
    ) -> None:
        super().__init__(venue, codec, sink, clock, self.settings(config), **seams)
        self.config = config
        self.venue_codec = codec  # its own type, where StreamSession knows only the VenueCodec protocol
        self._rng = seams.get("rng")  # for a venue's own backoffs
        self.setup()

    def settings(self, config: ConfigT) -> StreamSettings:
        """No keepalive; a venue with pings adds them (`dataclasses.replace`)."""
        return StreamSettings(config.reconnect, config.max_frame_bytes, config.open_timeout)

    def setup(self) -> None:
        """The venue's own per-session state, once `config` and `venue_codec` are set."""
