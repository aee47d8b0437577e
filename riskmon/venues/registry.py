"""Venue kinds -> their codec and session. The only place that knows every adapter."""

from __future__ import annotations

from typing import Protocol

from riskmon.clock import Clock
from riskmon.config.desks import desk_accounts, sole_desk
from riskmon.config.schema import (
    MangoV3FillsVenue,
    MobulaPerpEventsVenue,
    MonitorConfig,
    PhoenixVenue,
    ProphetXVenue,
    TotalisRfqVenue,
)
from riskmon.events import DisconnectCause
from riskmon.venues.base import InboundSink, VenueCodec
from riskmon.venues.mango_v3.codec import MangoV3FillsCodec
from riskmon.venues.mango_v3.session import MangoV3FillsSession
from riskmon.venues.mobula.codec import MobulaPerpEventsCodec
from riskmon.venues.mobula.session import MobulaPerpEventsSession
from riskmon.venues.phoenix.codec import PhoenixCodec
from riskmon.venues.phoenix.session import PhoenixSession
from riskmon.venues.prophetx.codec import ProphetXCodec
from riskmon.venues.prophetx.session import ProphetXSession
from riskmon.venues.totalis.codec import TotalisRfqCodec
from riskmon.venues.totalis.session import TotalisRfqSession


class VenueSession(Protocol):
    venue: str

    async def run(self) -> None: ...

    def drop_connection(self, reason: str, cause: DisconnectCause = DisconnectCause.REQUESTED) -> None:
        """Close the current connection on purpose (it reconnects); `cause` labels the reconnect metric."""
        ...


class AdapterUnavailable(Exception):
    """The config names a venue kind whose adapter this build does not have."""


def build_codec(config: MonitorConfig, venue: str) -> VenueCodec:
    venue_config = config.venues[venue]
    accounts = desk_accounts(config, venue)
    if isinstance(venue_config, MangoV3FillsVenue):
        return MangoV3FillsCodec(venue, accounts, venue_config.markets)
    if isinstance(venue_config, MobulaPerpEventsVenue):
        return MobulaPerpEventsCodec(venue, accounts, venue_config)
    if isinstance(venue_config, ProphetXVenue):
        return ProphetXCodec(venue, accounts, sole_desk(config, venue))
    if isinstance(venue_config, TotalisRfqVenue):
        return TotalisRfqCodec(venue, accounts, sole_desk(config, venue), venue_config)
    if isinstance(venue_config, PhoenixVenue):
        return PhoenixCodec(venue, accounts, venue_config)
    raise AdapterUnavailable(f"venue {venue}: kind {venue_config.__struct_config__.tag} has no adapter")


def build_session(
    config: MonitorConfig, venue: str, codec: VenueCodec, sink: InboundSink, clock: Clock
) -> VenueSession:
    venue_config = config.venues[venue]
    if isinstance(venue_config, MangoV3FillsVenue):
        return MangoV3FillsSession(venue, venue_config, codec, sink, clock)
    if isinstance(venue_config, MobulaPerpEventsVenue):
        return MobulaPerpEventsSession(venue, venue_config, codec, sink, clock)
    if isinstance(venue_config, ProphetXVenue) and isinstance(codec, ProphetXCodec):
        return ProphetXSession(venue, venue_config, codec, sink, clock)
    if isinstance(venue_config, TotalisRfqVenue) and isinstance(codec, TotalisRfqCodec):
        return TotalisRfqSession(venue, venue_config, codec, sink, clock)
    if isinstance(venue_config, PhoenixVenue):
        return PhoenixSession(venue, venue_config, codec, sink, clock)
    raise AdapterUnavailable(f"venue {venue}: kind {venue_config.__struct_config__.tag} has no adapter")
