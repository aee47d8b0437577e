"""The engine's fast paths decide exactly what a plain reference decides, on long random streams.

Three engines take the same seeded stream of frames (prices of held and unheld markets, trade
prices under a reference mark, desk fills, duplicates, revokes known and unknown, liquidations
and their repeats, venue position statements) with a config reload in the middle:

- the engine fed frame by frame (`ingest`);
- the engine fed socket reads of several frames (`ingest_batch`);
- a reference: the same engine on a book that sums every roll-up afresh at each read and finds
  the desks a price moved by pricing every position before and after it, with the threshold
  rules judged through the condition tree's plain `evaluate`/`value` (no compiled closures).

All three must give the same alert transitions, in the same order, and end with the same books.
The limits and rules are set low enough that net, gross, threshold (`for` included), rate and
event alerts all fire and resolve along the way.
"""

from __future__ import annotations

import decimal
import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from decimal import Decimal
from typing import Any

import pytest

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.bench.mango_feed import DESK_ACCOUNT, MAKER, OTHER_TAKER
from riskmon.bench.venue_frames import PHOENIX_AUTHORITY
from riskmon.config import parse_config
from riskmon.config.schema import MonitorConfig
from riskmon.engine import engine as engine_module
from riskmon.engine.engine import Engine, IngestItem
from riskmon.engine.exposure import ZERO, ExposureBook, PositionKey
from riskmon.events import (
    Event,
    FillReceived,
    FillRevoked,
    Liquidation,
    Liquidity,
    MarkKind,
    MarkPrice,
    PositionsReported,
    ReportedPosition,
    Side,
)
from riskmon.rules.threshold import ThresholdEvaluator

T0 = 1_000.0
# The reference's own arithmetic: wide enough that nothing it sums is ever rounded.
_WIDE = decimal.Context(prec=200)
_CONFIG = """
venues:
  mango: {{kind: mango_v3_fills, urls: ["ws://127.0.0.1:9"]}}
  phoenix: {{kind: phoenix, url: "ws://127.0.0.1:9", authority: {ph}, symbols: [SOL, ETH]}}
underlyings:
  SOL: {{mango: SOL-PERP, phoenix: SOL}}
desks:
  alpha:
    accounts: {{mango: [{a1}, {a2}], phoenix: [{ph}]}}
    limits:
      max_net_notional_usd: [{{market: "SOL", max_usd: {net}}}, {{market: "*", max_usd: 30000}}]
      max_gross_notional_usd: {gross}
  beta:
    accounts: {{mango: [{b1}]}}
    limits:
      max_net_notional_usd: [{{market: "*", max_usd: 8000}}]
      for: 2s
rules:
  - {{kind: threshold, name: BigNet, when: "abs(market.net_usd) > {rule}", for: 3s, value: market.net_usd}}
  - {{kind: threshold, name: DeskGross, when: "desk.gross_usd >= 9000", clear: "desk.gross_usd < 7000"}}
  - {{kind: threshold, name: FirmGross, when: "firm.gross_usd > 15000 and desk.positions >= 2"}}
  - {{kind: rate, name: FillBurst, event: fill, window: 10s, above: 2}}
  - {{kind: event, name: Liquidated, event: liquidation}}
"""
A1, A2, B1 = DESK_ACCOUNT, MAKER, OTHER_TAKER  # Mango accounts
_KEYS = {"a1": A1, "a2": A2, "b1": B1, "ph": PHOENIX_AUTHORITY}
BEFORE = _CONFIG.format(net=12000, gross=20000, rule=10000, **_KEYS)
AFTER = _CONFIG.format(net=9000, gross=26000, rule=7000, **_KEYS)
# Positions per (desk, venue, account, market); BTC-PERP is held by nobody at first.
CELLS = [
    ("alpha", "mango", A1, "SOL-PERP"),
    ("alpha", "mango", A2, "SOL-PERP"),
    ("alpha", "mango", A1, "ETH-PERP"),
    ("beta", "mango", B1, "SOL-PERP"),
    ("beta", "mango", B1, "BTC-PERP"),
]
PRICED = [("mango", "SOL-PERP"), ("mango", "ETH-PERP"), ("mango", "BTC-PERP"), ("phoenix", "SOL"), ("phoenix", "XRP")]


