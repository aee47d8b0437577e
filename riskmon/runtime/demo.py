"""`riskmon demo`: five venue simulators + monitor + scripted scenario on loopback, shown live.

Needs no network, keys or files outside the package. On a terminal it draws a live exposure
and alert view; otherwise (a pipe, CI) it prints alert lines and a final exposure table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import tempfile
from importlib import resources
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.clock import SystemClock
from riskmon.config.loader import parse_config
from riskmon.demo.scenario import DemoScenario
from riskmon.demo.venues import DemoVenues
from riskmon.engine.exposure import plain_decimal
from riskmon.notify.console import format_transition
from riskmon.runtime.monitor import Monitor

log = logging.getLogger(__name__)


class _RichReceiver:
    def __init__(self, console: Console) -> None:
        self._console = console

    def deliver(self, transition: AlertTransition) -> None:
        colour = (
            "green" if transition.status == "resolved" else ("red" if transition.severity == "critical" else "yellow")
        )
        line = escape(format_transition(transition))
        self._console.print(f"[{colour}]{line}[/{colour}]", highlight=False, soft_wrap=True)


def _usd(amount: object) -> str:
    return "-" if amount is None else f"{amount:,.2f}"


def render(monitor: Monitor) -> Group:
    engine = monitor.engine
    book = engine.book
    underlyings = Table(title="Exposure by underlying (all venues)", expand=True)
    for column in ("desk", "underlying", "net position", "net notional USD", "limit use"):
        underlyings.add_column(column, justify="left" if column in ("desk", "underlying") else "right")
    for desk, instrument, quantity, notional in book.instrument_rows():
        ratio = engine.limits.utilisation.get((desk, "net_notional", instrument))
        use = "-" if ratio is None else f"{ratio:.0%}"
        style = "red" if ratio is not None and ratio >= 1 else ("yellow" if ratio is not None and ratio >= 0.8 else "")
        underlyings.add_row(desk, instrument, plain_decimal(quantity), _usd(notional), use, style=style)

    exposure = Table(title="Positions by venue", expand=True)
    for column in ("desk", "venue", "market", "position", "notional USD"):
        exposure.add_column(column, justify="right" if column in ("position", "notional USD") else "left")
    for row in book.rows():
        exposure.add_row(
            row.key.desk, row.key.venue, row.key.market, plain_decimal(row.position), _usd(row.notional_usd)
        )

    risk = Table(title="Bets and RFQs: worst-case loss", expand=True)
    for column in ("desk", "venue", "market", "at risk USD", "pending USD"):
        risk.add_column(column, justify="right" if "USD" in column else "left")
    for risk_row in book.risk_rows():
        key = risk_row.key
        risk.add_row(key.desk, key.venue, key.market, _usd(risk_row.worst_case_loss_usd), _usd(risk_row.pending_usd))

    alerts = Table(title="Alerts firing", expand=True)
    for column in ("alert", "severity", "labels", "summary"):
        alerts.add_column(column)
    for alert in engine.alerts.active():
        if alert.state == "firing":
            labels = " ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()) if k not in ("alertname", "severity"))
            alerts.add_row(alert.alertname, alert.severity, labels, alert.annotations.get("summary", ""))

    feeds = Table(title="Feeds", expand=True)
    columns = ("venue", "up", "frames", "fills", "orders", "dupes/stale", "revoked", "gaps", "malformed", "reconnects")
    for column in columns:
        feeds.add_column(column)
    for venue, s in sorted(engine.stats.items()):
        counts = (
            s.frames,
            s.fills,
            s.order_updates + s.quote_updates,
            s.duplicates + s.stale_updates,
            s.revoked + s.voided,
            s.sequence_gaps,
            s.malformed,
            s.reconnects,
        )
        feeds.add_row(venue, "yes" if s.feed_up else "NO", *map(str, counts))
    return Group(underlyings, exposure, risk, alerts, feeds)


async def run_demo(duration: float | None, port: int | None, step: float = 0.5) -> int:
    clock = SystemClock()
    venues = DemoVenues()
    await venues.start()
    try:
        # Deadlines persist to a scratch state file that goes away with the demo.
        with tempfile.TemporaryDirectory(prefix="riskmon-demo-") as scratch:
            return await _run(venues, clock, duration, port, step, Path(scratch) / "state.db")
    finally:
        await venues.stop()


async def _run(
    venues: DemoVenues, clock: SystemClock, duration: float | None, port: int | None, step: float, state: Path
) -> int:
    scenario = DemoScenario(venues, now=clock.now, step=step)
    await scenario.seed()
    text = resources.files("riskmon.demo").joinpath("demo.yaml").read_text(encoding="utf-8")
    config = parse_config(text, "riskmon/demo/demo.yaml", {**venues.environ(), "RISKMON_DEMO_STATE": str(state)})

    interactive = sys.stdout.isatty()
    console = Console(soft_wrap=True)
    monitor = Monitor(config, clock=clock, receivers=[_RichReceiver(console)], http_port=port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    runner = asyncio.create_task(monitor.run(stop))
    player: asyncio.Task[None] | None = None
    try:
        connected = asyncio.create_task(venues.wait_connected(timeout=30))
        await asyncio.wait([runner, connected], return_when=asyncio.FIRST_COMPLETED)
        if runner.done():
            connected.cancel()
            return await _finish(runner)
        await connected
        metrics = f"http://{config.server.host}:{monitor.http_port}/metrics"
        console.print(f"riskmon demo: five venue simulators on loopback; metrics at {metrics}; Ctrl-C to stop")
        for venue, url in venues.endpoints().items():
            console.print(f"  {venue}: {url}", highlight=False)
        player = asyncio.create_task(scenario.play())
        deadline = None if duration is None else loop.time() + duration
        live = Live(render(monitor), console=console, refresh_per_second=4) if interactive else None
        with live if live is not None else contextlib.nullcontext():
            while (deadline is None or loop.time() < deadline) and not runner.done() and not player.done():
                await asyncio.sleep(0.25)
                if live is not None:
                    live.update(render(monitor))
        if player.done() and not player.cancelled() and player.exception() is not None:
            raise player.exception()  # type: ignore[misc]
    finally:
        stop.set()
        if player is not None:
            player.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await player
        await _finish(runner)
    if not interactive:
        console.print(render(monitor))
    return 0


async def _finish(runner: asyncio.Task[None]) -> int:
    with contextlib.suppress(asyncio.CancelledError):
        await runner
    return 0
