"""Phoenix WebSocket frame shapes (protocols.md §5) as msgspec Structs, and strict number parsing.

Every Struct tolerates unknown fields: the server adds fields (slot, capabilities, orders, ...) that
the risk monitor does not read. u64 and lot values arrive as strings (JsSafeU64) and are parsed by
the helpers below, which accept only ASCII digits so that a reason can name the field and never
echo the value.
"""

from __future__ import annotations

import re
from decimal import Decimal

import msgspec


class BadField(Exception):
    """A field the codec cannot use; the message names the field, never its value."""


class Envelope(msgspec.Struct, frozen=True):
    # Server messages are tagged by `channel`, control replies by `type` (§5.2).
    channel: str | None = None
    type: str | None = None


# --- control (§5.2) ---------------------------------------------------------------------------


class SubscriptionRef(msgspec.Struct, frozen=True):
    channel: str = "unknown"
    symbol: str | None = None


class ControlReply(msgspec.Struct, frozen=True):
    type: str
    subscription: SubscriptionRef | None = None
    code: str | int | None = None
    message: str | None = None


class SubscriptionStatus(msgspec.Struct, frozen=True):
    status: str | None = None
    subscription: SubscriptionRef | None = None


class ChannelError(msgspec.Struct, frozen=True):
    code: str | int | None = None
    error: str | None = None


# --- traderState (§5.3) -----------------------------------------------------------------------


class PositionFields(msgspec.Struct, frozen=True, rename="camel"):
    base_position_lots: str
    entry_price_usd: str | None = None


class PositionRow(msgspec.Struct, frozen=True, rename="camel"):
    """A snapshot row flattens the position next to `symbol` (SDK `#[serde(flatten)]`); a delta row
    nests it under `position`. protocols.md shows neither in full, so both layouts are accepted."""

    symbol: str
    change: str | None = None
    position: PositionFields | None = None
    base_position_lots: str | None = None
    entry_price_usd: str | None = None


class SubaccountState(msgspec.Struct, frozen=True, rename="camel"):
    subaccount_index: int
    sequence: int | str  # a JSON number on the wire (§5.3); a JsSafeU64 string is accepted too
    positions: list[PositionRow] = []


class TraderSnapshot(msgspec.Struct, frozen=True, rename="camel", tag_field="messageType", tag="snapshot"):
    authority: str
    subaccounts: list[SubaccountState]
    trader_pda_index: int = 0


class TraderDelta(msgspec.Struct, frozen=True, rename="camel", tag_field="messageType", tag="delta"):
    authority: str
    deltas: list[SubaccountState]
    trader_pda_index: int = 0


# --- exchange (§5.4; the shapes are [I]) ------------------------------------------------------


class MarketConfig(msgspec.Struct, frozen=True, rename="camel"):
    symbol: str
    market_status: str
    base_lots_decimals: int
    # [I] the brief's name, and the SDK's `tickSize` (exchange_ws.rs): either is accepted.
    tick_size_in_quote_lots_per_base_lot: str | int | None = None
    tick_size: str | int | None = None


class ExchangeState(msgspec.Struct, frozen=True, rename="camel"):
    status: str | None = None
    markets: list[MarketConfig] | None = None


class ExchangeSnapshot(msgspec.Struct, frozen=True, rename="camel", tag_field="messageType", tag="snapshot"):
    sequence_number: str | int
    exchange: ExchangeState | None = None
    # [I] the SDK puts `markets` beside `exchange`, the brief inside it: either is accepted.
    markets: list[MarketConfig] | None = None
    # Present when the server ignored our {"encoding":"json"} and sent base64+zstd.
    encoding: str | None = None


class ExchangeDelta(msgspec.Struct, frozen=True, rename="camel", tag_field="messageType", tag="delta"):
    sequence_number: str | int
    # Raw: each op is decoded by its `kind`, so an op kind we do not read cannot fail the frame.
    ops: list[msgspec.Raw] = []


class OpKind(msgspec.Struct, frozen=True):
    kind: str


class MarketStatusOp(msgspec.Struct, frozen=True):
    symbol: str
    status: str | None = None
    # [I] the SDK's variant fields are not camel-cased (serde renames only the variant names).
    new_market_status: str | None = None
    new_market_status_camel: str | None = msgspec.field(default=None, name="newMarketStatus")

    @property
    def new_status(self) -> str | None:
        return self.status or self.new_market_status or self.new_market_status_camel


class MarketClosedOp(msgspec.Struct, frozen=True):
    symbol: str
    finalized_mark_price: Decimal | None = None
    finalized_mark_price_camel: Decimal | None = msgspec.field(default=None, name="finalizedMarkPrice")

    @property
    def final_price(self) -> Decimal | None:
        return self.finalized_mark_price if self.finalized_mark_price is not None else self.finalized_mark_price_camel


class SymbolOp(msgspec.Struct, frozen=True):
    kind: str  # marketTombstoned or marketDeleted
    symbol: str


class MarketAddedOp(msgspec.Struct, frozen=True):
    market: MarketConfig


class MarketParameterOp(msgspec.Struct, frozen=True, rename="camel"):
    symbol: str
    base_lots_decimals: int | None = None
    tick_size_in_quote_lots_per_base_lot: str | int | None = None
    tick_size: str | int | None = None


