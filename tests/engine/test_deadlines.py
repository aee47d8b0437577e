from __future__ import annotations

import pytest

from riskmon.engine.deadlines import Deadline, DeadlineHeap


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


# ---- records that are their own heap entries -----------------------------------------------------


class Watched(Deadline, kw_only=True):
    name: str

    def deadline_key(self) -> tuple[str, str]:
        return ("watched", self.name)


def test_records_and_keys_fire_together_in_time_then_arming_order() -> None:
    heap = DeadlineHeap()
    early, tied = Watched(name="early"), Watched(name="tied")
    heap.schedule("key-first", 5.0)
    heap.arm(tied, 5.0)  # armed after the key: fires after it at the same time
    heap.arm(early, 2.0)
    heap.schedule("key-last", 5.0)
    assert len(heap) == 4
    assert heap.next_due() == 2.0
    assert heap.pop_due(5.0) == [
        (2.0, ("watched", "early")),
        (5.0, "key-first"),
        (5.0, ("watched", "tied")),
        (5.0, "key-last"),
    ]
    assert (early.armed, tied.armed, len(heap)) == (False, False, 0)


def test_a_disarmed_record_never_fires_and_leaves_the_count_at_once() -> None:
    heap = DeadlineHeap()
    gone, kept = Watched(name="gone"), Watched(name="kept")
    heap.arm(gone, 1.0)
    heap.arm(kept, 3.0)
    heap.disarm(gone)
    heap.disarm(gone)  # twice: still one less
    assert len(heap) == 1
    assert heap.next_due() == 3.0
    assert heap.pop_next(2.0) is None
    assert heap.pop_next(3.0) == (3.0, ("watched", "kept"))
    heap.disarm(kept)  # already fired: nothing to take back
    assert (len(heap), heap.next_due()) == (0, None)


def test_a_record_is_armed_once() -> None:
    heap = DeadlineHeap()
    record = Watched(name="r")
    heap.arm(record, 1.0)
    heap.disarm(record)
    with pytest.raises(ValueError, match="armed once"):
        heap.arm(record, 2.0)  # it may still sit in the heap: moving it would break the heap
    assert heap.pop_due(10.0) == []
