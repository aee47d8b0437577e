"""The silence registry: validation, windows, muting, expiry, pruning and restore."""

from __future__ import annotations

import itertools
import re

import pytest

from riskmon.alerts.matchers import Matcher
from riskmon.alerts.silences import MAX_COMMENT_CHARS, Silence, SilenceError, Silences, UnknownSilence

T0 = 1_700_000_000.0
MANGO = {"alertname": "FeedStale", "venue": "mango", "desk": "macro", "severity": "warning"}
PHOENIX = {"alertname": "FeedStale", "venue": "phoenix", "desk": "macro", "severity": "warning"}


def registry(max_silences: int = 100) -> Silences:
    counter = itertools.count(1)
    return Silences(max_silences=max_silences, id_factory=lambda: f"s{next(counter)}")


def add(reg: Silences, *matchers: str, start: float | None = None, end: float = T0 + 3600, now: float = T0) -> Silence:
    return reg.add(list(matchers), starts_at=start, ends_at=end, created_by="ops", comment="venue maintenance", now=now)


def test_add_returns_a_stored_silence_with_canonical_matchers() -> None:
    reg = registry()
    silence = add(reg, "venue=mango", 'desk=~"macro|rates"')
    assert silence == Silence(
        id="s1",
        matchers=('venue="mango"', 'desk=~"macro|rates"'),
        starts_at=T0,
        ends_at=T0 + 3600,
        created_by="ops",
        comment="venue maintenance",
        created_at=T0,
        updated_at=T0,
    )
    assert reg.get("s1") == silence
    assert reg.get("nope") is None


def test_default_ids_are_uuid4_text() -> None:
    silence = Silences().add(["venue=mango"], starts_at=None, ends_at=T0 + 1, created_by="a", comment="c", now=T0)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", silence.id)


def test_matcher_objects_are_accepted() -> None:
    silence = registry().add(
        [Matcher("venue", "=~", "man.*")], starts_at=None, ends_at=T0 + 60, created_by="a", comment="c", now=T0
    )
    assert silence.matchers == ('venue=~"man.*"',)


def test_a_start_in_the_past_means_now() -> None:
    assert add(registry(), "venue=mango", start=T0 - 500).starts_at == T0


@pytest.mark.parametrize(
    ("matchers", "message"),
    [
        ([], "at least one matcher"),
        (["venue=~.*"], "must not match the empty string"),
        (['venue=""', "desk!=macro"], "must not match the empty string"),
        (["venue=mango", "9bad=x"], "matcher [1]: bad matcher format"),
        (['venue=~"("'], "invalid regular expression"),
        ([f"l{i}=x" for i in range(33)], "at most 32 matchers"),
    ],
)
def test_bad_matchers_are_refused(matchers: list[str], message: str) -> None:
    reg = registry()
    with pytest.raises(SilenceError) as err:
        reg.add(matchers, starts_at=None, ends_at=T0 + 60, created_by="a", comment="c", now=T0)
    assert message in str(err.value)
    assert len(reg) == 0


def test_one_string_is_not_a_list_of_matchers() -> None:
    with pytest.raises(SilenceError, match="not one string"):
        registry().add("venue=mango", starts_at=None, ends_at=T0 + 60, created_by="a", comment="c", now=T0)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (None, T0, "ends_at must be in the future"),
        (None, T0 - 1, "ends_at must be in the future"),
        (T0 + 100, T0 + 50, "ends_at must be after starts_at"),
        (T0 + 100, T0 + 100, "ends_at must be after starts_at"),
        (None, float("inf"), "ends_at must be a finite number"),
        (float("nan"), T0 + 50, "starts_at must be a finite number"),
    ],
)
def test_bad_windows_are_refused(start: float | None, end: float, message: str) -> None:
    with pytest.raises(SilenceError, match=message):
        add(registry(), "venue=mango", start=start, end=end)


