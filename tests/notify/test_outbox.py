"""The outbox state machine on virtual time, against a real SQLite file."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from riskmon.notify.outbox import Outbox, OutboxError, OutboxItem, RetryPolicy

T0 = 1_700_000_000.0
POLICY = RetryPolicy(initial=2.0, maximum=60.0, retry_after_cap=120.0, dead_letter_after=3600.0)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "outbox.sqlite"


def open_outbox(path: Path, seed: int = 7) -> Outbox:
    return Outbox(path, POLICY, rng=random.Random(seed))


def test_enqueue_is_committed_and_visible_to_another_connection(db: Path) -> None:
    box = open_outbox(db)
    item_id = box.enqueue("hook", "g1", "k1", b'{"a":1}', T0)
    other = sqlite3.connect(db)
    try:
        rows = other.execute("SELECT id, status, payload FROM notify_outbox").fetchall()
        mode = other.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        other.close()
    assert rows == [(item_id, "pending", b'{"a":1}')]
    assert mode == "wal"
    box.close()


def test_enqueue_same_idempotency_key_returns_the_first_row(db: Path) -> None:
    box = open_outbox(db)
    first = box.enqueue("hook", "g1", "k1", b"one", T0)
    assert box.enqueue("hook", "g1", "k1", b"two", T0 + 1) == first
    assert box.enqueue("other", "g1", "k1", b"one", T0) != first  # keys are per receiver
    assert [i.payload for i in box.claim("hook", T0 + 1, 10)] == [b"one"]
    assert box.depth("hook") == 1
    box.close()


def test_claim_returns_due_heads_oldest_first_one_per_group(db: Path) -> None:
    box = open_outbox(db)
    a1 = box.enqueue("hook", "A", "a1", b"a1", T0)
    b1 = box.enqueue("hook", "B", "b1", b"b1", T0 + 1)
    a2 = box.enqueue("hook", "A", "a2", b"a2", T0 + 2)
    c1 = box.enqueue("hook", "C", "c1", b"c1", T0 + 50)
    box.enqueue("elsewhere", "A", "x", b"x", T0)

    assert box.claim("hook", T0 - 1, 10) == []  # nothing due before it was enqueued
    claimed = box.claim("hook", T0 + 10, 10)
    assert [i.id for i in claimed] == [a1, b1]  # a2 waits behind a1; c1 is not due
    assert claimed[0].attempts == 0
    assert claimed[0].enqueued_at == T0
    assert box.claim("hook", T0 + 10, 10) == []  # A and B are in flight

    box.mark_sent(a1, T0 + 10)
    assert [i.id for i in box.claim("hook", T0 + 60, 10)] == [a2, c1]
    box.mark_sent(b1, T0 + 60)
    box.mark_sent(a2, T0 + 60)
    box.mark_sent(c1, T0 + 60)
    assert box.depth("hook") == 0
    assert box.counts() == {("hook", "sent"): 4, ("elsewhere", "pending"): 1}
    box.close()


def test_claim_respects_limit(db: Path) -> None:
    box = open_outbox(db)
    ids = [box.enqueue("hook", f"g{n}", f"k{n}", b"x", T0 + n) for n in range(5)]
    assert [i.id for i in box.claim("hook", T0 + 10, 2)] == ids[:2]
    assert [i.id for i in box.claim("hook", T0 + 10, 10)] == ids[2:]
    assert box.claim("hook", T0 + 10, 0) == []
    box.close()


def test_a_later_item_waits_while_the_group_head_backs_off(db: Path) -> None:
    box = open_outbox(db)
    first = box.enqueue("hook", "A", "a1", b"firing", T0)
    second = box.enqueue("hook", "A", "a2", b"resolved", T0 + 1)
    (item,) = box.claim("hook", T0, 10)
    assert box.mark_failed(item.id, T0, None, "HTTP 500") == "pending"
    assert box.last_error(first) == "HTTP 500"
    # The head is not due yet and the second must not overtake it.
    assert box.claim("hook", T0 + 1, 10) == []
    assert box.next_due("hook") is not None
    due = box.next_due("hook")
    assert due is not None
    assert T0 + 1.0 <= due <= T0 + 2.0
    assert [i.id for i in box.claim("hook", due, 10)] == [first]
    box.mark_sent(first, due)
    assert [i.id for i in box.claim("hook", due, 10)] == [second]
    box.close()


def test_backoff_grows_with_equal_jitter_and_is_capped(db: Path) -> None:
    box = open_outbox(db)
    item_id = box.enqueue("hook", "A", "a1", b"x", T0)
    now = T0
    delays = []
    for _ in range(10):
        (item,) = box.claim("hook", now, 1)
        box.mark_failed(item.id, now, None, "HTTP 503")
        due = box.next_due("hook")
        assert due is not None
        delays.append(due - now)
        now = due
    for attempt, delay in enumerate(delays, start=1):
        ceiling = min(60.0, 2.0 * 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 60.0
    assert box.status(item_id) == "pending"
    box.close()


def test_backoff_is_reproducible_with_an_injected_rng(db: Path, tmp_path: Path) -> None:
    def run(path: Path) -> float | None:
        box = open_outbox(path, seed=42)
        box.enqueue("hook", "A", "a1", b"x", T0)
        (item,) = box.claim("hook", T0, 1)
        box.mark_failed(item.id, T0, None, "boom")
        due = box.next_due("hook")
        box.close()
        return due

    assert run(db) == run(tmp_path / "second.sqlite")


def test_retry_after_is_honoured_and_capped(db: Path) -> None:
    box = open_outbox(db)
    box.enqueue("hook", "A", "a1", b"x", T0)
    (item,) = box.claim("hook", T0, 1)
    box.mark_failed(item.id, T0, 30.0, "HTTP 429")
    assert box.next_due("hook") == T0 + 30.0
    (item,) = box.claim("hook", T0 + 30, 1)
    box.mark_failed(item.id, T0 + 30, 10_000.0, "HTTP 429")
    assert box.next_due("hook") == T0 + 30 + 120.0  # retry_after_cap
    box.close()


def test_dead_letter_after_max_age(db: Path) -> None:
    box = open_outbox(db)
    item_id = box.enqueue("hook", "A", "a1", b"x", T0)
    later = box.enqueue("hook", "A", "a2", b"y", T0 + 1)
    (item,) = box.claim("hook", T0 + 3599, 1)
    assert box.mark_failed(item.id, T0 + 3599, None, "HTTP 500") == "pending"
    due = box.next_due("hook")
    assert due is not None
    (item,) = box.claim("hook", due, 1)
    assert box.mark_failed(item.id, due, None, "HTTP 502") == "dead"
    assert box.status(item_id) == "dead"
    assert box.last_error(item_id) == "HTTP 502"
    # The group moves on: the next notification is not held hostage by a dead one.
    assert [i.id for i in box.claim("hook", due, 10)] == [later]
    assert box.counts() == {("hook", "dead"): 1, ("hook", "pending"): 1}
    assert box.depth("hook") == 1
    box.close()


def test_mark_dead_is_immediate_and_final(db: Path) -> None:
    box = open_outbox(db)
    item_id = box.enqueue("hook", "A", "a1", b"x", T0)
    box.claim("hook", T0, 1)
    box.mark_dead(item_id, T0, "HTTP 400")
    assert box.status(item_id) == "dead"
    box.mark_sent(item_id, T0)  # a late success report does not resurrect it
    assert box.status(item_id) == "dead"
    assert box.mark_failed(item_id, T0, None, "late") == "dead"
    with pytest.raises(OutboxError):
        box.mark_failed(999, T0, None, "no such item")
    box.close()


def test_claimed_but_unmarked_items_are_claimable_after_reopening(db: Path) -> None:
    box = open_outbox(db)
    first = box.enqueue("hook", "A", "a1", b"x", T0)
    assert [i.id for i in box.claim("hook", T0, 10)] == [first]
    box.close()  # the "crash": claimed, never marked

    reopened = open_outbox(db)
    (item,) = reopened.claim("hook", T0 + 1, 10)
    assert (item.id, item.payload, item.idempotency_key) == (first, b"x", "a1")
    reopened.close()


def test_release_gives_back_a_claim(db: Path) -> None:
    box = open_outbox(db)
    first = box.enqueue("hook", "A", "a1", b"x", T0)
    box.claim("hook", T0, 10)
    assert box.claim("hook", T0, 10) == []
    box.release([first])
    assert [i.id for i in box.claim("hook", T0, 10)] == [first]
    box.close()


def test_prune_drops_old_finished_rows_only(db: Path) -> None:
    box = open_outbox(db)
    sent = box.enqueue("hook", "A", "a1", b"x", T0)
    pending = box.enqueue("hook", "B", "b1", b"y", T0)
    box.claim("hook", T0, 10)
    box.mark_sent(sent, T0)
    box.release([pending])
    assert box.prune(T0 + 100, keep_for=200) == 0
    assert box.prune(T0 + 300, keep_for=200) == 1
    assert box.status(sent) is None
    assert box.status(pending) == "pending"
    box.close()


def test_policy_validation_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="initial"):
        RetryPolicy(initial=0)
    with pytest.raises(ValueError, match="dead_letter_after"):
        RetryPolicy(dead_letter_after=0)
    bad = tmp_path / "not-a-db.sqlite"
    bad.write_bytes(b"this is not a database file" * 100)
    with pytest.raises(OutboxError, match="not-a-db"):
        Outbox(bad)


def test_enqueue_many_commits_a_batch_in_order_and_keeps_first_ids_for_repeated_keys(db: Path) -> None:
    box = open_outbox(db)
    first = box.enqueue("hook", "A", "a1", b"a1", T0)
    ids = box.enqueue_many([("hook", "A", "a2", b"a2"), ("hook", "A", "a1", b"again"), ("hook", "B", "b1", b"b1")], T0)
    assert ids[1] == first
    assert first < ids[0] < ids[2]
    assert box.enqueue_many([], T0) == []
    other = sqlite3.connect(db)
    try:
        rows = other.execute("SELECT idempotency_key, payload FROM notify_outbox ORDER BY id").fetchall()
    finally:
        other.close()
    assert rows == [("a1", b"a1"), ("a2", b"a2"), ("b1", b"b1")]
    box.close()


def test_enqueue_commits_at_full_sync_and_the_bookkeeping_without(db: Path) -> None:
    """A notification is fsynced before anyone can claim it; marking it sent is not (a lost mark
    only repeats an idempotent send)."""
    box = open_outbox(db)
    statements: list[str] = []
    box._db.set_trace_callback(statements.append)
    item = box.enqueue("hook", "A", "a1", b"a1", T0)
    enqueue_trace, statements[:] = list(statements), []
    box.claim("hook", T0, 10)
    box.mark_sent(item, T0 + 1)
    mark_trace = list(statements)
    box._db.set_trace_callback(None)

    begin = next(i for i, s in enumerate(enqueue_trace) if s.startswith("BEGIN"))
    commit = next(i for i, s in enumerate(enqueue_trace) if s.startswith("COMMIT"))
    levels = [(i, s) for i, s in enumerate(enqueue_trace) if s.startswith("PRAGMA synchronous")]
    assert [s for _, s in levels] == ["PRAGMA synchronous=FULL", "PRAGMA synchronous=NORMAL"]
    assert levels[0][0] < begin < commit < levels[1][0]  # FULL is in force for that commit
    assert not any(s.startswith("PRAGMA") for s in mark_trace)
    assert box._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL between enqueues
    assert box.status(item) == "sent"
    box.close()


def test_next_due_leaves_out_groups_with_a_claim_in_flight(db: Path) -> None:
    box = open_outbox(db)
    a1 = box.enqueue("hook", "A", "a1", b"a1", T0)
    box.enqueue("hook", "A", "a2", b"a2", T0 + 1)
    box.enqueue("hook", "B", "b1", b"b1", T0 + 5)
    assert box.next_due("hook") == T0
    assert [i.id for i in box.claim("hook", T0, 1)] == [a1]
    # A's head is being sent: its settlement, not a timer, makes a2 due; B is next on the clock.
    assert box.next_due("hook") == T0 + 5
    box.claim("hook", T0 + 5, 10)
    assert box.next_due("hook") is None
    box.mark_sent(a1, T0 + 6)
    box.release(list(box._claimed))
    assert box.next_due("hook") == T0 + 1  # a2 is A's head now
    box.close()


def test_enqueue_and_claim_claims_only_the_inserted_rows_that_head_their_groups(db: Path) -> None:
    box = open_outbox(db)
    a1 = box.enqueue("hook", "A", "a1", b"a1", T0)
    c1 = box.enqueue("hook", "C", "c1", b"c1", T0)  # due, but not this batch's: left to claim()
    d1 = box.enqueue("hook", "D", "d1", b"d1", T0)
    box.claim("hook", T0, 10)
    box.mark_sent(d1, T0 + 1)
    box.release([a1, c1])

    done = box.enqueue_and_claim(
        [
            ("hook", "A", "a2", b"a2"),  # behind the pending a1
            ("hook", "B", "b1", b"b1"),  # a new group: heads it
            ("hook", "B", "b2", b"b2"),  # behind b1, in the same batch
            ("hook", "D", "d1", b"again"),  # a repeated key: the first row's id, not sent again
            ("hook", "D", "d2", b"d2"),  # D's earlier row is sent: d2 heads D
            ("other", "E", "e1", b"e1"),  # a receiver not asked for
        ],
        T0 + 5,
        claim_for=frozenset({"hook"}),
    )

    a2, b1, b2, again, d2, e1 = done.ids
    assert again == d1
    assert list(done.claimed) == ["hook"]
    assert done.claimed["hook"] == [
        OutboxItem(b1, "hook", "B", "b1", b"b1", 0, T0 + 5),
        OutboxItem(d2, "hook", "D", "d2", b"d2", 0, T0 + 5),
    ]
    # Claimed as claim() claims: a later claim skips their groups and finds the rest that is due.
    assert [i.id for i in box.claim("hook", T0 + 5, 10)] == [a1, c1]
    assert box.claim("other", T0 + 5, 10)[0].id == e1
    box.mark_sent(b1, T0 + 6)
    assert [i.id for i in box.claim("hook", T0 + 6, 10)] == [b2]
    assert box.status(d1) == "sent"
    assert box.status(a2) == "pending"
    box.close()


def test_enqueue_and_claim_leaves_past_the_limit_and_a_group_backing_off_to_claim(db: Path) -> None:
    box = open_outbox(db)
    a1 = box.enqueue("hook", "A", "a1", b"a1", T0)
    box.claim("hook", T0, 10)
    assert box.mark_failed(a1, T0, None, "HTTP 503") == "pending"  # A's head waits for its retry
    done = box.enqueue_and_claim(
        [("hook", "A", "a2", b"a2"), ("hook", "B", "b1", b"b1"), ("hook", "C", "c1", b"c1")],
        T0 + 1,
        claim_for=frozenset({"hook"}),
        limit=1,
    )
    _, b1, c1 = done.ids
    assert [i.id for i in done.claimed["hook"]] == [b1]
    assert [i.id for i in box.claim("hook", T0 + 1, 10)] == [c1]
    assert box.enqueue_and_claim([], T0).claimed == {}
    box.close()


def test_enqueue_and_claim_claims_exactly_what_claim_would_of_the_inserted_rows(tmp_path: Path) -> None:
    """Against a twin outbox that commits with enqueue_many and then claims by query, over random
    batches, repeated keys, sends and retries: the same rows claimed, batch after batch."""
    rng = random.Random(11)
    fast, slow = open_outbox(tmp_path / "fast.sqlite"), open_outbox(tmp_path / "slow.sqlite")
    now = T0
    known: set[int] = set()
    for step in range(150):
        now += rng.choice([0.0, 0.5, 3.0])
        rows = [
            (rng.choice(["hook", "other"]), rng.choice("ABC"), f"k{rng.randrange(step * 2 + 2)}", b"{}")
            for _ in range(rng.randrange(1, 4))
        ]
        done = fast.enqueue_and_claim(rows, now, claim_for=frozenset({"hook"}))
        assert slow.enqueue_many(rows, now) == done.ids
        inserted = set(done.ids) - known
        known |= inserted
        by_query = slow.claim("hook", now, 100)
        expected = [item for item in by_query if item.id in inserted]
        slow.release([item.id for item in by_query if item.id not in inserted])  # older rows: not the batch's
        assert done.claimed.get("hook", []) == expected
        for item in expected:  # settle each claim the same way on both
            if rng.random() < 0.3:
                assert fast.mark_failed(item.id, now, 1.0, "HTTP 503") == slow.mark_failed(item.id, now, 1.0, "x")
            else:
                fast.mark_sent(item.id, now)
                slow.mark_sent(item.id, now)
    assert fast.counts() == slow.counts()
    fast.close()
    slow.close()


def test_enqueue_at_normal_sync_sets_no_level_around_the_commit(db: Path) -> None:
    box = Outbox(db, POLICY, sync="normal")
    statements: list[str] = []
    box._db.set_trace_callback(statements.append)
    box.enqueue("hook", "A", "a1", b"a1", T0)
    box._db.set_trace_callback(None)
    assert not any(s.startswith("PRAGMA") for s in statements)
    assert box._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL, as the commit ran
    box.close()
