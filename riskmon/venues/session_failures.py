"""How a venue session fails, in the fixed words the metrics and alerts count.

VenueUnavailable is a session's own failure to find a usable endpoint (a REST login or read that
failed, no config); the functions here sort every failure (that one, a refused handshake, a close
frame) into a DisconnectCause, so `riskmon_feed_reconnects_total` keeps a bounded label set
whatever text a venue puts in its close reasons. Pure: no I/O, no clock.
"""

from __future__ import annotations

from riskmon.events import DisconnectCause, Event, SubscriptionFailed

__all__ = ["VenueUnavailable", "close_cause", "refusal_cause", "unavailable_cause"]

_ABNORMAL_CLOSURE = 1006
_INTERNAL_ERROR = 1011  # what websockets sends when its transport ping goes unanswered
# Close codes venues use, to a cause: Phoenix 4401/4403/1008 and Pusher 4009 (credentials), Mobula
# 4001 (no subscription in time) and Pusher 4202 (inactivity), Pusher 4201 (pong not received).
# A venue that refused our credentials just before closing (Totalis closes 4001 after auth:error)
# said so in an event, which decides first.
_CLOSE_CAUSES = {
    1008: DisconnectCause.AUTH,
    4009: DisconnectCause.AUTH,
    4401: DisconnectCause.AUTH,
    4403: DisconnectCause.AUTH,
    4001: DisconnectCause.IDLE,
    4202: DisconnectCause.IDLE,
    4201: DisconnectCause.PING_TIMEOUT,
}
# Words of a close reason that mean credentials (Phoenix `access_token_expired`...).
_AUTH_WORDS = ("auth", "token", "jwt", "session_missing", "forbidden")


class VenueUnavailable(Exception):
    """The session cannot reach a usable endpoint (REST login failed, no config...).

    The message is safe to log: it never carries a credential or a query string. `status` is
    the HTTP status when the venue answered with one.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def refusal_cause(status: int) -> DisconnectCause:
    return DisconnectCause.AUTH if status in (401, 403) else DisconnectCause.REFUSED


def unavailable_cause(exc: VenueUnavailable) -> DisconnectCause:
    """A failed login or endpoint choice; our own message names the exception when there is no status."""
    if exc.status is not None:
        return refusal_cause(exc.status)
    what = str(exc).rsplit(": ", 1)[-1]
    if what == "timed out" or what.endswith(("Error", "Timeout")):
        return DisconnectCause.NETWORK_ERROR
    return DisconnectCause.OTHER


def close_cause(code: int, reason: str, events: list[Event], *, by_venue: bool) -> DisconnectCause:
    """Classify a close: never the reason text itself, which a venue could fill with anything."""
    if any(isinstance(event, SubscriptionFailed) and event.subscription == "auth" for event in events):
        return DisconnectCause.AUTH
    cause = _CLOSE_CAUSES.get(code)
    if cause is not None:
        return cause
    if by_venue and any(word in reason.lower() for word in _AUTH_WORDS):
        return DisconnectCause.AUTH
    if code == _ABNORMAL_CLOSURE:
        return DisconnectCause.NETWORK_ERROR
    if not by_venue:
        # We closed it: websockets' own keepalive failing, or a frame over max_frame_bytes.
        return DisconnectCause.PING_TIMEOUT if code == _INTERNAL_ERROR else DisconnectCause.OTHER
    return DisconnectCause.CLOSED_BY_VENUE
