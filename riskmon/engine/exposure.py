"""ExposureBook: exact positions and their USD notional, with the roll-ups risk reads.

Positions are Decimals in base units under a wide context, so applying a fill and reversing it
(a revoke) returns the position to exactly where it was. Notional is derived on read from the
latest mark, never stored, so a new mark can never leave a stale notional behind.
"""

from __future__ import annotations

import decimal
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from typing import NamedTuple

from riskmon.events import FillReceived

# Mobula amounts carry 18 decimals; 60 digits keeps sums of them exact.
EXACT = decimal.Context(prec=60, traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow])
ZERO = Decimal(0)


def plain_decimal(amount: Decimal) -> str:
    """Exact, without exponent or trailing zeros: Decimal('1.980000000') -> '1.98'."""
    if amount == 0:
        return "0"
    return format(amount.normalize(), "f")


class PositionKey(NamedTuple):
    desk: str
    venue: str
    account: str
    market: str


class PositionRow(NamedTuple):
    key: PositionKey
    position: Decimal
    notional_usd: Decimal | None  # None while the market has no mark


class ExposureBook:
    def __init__(self) -> None:
        self._positions: dict[PositionKey, Decimal] = {}
        self._marks: dict[tuple[str, str], Decimal] = {}
        self._by_desk: dict[str, set[PositionKey]] = defaultdict(set)
        self._desks_by_market: dict[tuple[str, str], set[str]] = defaultdict(set)

    def apply_fill(self, fill: FillReceived, reverse: bool = False) -> PositionKey:
        key = PositionKey(fill.desk, fill.venue, fill.account, fill.market)
        signed = fill.quantity if fill.side.sign > 0 else -fill.quantity
        if reverse:
            signed = -signed
        self._positions[key] = EXACT.add(self._positions.get(key, ZERO), signed)
        self._by_desk[fill.desk].add(key)
        self._desks_by_market[(fill.venue, fill.market)].add(fill.desk)
        return key

    def set_mark(self, venue: str, market: str, price: Decimal) -> None:
        self._marks[(venue, market)] = price

    def mark(self, venue: str, market: str) -> Decimal | None:
        return self._marks.get((venue, market))

    def position(self, key: PositionKey) -> Decimal:
        return self._positions.get(key, ZERO)

    def desks_holding(self, venue: str, market: str) -> set[str]:
        return self._desks_by_market.get((venue, market), set())

    def notional(self, key: PositionKey) -> Decimal | None:
        mark = self._marks.get((key.venue, key.market))
        if mark is None:
            return None
        return self._positions.get(key, ZERO) * mark

    def desk_market_net(self, desk: str, market: str) -> Decimal | None:
        """Net USD notional of a desk in one market across its venues and accounts."""
        total = ZERO
        for key in self._by_desk.get(desk, ()):
            if key.market != market:
                continue
            notional = self.notional(key)
            if notional is None:
                return None
            total += notional
        return total

    def desk_markets(self, desk: str) -> set[str]:
        return {key.market for key in self._by_desk.get(desk, ())}

    def desk_gross(self, desk: str) -> Decimal:
        """Gross USD notional of a desk: sum of |notional| over its (venue, market) nets.

        Positions without a mark count as zero here; a missing mark is its own problem.
        """
        nets: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for key in self._by_desk.get(desk, ()):
            notional = self.notional(key)
            if notional is not None:
                nets[(key.venue, key.market)] += notional
        return sum((abs(v) for v in nets.values()), ZERO)

    def firm_gross(self) -> Decimal:
        return sum((self.desk_gross(desk) for desk in self._by_desk), ZERO)

    def rows(self) -> Iterator[PositionRow]:
        for key in sorted(self._positions):
            yield PositionRow(key, self._positions[key], self.notional(key))
