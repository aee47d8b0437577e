"""Normalized events: what every venue codec produces and the engine consumes.

Events are immutable msgspec Structs (cheap to build, no GC tracking). Quantities are exact
`Decimal`s in base units, so applying and reversing a fill leaves a position exactly where it was.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

import msgspec


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class Liquidity(StrEnum):
    MAKER = "maker"
    TAKER = "taker"


class FillReceived(msgspec.Struct, frozen=True, gc=False):
    """One of our desks traded. `fill_key` identifies it exactly (for dedupe and revokes)."""

    venue: str
    desk: str
    account: str
    market: str
    side: Side
    quantity: Decimal  # base units, > 0
    price: Decimal  # quote (USD) per base unit
    fill_key: str
    stream: str  # the venue stream the fill belongs to (Mango: the event queue)
    sequence: int  # the venue's sequence number of the fill within `stream`
    liquidity: Liquidity
    fee_rate: Decimal
    venue_ts: float  # unix seconds, as the venue stamped it
    # The venue's monotonic position of the write that carried the fill (Mango: Solana slot).
    as_of: int | None = None


class FillRevoked(msgspec.Struct, frozen=True, gc=False):
    """The venue voided a fill (Mango: a Solana fork). Reverses exactly the fill with `fill_key`."""

    venue: str
    fill_key: str
    stream: str
    market: str
    sequence: int


class FillSnapshot(msgspec.Struct, frozen=True, gc=False):
    """The venue's view of recent fills on one stream (Mango: a checkpoint).

    A replay to merge, not new fills. `window_start`..`window_end` are the lowest and highest
    sequences in it, over all fills, ours or not; a fill we hold inside that range that the
    snapshot lacks was voided while we were not listening. Both None when the window is empty.
    `as_of` is the venue's position of the snapshot (Mango: slot), when the venue sends one.
    """

    venue: str
    stream: str
    market: str
    fills: tuple[FillReceived, ...]
    window_start: int | None
    window_end: int | None = None
    as_of: int | None = None


class MarkPrice(msgspec.Struct, frozen=True, gc=False):
    venue: str
    market: str
    price: Decimal  # USD per base unit
    venue_ts: float


class FrameMalformed(msgspec.Struct, frozen=True, gc=False):
    """A frame the codec could not use. `reason` never carries frame content that may hold secrets."""

    venue: str
    reason: str


class FeedUp(msgspec.Struct, frozen=True, gc=False):
    venue: str
    endpoint: str


class FeedDown(msgspec.Struct, frozen=True, gc=False):
    venue: str
    endpoint: str
    reason: str


Event = FillReceived | FillRevoked | FillSnapshot | MarkPrice | FrameMalformed | FeedUp | FeedDown
