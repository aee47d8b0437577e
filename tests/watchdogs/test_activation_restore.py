"""A restart re-arms every open order's activation deadline in one heap build
(ActivationWatchdog.restore_all, DeadlineHeap.arm_many): the deadlines fire exactly as when
restored one by one, in due order with ties in file order, and a passed one at once."""

from __future__ import annotations

import random

import pytest

from riskmon.engine.deadlines import DeadlineHeap
from riskmon.engine.engine import Engine
from riskmon.watchdogs.activation import ActivationSettings, WatchedOrder
from riskmon.watchdogs.journal import PersistedDeadline
from tests.watchdogs.conftest import PX, T0, make_engine

TIMEOUT = 10.0  # the conftest's ProphetX activation_timeout
NOW = T0 + 100


def new_engine() -> Engine:
    return make_engine(px={"feed_down_grace": "1h"}, tot={"feed_down_grace": "1h"}, mango={"feed_down_grace": "1h"})


def stored(order_id: str, placed_at: float, *, due: float | None = None) -> PersistedDeadline:
    return PersistedDeadline(
        "activation",
        PX,
        order_id,
        placed_at + TIMEOUT if due is None else due,
        {"desk": "alpha", "placed_at": repr(placed_at), "market": "10/20/30"},
    )


def records() -> list[PersistedDeadline]:
    rng = random.Random(7)
    out = [stored(f"o{i}", NOW + rng.choice([1.0, 2.0, 3.5, 7.25, 40.0]) - TIMEOUT) for i in range(300)]
    out.append(stored("late", NOW - 50))  # passed while riskmon was down: due at once
    out.append(stored("moved", NOW - 5, due=NOW + 30))  # stored under another timeout: rewritten
    out.append(stored("o3", NOW))  # the same order twice: the first record stands
    out.append(PersistedDeadline("rfq-confirmation", "tot", "q1", NOW + 5, {"desk": "alpha"}))  # not this watchdog's
    return out


def fired(engine: Engine) -> list[tuple[float, object]]:
    return engine.deadlines.pop_due(NOW + 3600)


def test_restoring_all_at_once_fires_exactly_as_restoring_one_by_one() -> None:
    one_by_one, at_once = new_engine(), new_engine()
    for record in records():
        one_by_one.watchdogs.activation.restore(record, NOW)
    at_once.watchdogs.activation.restore_all(records(), NOW)

    assert len(at_once.watchdogs.activation) == len(one_by_one.watchdogs.activation) == 302
    assert (
        at_once.take_journal() == one_by_one.take_journal() == {("activation", PX, "moved"): stored("moved", NOW - 5)}
    )
    expected = fired(one_by_one)
    assert fired(at_once) == expected
    assert expected[0] == (NOW, ("activation", PX, "late"))
    times = [due for due, _ in expected]
    assert times == sorted(times)
    # Equal due times fire in the file's order.
    at_plus_one = [key for due, key in expected if due == NOW + 1.0]
    in_file = [("activation", PX, r.subject) for r in records()[:300] if r.due == NOW + 1.0]
    assert at_plus_one == in_file
    assert len(in_file) > 10


def test_a_restored_order_keeps_what_the_file_said_of_it() -> None:
    engine = new_engine()
    engine.watchdogs.activation.restore_all([stored("late", NOW - 50), stored("ahead", NOW)], NOW)
    late = engine.watchdogs.activation._watched(PX, "late")
    ahead = engine.watchdogs.activation._watched(PX, "ahead")
    assert late is not None
    assert ahead is not None
    assert (late.desk, late.market, late.placed_at, late.missed_while_down) == ("alpha", "10/20/30", NOW - 50, True)
    assert (ahead.missed_while_down, ahead.fires_at) == (False, NOW + TIMEOUT)
    assert engine.next_deadline() == NOW


@pytest.mark.parametrize("already_armed", [0, 5, 2_000])
def test_arm_many_into_a_heap_that_holds_deadlines_keeps_due_order(already_armed: int) -> None:
    heap = DeadlineHeap()
    settings = ActivationSettings(TIMEOUT, 21.0)
    rng = random.Random(already_armed)

    def record(order_id: str) -> WatchedOrder:
        return WatchedOrder(venue=PX, order_id=order_id, desk="alpha", placed_at=NOW, settings=settings)

    for i in range(already_armed):
        heap.arm(record(f"a{i}"), NOW + rng.random() * 100)
    heap.schedule(("keyed",), NOW + 50.5)
    batch = [record(f"b{i}") for i in range(50)]
    for item in batch:
        item.fires_at = NOW + rng.random() * 100
    heap.arm_many(batch)
    disarmed = batch[3]
    heap.disarm(disarmed)

    pending = already_armed + 50 - 1 + 1  # the batch less the disarmed one, and the keyed deadline
    assert len(heap) == pending
    out = heap.pop_due(NOW + 1000)
    assert [due for due, _ in out] == sorted(due for due, _ in out)
    assert len(out) == pending
    assert ("activation", PX, disarmed.order_id) not in {key for _, key in out}
    assert len(heap) == 0


def test_arm_many_refuses_a_record_armed_before_and_arms_none_of_the_batch() -> None:
    heap = DeadlineHeap()
    settings = ActivationSettings(TIMEOUT, 21.0)
    armed = WatchedOrder(venue=PX, order_id="x", desk="alpha", placed_at=NOW, settings=settings)
    heap.arm(armed, NOW + 1)
    fresh = WatchedOrder(fires_at=NOW + 2, venue=PX, order_id="y", desk="alpha", placed_at=NOW, settings=settings)
    with pytest.raises(ValueError, match="armed once"):
        heap.arm_many([fresh, armed])
    assert (len(heap), fresh.armed) == (1, False)
    assert heap.pop_due(NOW + 10) == [(NOW + 1, ("activation", PX, "x"))]