class ResummingBook(ExposureBook):
    """Every roll-up summed afresh from the positions and marks at each read; a price's moved desks
    found by pricing every position before and after it, in the documented order (the
    underlying's markets as configured, a market's positions in the order first held)."""

    def _priced(self, key: PositionKey) -> Decimal | None:
        mark = self.mark(key.venue, key.market)
        return None if mark is None else _WIDE.multiply(self.position(key), mark)

    def _keys(self) -> list[PositionKey]:
        return list(self._holdings)  # in the order first held

    def apply_mark(
        self, venue: str, market: str, price: Decimal, kind: MarkKind = MarkKind.TRADE
    ) -> tuple[str, Sequence[str]]:
        keys = self._keys()
        before = {key: (self.mark(key.venue, key.market), self._priced(key)) for key in keys}
        instrument, _ = super().apply_mark(venue, market, price, kind)
        underlying = self._underlying_of.get((venue, market))
        markets = (
            self._markets_of[underlying] if underlying is not None and kind is not MarkKind.TRADE else [(venue, market)]
        )
        moved: list[str] = []
        for priced in markets:
            for key in keys:
                if (key.venue, key.market) != priced or before[key][0] == price:
                    continue
                old, new = before[key][1], self._priced(key)
                changed = old != new or (old is None) != (new is None)
                if changed and key.desk not in moved:
                    moved.append(key.desk)
        return instrument, moved

    def _cells(self, desk: str) -> dict[str, list[PositionKey]]:
        cells: dict[str, list[PositionKey]] = {}
        for key in self._keys():
            if key.desk == desk:
                cells.setdefault(self.instrument(key.venue, key.market), []).append(key)
        return cells

    def desk_market_net(self, desk: str, instrument: str) -> Decimal | None:
        total = ZERO
        for key in self._cells(desk).get(instrument, []):
            notional = self._priced(key)
            if notional is None:
                if self.position(key):
                    return None
                continue
            total = _WIDE.add(total, notional)
        return total

    def desk_market_position(self, desk: str, instrument: str) -> Decimal:
        total = ZERO
        for key in self._cells(desk).get(instrument, []):
            total = _WIDE.add(total, self.position(key))
        return total

    def desk_gross(self, desk: str) -> Decimal:
        gross = ZERO
        for keys in self._cells(desk).values():
            net = ZERO
            for key in keys:
                net = _WIDE.add(net, self._priced(key) or ZERO)
            gross = _WIDE.add(gross, net.copy_abs())
        return gross

    def firm_gross(self) -> Decimal:
        total = ZERO
        for desk in dict.fromkeys(key.desk for key in self._keys()):
            total = _WIDE.add(total, self.desk_gross(desk))
        return total

    def desk_open_positions(self, desk: str) -> int:
        return sum(1 for key in self._keys() if key.desk == desk and self.position(key))


def _plain_rules(engine: Engine) -> None:
    """Judge the reference's threshold rules through the condition tree's plain entry points."""
    for handler in engine.rule_hooks.rules.rules().values():
        if isinstance(handler, ThresholdEvaluator):
            handler._when = handler.when.evaluate
            handler._clear = None if handler.clear is None else handler.clear.evaluate
            handler._value = None if handler.value is None else handler.value.value


def _engine(config: MonitorConfig, monkeypatch: pytest.MonkeyPatch | None = None) -> Engine:
    if monkeypatch is None:
        engine = Engine(config)
    else:
        with monkeypatch.context() as patch:
            patch.setattr(engine_module, "ExposureBook", ResummingBook)
            engine = Engine(config)
        assert isinstance(engine.book, ResummingBook)
        _plain_rules(engine)
    engine.start(T0)
    return engine


