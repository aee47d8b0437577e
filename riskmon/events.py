"""Normalized events: what every venue codec produces and the engine consumes.

Events are immutable msgspec Structs (cheap to build, no GC tracking). Quantities are exact
`Decimal`s in base units, so applying and reversing a fill leaves a position exactly where it was.

The field order of FillReceived, FillRevoked and MarkPrice is part of their contract: the codecs
build them positionally on the hot path (keywords cost a lookup each), and the fill store keeps a
FillReceived as a msgpack array in that order. A new field goes at the end, with a default; none
moves (tests/test_events_contract.py pins the order).

The trading facts live here; the feed health events (up/down, subscriptions, heartbeats, gaps,
resyncs, malformed frames, reconciliations) live in riskmon.feed_events and are part of this
module's vocabulary: import every event from here.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

import msgspec

from riskmon.feed_events import (
    SESSION_SUBSCRIPTIONS,
    DisconnectCause,
    FeedDown,
    FeedUp,
    FrameMalformed,
    Heartbeat,
    ReconciliationFinished,
    SequenceGap,
    StreamResynced,
    Subscribed,
    SubscriptionFailed,
)

__all__ = [
    "SESSION_SUBSCRIPTIONS",
    "BookLevel",
    "BookSide",
    "BookSnapshot",
    "DisconnectCause",
    "Event",
    "FeedDown",
    "FeedUp",
    "FillReceived",
    "FillRevoked",
    "FillSnapshot",
    "FrameMalformed",
    "Heartbeat",
    "Liquidation",
    "Liquidity",
    "MarkKind",
    "MarkPrice",
    "MarketStatusChanged",
    "OrderIntake",
    "OrderLookupFailed",
    "OrderStatus",
    "OrderUpdate",
    "PositionAmended",
    "PositionsReported",
    "QuoteLeg",
    "QuoteStatus",
    "QuoteUpdate",
    "ReconciliationFinished",
    "ReportedPosition",
    "RfqPositionStatus",
    "RfqPositionUpdate",
    "SequenceGap",
    "Side",
    "StreamResynced",
    "Subscribed",
    "SubscriptionFailed",
    "TradeExecuted",
]


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
    """One of our desks traded. `fill_key` identifies it exactly (for dedupe and revokes).

    Built positionally and stored as an array: the field order is the contract (module doc)."""

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
    """The venue voided a fill (Mango: a Solana fork). Reverses exactly the fill with `fill_key`.

    Built positionally: the field order is the contract (module doc)."""

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


class MarkKind(StrEnum):
    TRADE = "trade"  # the price of the latest trade: a fallback, it can sit stale in a quiet market
    MARK = "mark"  # the venue's own mark price
    MID = "mid"  # the venue's order-book mid


class MarkPrice(msgspec.Struct, frozen=True, gc=False):
    """A market's price to value positions at. Built positionally: the field order is the contract (module doc)."""

    venue: str
    market: str
    price: Decimal  # USD per base unit
    venue_ts: float
    kind: MarkKind = MarkKind.TRADE


class Liquidation(msgspec.Struct, frozen=True, gc=False):
    """The venue liquidated one of our positions. The size it closed, when the frame says, also
    arrives as a FillReceived; this event is the alert-worthy fact itself."""

    venue: str
    desk: str
    account: str
    market: str
    side: Side  # the side of the liquidating trade: SELL closes a long
    quantity: Decimal | None
    price: Decimal | None
    key: str  # the venue's identity of the liquidation, for dedupe
    venue_ts: float


class PositionAmended(msgspec.Struct, frozen=True, gc=False):
    """A change to a position that is not a fill: TP/SL moved, size or leverage changed, a trade
    stored. Tracked for the record; exposure moves only through fills and position reports."""

    venue: str
    desk: str
    account: str
    market: str
    change: str  # the venue's event type, e.g. UPDATE_TP, LEVERAGE_UPDATE_EXECUTED
    key: str
    details: tuple[tuple[str, str], ...] = ()
    venue_ts: float | None = None


class OrderStatus(StrEnum):
    PENDING = "pending"  # placed, activation not yet confirmed by the venue
    OPEN = "open"
    REJECTED = "rejected"  # activation failed (ProphetX `invalid`)
    CANCELED = "canceled"
    VOID = "void"  # voided or wiped by the venue: stakes returned
    SETTLED = "settled"  # the market resolved: nothing at risk any more


class OrderUpdate(msgspec.Struct, frozen=True, gc=False):
    """The venue's latest view of one of our orders. Absolute, not a delta: applying the newest
    update for an order gives its state, so a replayed update cannot double count."""

    venue: str
    desk: str
    account: str
    order_id: str
    market: str
    status: OrderStatus
    venue_status: str  # the venue's own word, kept for alerts and the API
    sequence: int | None  # the venue's per-order sequence: older ones are dropped
    venue_ts: float
    reason: str | None = None  # why it was rejected or canceled, as the venue says
    external_id: str | None = None
    price: Decimal | None = None  # ProphetX: American odds
    quantity: Decimal | None = None  # ProphetX: stake in USD
    filled_quantity: Decimal | None = None  # cumulative
    fill_price: Decimal | None = None
    # Worst-case loss in USD that the matched part of the order carries (bet venues).
    worst_case_loss_usd: Decimal | None = None


