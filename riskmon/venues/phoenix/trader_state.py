"""One trader PDA's positions from the traderState channel, kept in exact lots (protocols.md §5.3).

The apply rules are the SDK's (`rust/api/src/trader_state.rs`): a snapshot replaces every
subaccount; a subaccount delta applies only when its `sequence` is above the current one; position
rows are keyed by symbol, `closed` removes one and `updated` (or no `change`) upserts it. One rule
is ours: the SDK applies any newer sequence, but a jump of more than one means we missed a delta,
so the caller resubscribes for a fresh snapshot instead of applying it, and reports the stream
resynced when that snapshot arrives.

A desk's position in a market is the sum over all subaccounts (cross and isolated); the entry
price reported is the primary subaccount's. Units come from the market's `baseLotsDecimals`; a
market whose units are not known yet is held back, never guessed, and reported once they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal

import msgspec

from riskmon.events import ReportedPosition
from riskmon.venues.codec_support import BoundedMemo
from riskmon.venues.phoenix.frames import (
    BadField,
    PositionRow,
    SubaccountState,
    lots_to_base,
    parse_decimal_text,
    parse_lots,
    parse_u64,
    plausible,
)

PRIMARY_SUBACCOUNT = 0

UnitsLookup = Callable[[str], int | None]  # symbol -> baseLotsDecimals, None while unknown


# msgspec Structs rather than frozen dataclasses: built several times per delta, and a frozen
# dataclass's __init__ (object.__setattr__ per field) costs several times a Struct's.
class HeldPosition(msgspec.Struct, frozen=True, gc=False):
    lots: int  # signed base lots
    entry_price: Decimal | None  # USD, as the venue computed it


class SubaccountUpdate(msgspec.Struct, frozen=True):
    """A parsed subaccount row: for a delta, None marks a `closed` symbol."""

    index: int
    sequence: int
    positions: dict[str, HeldPosition | None]


class Gap(msgspec.Struct, frozen=True, gc=False):
    subaccount: int
    expected: int
    received: int


class Report(msgspec.Struct, frozen=True, gc=False):
    positions: tuple[ReportedPosition, ...]
    complete: bool
    sequence: int | None = None


def parse_subaccounts(rows: Iterable[SubaccountState], *, snapshot: bool) -> list[SubaccountUpdate]:
    """Every number of a frame parsed before anything is applied: one bad row drops the frame."""
    parsed = []
    for row in rows:
        index = row.subaccount_index
        if not 0 <= index <= 255:
            raise BadField("subaccountIndex is out of the u8 range")
        try:
            sequence = parse_u64(row.sequence, "sequence")
            parsed.append(SubaccountUpdate(index, sequence, _parse_positions(row.positions, snapshot)))
        except BadField as exc:
            raise BadField(f"subaccount {index} {exc}") from None  # the row named only when it failed
    return parsed


def _parse_positions(rows: list[PositionRow], snapshot: bool) -> dict[str, HeldPosition | None]:
    positions: dict[str, HeldPosition | None] = {}
    for row in rows:
        change = row.change
        if change == "closed" and not snapshot:
            positions[row.symbol] = None
            continue
        if change is not None and change != "updated":
            raise BadField("position change is neither updated nor closed")
        fields = row.position
        lots_text: str | None
        if fields is not None:
            lots_text, entry_text = fields.base_position_lots, fields.entry_price_usd
        else:
            lots_text, entry_text = row.base_position_lots, row.entry_price_usd
        if lots_text is None:
            if snapshot:
                raise BadField("snapshot position has no basePositionLots")
            continue  # the SDK skips an `updated` row without a position, and so do we
        lots = parse_lots(lots_text, "basePositionLots")
        positions[row.symbol] = HeldPosition(lots, None if entry_text is None else _entry_prices[entry_text])
    return positions


def _entry_price(text: str) -> Decimal:
    return plausible(parse_decimal_text(text, "entryPriceUsd"), "entryPriceUsd")


# A position's entry price repeats in every delta until its next fill; a bad one raises, uncached.
_entry_prices: BoundedMemo[str, Decimal] = BoundedMemo(_entry_price, limit=4096)


class TraderBook:
    """Positions of one (authority, traderPdaIndex), per subaccount, in lots."""

    __slots__ = ("_held", "_sequences", "_snapshot_owed", "_subaccounts")

    def __init__(self, snapshot: list[SubaccountUpdate]) -> None:
        self._subaccounts: dict[int, dict[str, HeldPosition]] = {}
        self._sequences: dict[int, int] = {}
        for update in snapshot:
            self._subaccounts[update.index] = {s: p for s, p in update.positions.items() if p is not None}
            self._sequences[update.index] = update.sequence
        # Symbols whose report waits for units; a snapshot held back still owes a complete report.
        self._held: set[str] = set()
        self._snapshot_owed = False

    def snapshot_report(self, units: UnitsLookup) -> Report | None:
        positions, missing = self._positions(self._symbols(), units)
        if not missing:
            return Report(positions, complete=True)
        # A complete report now would say the held markets are flat: report what is known as a
        # partial one and owe the complete report until the units arrive.
        self._held = missing
        self._snapshot_owed = True
        return Report(positions, complete=False) if positions else None

    def gaps(self, deltas: list[SubaccountUpdate]) -> list[Gap]:
        """Every subaccount the frame skips numbers in, first gap of each, in frame order.

        Each subaccount is its own stream, with its own gap alert and its own resync: reporting
        only the first gap of a frame would leave another subaccount's gap unseen.
        """
        sequences = self._sequences
        advanced: dict[int, int] = {}  # sequences this frame moves on, before anything applies
        found: dict[int, Gap] = {}
        for delta in deltas:
            index = delta.index
            if index in found:
                continue
            current = advanced.get(index)
            if current is None:
                current = sequences.get(index)
            if current is None or delta.sequence <= current:
                continue  # a new isolated subaccount starts anywhere; a stale delta is skipped
            if delta.sequence > current + 1:
                found[index] = Gap(index, current + 1, delta.sequence)
            else:
                advanced[index] = delta.sequence
        return list(found.values())

    def apply_deltas(self, deltas: list[SubaccountUpdate], units: UnitsLookup) -> Report | None:
        """Apply every non-stale delta (call `gaps` first); report the symbols they touched."""
        changed: set[str] = set()
        newest: int | None = None
        sequences = self._sequences
        subaccounts = self._subaccounts
        for delta in deltas:
            index, sequence = delta.index, delta.sequence
            current = sequences.get(index)
            if current is not None and sequence <= current:
                continue
            sequences[index] = sequence
            positions = subaccounts.get(index)
            if positions is None:
                positions = subaccounts[index] = {}
            for symbol, position in delta.positions.items():
                if position is None:
                    positions.pop(symbol, None)
                else:
                    positions[symbol] = position
                changed.add(symbol)
            if newest is None or sequence > newest:
                newest = sequence
        if not changed:
            return None
        reported, missing = self._positions(changed, units)
        if self._held or missing:
            self._held = (self._held - changed) | missing
            if self._snapshot_owed and not self._held:
                # The delta flattened the last market a held-back snapshot was waiting on.
                self._snapshot_owed = False
                everything, _ = self._positions(self._symbols(), units)
                return Report(everything, True, newest)
        return Report(reported, False, newest) if reported else None

    def release_held(self, units: UnitsLookup) -> Report | None:
        """New units arrived: report the held markets they cover."""
        if not self._held:
            return None
        reported, missing = self._positions(self._held, units)
        if not reported:
            return None
        if self._snapshot_owed and not missing:
            self._held = set()
            self._snapshot_owed = False
            everything, _ = self._positions(self._symbols(), units)
            return Report(everything, complete=True)
        self._held = missing
        return Report(reported, complete=False)

    def _symbols(self) -> set[str]:
        return {symbol for positions in self._subaccounts.values() for symbol in positions}

    def _positions(self, symbols: Iterable[str], units: UnitsLookup) -> tuple[tuple[ReportedPosition, ...], set[str]]:
        reported = []
        missing = set()
        subaccounts = self._subaccounts.values()
        primary = self._subaccounts.get(PRIMARY_SUBACCOUNT, {})
        for symbol in sorted(symbols):
            lots = 0
            for positions in subaccounts:
                held = positions.get(symbol)
                if held is not None:
                    lots += held.lots
            held = primary.get(symbol)
            entry_price = held.entry_price if held is not None else None
            if lots == 0:
                reported.append(ReportedPosition(symbol, _FLAT, entry_price))  # flat needs no units
                continue
            decimals = units(symbol)
            if decimals is None:
                missing.add(symbol)
                continue
            reported.append(ReportedPosition(symbol, lots_to_base(lots, decimals), entry_price))
        return tuple(reported), missing


_FLAT = Decimal(0)
