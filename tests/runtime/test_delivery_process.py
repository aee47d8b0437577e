"""Alert delivery in its own process: what the engine process submits is committed and sent by
the child, its counters come back for the metrics, and a dead child is replaced without losing or
doubling a notification."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from riskmon.asgi_server import AsgiServer
from riskmon.clock import SystemClock
from riskmon.config import MonitorConfig, parse_config
from riskmon.notify.notifier import Outgoing
from riskmon.notify.outbox import Outbox
from riskmon.notify.outbox_states import outbox_lock_path
from riskmon.runtime.delivery_process import DeliveryProcess
from tests.runtime.test_alert_delivery import RecordingReceiver

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def monitor_config(port: int, state: Path) -> MonitorConfig:
    return parse_config(
        f"""
state: {{path: "{state}"}}
venues: {{mango: {{kind: mango_v3_fills, urls: ["ws://127.0.0.1:9"]}}}}
desks: {{sol-desk: {{accounts: {{mango: [DMjLV5AdbdnAxEE9CCJYdzGhEDVAaKPJDRTZQ7kgMZwm]}}}}}}
receivers: {{hook: {{kind: webhook, url: "http://127.0.0.1:{port}/alerts"}}}}
delivery: {{retry_initial: 50ms, retry_max: 100ms}}
""",
        "t.yaml",
        {},
    )


def outgoing(group: str, key: str) -> Outgoing:
    return Outgoing("hook", "hook", group, key, json.dumps({"group": group, "key": key}).encode())


def keys(receiver: RecordingReceiver) -> list[str]:
    return [headers["idempotency-key"] for headers, _ in receiver.accepted]


@contextlib.asynccontextmanager
async def running(config: MonitorConfig, *, adopt: bool = True) -> AsyncIterator[DeliveryProcess]:
    delivery = DeliveryProcess(
        config.state.outbox_path,
        config.receivers,
        config.delivery,
        SystemClock(),
        adopt_from=config.state.path if adopt else None,
    )
    await delivery.start()
    try:
        yield delivery
    finally:
        await delivery.stop()


Receiver = tuple[RecordingReceiver, int]


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recording = RecordingReceiver()
    server = AsgiServer(recording)
    await server.start()
    try:
        yield recording, server.port
    finally:
        await server.stop()


async def wait_for_counter(delivery: DeliveryProcess, key: tuple[str, str], count: int) -> None:
    async with asyncio.timeout(10):
        while delivery.outcomes[key] < count:
            delivery.progress.clear()
            await delivery.progress.wait()


async def test_submitted_notifications_are_committed_sent_and_counted(receiver: Receiver, tmp_path: Path) -> None:
    recording, port = receiver
    config = monitor_config(port, tmp_path / "state.db")
    async with running(config) as delivery:
        delivery.submit([outgoing("A", "A1"), outgoing("B", "B1")])
        await delivery.drain()  # committed: the rows are in the outbox file, not in the state file
        with contextlib.closing(sqlite3.connect(config.state.outbox_path)) as db:
            stored = {row[0] for row in db.execute("SELECT idempotency_key FROM notify_outbox")}
        assert stored == {"A1", "B1"}
        await recording.wait_for(lambda: len(recording.accepted) >= 2)
        await wait_for_counter(delivery, ("hook", "sent"), 2)
        assert delivery.outcomes[("hook", "enqueued")] == 2
        assert delivery.latency["hook"].count == 2  # enqueue -> accepted, measured in the child
        assert delivery.pid is not None
        assert delivery.pid != os.getpid()
    assert sorted(keys(recording)) == ["A1", "B1"]
    assert not (tmp_path / "state.db").exists()  # the outbox lives in its own file


async def test_a_killed_delivery_process_is_replaced_and_doubles_nothing(receiver: Receiver, tmp_path: Path) -> None:
    recording, port = receiver
    config = monitor_config(port, tmp_path / "state.db")
    async with running(config) as delivery:
        delivery.submit([outgoing("A", "A1")])
        await recording.wait_for(lambda: "A1" in keys(recording))
        first = delivery.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        # Submitted while no child runs: held until the next one is up, then handed over.
        delivery.submit([outgoing("B", "B1")])
        await asyncio.wait_for(delivery.drain(), timeout=10)
        await recording.wait_for(lambda: "B1" in keys(recording))
        assert delivery.pid not in (None, first)
    # After dropping duplicates by key, each notification arrived once.
    assert sorted(set(keys(recording))) == ["A1", "B1"]
    assert [b["key"] for b in recording.bodies()] == ["A1", "B1"]


async def test_a_stop_signal_to_the_process_group_does_not_stop_delivery(receiver: Receiver, tmp_path: Path) -> None:
    recording, port = receiver
    config = monitor_config(port, tmp_path / "state.db")
    async with running(config) as delivery:
        await delivery.started()
        pid = delivery.pid
        assert pid is not None
        # Ctrl-C and a service manager's stop reach every process of the group; the engine process
        # stops delivery in order instead.
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGTERM)
        delivery.submit([outgoing("A", "A1")])
        await recording.wait_for(lambda: "A1" in keys(recording))
        assert delivery.pid == pid


async def test_pending_notifications_of_the_state_file_move_into_the_outbox(receiver: Receiver, tmp_path: Path) -> None:
    recording, port = receiver
    config = monitor_config(port, tmp_path / "state.db")
    # An earlier version kept the outbox inside the state file: one row sent, one still pending.
    older = Outbox(config.state.path)
    sent, _ = older.enqueue_many([("hook", "A", "A1", b'{"key": "A1"}'), ("hook", "B", "B1", b'{"key": "B1"}')], 100.0)
    older.mark_sent(sent, 101.0)
    older.close()
    async with running(config):
        await recording.wait_for(lambda: "B1" in keys(recording))
    assert keys(recording) == ["B1"]
    with contextlib.closing(sqlite3.connect(config.state.path)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "notify_outbox" not in tables


async def test_an_outbox_that_cannot_open_turns_delivery_off_without_blocking(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = monitor_config(9, tmp_path / "missing-dir" / "state.db")
    async with running(config, adopt=False) as delivery:
        delivery.submit([outgoing("A", "A1")])
        # The child says it is off; the engine's barrier must not wait for a commit that never comes.
        await asyncio.wait_for(delivery.drain(), timeout=10)
        delivery.submit([outgoing("B", "B1")])
        await asyncio.wait_for(delivery.drain(), timeout=1)


async def test_stop_commits_everything_submitted_before_it(tmp_path: Path) -> None:
    # Nothing listens on port 9: the rows must be committed (pending), not lost, when stop returns.
    config = monitor_config(9, tmp_path / "state.db")
    async with running(config) as delivery:
        delivery.submit([outgoing("A", "A1")])
        delivery.submit([outgoing("B", "B1"), outgoing("C", "C1")])
    with contextlib.closing(sqlite3.connect(config.state.outbox_path)) as db:
        rows = dict(db.execute("SELECT idempotency_key, status FROM notify_outbox").fetchall())
    assert rows == {"A1": "pending", "B1": "pending", "C1": "pending"}


def lock_is_free(path: Path) -> bool:
    with open(path, "ab") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


async def test_the_delivery_process_holds_the_outbox_lock_the_restore_waits_for(tmp_path: Path) -> None:
    config = monitor_config(9, tmp_path / "state.db")
    lock_path = outbox_lock_path(Path(config.state.outbox_path))
    async with running(config, adopt=False) as delivery:
        await delivery.started()
        assert not lock_is_free(lock_path)
    assert lock_is_free(lock_path)  # let go when it stopped
