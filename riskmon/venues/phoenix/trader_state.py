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
from dataclasses import dataclass
from decimal import Decimal

from riskmon.events import ReportedPosition
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


@dataclass(frozen=True, slots=True)
class HeldPosition:
    lots: int  # signed base lots
    entry_price: Decimal | None  # USD, as the venue computed it


@dataclass(frozen=True, slots=True)
class SubaccountUpdate:
    """A parsed subaccount row: for a delta, None marks a `closed` symbol."""

    index: int
    sequence: int
    positions: dict[str, HeldPosition | None]


@dataclass(frozen=True, slots=True)
class Gap:
    subaccount: int
    expected: int
    received: int


@dataclass(frozen=True, slots=True)
class Report:
    positions: tuple[ReportedPosition, ...]
    complete: bool
    sequence: int | None = None


def parse_subaccounts(rows: Iterable[SubaccountState], *, snapshot: bool) -> list[SubaccountUpdate]:
    """Every number of a frame parsed before anything is applied: one bad row drops the frame."""
    parsed = []
    for row in rows:
        where = f"subaccount {row.subaccount_index}"
        if not 0 <= row.subaccount_index <= 255:
            raise BadField("subaccountIndex is out of the u8 range")
        sequence = parse_u64(row.sequence, f"{where} sequence")
        positions: dict[str, HeldPosition | None] = {}
        for position in row.positions:
            if not snapshot and position.change == "closed":
                positions[position.symbol] = None
            elif position.change not in (None, "updated"):
                raise BadField(f"{where} position change is neither updated nor closed")
            else:
                held = _held_position(position, where)
                if held is not None:
                    positions[position.symbol] = held
                elif snapshot:
                    raise BadField(f"{where} snapshot position has no basePositionLots")
        parsed.append(SubaccountUpdate(row.subaccount_index, sequence, positions))
    return parsed


def _held_position(row: PositionRow, where: str) -> HeldPosition | None:
    fields = row.position
    lots_text = fields.base_position_lots if fields is not None else row.base_position_lots
    entry_text = fields.entry_price_usd if fields is not None else row.entry_price_usd
    if lots_text is None:
        return None  # the SDK skips an `updated` row without a position, and so do we
    lots = parse_lots(lots_text, f"{where} basePositionLots")
    entry = None
    if entry_text is not None:
        entry = plausible(parse_decimal_text(entry_text, f"{where} entryPriceUsd"), f"{where} entryPriceUsd")
    return HeldPosition(lots, entry)


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
        sequences = dict(self._sequences)
        found: dict[int, Gap] = {}
        for delta in deltas:
            current = sequences.get(delta.index)
            if delta.index in found or current is None or delta.sequence <= current:
                continue  # a new isolated subaccount starts anywhere; a stale delta is skipped
            if delta.sequence > current + 1:
                found[delta.index] = Gap(delta.index, current + 1, delta.sequence)
            else:
                sequences[delta.index] = delta.sequence
        return list(found.values())

    def apply_deltas(self, deltas: list[SubaccountUpdate], units: UnitsLookup) -> Report | None:
        """Apply every non-stale delta (call `gaps` first); report the symbols they touched."""
        changed: set[str] = set()
        newest: int | None = None
        for delta in deltas:
            current = self._sequences.get(delta.index)
            if current is not None and delta.sequence <= current:
                continue
            self._sequences[delta.index] = delta.sequence
            positions = self._subaccounts.setdefault(delta.index, {})
            for symbol, position in delta.positions.items():
                if position is None:
                    positions.pop(symbol, None)
                else:
                    positions[symbol] = position
                changed.add(symbol)
            newest = delta.sequence if newest is None else max(newest, delta.sequence)
        if not changed:
            return None
        reported, missing = self._positions(changed, units)
        self._held = (self._held - changed) | missing
        if self._snapshot_owed and not self._held:
            # The delta flattened the last market a held-back snapshot was waiting on.
            self._snapshot_owed = False
            everything, _ = self._positions(self._symbols(), units)
            return Report(everything, complete=True, sequence=newest)
        return Report(reported, complete=False, sequence=newest) if reported else None

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
        primary = self._subaccounts.get(PRIMARY_SUBACCOUNT, {})
        for symbol in sorted(symbols):
            lots = sum(positions[symbol].lots for positions in self._subaccounts.values() if symbol in positions)
            held = primary.get(symbol)
            entry_price = held.entry_price if held is not None else None
            if lots == 0:
                reported.append(ReportedPosition(symbol, Decimal(0), entry_price))  # flat needs no units
                continue
            decimals = units(symbol)
            if decimals is None:
                missing.add(symbol)
                continue
            reported.append(ReportedPosition(symbol, lots_to_base(lots, decimals), entry_price))
        return tuple(reported), missing
