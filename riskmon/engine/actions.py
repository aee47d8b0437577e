"""What the engine asks the I/O shell to do: the remedies its watchdogs decide on.

The engine stays pure: it never touches a socket, it returns these and the runtime carries them
out. Replay records them and carries out nothing (the capture already holds what followed).
"""

from __future__ import annotations

import msgspec


class ReconnectVenue(msgspec.Struct, frozen=True):
    venue: str
    reason: str


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
