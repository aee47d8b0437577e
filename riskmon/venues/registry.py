"""Venue kinds -> their codec and session. The only place that knows every adapter."""

from __future__ import annotations

from typing import Protocol

from riskmon.clock import Clock
from riskmon.config.schema import MangoV3FillsVenue, MonitorConfig, VenueConfig
from riskmon.venues.base import InboundSink, VenueCodec
from riskmon.venues.mango_v3.codec import MangoV3FillsCodec
from riskmon.venues.mango_v3.session import MangoV3FillsSession


class VenueSession(Protocol):
    venue: str

    async def run(self) -> None: ...


class AdapterUnavailable(Exception):
    """The config names a venue kind whose adapter this build does not have yet."""


def desk_accounts(config: MonitorConfig, venue: str) -> dict[str, str]:
    """account id -> desk, for one venue."""
    return {account: desk_name for desk_name, desk in config.desks.items() for account in desk.accounts.get(venue, ())}


def build_codec(config: MonitorConfig, venue: str) -> VenueCodec:
    venue_config: VenueConfig = config.venues[venue]
    if isinstance(venue_config, MangoV3FillsVenue):
        return MangoV3FillsCodec(venue, desk_accounts(config, venue), venue_config.markets)
    raise AdapterUnavailable(f"venue {venue}: kind {venue_config.__struct_config__.tag} has no adapter yet")


def build_session(
    config: MonitorConfig, venue: str, codec: VenueCodec, sink: InboundSink, clock: Clock
) -> VenueSession:
    venue_config = config.venues[venue]
    if isinstance(venue_config, MangoV3FillsVenue):
        return MangoV3FillsSession(venue, venue_config, codec, sink, clock)
    raise AdapterUnavailable(f"venue {venue}: kind {venue_config.__struct_config__.tag} has no adapter yet")
