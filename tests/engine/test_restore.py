"""An engine restored from a real state file resumes exactly where the one that wrote it stopped:
the same exposure and risk rows, orders and quotes, a fill replayed after the restart is a
duplicate, a revoke reverses exactly the restored fill, and pending deadlines still fire."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.config.schema import MonitorConfig
from riskmon.config.types import decode_hook
from riskmon.engine.engine import Engine
from riskmon.engine.exposure import PositionKey
from riskmon.engine.fills import FillChunk
from riskmon.engine.state_journal import StateChanges, StateSnapshot
from riskmon.events import (
    Event,
    FeedUp,
    FillReceived,
    FillRevoked,
    FillSnapshot,
    Liquidation,
    Liquidity,
    MarketStatusChanged,
    MarkKind,
    MarkPrice,
    OrderIntake,
    OrderStatus,
    OrderUpdate,
    PositionAmended,
    PositionsReported,
    QuoteStatus,
    QuoteUpdate,
    ReportedPosition,
    Side,
)
from riskmon.store.state import StateStore

T0 = 1_700_000_000.0
MANGO, PHX, MOB, PX, TOT = "mango", "phoenix", "mobula", "prophetx", "totalis"
QUEUE = "queue-sol"
MANGO_SOL = PositionKey("alpha", MANGO, "acct", "SOL-PERP")
RETENTION = 3  # small, so the restored history spans sealed chunks and the tail


def config() -> MonitorConfig:
    data: dict[str, Any] = {
        "state": {"fill_retention": RETENTION},
        "venues": {
            MANGO: {"kind": "mango_v3_fills", "urls": ["wss://mango.invalid/"]},
            PHX: {"kind": "phoenix", "authority": "trader"},
            MOB: {"kind": "mobula_perp_events", "api_key": "key"},
            PX: {"kind": "prophetx", "rest_url": "https://px.invalid/partner", "access_key": "a", "secret_key": "s"},
            TOT: {"kind": "totalis_rfq", "api_key": "key"},
        },
        "desks": {
            "alpha": {
                "accounts": {MANGO: ["acct"], PHX: ["trader"], MOB: ["0xabc"], PX: ["u1"], TOT: ["mm1"]},
                "limits": {"max_net_notional_usd": [{"market": "SOL*", "max_usd": "1000000"}]},
            },
        },
        "underlyings": {"SOL": {MANGO: "SOL-PERP", PHX: "SOL"}},
    }
    return msgspec.convert(data, MonitorConfig, dec_hook=decode_hook, strict=False)


def fill(seq: int, qty: str, side: Side = Side.BUY) -> FillReceived:
    return FillReceived(
        MANGO, "alpha", "acct", "SOL-PERP", side, Decimal(qty), Decimal("150.25"), f"{QUEUE}:{seq}", QUEUE, seq,
        Liquidity.TAKER, Decimal("0.0004"), T0 + seq, as_of=1000 + seq,
    )  # fmt: skip


def order(order_id: str, status: OrderStatus, seq: int, loss: str | None, filled: str | None = None) -> OrderUpdate:
    return OrderUpdate(
        PX, "alpha", "u1", order_id, "ev1/m1/o1", status, status.value, seq, T0,
        quantity=Decimal(100), filled_quantity=None if filled is None else Decimal(filled),
        worst_case_loss_usd=None if loss is None else Decimal(loss),
    )  # fmt: skip


def quote(quote_id: str, status: QuoteStatus, loss: str | None = None, deadline: float | None = None) -> QuoteUpdate:
    return QuoteUpdate(
        TOT, "alpha", "mm1", quote_id, f"r-{quote_id}", status,
        worst_case_loss_usd=None if loss is None else Decimal(loss), confirmation_deadline=deadline,
    )  # fmt: skip


def feeds_up(engine: Engine, now: float) -> None:
    for venue in (MANGO, PHX, MOB, PX, TOT):
        engine.ingest(venue, [FeedUp(venue, "wss://x")], now, is_frame=False)


def a_session(engine: Engine) -> None:
    """What a monitor saw before the restart: every kind of durable state."""
    feeds_up(engine, T0)
    steps: list[tuple[str, list[Event]]] = [
        (MANGO, [fill(1, "10"), fill(2, "3", Side.SELL), fill(3, "0.000000000000000001")]),
        (MANGO, [FillRevoked(MANGO, f"{QUEUE}:2", QUEUE, "SOL-PERP", 2)]),
        (MANGO, [fill(4, "1.5"), fill(5, "2", Side.SELL), fill(6, "0.25")]),
        (MANGO, [FillSnapshot(MANGO, QUEUE, "SOL-PERP", (fill(5, "2", Side.SELL), fill(6, "0.25")), 5, 6, 2000)]),
        (PHX, [PositionsReported(PHX, "alpha", "trader", (ReportedPosition("SOL", Decimal("-4.5")),), True)]),
        (PHX, [MarkPrice(PHX, "SOL", Decimal("151"), T0, MarkKind.MARK)]),
        (MANGO, [MarkPrice(MANGO, "SOL-PERP", Decimal("150.5"), T0, MarkKind.TRADE)]),
        (PHX, [MarketStatusChanged(PHX, "ETH", "paused", tradable=False)]),
        (PX, [OrderIntake(PX, "o-unconfirmed", placed_at=T0, desk="alpha")]),
        (PX, [order("o1", OrderStatus.OPEN, 1, "100"), order("o1", OrderStatus.OPEN, 2, "60", filled="40")]),
        (TOT, [quote("q1", QuoteStatus.ACCEPTED, "512.5", deadline=T0 + 30)]),
        (TOT, [quote("q2", QuoteStatus.ACCEPTED, "20", deadline=T0 + 30), quote("q2", QuoteStatus.CONFIRMED)]),
        (MOB, [Liquidation(MOB, "alpha", "0xabc", "SOL", Side.SELL, Decimal(1), Decimal(140), "liq-1", T0)]),
        (MOB, [PositionAmended(MOB, "alpha", "0xabc", "SOL", "UPDATE_TP", "amend-1")]),
    ]
    for venue, events in steps:
        engine.ingest(venue, events, T0 + 1)


def restart(engine: Engine, tmp_path: Path, now: float) -> Engine:
    """Write what the engine journaled through a real state file; a new engine restores it."""
    store = StateStore(tmp_path / "state.db", RETENTION)
    store.write(engine.take_state_changes(), engine.take_journal())
    store.close()
    store = StateStore(tmp_path / "state.db", RETENTION)
    snapshot = store.load()
    store.close()
    restored = Engine(engine.config)
    restored.restore(snapshot)
    restored.start(now, snapshot.deadlines)
    return restored


def view(engine: Engine) -> dict[str, Any]:
    return {
        "rows": list(engine.book.rows()),
        "instruments": list(engine.book.instrument_rows()),
        "risk": list(engine.book.risk_rows()),
        "gross": engine.book.firm_gross(),
        "orders": engine.orders.orders(),
        "quotes": engine.quotes.quotes(),
        "statuses": engine.markets.statuses,
        "held": list(engine.ledger.held(MANGO, QUEUE)),
    }


@pytest.fixture
def engines(tmp_path: Path) -> tuple[Engine, Engine]:
    original = Engine(config())
    original.restore(StateSnapshot())  # an empty file: journaling from the start
    original.start(T0)
    a_session(original)
    return original, restart(original, tmp_path, T0 + 2)


def test_the_restored_engine_holds_the_same_books(engines: tuple[Engine, Engine]) -> None:
    original, restored = engines
    assert view(restored) == view(original)
    # 10 + 0.000000000000000001 + 1.5 - 2 + 0.25 (the revoked sell of 3 is not there), priced by Phoenix's mark.
    assert restored.book.position(MANGO_SOL) == Decimal("9.750000000000000001")
    assert [(r.key.market, r.worst_case_loss_usd, r.pending_usd) for r in restored.book.risk_rows()] == [
        ("ev1/m1/o1", Decimal(60), Decimal(0)),
        ("rfq:r-q1", Decimal(0), Decimal("512.5")),
        ("rfq:r-q2", Decimal(20), Decimal(0)),
    ]
    # Held still encoded, as restored: decoded only when a revoke or a checkpoint needs one.
    assert any(isinstance(entry, FillChunk) for entry in restored.ledger.held(MANGO, QUEUE).values())


def test_a_fill_seen_again_after_the_restart_is_a_duplicate(engines: tuple[Engine, Engine]) -> None:
    _, restored = engines
    before = view(restored)
    # The venue's checkpoint on reconnect replays the window, and a venue resends a fill.
    restored.ingest(
        MANGO, [FillSnapshot(MANGO, QUEUE, "SOL-PERP", (fill(5, "2", Side.SELL), fill(6, "0.25")), 5, 6)], T0 + 3
    )
    restored.ingest(MANGO, [fill(6, "0.25")], T0 + 3)
    assert view(restored) == before
    assert restored.venue_stats(MANGO).duplicates == 3
    assert restored.venue_stats(MANGO).fills == 0
    # Repeat keys survive too: the liquidation and the amendment are not news.
    restored.ingest(MOB, [Liquidation(MOB, "alpha", "0xabc", "SOL", Side.SELL, None, None, "liq-1", T0)], T0 + 3)
    restored.ingest(MOB, [PositionAmended(MOB, "alpha", "0xabc", "SOL", "UPDATE_TP", "amend-1")], T0 + 3)
    assert restored.venue_stats(MOB).duplicates == 2
    assert restored.venue_stats(MOB).liquidations == 0


def test_a_revoke_after_the_restart_reverses_exactly_the_restored_fill(engines: tuple[Engine, Engine]) -> None:
    original, restored = engines
    for engine in engines:
        out = engine.ingest(MANGO, [FillRevoked(MANGO, f"{QUEUE}:6", QUEUE, "SOL-PERP", 6)], T0 + 3)
        assert [(t.alertname, t.labels["sequence"], t.annotations["summary"]) for t in out] == [
            ("FillRevoked", "6", "mango SOL-PERP: a buy of 0.25 @ 150.25 was reversed")
        ]
    assert view(restored) == view(original)
    assert restored.book.position(MANGO_SOL) == Decimal("9.500000000000000001")
    # A checkpoint that lacks a restored fill inside its window voids exactly that one.
    for engine in engines:
        engine.ingest(MANGO, [FillSnapshot(MANGO, QUEUE, "SOL-PERP", (fill(5, "2", Side.SELL),), 4, 5, 3000)], T0 + 4)
    assert view(restored) == view(original)
    assert restored.book.position(MANGO_SOL) == Decimal("8.000000000000000001")
    assert restored.venue_stats(MANGO).voided == 1


def test_pending_deadlines_fire_after_the_restart_as_they_would_have(engines: tuple[Engine, Engine]) -> None:
    original, restored = engines
    feeds_up(restored, T0 + 2)

    def fired(engine: Engine) -> list[tuple[str, str, dict[str, str]]]:
        out: list[AlertTransition] = engine.advance(T0 + 40)
        return sorted((t.alertname, t.status, t.labels) for t in out if t.status == "firing")

    expected = fired(original)
    assert {name for name, _, _ in expected} >= {"OrderActivationTimeout", "RfqConfirmationMissed"}
    assert fired(restored) == expected


def test_every_write_after_the_restart_lands_in_the_same_file(engines: tuple[Engine, Engine], tmp_path: Path) -> None:
    original, restored = engines
    for engine in engines:
        engine.ingest(MANGO, [fill(7, "5"), fill(8, "1", Side.SELL)], T0 + 5)
        engine.ingest(PX, [order("o1", OrderStatus.CANCELED, 3, "0")], T0 + 5)
    again = restart(restored, tmp_path, T0 + 6)
    assert view(again) == view(original)
    assert list(again.ledger.held(MANGO, QUEUE)) == [f"{QUEUE}:6", f"{QUEUE}:7", f"{QUEUE}:8"]


def test_a_take_hands_on_only_the_marks_that_moved_and_a_restart_still_has_every_one(
    engines: tuple[Engine, Engine], tmp_path: Path
) -> None:
    _, restored = engines
    store = StateStore(tmp_path / "state.db", RETENTION)

    def take_and_write() -> StateChanges:
        changes = restored.take_state_changes()
        store.write(changes, restored.take_journal())
        return changes

    assert take_and_write().marks == {}  # the restored prices are in the file already
    restored.ingest(MANGO, [MarkPrice(MANGO, "BTC-PERP", Decimal("60000"), T0, MarkKind.TRADE)], T0 + 3)
    restored.ingest(MANGO, [MarkPrice(MANGO, "SOL-PERP", Decimal("149"), T0, MarkKind.TRADE)], T0 + 3)
    taken = take_and_write()
    assert taken.marks == {(MANGO, "BTC-PERP"): Decimal("60000"), (MANGO, "SOL-PERP"): Decimal("149")}
    assert taken.reference_marks == {}  # Phoenix's SOL mark did not move
    restored.ingest(MANGO, [MarkPrice(MANGO, "SOL-PERP", Decimal("148.5"), T0, MarkKind.TRADE)], T0 + 4)
    restored.ingest(PHX, [MarkPrice(PHX, "SOL", Decimal("152"), T0, MarkKind.MARK)], T0 + 4)
    taken = take_and_write()
    assert taken.marks == {(MANGO, "SOL-PERP"): Decimal("148.5"), (PHX, "SOL"): Decimal("152")}
    assert taken.reference_marks == {"SOL": Decimal("152")}
    restored.ingest(MANGO, [fill(9, "1")], T0 + 5)
    assert take_and_write().marks == {}  # a fill moves no price
    store.close()
    again = restart(restored, tmp_path, T0 + 6)
    assert again.book.own_marks() == restored.book.own_marks()
    assert again.book.own_marks()[(MANGO, "BTC-PERP")] == Decimal("60000")
    assert again.book.reference_marks() == {"SOL": Decimal("152")}
    assert view(again) == view(restored)
