from __future__ import annotations

from riskmon.engine.deadlines import DeadlineHeap


def test_pops_due_keys_in_time_order_and_only_once() -> None:
    heap = DeadlineHeap()
    heap.schedule("b", 20.0)
    heap.schedule("a", 10.0)
    heap.schedule("c", 30.0)
    assert heap.next_due() == 10.0
    assert heap.pop_due(25.0) == [(10.0, "a"), (20.0, "b")]
    assert heap.pop_due(25.0) == []
    assert len(heap) == 1
    assert "c" in heap


def test_rescheduling_replaces_the_earlier_arming() -> None:
    heap = DeadlineHeap()
    heap.schedule("order-1", 10.0)
    heap.schedule("order-1", 50.0)
    assert heap.pop_due(20.0) == []
    assert heap.next_due() == 50.0
    assert heap.due_at("order-1") == 50.0
    assert heap.pop_due(50.0) == [(50.0, "order-1")]


def test_cancel_is_lazy_but_invisible() -> None:
    heap = DeadlineHeap()
    heap.schedule("x", 5.0)
    heap.schedule("y", 7.0)
    heap.cancel("x")
    heap.cancel("missing")
    assert heap.next_due() == 7.0
    assert heap.pop_due(100.0) == [(7.0, "y")]
    assert heap.next_due() is None
    assert len(heap) == 0


def test_equal_times_keep_scheduling_order() -> None:
    heap = DeadlineHeap()
    for key in ("first", "second", "third"):
        heap.schedule(key, 1.0)
    assert [key for _, key in heap.pop_due(1.0)] == ["first", "second", "third"]
