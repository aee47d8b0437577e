"""Mango v3 perp markets: lot sizes that turn lots into UI units (protocols.md §1.4).

Built-in defaults are derived from the mainnet contract specs (base lot = contract size x
10^base_decimals; quote lot 100, BTC 10). LUNA-PERP and GMT-PERP are left out because their
specs are not documented; configure them under the venue's `markets` if you trade them.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import msgspec

from riskmon.config.schema import MarketLots

MAINNET_LOTS: Mapping[str, MarketLots] = {
    "BTC-PERP": MarketLots(base_lot_size=100, quote_lot_size=10, base_decimals=6),
    "ETH-PERP": MarketLots(base_lot_size=1_000, quote_lot_size=100, base_decimals=6),
    "SOL-PERP": MarketLots(base_lot_size=10_000_000, quote_lot_size=100, base_decimals=9),
    "MNGO-PERP": MarketLots(base_lot_size=1_000_000, quote_lot_size=100, base_decimals=6),
    "SRM-PERP": MarketLots(base_lot_size=100_000, quote_lot_size=100, base_decimals=6),
    "RAY-PERP": MarketLots(base_lot_size=100_000, quote_lot_size=100, base_decimals=6),
    "FTT-PERP": MarketLots(base_lot_size=100_000, quote_lot_size=100, base_decimals=6),
    "ADA-PERP": MarketLots(base_lot_size=1_000_000, quote_lot_size=100, base_decimals=6),
    "BNB-PERP": MarketLots(base_lot_size=100_000, quote_lot_size=100, base_decimals=8),
    "AVAX-PERP": MarketLots(base_lot_size=1_000_000, quote_lot_size=100, base_decimals=8),
}


class LotConverter(msgspec.Struct, frozen=True):
    """Exact lots -> UI conversion for one market."""

    lots: MarketLots

    def quantity(self, base_lots: int) -> Decimal:
        # base_lots x base_lot_size / 10^base_decimals, exact by construction.
        return Decimal(base_lots * self.lots.base_lot_size).scaleb(-self.lots.base_decimals)

    def price(self, price_lots: int) -> Decimal:
        numerator = Decimal(price_lots * self.lots.quote_lot_size).scaleb(
            self.lots.base_decimals - self.lots.quote_decimals
        )
        return numerator / Decimal(self.lots.base_lot_size)


def market_converters(overrides: Mapping[str, MarketLots]) -> dict[str, LotConverter]:
    merged = {**MAINNET_LOTS, **overrides}
    return {name: LotConverter(lots) for name, lots in merged.items()}
