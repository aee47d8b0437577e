"""The records an ExposureBook keeps its positions and roll-ups in (riskmon.engine.exposure).

A holding is one position of a desk at a venue, account and market, with its notional at its
market's current price; it points at the running totals it counts in (the desk's net in the
instrument, the desk's gross), so a fill or a mark moves them without a lookup. A mark route is
what a price of one market touches. Slotted and plain: the book walks these on every fill and mark.
"""

from __future__ import annotations

from decimal import Decimal

from riskmon.engine.risk_book import ZERO, PositionKey

__all__ = ["DeskHoldings", "Holding", "InstrumentNet", "MarkRoute"]


class InstrumentNet:
    """A desk's net in one instrument, across its venues and accounts."""

    __slots__ = ("notional", "position", "unpriced")

    def __init__(self) -> None:
        self.position = ZERO
        self.notional = ZERO  # of the priced positions
        self.unpriced = 0  # non-flat positions without a mark: the net is unknown while any


class DeskHoldings:
    """A desk's nets per instrument and the totals over them."""

    __slots__ = ("gross", "name", "nets", "open_positions")

    def __init__(self, name: str) -> None:
        self.name = name
        self.nets: dict[str, InstrumentNet] = {}  # by instrument
        self.gross = ZERO  # sum of |net notional| over the instruments
        self.open_positions = 0


class Holding:
    """One position, its notional at its market's current price, and the roll-ups it counts in."""

    __slots__ = ("desk", "key", "net", "notional", "price", "quantity")

    def __init__(self, key: PositionKey, desk: DeskHoldings, net: InstrumentNet) -> None:
        self.key = key
        self.desk = desk
        self.net = net
        self.quantity = ZERO
        self.price: Decimal | None = None
        self.notional: Decimal | None = None


class MarkRoute:
    """What a price of one (venue, market) touches, worked out on its first price: the instrument it
    values and the lists of positions it may re-price. The lists are the book's own, which only
    ever grow in place, so a new position is priced by the next mark with no index to rebuild."""

    __slots__ = ("holdings", "instrument", "key", "siblings", "underlying")

    def __init__(
        self,
        key: tuple[str, str],
        underlying: str | None,
        holdings: list[Holding],
        siblings: tuple[list[Holding], ...],
    ) -> None:
        self.key = key
        self.underlying = underlying
        self.instrument = key[1] if underlying is None else underlying
        self.holdings = holdings  # the market's own positions
        self.siblings = siblings  # the positions of every market of the underlying (a reference prices them all)
