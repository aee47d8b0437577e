"""What the engine asks the I/O shell to do: the remedies its watchdogs decide on.

The engine stays pure: it never touches a socket, it returns these and the runtime carries them
out. Replay records them and carries out nothing (the capture already holds what followed).
"""

from __future__ import annotations

from enum import StrEnum

import msgspec


class ReconnectCause(StrEnum):
    """Why a watchdog asks for a reconnect, from a fixed set: the reconnect metric's `cause` label."""

    HEALTH_CHECK_GAP = "health_check_gap"  # ProphetX health_check silent past its gap
    ACTIVATION_TIMEOUT = "activation_timeout"  # an order's activation message never came


class ReconnectVenue(msgspec.Struct, frozen=True):
    venue: str
    reason: str  # free text, for the log and the FeedDown reason
    cause: ReconnectCause


class LookupOrder(msgspec.Struct, frozen=True):
    """Ask the venue's REST for one order (ProphetX `get_order`): its answer, or an
    OrderLookupFailed, comes back through the inbound queue like any frame."""

    venue: str
    order_id: str


class ReconcileVenue(msgspec.Struct, frozen=True):
    """Read the venue's state over REST now (a missed deadline may have been released there)."""

    venue: str
    reason: str


Action = ReconnectVenue | LookupOrder | ReconcileVenue
