"""StatePersistence across a crash between the outbox commit and the state write, in process with
real SQLite files: the restart restores the alert and group states the outbox committed with the
notification, so the alert keeps its episode and the resolution gets the key a run without the
crash gives it; the first write saves them, and the outbox drops them once the state file holds them."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.alerts.silences import Silences
from riskmon.config.loader import parse_config
from riskmon.config.schema import MonitorConfig
from riskmon.engine.engine import Engine
from riskmon.notify.notifier import Notifier, Outgoing
from riskmon.notify.outbox import Outbox
from riskmon.runtime.persistence import StatePersistence

T0 = 1_700_000_000.0
CONFIG = """\
state: {{path: "{state}"}}
venues:
  mango: {{kind: mango_v3_fills, urls: ["ws://127.0.0.1:1"]}}
desks:
  desk-a: {{accounts: {{mango: [DMjLV5AdbdnAxEE9CCJYdzGhEDVAaKPJDRTZQ7kgMZwm]}}}}
receivers:
  hook: {{kind: webhook, url: "http://127.0.0.1:9/hook"}}
routes: {{receiver: hook, group_by: [desk], group_wait: 0s, group_interval: 1m, repeat_interval: 1h}}
"""


class Run:
    """One life of riskmon's alert side: the engine's tracker, the notifier, the state file."""

    def __init__(self, config: MonitorConfig, barrier: asyncio.Event | None = None) -> None:
        self.engine = Engine(config)
        self.notifier = Notifier(config, Silences())
        self.barrier = barrier
        self.persistence = StatePersistence(
            self.engine, config.state, notifier=self.notifier, outbox_committed=self._outbox_committed
        )

    async def _outbox_committed(self) -> None:
        if self.barrier is not None:
            await self.barrier.wait()
            raise asyncio.CancelledError  # the process dies here: nothing after it runs

    def breach(self, now: float, *, breached: bool) -> list[AlertTransition]:
        transition = self.engine.alerts.observe(
            "ExposureLimitBreach",
            "critical",
            {"desk": "desk-a"},
            breached=breached,
            cleared=not breached,
            value=3000.0 if breached else 1800.0,
            annotations={"summary": "over the limit"},
            pending_for=0.0,
            now=now,
        )
        return [] if transition is None else [transition]

    def notify(self, transitions: list[AlertTransition], now: float) -> list[Outgoing]:
        self.notifier.observe(transitions, now)
        return self.notifier.due(now).outgoing


def commit(outbox_path: Path, outgoing: list[Outgoing]) -> None:
    """What the delivery process does with a batch (riskmon.runtime.delivery._commit_and_claim)."""
    outbox = Outbox(outbox_path, sync="normal")
    rows = [(o.queue, o.group_key, o.idempotency_key, o.payload) for o in outgoing]
    outbox.enqueue_many(rows, T0, [o.alert_states for o in outgoing if o.alert_states is not None])
    outbox.close()


def table(path: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchall()


@pytest.mark.asyncio
async def test_a_crash_before_the_state_write_restores_the_episode_the_outbox_holds(tmp_path: Path) -> None:
    config = parse_config(CONFIG.format(state=tmp_path / "state.db"), "monitor.yaml", {})
    outbox = config.state.outbox_path

    # A run without the crash, for the keys the receiver must see.
    reference = Run(parse_config(CONFIG.format(state=tmp_path / "ref.db"), "monitor.yaml", {}))
    await reference.persistence.open()
    [ref_fired] = reference.notify(reference.breach(T0, breached=True), T0)
    reference.notify(reference.breach(T0 + 30, breached=False), T0 + 30)
    [ref_resolved] = reference.notifier.due(T0 + 60).outgoing
    await reference.persistence.close()

    crashed = Run(config, barrier=asyncio.Event())
    await crashed.persistence.open()
    [fired] = crashed.notify(crashed.breach(T0, breached=True), T0)
    assert fired.alert_states is not None
    assert fired.alert_states.revision == 1
    commit(outbox, [fired])
    assert crashed.barrier is not None
    crashed.barrier.set()  # the write task writes the books, then dies once the outbox has committed
    crashed.persistence.after_step()
    await crashed.persistence.close()
    assert fired.idempotency_key == ref_fired.idempotency_key
    assert table(tmp_path / "state.db", "SELECT COUNT(*) FROM alert_states") == [(0,)]

    restarted = Run(config)
    await restarted.persistence.open()
    active = restarted.engine.alerts.get(fired.alert_states.alerts[0][0])
    assert active is not None
    assert (active.state, active.fired_at) == ("firing", T0)
    # Still breached: no new episode, and the group knows its receiver heard the firing.
    assert restarted.breach(T0 + 10, breached=True) == []
    restarted.notifier.mutes_changed(T0 + 10)
    assert restarted.notifier.due(T0 + 10).outgoing == []
    restarted.notify(restarted.breach(T0 + 30, breached=False), T0 + 30)
    [resolved] = restarted.notifier.due(T0 + 60).outgoing
    assert resolved.idempotency_key == ref_resolved.idempotency_key
    assert resolved.alert_states is not None
    assert resolved.alert_states.revision == 2
    commit(outbox, [resolved])

    # The first write saves the restored states and what followed, as of revision 2; the next
    # commit to the outbox drops the rows the state file now holds.
    restarted.persistence.after_step()
    await restarted.persistence.drain()
    assert table(tmp_path / "state.db", "SELECT revision FROM alert_states_revision") == [(2,)]
    assert table(tmp_path / "state.db", "SELECT COUNT(*) FROM alert_states") == [(0,)]
    [again] = restarted.notify(restarted.breach(T0 + 90, breached=True), T0 + 90)
    assert again.idempotency_key not in {fired.idempotency_key, resolved.idempotency_key}  # a new episode
    commit(outbox, [again])
    assert table(outbox, "SELECT revision FROM outbox_alert_states") == [(3,)]
    assert table(outbox, "SELECT revision FROM outbox_group_states") == [(3,)]
    await restarted.persistence.close()
