"""SilenceStore on a real SQLite file: round trip, upsert, delete, WAL, bad rows and errors."""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from riskmon.alerts.silences import Silence, Silences
from riskmon.store.deadlines import DeadlineStore
from riskmon.store.silences import SilenceStore, StoreError

T0 = 1_700_000_000.0


def make(silence_id: str, *, comment: str = "maintenance", ends_at: float = T0 + 3600) -> Silence:
    return Silence(
        id=silence_id,
        matchers=('venue="mango"', 'desk=~"macro|rates"'),
        starts_at=T0,
        ends_at=ends_at,
        created_by="ops",
        comment=comment,
        created_at=T0,
        updated_at=T0,
    )


def test_saved_silences_load_back_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    store = SilenceStore(path)
    first, second = make("a"), make("b", comment='quotes "and" ünïcode\nnew line')
    store.save(first)
    store.save(second)
    store.close()
    reopened = SilenceStore(path)
    assert reopened.load() == [first, second]
    with closing(sqlite3.connect(path)) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    reopened.close()


def test_save_replaces_by_id_and_delete_forgets(tmp_path: Path) -> None:
    store = SilenceStore(tmp_path / "state.sqlite")
    store.save_many([make("a"), make("b"), make("c")])
    expired = make("a", ends_at=T0 + 5)
    store.save(expired)
    store.delete(["b", "unknown"])
    store.delete([])
    store.save_many([])
    assert store.load() == [expired, make("c")]
    store.close()


def test_a_registry_restores_from_the_store(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    registry = Silences()
    store = SilenceStore(path)
    silence = registry.add(["venue=mango"], starts_at=None, ends_at=T0 + 60, created_by="a", comment="c", now=T0)
    store.save(silence)
    store.close()
    restored = Silences()
    with closing(SilenceStore(path)) as reopened:
        assert restored.load(reopened.load()) == []
    assert restored.silenced_by({"venue": "mango"}, T0 + 1) == [silence.id]


def test_shares_the_state_file_with_the_deadline_store(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    deadlines = DeadlineStore(path)
    silences = SilenceStore(path)
    silences.save(make("a"))
    assert deadlines.load() == []
    assert silences.load() == [make("a")]
    with closing(sqlite3.connect(path)) as raw:
        tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"silences", "watchdog_deadlines"} <= tables
    deadlines.close()
    silences.close()


def test_unreadable_rows_are_skipped_and_logged_without_their_contents(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.sqlite"
    store = SilenceStore(path)
    store.save(make("good"))
    raw = sqlite3.connect(path, isolation_level=None)
    columns = "(id, matchers, starts_at, ends_at, created_by, comment, created_at, updated_at)"
    raw.execute(f"INSERT INTO silences {columns} VALUES ('json', 'not json', 1, 2, 'a', 'secret-ish', 1, 1)")
    raw.execute(f"INSERT INTO silences {columns} VALUES ('shape', '{{\"a\": 1}}', 1, 2, 'a', 'secret-ish', 1, 1)")
    raw.execute(f"INSERT INTO silences {columns} VALUES ('type', '[\"a=b\"]', 'soon', 2, 'a', 'secret-ish', 1, 1)")
    raw.close()
    with caplog.at_level(logging.WARNING, logger="riskmon.store.silences"):
        assert store.load() == [make("good")]
    skipped = sorted(r.getMessage().split(": ")[1] for r in caplog.records)
    assert skipped == ["skipped silence 'json'", "skipped silence 'shape'", "skipped silence 'type'"]
    assert "secret-ish" not in caplog.text
    store.close()


def test_a_file_that_is_not_a_database_is_a_store_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    path.write_bytes(b"this is not sqlite, and the bytes stay private" * 100)
    with pytest.raises(StoreError) as err:
        SilenceStore(path)
    assert str(path) in str(err.value)
    assert "private" not in str(err.value)


def test_writes_after_close_are_store_errors(tmp_path: Path) -> None:
    store = SilenceStore(tmp_path / "state.sqlite")
    store.close()
    with pytest.raises(StoreError, match="state file"):
        store.save(make("a"))
    with pytest.raises(StoreError, match="state file"):
        store.load()
