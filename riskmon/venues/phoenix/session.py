"""Phoenix session: optional JWT on the handshake, transport pings, reconnect and resubscribe.

The SDK does not reconnect by itself; this session does, and the codec re-sends every
subscription on each new connection, so snapshots rebuild the state. Auth closes (4401, 4403,
1008, or a token reason) cannot be cured by retrying with the same static token: they are
reported as a refused subscription so someone rotates the JWT.
"""

from __future__ import annotations

from dataclasses import replace

from riskmon.config.schema import PhoenixVenue
from riskmon.events import Event, PositionsReported, Subscribed, SubscriptionFailed
from riskmon.venues.base import VenueCodec
from riskmon.venues.stream_session import StreamSettings, StreamTarget
from riskmon.venues.venue_session import VenueStreamSession

_AUTH_CLOSE_CODES = frozenset({4401, 4403, 1008})
_AUTH_CLOSE_REASONS = frozenset(
    {"access_token_expired", "invalid_access_token", "access_jti_mismatch", "session_missing", "authz_refresh_required"}
)


class PhoenixSession(VenueStreamSession[PhoenixVenue, VenueCodec]):
    # Up once the venue confirms the desk's traderState subscription (or sends its snapshot): an
    # open socket that answers nothing must not count as a live feed.
    up_on_open = False

    def settings(self, config: PhoenixVenue) -> StreamSettings:
        return replace(
            super().settings(config),
            transport_ping_interval=config.ping_interval,
            transport_ping_timeout=config.ping_timeout,
        )

    def setup(self) -> None:
        self._up = False

    async def prepare(self) -> StreamTarget:
        jwt = self.config.jwt
        if jwt is None:
            return StreamTarget(self.config.url)
        token = jwt.reveal()
        # Both carriers, as the venue's SDK sends them: some proxies strip one or the other.
        return StreamTarget(
            self.config.url,
            headers={"Authorization": f"Bearer {token}"},
            subprotocols=("phoenix-jwt", token),
        )

    async def after_frame(self, events: list[Event]) -> None:
        if not self._up and any(_confirms_positions(event) for event in events):
            self._up = True
            await self.report_up()

    async def on_disconnected(self) -> None:
        self._up = False

    def on_refused(self, status: int) -> list[Event]:
        if status in (401, 403):
            return [SubscriptionFailed(self.venue, "auth", f"handshake refused (HTTP {status})", misconfigured=True)]
        return []

    def on_close(self, code: int, reason: str) -> list[Event]:
        if code in _AUTH_CLOSE_CODES or reason in _AUTH_CLOSE_REASONS:
            why = reason if reason in _AUTH_CLOSE_REASONS else f"code {code}"
            return [SubscriptionFailed(self.venue, "auth", f"the venue closed the session: {why}", misconfigured=True)]
        return []


def _confirms_positions(event: Event) -> bool:
    return isinstance(event, PositionsReported) or (
        isinstance(event, Subscribed) and event.subscription == "traderState"
    )