@pytest.mark.parametrize(
    ("created_by", "comment", "message"),
    [
        ("", "why", "created_by must be a non-empty string"),
        ("   ", "why", "created_by must be a non-empty string"),
        ("ops", "", "comment must be a non-empty string"),
        ("o" * 201, "why", "created_by is at most 200 characters, got 201"),
        ("ops", "w" * (MAX_COMMENT_CHARS + 1), f"comment is at most {MAX_COMMENT_CHARS} characters"),
        ("ops\x1b[31m", "why", r"created_by has a control character \(U\+001B\) at position 3"),
        ("ops", "why\u202e", r"comment has a control character \(U\+202E\)"),
    ],
)
def test_bad_author_or_comment_is_refused(created_by: str, comment: str, message: str) -> None:
    with pytest.raises(SilenceError, match=message):
        registry().add(["venue=mango"], starts_at=None, ends_at=T0 + 60, created_by=created_by, comment=comment, now=T0)


def test_a_comment_may_span_lines() -> None:
    silence = registry().add(
        ["venue=mango"], starts_at=None, ends_at=T0 + 60, created_by="ops", comment="line 1\n\tline 2", now=T0
    )
    assert silence.comment == "line 1\n\tline 2"


def test_the_limit_counts_expired_silences_until_they_are_pruned() -> None:
    reg = registry(max_silences=2)
    first = add(reg, "venue=mango")
    add(reg, "venue=phoenix")
    reg.expire(first.id, T0 + 10)
    with pytest.raises(SilenceError, match=r"too many silences \(2 stored, expired ones included; the limit is 2\)"):
        add(reg, "venue=totalis", now=T0 + 10)
    assert reg.prune(T0 + 10, keep_expired_for=0) == [first.id]
    assert add(reg, "venue=totalis", now=T0 + 10).id == "s3"


def test_states_follow_the_window() -> None:
    silence = add(registry(), "venue=mango", start=T0 + 100, end=T0 + 200)
    assert [silence.state(t) for t in (T0, T0 + 99.9, T0 + 100, T0 + 199.9, T0 + 200)] == [
        "pending",
        "pending",
        "active",
        "active",
        "expired",
    ]


def test_silenced_by_only_while_active_and_only_matching_alerts() -> None:
    reg = registry()
    add(reg, "venue=mango", start=T0 + 100, end=T0 + 200)
    add(reg, 'venue=~"mango|phoenix"', "desk=macro", end=T0 + 150)
    add(reg, "venue=mango", "region=eu")  # MANGO has no region label: it reads as "", so no match
    assert reg.silenced_by(MANGO, T0) == ["s2"]
    assert reg.silenced_by(MANGO, T0 + 120) == ["s1", "s2"]
    assert reg.silenced_by(PHOENIX, T0 + 120) == ["s2"]
    assert reg.silenced_by(MANGO, T0 + 150) == ["s1"]
    assert reg.silenced_by(MANGO, T0 + 200) == []
    assert reg.silenced_by({**MANGO, "region": "eu"}, T0) == ["s2", "s3"]


def test_expire_ends_an_active_silence_now() -> None:
    reg = registry()
    silence = add(reg, "venue=mango")
    expired = reg.expire(silence.id, T0 + 30)
    assert (expired.starts_at, expired.ends_at, expired.updated_at, expired.created_at) == (T0, T0 + 30, T0 + 30, T0)
    assert expired.state(T0 + 30) == "expired"
    assert reg.get(silence.id) == expired
    assert reg.silenced_by(MANGO, T0 + 30) == []


def test_expiring_a_pending_silence_empties_its_window() -> None:
    reg = registry()
    silence = add(reg, "venue=mango", start=T0 + 100, end=T0 + 200)
    expired = reg.expire(silence.id, T0 + 10)
    assert (expired.starts_at, expired.ends_at) == (T0 + 10, T0 + 10)
    assert reg.silenced_by(MANGO, T0 + 150) == []
    assert reg.list(T0 + 150, "expired") == [expired]