class ExchangeStatusOp(msgspec.Struct, frozen=True):
    status: str | None = None


# --- market data (§5.4) -----------------------------------------------------------------------


class MarketStats(msgspec.Struct, frozen=True, rename="camel"):
    symbol: str
    mark_px: Decimal | None = None  # a JSON float, decoded straight to Decimal from its text


class AllMids(msgspec.Struct, frozen=True):
    mids: dict[str, Decimal]


class PublicTrade(msgspec.Struct, frozen=True, rename="camel"):
    timestamp: str | int
    trade_sequence_number: str | int
    base_amount: Decimal | None = None
    quote_amount: Decimal | None = None
    base_lots_filled: str | int | None = None
    quote_lots_filled: str | int | None = None


class Trades(msgspec.Struct, frozen=True):
    symbol: str
    trades: list[PublicTrade]


class L2Book(msgspec.Struct, frozen=True):
    bids: list[tuple[Decimal, Decimal]] = []
    asks: list[tuple[Decimal, Decimal]] = []


class Orderbook(msgspec.Struct, frozen=True):
    symbol: str
    orderbook: L2Book


# --- one decode for the busy channels ---------------------------------------------------------
# The same shapes, tagged by `channel`, so a market-data or traderState push is decoded in one
# pass instead of an Envelope pass and a second one by channel. `type` is read so that a frame
# that also carries a control reply's tag is left to the Envelope path, which decides by it.
# Exchange, control and rare channels (and every frame this union refuses) take the Envelope path,
# so their events and their error messages are exactly the Envelope path's.


class MarketPush(MarketStats, frozen=True, tag_field="channel", tag="market"):
    type: str | None = None


class AllMidsPush(AllMids, frozen=True, tag_field="channel", tag="allMids"):
    type: str | None = None


class TradesPush(Trades, frozen=True, tag_field="channel", tag="trades"):
    type: str | None = None


class OrderbookPush(Orderbook, frozen=True, tag_field="channel", tag="orderbook"):
    type: str | None = None


class TraderStatePush(msgspec.Struct, frozen=True, rename="camel", tag_field="channel", tag="traderState"):
    """TraderSnapshot and TraderDelta in one shape; `message_type` says which (checked by the codec)."""

    message_type: str
    authority: str
    subaccounts: list[SubaccountState] | None = None
    deltas: list[SubaccountState] | None = None
    trader_pda_index: int = 0
    type: str | None = None


Push = MarketPush | AllMidsPush | TradesPush | OrderbookPush | TraderStatePush


# --- strict parsing -----------------------------------------------------------------------------

_SIGNED = re.compile(r"-?[0-9]{1,20}")
_DECIMAL = re.compile(r"-?[0-9]{1,30}(?:\.[0-9]{1,30})?")
_U64_MAX = 2**64 - 1
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
# No venue price, size or lot decimal needs more than this; it keeps Decimal arithmetic in range.
MAX_MAGNITUDE = 40


def parse_u64(value: str | int, what: str) -> int:
    """A JsSafeU64: a string of digits (or a plain JSON integer)."""
    if isinstance(value, int):
        number = value
    # [0-9]{1,20}, without a regex: in ASCII only 0-9 are digits, and then int() reads exactly them.
    elif value.isascii() and value.isdigit() and len(value) <= 20:
        number = int(value)
    else:
        raise BadField(f"{what} is not an unsigned integer")
    if not 0 <= number <= _U64_MAX:
        raise BadField(f"{what} is out of the u64 range")
    return number


def parse_lots(value: str | int, what: str) -> int:
    """Signed i64 lots as the SDK sends them: "-1500" is short."""
    if isinstance(value, int):
        number = value
    elif _SIGNED.fullmatch(value):
        number = int(value)
    else:
        raise BadField(f"{what} is not a signed integer")
    if not _I64_MIN <= number <= _I64_MAX:
        raise BadField(f"{what} is out of the i64 range")
    return number


def parse_decimal_text(value: str, what: str) -> Decimal:
    if not _DECIMAL.fullmatch(value):
        raise BadField(f"{what} is not a decimal number")
    return Decimal(value)


def plausible(value: Decimal, what: str) -> Decimal:
    """A finite Decimal of a size some price or amount could have (msgspec also accepts "NaN")."""
    if not value.is_finite() or (value and abs(value.adjusted()) > MAX_MAGNITUDE):
        raise BadField(f"{what} is not a finite number")
    return value


def parse_lots_decimals(value: int, what: str) -> int:
    if not -128 <= value <= 127:  # an i8 on chain (§5.5)
        raise BadField(f"{what} is out of the i8 range")
    return value


def lots_to_base(lots: int, base_lots_decimals: int) -> Decimal:
    """base_units = lots / 10^baseLotsDecimals (§5.5), exact; negative decimals multiply."""
    if base_lots_decimals <= 0:
        return Decimal(lots * 10**-base_lots_decimals)
    return Decimal(lots).scaleb(-base_lots_decimals)


def validation_reason(exc: msgspec.ValidationError) -> str:
    """msgspec's message without any value it may quote ("Invalid value 'x' - at `$.kind`")."""
    message = str(exc)
    detail, _, path = message.partition(" - at ")
    if not (detail.startswith("Expected") or detail.startswith("Object missing required field")):
        detail = "invalid value"
    return f"{detail} at {path}" if path else detail