def _stream(seed: int, frames: int) -> Iterator[tuple[float, str, list[Event]]]:
    rng = random.Random(seed)
    now = T0
    fills: list[FillReceived] = []
    liquidations: list[Liquidation] = []
    prices = {market: Decimal(100) for market in PRICED}
    for n in range(frames):
        now += rng.choice((0.0, 0.05, 0.3, 1.1, 2.5))
        roll = rng.random()
        events: list[Event] = []
        if roll < 0.45:
            market = rng.choice(PRICED)
            prices[market] = max(Decimal(1), prices[market] + Decimal(rng.randint(-800, 800)) / 100)
            kind = rng.choice((MarkKind.TRADE, MarkKind.TRADE, MarkKind.MARK, MarkKind.MID))
            events.append(MarkPrice(market[0], market[1], prices[market], 0.0, kind))
            if rng.random() < 0.2:  # the same price again
                events.append(MarkPrice(market[0], market[1], prices[market], 0.0, kind))
        elif roll < 0.75:
            desk, venue, account, market = rng.choice(CELLS)
            qty = Decimal(rng.randint(1, 4000)) / 100
            side = rng.choice((Side.BUY, Side.SELL))
            fill = FillReceived(venue, desk, account, market, side, qty, Decimal(100), f"f{n}", "q", n,
                                Liquidity.TAKER, Decimal(0), 0.0)  # fmt: skip
            fills.append(fill)
            events.append(MarkPrice(venue, market, prices[(venue, market)], 0.0))
            events.append(fill)
        elif roll < 0.83 and fills:
            events.append(rng.choice(fills))  # a duplicate
        elif roll < 0.9 and fills:
            fill = fills.pop(rng.randrange(len(fills)))
            events.append(FillRevoked(fill.venue, fill.fill_key, fill.stream, fill.market, fill.sequence))
            if rng.random() < 0.3:  # revoked twice: the second is unknown
                events.append(FillRevoked(fill.venue, fill.fill_key, fill.stream, fill.market, fill.sequence))
        elif roll < 0.95:
            if liquidations and rng.random() < 0.4:
                events.append(rng.choice(liquidations))
            else:
                desk, venue, account, market = rng.choice(CELLS)
                liquidation = Liquidation(venue, desk, account, market, Side.SELL, Decimal(1), None, f"l{n}", 0.0)
                liquidations.append(liquidation)
                events.append(liquidation)
        else:
            stated = tuple(ReportedPosition("SOL", Decimal(rng.randint(-50, 50))) for _ in range(rng.randint(0, 1)))
            events.append(PositionsReported("phoenix", "alpha", PHOENIX_AUTHORITY, stated, rng.random() < 0.5))
        yield now, events[0].venue, events


def _books(engine: Engine) -> dict[str, Any]:
    book = engine.book
    cells = book.held_instruments()
    desks = ("alpha", "beta")
    return {
        "positions": [(row.key, row.position) for row in book.rows()],
        "net": {cell: book.desk_market_net(*cell) for cell in cells},
        "units": {cell: book.desk_market_position(*cell) for cell in cells},
        "gross": {desk: book.desk_gross(desk) for desk in desks},
        "open": {desk: book.desk_open_positions(desk) for desk in desks},
        "firm": book.firm_gross(),
        "marks": (book.own_marks(), book.reference_marks()),
        "stats": {venue: asdict(stats) for venue, stats in engine.stats.items()},
        "utilisation": engine.limits.utilisation,
        "active": sorted((a.fingerprint, a.state, a.value) for a in engine.alerts.active()),
        "next_deadline": engine.next_deadline(),
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_frame_by_frame_batched_and_reference_engines_agree_on_a_long_random_stream(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    before, after = parse_config(BEFORE, "before.yaml", {}), parse_config(AFTER, "after.yaml", {})
    by_frame, batched, reference = _engine(before), _engine(before), _engine(before, monkeypatch)
    outs: dict[str, list[AlertTransition]] = {"frame": [], "batch": [], "reference": []}
    frames = list(_stream(seed, 1200))
    read: list[IngestItem] = []
    for n, (now, venue, events) in enumerate(frames):
        outs["frame"] += by_frame.ingest(venue, events, now)
        outs["reference"] += reference.ingest(venue, events, now)
        read.append(IngestItem(venue, events, now))
        if len(read) == 5 or n == len(frames) - 1:
            outs["batch"] += batched.ingest_batch(read)
            read = []
        if n == len(frames) // 2:  # a reload mid-stream, between two reads
            outs["batch"] += batched.ingest_batch(read)
            read = []
            for name, engine in (("frame", by_frame), ("batch", batched), ("reference", reference)):
                outs[name] += engine.reload(after, now)
            _plain_rules(reference)
            assert _books(by_frame) == _books(reference)

    assert outs["batch"] == outs["frame"]
    assert outs["reference"] == outs["frame"]
    assert _books(batched) == _books(by_frame) == _books(reference)
    # The stream moved what the test is about: every kind of alert fired, and most resolved.
    seen = {(t.alertname, t.labels.get("limit"), t.status) for t in outs["frame"]}
    for expected in [
        ("ExposureLimitBreach", "net_notional", "firing"),
        ("ExposureLimitBreach", "net_notional", "resolved"),
        ("ExposureLimitBreach", "gross_notional", "firing"),
        ("BigNet", None, "firing"),
        ("BigNet", None, "resolved"),
        ("DeskGross", None, "firing"),
        ("FirmGross", None, "firing"),
        ("FillBurst", None, "firing"),
        ("Liquidated", None, "firing"),
    ]:
        assert expected in seen, expected
    stats = _books(by_frame)["stats"]["mango"]
    assert stats["duplicates"] > 0
    assert stats["revoked"] > 0
    assert stats["revoke_unknown"] > 0
    assert stats["engine_errors"] == 0