def test_expiring_an_expired_silence_changes_nothing() -> None:
    reg = registry()
    silence = add(reg, "venue=mango", end=T0 + 60)
    assert reg.expire(silence.id, T0 + 100) is silence
    once = reg.expire(add(reg, "venue=phoenix").id, T0 + 10)
    assert reg.expire(once.id, T0 + 20) is once


def test_expiring_an_unknown_id_is_an_error() -> None:
    with pytest.raises(UnknownSilence, match="no silence with id 'nope'"):
        registry().expire("nope", T0)


def test_list_orders_active_then_pending_then_expired_and_filters_by_state() -> None:
    reg = registry()
    long_active = add(reg, "venue=a", end=T0 + 1000)
    short_active = add(reg, "venue=b", end=T0 + 500)
    late_pending = add(reg, "venue=c", start=T0 + 300, end=T0 + 900)
    early_pending = add(reg, "venue=d", start=T0 + 200, end=T0 + 900)
    old_expired = reg.expire(add(reg, "venue=e").id, T0 + 1)
    new_expired = reg.expire(add(reg, "venue=f").id, T0 + 2)
    now = T0 + 10
    assert [s.id for s in reg.list(now)] == [
        short_active.id,
        long_active.id,
        early_pending.id,
        late_pending.id,
        new_expired.id,
        old_expired.id,
    ]
    assert reg.list(now, "active") == [short_active, long_active]
    assert reg.list(now, "pending") == [early_pending, late_pending]
    assert reg.list(now, "expired") == [new_expired, old_expired]
    with pytest.raises(SilenceError, match="unknown silence state 'muted'"):
        reg.list(now, "muted")  # type: ignore[arg-type]


def test_next_change_is_the_next_start_or_end() -> None:
    reg = registry()
    assert reg.next_change(T0) is None
    add(reg, "venue=a", end=T0 + 500)
    add(reg, "venue=b", start=T0 + 200, end=T0 + 900)
    assert reg.next_change(T0) == T0 + 200
    assert reg.next_change(T0 + 200) == T0 + 500
    assert reg.next_change(T0 + 500) == T0 + 900
    assert reg.next_change(T0 + 900) is None


def test_prune_forgets_only_silences_expired_long_enough() -> None:
    reg = registry()
    old = add(reg, "venue=a", end=T0 + 100)
    recent = add(reg, "venue=b", end=T0 + 400)
    active = add(reg, "venue=c", end=T0 + 5000)
    assert reg.prune(T0 + 1100, keep_expired_for=1000) == [old.id]
    assert reg.get(old.id) is None
    assert [s.id for s in reg.list(T0 + 1100)] == [active.id, recent.id]
    assert reg.silenced_by({"venue": "a"}, T0 + 1100) == []


def test_load_restores_silences_and_skips_bad_ones() -> None:
    source = registry()
    kept = add(source, "venue=mango", end=T0 + 100)
    expired = source.expire(add(source, "venue=phoenix").id, T0 + 5)
    broken = Silence(
        id="bad",
        matchers=("9x=y",),
        starts_at=T0,
        ends_at=T0 + 5,
        created_by="a",
        comment="c",
        created_at=T0,
        updated_at=T0,
    )
    inverted = Silence(
        id="inv",
        matchers=("venue=x",),
        starts_at=T0 + 5,
        ends_at=T0,
        created_by="a",
        comment="c",
        created_at=T0,
        updated_at=T0,
    )
    restored = registry(max_silences=1)  # the limit applies to new silences, not to state already held
    skipped = restored.load([kept, broken, expired, inverted])
    assert len(skipped) == 2
    assert skipped[0].startswith("silence bad: matcher [0]: bad matcher format '9x=y'")
    assert skipped[1] == "silence inv: ends_at is before starts_at"
    assert restored.list(T0 + 10) == [kept, expired]
    assert restored.silenced_by(MANGO, T0 + 10) == [kept.id]
