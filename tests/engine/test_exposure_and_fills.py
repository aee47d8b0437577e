from __future__ import annotations

from decimal import Decimal

import pytest

from riskmon.engine.exposure import ExposureBook, PositionKey, plain_decimal
from riskmon.engine.fills import FillLedger
from riskmon.events import FillReceived, FillSnapshot, Liquidity, Side


def fill(
    key: str, qty: str, side: Side = Side.BUY, seq: int = 1, desk: str = "alpha", market: str = "SOL-PERP"
) -> FillReceived:
    return FillReceived(
        venue="mango",
        desk=desk,
        account="acct",
        market=market,
        side=side,
        quantity=Decimal(qty),
        price=Decimal("90"),
        fill_key=key,
        stream="queue",
        sequence=seq,
        liquidity=Liquidity.TAKER,
        fee_rate=Decimal(0),
        venue_ts=0.0,
    )


def test_apply_then_reverse_is_exact_even_at_18_decimals() -> None:
    book = ExposureBook()
    amounts = ["0.000000000000000001", "123456789.123456789012345678", "0.1", "0.2"]
    fills = [fill(str(i), a, Side.BUY if i % 2 else Side.SELL) for i, a in enumerate(amounts)]
    for f in fills:
        book.apply_fill(f)
    for f in reversed(fills):
        book.apply_fill(f, reverse=True)
    assert book.position(PositionKey("alpha", "mango", "acct", "SOL-PERP")) == 0
    book.apply_fill(fill("x", "0.1"))
    book.apply_fill(fill("y", "0.2"))
    assert plain_decimal(book.position(PositionKey("alpha", "mango", "acct", "SOL-PERP"))) == "0.3"


def test_notional_needs_a_mark_and_rolls_up_by_desk_and_market() -> None:
    book = ExposureBook()
    book.apply_fill(fill("1", "10"))
    book.apply_fill(fill("2", "4", Side.SELL, market="ETH-PERP"))
    assert book.desk_market_net("alpha", "SOL-PERP") is None
    book.set_mark("mango", "SOL-PERP", Decimal("100"))
    book.set_mark("mango", "ETH-PERP", Decimal("2000"))
    assert book.desk_market_net("alpha", "SOL-PERP") == Decimal("1000")
    assert book.desk_market_net("alpha", "ETH-PERP") == Decimal("-8000")
    assert book.desk_gross("alpha") == Decimal("9000")  # |1000| + |-8000|
    assert book.desks_holding("SOL-PERP") == {"alpha"}
    book.apply_fill(fill("3", "1", desk="beta"))
    assert book.firm_gross() == Decimal("9100")


def test_ledger_counts_each_fill_once_and_revokes_exactly_one() -> None:
    ledger = FillLedger()
    assert ledger.record(fill("k1", "1"))
    assert not ledger.record(fill("k1", "1"))
    assert ledger.revoke("mango", "queue", "k1") is not None
    assert ledger.revoke("mango", "queue", "k1") is None
    assert ledger.record(fill("k1", "1"))  # the fork switched back: the fill is live again


def test_ledger_retention_forgets_the_oldest_first() -> None:
    ledger = FillLedger(retention=2)
    for key in ("a", "b", "c"):
        ledger.record(fill(key, "1"))
    assert list(ledger.held("mango", "queue")) == ["b", "c"]
    with pytest.raises(ValueError, match="positive"):
        FillLedger(retention=0)


def test_snapshot_merge_adds_new_keeps_held_and_voids_what_the_window_lost() -> None:
    ledger = FillLedger()
    old = fill("old", "1", seq=5)  # below the window: the venue no longer reports it, keep it
    kept = fill("kept", "1", seq=12)
    lost = fill("lost", "1", seq=14)
    for f in (old, kept, lost):
        ledger.record(f)
    new = fill("new", "1", seq=15)
    merge = ledger.merge_snapshot(FillSnapshot("mango", "queue", "SOL-PERP", (kept, new), window_start=10))
    assert merge.new == [new]
    assert merge.duplicates == 1
    assert merge.voided == [lost]
    assert set(ledger.held("mango", "queue")) == {"old", "kept", "new"}


def test_an_empty_window_voids_nothing() -> None:
    ledger = FillLedger()
    ledger.record(fill("a", "1", seq=3))
    merge = ledger.merge_snapshot(FillSnapshot("mango", "queue", "SOL-PERP", (), window_start=None))
    assert merge.voided == []
    assert len(ledger) == 1


def test_above_its_newest_fill_only_a_recent_enough_snapshot_voids() -> None:
    ledger = FillLedger()
    newer = FillReceived(**{**_fields(fill("newer", "1", seq=40)), "as_of": 500})
    ledger.record(newer)
    lagging = FillSnapshot("mango", "queue", "SOL-PERP", (), window_start=10, window_end=30, as_of=400)
    assert ledger.merge_snapshot(lagging).voided == []  # a lagging failover server has not seen it yet
    current = FillSnapshot("mango", "queue", "SOL-PERP", (), window_start=10, window_end=30, as_of=501)
    assert ledger.merge_snapshot(current).voided == [newer]  # the queue rolled back below it


def _fields(f: FillReceived) -> dict[str, object]:
    return {name: getattr(f, name) for name in f.__struct_fields__}
