"""The ExposureBook's running totals always equal the same roll-ups summed from scratch.

A plain model replays the same operations into bare dicts, and `_reference` sums it afresh in
Fractions (exact whatever the digits), after every step of random sequences of fills, revokes,
marks (trade, mark, mid; on underlyings and plain markets), risk changes and venue-stated
positions, and once more on a book rebuilt from the stored form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskmon.engine.exposure import ExposureBook, PositionKey
from riskmon.events import FillReceived, Liquidity, MarkKind, Side

UNDERLYINGS = {"SOL": {"mango": "SOL-PERP", "phoenix": "SOL"}, "ETH": {"phoenix": "ETH", "mobula": "eth-usd"}}
DESKS = ("alpha", "beta")
# Few markets, so random operations keep landing on the same positions. Mobula's "SOL" is not the
# SOL underlying but shares its instrument name: its own price must never price Phoenix's SOL.
MARKETS = (
    ("mango", "SOL-PERP"),
    ("phoenix", "SOL"),
    ("mobula", "SOL"),
    ("phoenix", "ETH"),
    ("mobula", "eth-usd"),
    ("mango", "BTC"),
)
BETS = (("prophetx", "evt1/m1/o1"), ("prophetx", "evt1/m2/o1"), ("prophetx", "evt2/m1/o1"), ("totalis", "rfq:r1"))

amounts = st.decimals(min_value=Decimal("-1e9"), max_value=Decimal("1e9"), places=18, allow_nan=False)
quantities = st.decimals(min_value=Decimal("0.000000000000000001"), max_value=Decimal("1e7"), places=18)
prices = st.decimals(min_value=Decimal("0"), max_value=Decimal("100000"), places=8, allow_nan=False)


def _keys(markets: tuple[tuple[str, str], ...]) -> st.SearchStrategy[PositionKey]:
    return st.builds(
        lambda desk, account, market: PositionKey(desk, market[0], account, market[1]),
        st.sampled_from(DESKS),
        st.sampled_from(("a1", "a2")),
        st.sampled_from(markets),
    )


keys = _keys(MARKETS)
fill_op = st.tuples(st.just("fill"), keys, st.sampled_from(Side), quantities)
revoke_op = st.tuples(st.just("revoke"), st.integers(min_value=0, max_value=50))
mark_op = st.tuples(st.just("mark"), st.sampled_from(MARKETS), prices, st.sampled_from(MarkKind))
risk_op = st.tuples(
    st.just("risk"),
    _keys(BETS + MARKETS[:1]),
    st.sampled_from(("o1", "q1")),
    st.one_of(st.just(Decimal(0)), st.decimals(min_value=0, max_value=Decimal("1e6"), places=2)),
    st.booleans(),
)
report_op = st.tuples(
    st.just("report"),
    st.sampled_from(DESKS),
    st.sampled_from(("phoenix", "mobula")),
    st.sampled_from(("a1", "a2")),
    st.dictionaries(st.sampled_from(("SOL", "ETH", "eth-usd")), st.one_of(st.just(Decimal(0)), amounts), max_size=3),
    st.booleans(),
)
operations = st.lists(st.one_of(fill_op, revoke_op, mark_op, risk_op, report_op), min_size=5, max_size=60)


@dataclass
class Model:
    """What the book must hold, kept the dumbest way: no roll-up stored anywhere."""

    positions: dict[PositionKey, Fraction] = field(default_factory=dict)
    marks: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    references: dict[str, Decimal] = field(default_factory=dict)
    risk: dict[tuple[PositionKey, str], tuple[Decimal, bool]] = field(default_factory=dict)
    fills: list[FillReceived] = field(default_factory=list)

    def underlying(self, venue: str, market: str) -> str | None:
        return next((name for name, ms in UNDERLYINGS.items() if ms.get(venue) == market), None)

    def instrument(self, key: PositionKey) -> str:
        return self.underlying(key.venue, key.market) or key.market

    def price(self, key: PositionKey) -> Decimal | None:
        underlying = self.underlying(key.venue, key.market)
        if underlying is not None and underlying in self.references:
            return self.references[underlying]
        return self.marks.get((key.venue, key.market))


def _fill(key: PositionKey, side: Side, quantity: Decimal, n: int) -> FillReceived:
    return FillReceived(key.venue, key.desk, key.account, key.market, side, quantity, Decimal(1), f"f{n}", "s", n,
                        Liquidity.TAKER, Decimal(0), 0.0)  # fmt: skip


def _apply(book: ExposureBook, model: Model, op: tuple[Any, ...], n: int) -> None:
    kind = op[0]
    if kind == "fill":
        _, key, side, quantity = op
        fill = _fill(key, side, quantity, n)
        book.apply_fill(fill)
        model.fills.append(fill)
        model.positions[key] = model.positions.get(key, Fraction(0)) + side.sign * Fraction(quantity)
    elif kind == "revoke" and model.fills:
        fill = model.fills.pop(op[1] % len(model.fills))
        book.apply_fill(fill, reverse=True)
        key = PositionKey(fill.desk, fill.venue, fill.account, fill.market)
        model.positions[key] -= fill.side.sign * Fraction(fill.quantity)
    elif kind == "mark":
        _, (venue, market), price, mark_kind = op
        book.set_mark(venue, market, price, mark_kind)
        model.marks[(venue, market)] = price
        underlying = model.underlying(venue, market)
        if underlying is not None and mark_kind is not MarkKind.TRADE:
            model.references[underlying] = price
    elif kind == "risk":
        _, key, source, amount, pending = op
        book.set_risk(key, source, amount, pending=pending)
        if amount:
            model.risk[(key, source)] = (amount, pending)
        else:
            model.risk.pop((key, source), None)
    elif kind == "report":
        _, desk, venue, account, stated, complete = op
        book.report_positions(desk, venue, account, stated, complete)
        if complete:
            for key in model.positions:
                if (key.desk, key.venue, key.account) == (desk, venue, account) and key.market not in stated:
                    model.positions[key] = Fraction(0)
        for market, quantity in stated.items():
            key = PositionKey(desk, venue, account, market)
            if key in model.positions or quantity != 0:
                model.positions[key] = Fraction(quantity)


def _reference(model: Model) -> dict[str, Any]:
    """Every roll-up, summed from scratch in Fractions."""
    nets: dict[tuple[str, str], Fraction] = {}
    unpriced: set[tuple[str, str]] = set()
    units: dict[tuple[str, str], Fraction] = {}
    open_positions = dict.fromkeys(DESKS, 0)
    for key, quantity in model.positions.items():
        cell = (key.desk, model.instrument(key))
        units[cell] = units.get(cell, Fraction(0)) + quantity
        nets.setdefault(cell, Fraction(0))
        price = model.price(key)
        if price is not None:
            nets[cell] += quantity * Fraction(price)
        elif quantity != 0:
            unpriced.add(cell)
        open_positions[key.desk] += quantity != 0
    gross = {desk: sum((abs(v) for (d, _), v in nets.items() if d == desk), Fraction(0)) for desk in DESKS}
    pending = dict.fromkeys(DESKS, Fraction(0))
    loss = dict.fromkeys(DESKS, Fraction(0))
    by_event: dict[str, dict[str, Fraction]] = {desk: {} for desk in DESKS}
    for (key, _), (amount, is_pending) in model.risk.items():
        if is_pending:
            pending[key.desk] += Fraction(amount)
        else:
            loss[key.desk] += Fraction(amount)
            event = key.market.split("/", 1)[0]
            by_event[key.desk][event] = by_event[key.desk].get(event, Fraction(0)) + Fraction(amount)
    return {
        "net": {cell: None if cell in unpriced else v for cell, v in nets.items()},
        "units": units,
        "gross": gross,
        "firm_gross": sum(gross.values(), Fraction(0)),
        "open": open_positions,
        "pending": pending,
        "firm_pending": sum(pending.values(), Fraction(0)),
        "loss": loss,
        "firm_loss": sum(loss.values(), Fraction(0)),
        "by_event": by_event,
        "rows": dict(model.positions),
    }


def _frac(value: Decimal | None) -> Fraction | None:
    return None if value is None else Fraction(value)


def _observed(book: ExposureBook) -> dict[str, Any]:
    cells = book.held_instruments()
    return {
        "net": {cell: _frac(book.desk_market_net(*cell)) for cell in cells},
        "units": {cell: Fraction(book.desk_market_position(*cell)) for cell in cells},
        "gross": {desk: Fraction(book.desk_gross(desk)) for desk in DESKS},
        "firm_gross": Fraction(book.firm_gross()),
        "open": {desk: book.desk_open_positions(desk) for desk in DESKS},
        "pending": {desk: Fraction(book.desk_pending(desk)) for desk in DESKS},
        "firm_pending": Fraction(book.firm_pending()),
        "loss": {desk: Fraction(book.desk_worst_case_loss(desk)) for desk in DESKS},
        "firm_loss": Fraction(book.firm_worst_case_loss()),
        "by_event": {
            desk: {event: Fraction(v) for event, v in book.desk_worst_case_loss_by_event(desk).items()}
            for desk in DESKS
        },
        "rows": {row.key: Fraction(row.position) for row in book.rows()},
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_running_totals_equal_a_fresh_sum_after_every_step(ops: list[tuple[Any, ...]]) -> None:
    book, model = ExposureBook(UNDERLYINGS), Model()
    for n, op in enumerate(ops):
        _apply(book, model, op, n)
        assert _observed(book) == _reference(model), f"after step {n}: {op}"
    # The instrument view and each row's notional agree with the same totals.
    for desk, instrument, units, net in book.instrument_rows():
        assert (net, units) == (book.desk_market_net(desk, instrument), book.desk_market_position(desk, instrument))
    for row in book.rows():
        price = model.price(row.key)
        assert _frac(row.notional_usd) == (None if price is None else Fraction(row.position) * Fraction(price))

    # The stored form rebuilds a book with the same totals.
    restored = ExposureBook(UNDERLYINGS)
    restored.restore(
        {row.key: row.position for row in book.rows()},
        book.own_marks(),
        book.reference_marks(),
        {key: book.risk_sources(key) for key in {key for key, _ in model.risk}},
    )
    assert _observed(restored) == _observed(book)


def test_a_fill_and_its_revoke_leave_every_total_exactly_where_it_was() -> None:
    book = ExposureBook(UNDERLYINGS)
    key = PositionKey("alpha", "mango", "a1", "SOL-PERP")
    book.set_mark("phoenix", "SOL", Decimal("143.123456789"), MarkKind.MID)
    book.apply_fill(_fill(key, Side.BUY, Decimal("2"), 0))
    before = _observed(book)
    odd = _fill(key, Side.SELL, Decimal("123456789.123456789012345678"), 1)
    book.apply_fill(odd)
    # Exact: 36 significant digits, where the default context would round to 28.
    assert book.desk_gross("alpha") == Decimal("17669562137.172839350517146632763907942")
    book.apply_fill(odd, reverse=True)
    assert _observed(book) == before
    assert book.desk_market_net("alpha", "SOL") == Decimal("286.246913578")


def test_a_mark_moves_only_the_positions_of_its_market_and_a_reference_beats_a_trade() -> None:
    book = ExposureBook(UNDERLYINGS)
    sol, btc = PositionKey("alpha", "mango", "a1", "SOL-PERP"), PositionKey("beta", "mango", "a1", "BTC")
    book.apply_fill(_fill(sol, Side.BUY, Decimal(3), 0))
    book.apply_fill(_fill(btc, Side.SELL, Decimal(1), 1))
    book.set_mark("mango", "BTC", Decimal(60000))
    book.set_mark("mango", "SOL-PERP", Decimal(100))  # a trade price: used until a reference exists
    assert (book.desk_gross("alpha"), book.desk_gross("beta"), book.firm_gross()) == (
        Decimal(300),
        Decimal(60000),
        Decimal(60300),
    )
    book.set_mark("phoenix", "SOL", Decimal(110), MarkKind.MARK)  # the underlying's reference
    book.set_mark("mango", "SOL-PERP", Decimal(90))  # a later trade price no longer counts
    assert (book.desk_gross("alpha"), book.desk_gross("beta"), book.firm_gross()) == (
        Decimal(330),
        Decimal(60000),
        Decimal(60330),
    )
    assert book.desk_market_net("beta", "BTC") == -60000


def test_a_price_that_is_not_finite_is_refused_and_leaves_the_totals_alone() -> None:
    book = ExposureBook()
    key = PositionKey("alpha", "mango", "a1", "BTC")
    book.apply_fill(_fill(key, Side.BUY, Decimal(2), 0))
    book.set_mark("mango", "BTC", Decimal(10))
    for bad in (Decimal("NaN"), Decimal("Infinity")):
        with pytest.raises(ValueError, match="not a finite number"):
            book.set_mark("mango", "BTC", bad)
        with pytest.raises(ValueError, match="not a finite number"):
            book.set_risk(key, "o1", bad)
    assert (book.desk_gross("alpha"), book.desk_worst_case_loss("alpha")) == (Decimal(20), Decimal(0))
