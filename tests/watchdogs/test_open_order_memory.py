"""What a pending order costs: one WatchedOrder that is its own heap entry, strings shared with
the order book, a journal that holds the record (not a copy) until the runtime takes it, and the
issue 7 budget of 600 bytes per open order, measured as the memory section measures it."""

from __future__ import annotations

from riskmon.bench.open_orders import run_open_order_memory_bench
from riskmon.events import OrderIntake, OrderStatus
from riskmon.watchdogs.journal import PersistedDeadline
from tests.watchdogs.conftest import PX, PX_MARKET, T0, make_engine, order


def test_a_pending_order_fits_the_budget_with_its_deadline() -> None:
    result = run_open_order_memory_bench(orders=3_000)
    assert result.open_orders == 3_002  # with the warm-up order and the one for the journal figure
    assert result.pending_deadlines == 3_003  # and the feed watchdog's
    assert 150 < result.bytes_per_open_order <= 600


def test_the_watchdog_holds_the_order_books_copy_of_the_id_and_market() -> None:
    engine = make_engine()
    engine.ingest(PX, [OrderIntake(PX, "".join(["o", "1"]), T0)], T0, is_frame=False)
    engine.ingest(PX, [order("o1", market="".join([PX_MARKET[:3], PX_MARKET[3:]]))], T0 + 1)
    held = engine.orders.get(PX, "o1")
    assert held is not None
    ((watched,),) = [list(orders.values()) for orders in engine.watchdogs.activation._orders.values()]
    assert watched.order_id is held.order_id
    assert watched.market is held.market
    assert (watched.armed, watched.fires_at, watched.due) == (True, T0 + 10, T0 + 10)
    assert engine.watchdogs.activation.pending(PX) == len(engine.deadlines) == 1


def test_the_journal_persists_the_record_as_it_stands_at_the_take() -> None:
    engine = make_engine()
    engine.ingest(PX, [OrderIntake(PX, "o1", T0)], T0, is_frame=False)
    engine.ingest(PX, [order("o1", desk="beta", market="9/9/9")], T0 + 1)  # before the runtime took it
    engine.ingest(PX, [OrderIntake(PX, "o2", T0)], T0 + 1, is_frame=False)
    engine.ingest(PX, [order("o2", OrderStatus.OPEN)], T0 + 2)  # activated before the take
    assert engine.take_journal() == {
        ("activation", PX, "o1"): PersistedDeadline(
            "activation", PX, "o1", T0 + 10, {"desk": "beta", "placed_at": repr(T0), "market": "9/9/9"}
        ),
        ("activation", PX, "o2"): None,
    }
    assert engine.take_journal() == {}
