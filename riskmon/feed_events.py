"""Feed health events: what a venue session says about its own stream, not about trading.

Up and down (and why, from a fixed set of causes), subscriptions taken or refused, the venue's
heartbeats, sequence gaps and the resyncs that repair them, frames the codec could not use, and
the outcome of a REST reconciliation: what the feed alerts (down, blind, stale) and the feed
metrics are made of. riskmon.events lists them with the trading events as the one vocabulary
every layer speaks, and every layer imports them from there.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec


class FrameMalformed(msgspec.Struct, frozen=True, gc=False):
    """A frame the codec could not use. `reason` never carries frame content that may hold secrets."""

    venue: str
    reason: str


class FeedUp(msgspec.Struct, frozen=True, gc=False):
    venue: str
    endpoint: str


class DisconnectCause(StrEnum):
    """Why a connection ended, from a fixed set (metric labels); the free-text `reason` is for logs."""

    CLOSED_BY_VENUE = "closed_by_venue"  # the venue closed it (a close frame we did not ask for)
    PING_TIMEOUT = "ping_timeout"  # a ping (application or transport) went unanswered
    NETWORK_ERROR = "network_error"  # cannot connect, timed out, dropped without a close frame
    REFUSED = "refused"  # the venue refused the handshake or a login call (an HTTP status)
    TLS = "tls"  # the TLS handshake failed: a certificate not verified (unknown CA, another host), no common protocol
    AUTH = "auth"  # refused or closed for credentials (401/403, an auth close code)
    IDLE = "idle"  # closed for inactivity (Mobula 4001: no subscription in time)
    REQUESTED = "requested"  # riskmon closed it on purpose: a watchdog remedy, a session decision
    HEALTH_CHECK_GAP = "health_check_gap"  # riskmon closed it: the venue's health_check went silent
    ACTIVATION_TIMEOUT = "activation_timeout"  # riskmon closed it: an order's activation message never came
    OTHER = "other"


class FeedDown(msgspec.Struct, frozen=True, gc=False):
    """A connection ended. Equality ignores `cause`: it classifies `reason` for the metrics, and
    the event is the same fact however it is classified."""

    venue: str
    endpoint: str
    reason: str
    cause: DisconnectCause = DisconnectCause.OTHER

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FeedDown):
            return NotImplemented
        return (self.venue, self.endpoint, self.reason) == (other.venue, other.endpoint, other.reason)

    def __hash__(self) -> int:
        return hash((self.venue, self.endpoint, self.reason))


class SequenceGap(msgspec.Struct, frozen=True, gc=False):
    """A sequenced stream skipped numbers; the session resubscribes for a fresh snapshot."""

    venue: str
    stream: str
    expected: int
    received: int


class Subscribed(msgspec.Struct, frozen=True, gc=False):
    venue: str
    subscription: str  # what was subscribed, never a credential


# Refusals of the session itself rather than of one channel: a later FeedUp (the venue accepted
# the whole session) shows they are cured, since no per-channel ack ever names them.
SESSION_SUBSCRIPTIONS = frozenset({"auth", "channel registration", "pusher", "rest:quotes"})


class SubscriptionFailed(msgspec.Struct, frozen=True, gc=False):
    """A subscription or login the venue refused: the desk is blind on it until fixed."""

    venue: str
    subscription: str
    reason: str
    misconfigured: bool = False  # retrying will not help: the config must change


class Heartbeat(msgspec.Struct, frozen=True, gc=False):
    """A venue liveness signal (ProphetX health_check), per connection."""

    venue: str
    connection: str
    venue_ts: float | None = None


class StreamResynced(msgspec.Struct, frozen=True, gc=False):
    """A stream that had a sequence gap was rebuilt from a fresh snapshot."""

    venue: str
    stream: str


class ReconciliationFinished(msgspec.Struct, frozen=True, gc=False):
    """A REST reconciliation of the venue's state ended; `error` says why it could not finish."""

    venue: str
    scope: str  # what was checked, e.g. "orders+books", "quotes"
    checked: int = 0  # objects compared
    error: str | None = None
    # Differences found outside the codec: objects riskmon holds that the venue does not know.
    unknown_at_venue: tuple[str, ...] = ()