class QuoteStatus(StrEnum):
    ACCEPTED = "accepted"  # reserved: pending exposure until confirmed or released
    CONFIRMED = "confirmed"
    EXECUTED = "executed"
    EXPIRED = "expired"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class QuoteLeg(msgspec.Struct, frozen=True, gc=False):
    venue: str
    market: str
    side: str
    exposure_usd: Decimal | None = None


class QuoteUpdate(msgspec.Struct, frozen=True, gc=False):
    """An RFQ quote of ours moved in its lifecycle (Totalis). Fields a frame lacks are None, and
    the engine keeps what an earlier frame for the same quote said."""

    venue: str
    desk: str
    account: str  # the market maker id
    quote_id: str
    rfq_id: str | None
    status: QuoteStatus
    venue_ts: float | None = None
    worst_case_loss_usd: Decimal | None = None  # mm_cost: what we pay out if every leg hits
    confirmation_deadline: float | None = None  # unix seconds
    reason: str | None = None
    execution_id: str | None = None
    legs: tuple[QuoteLeg, ...] = ()


class RfqPositionStatus(StrEnum):
    CREATED = "created"
    SETTLED = "settled"
    CANCELLED = "cancelled"
    ERROR = "error"


class RfqPositionUpdate(msgspec.Struct, frozen=True, gc=False):
    venue: str
    desk: str
    account: str
    rfq_id: str
    status: RfqPositionStatus
    venue_ts: float | None = None
    position_pda: str | None = None
    detail: str | None = None  # settled: outcome; cancelled: reason; error: the error


class ReportedPosition(msgspec.Struct, frozen=True, gc=False):
    market: str
    quantity: Decimal  # signed base units: < 0 is short
    entry_price: Decimal | None = None


class PositionsReported(msgspec.Struct, frozen=True, gc=False):
    """The venue's own statement of positions (Phoenix traderState). Absolute: `complete` means
    every market not listed is flat (a snapshot); otherwise only the listed markets changed."""

    venue: str
    desk: str
    account: str
    positions: tuple[ReportedPosition, ...]
    complete: bool
    sequence: int | None = None
    venue_ts: float | None = None


class MarketStatusChanged(msgspec.Struct, frozen=True, gc=False):
    venue: str
    market: str
    status: str  # the venue's word, e.g. active, paused, closed, tombstoned
    tradable: bool
    final_price: Decimal | None = None


class BookLevel(msgspec.Struct, frozen=True, gc=False):
    price: Decimal  # ProphetX: American odds
    size: Decimal  # ProphetX: stake in USD


class BookSide(msgspec.Struct, frozen=True, gc=False):
    selection: str  # ProphetX: outcome id; a two-sided book: "bid" / "ask"
    levels: tuple[BookLevel, ...]


class BookSnapshot(msgspec.Struct, frozen=True, gc=False):
    """Top levels of one market's book, replacing the previous ones."""

    venue: str
    market: str
    sides: tuple[BookSide, ...]
    sequence: int | None = None


class TradeExecuted(msgspec.Struct, frozen=True, gc=False):
    """A public trade on the venue (anyone's): recorded for the market's activity, not exposure."""

    venue: str
    market: str
    price: Decimal
    quantity: Decimal
    sequence: int | None = None
    venue_ts: float | None = None


class OrderIntake(msgspec.Struct, frozen=True, gc=False):
    """The trading system declares an order it placed (riskmon places none itself): it arms the
    activation watchdog before the venue says anything about the order."""

    venue: str
    order_id: str
    placed_at: float | None = None  # unix seconds; the intake's receipt time when absent
    desk: str | None = None


class OrderLookupFailed(msgspec.Struct, frozen=True, gc=False):
    """A REST read of one order failed (`status` 404: the venue does not know the order)."""

    venue: str
    order_id: str
    reason: str  # never a credential: VenueUnavailable messages are redacted
    status: int | None = None


Event = (
    FillReceived
    | FillRevoked
    | FillSnapshot
    | MarkPrice
    | FrameMalformed
    | FeedUp
    | FeedDown
    | Liquidation
    | PositionAmended
    | OrderUpdate
    | QuoteUpdate
    | RfqPositionUpdate
    | PositionsReported
    | SequenceGap
    | MarketStatusChanged
    | Subscribed
    | SubscriptionFailed
    | Heartbeat
    | BookSnapshot
    | TradeExecuted
    | OrderIntake
    | OrderLookupFailed
    | StreamResynced
    | ReconciliationFinished
)
