"""`riskmon demo`: five venue simulators + monitor + scripted scenario on loopback, shown live.

Needs no network beyond loopback, no keys, and no files outside a scratch directory. On a terminal
it draws a live view (exposure, bets and RFQs, feed states, the watchdogs, alerts firing); otherwise
(a pipe, CI) it prints alert lines and the same tables once at the end. The scenario's orders are
declared to the monitor's own order intake (`POST /api/v1/orders`), as a trading system would.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import sys
import tempfile
from importlib import resources
from pathlib import Path

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.clock import SystemClock
from riskmon.config.loader import parse_config
from riskmon.demo.scenario import DemoScenario
from riskmon.demo.venues import DemoVenues
from riskmon.engine.exposure import plain_decimal
from riskmon.events import OrderIntake
from riskmon.notify.console import format_transition
from riskmon.runtime.intake import ORDERS_PATH
from riskmon.runtime.monitor import Monitor
from riskmon.watchdogs.feeds import FeedState
from riskmon.watchdogs.latency import LatencyHistogram

log = logging.getLogger(__name__)

# How long the scenario's order declarations wait for the monitor's HTTP answer.
INTAKE_TIMEOUT = 10.0


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
    columns = (
        "venue",
        "state",
        "frames",
        "fills",
        "orders",
        "dupes/stale",
        "revoked",
        "gaps",
        "malformed",
        "reconnects",
    )
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
        state = engine.watchdogs.feeds.state(venue)
        feeds.add_row(venue, Text(state.value, style=_FEED_STYLE[state]), *map(str, counts))
    # The growing alerts table goes last, so a short terminal crops it rather than the status tables.
    return Group(underlyings, exposure, risk, feeds, watchdog_table(monitor), alerts)


_FEED_STYLE = {FeedState.UP: "green", FeedState.DOWN: "bold red", FeedState.RESYNCING: "yellow"}


def watchdog_table(monitor: Monitor) -> Table:
    """What each venue's watchdogs watch, how fast the venue answered, and what they caught."""
    engine = monitor.engine
    dogs = engine.watchdogs
    now = monitor.clock.now()
    table = Table(title="Watchdogs", expand=True)
    for column in ("venue", "watching", "latency (count, mean)", "caught", "health_check", "reconnects"):
        table.add_column(column)
    for venue, stats in sorted(engine.stats.items()):
        watching: list[str] = []
        latency: list[str] = []
        caught: list[str] = []
        health = "-"
        if dogs.activation.tracks(venue):
            watching.append(_count(dogs.activation.pending(venue), "order") + " pending activation")
            latency.append(_latency("activation", dogs.activation.latency.get(venue)))
            outcomes = sorted((o, n) for (v, o), n in dogs.activation.outcomes.items() if v == venue)
            caught.extend(f"activation timeout {outcome}: {n}" for outcome, n in outcomes)
        if venue in dogs.rfq.missed:
            watching.append(_count(dogs.rfq.pending(venue), "quote") + " awaiting confirmation")
            latency.append(_latency("confirm", dogs.rfq.confirm_latency.get(venue)))
            if dogs.rfq.missed[venue]:
                caught.append(f"confirmation missed: {dogs.rfq.missed[venue]}")
        if dogs.health_check.tracks(venue):
            last = dogs.health_check.last_health_check(venue)
            health = "none yet" if last is None else f"{max(0.0, now - last):.1f}s ago"
            if dogs.health_check.gaps_detected.get(venue):
                caught.append(f"health_check gap: {dogs.health_check.gaps_detected[venue]}")
        resync = dogs.feeds.resync_seconds.get(venue)
        if stats.sequence_gaps:
            caught.append(f"sequence gap: {stats.sequence_gaps}")
            latency.append(_latency("resync", resync))
        if not (watching or latency or caught or health != "-"):
            continue  # a venue only the feed watchdog watches: the Feeds table says it all
        table.add_row(
            venue,
            "\n".join(watching) or "-",
            "\n".join(latency) or "-",
            "\n".join(caught) or "-",
            health,
            str(stats.reconnects),
        )
    return table


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _latency(what: str, histogram: LatencyHistogram | None) -> str:
    if histogram is None or histogram.count == 0:
        return f"{what}: -"
    mean = histogram.sum / histogram.count
    shown = f"{mean * 1000:.0f} ms" if mean < 1 else f"{mean:.2f} s"
    return f"{what}: {histogram.count}, {shown}"


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
    text = resources.files("riskmon.demo").joinpath("demo.yaml").read_text(encoding="utf-8")
    config = parse_config(text, "riskmon/demo/demo.yaml", {**venues.environ(), "RISKMON_DEMO_STATE": str(state)})
    interactive = sys.stdout.isatty()
    console = Console(soft_wrap=True)
    # The live view prints every transition itself; the console receiver's lines would garble it.
    monitor = Monitor(config, clock=clock, listeners=[_RichReceiver(console)], http_port=port, console=_Discard())
    async with _TradingSystem(monitor) as trading:
        scenario = DemoScenario(venues, now=clock.now, step=step, declare_order=trading.declare)
        await scenario.seed()
        return await _show(venues, monitor, scenario, console, interactive, duration)


class _Discard(io.StringIO):
    def write(self, text: str) -> int:
        return len(text)


async def _serving(monitor: Monitor, venues: DemoVenues) -> None:
    """The venues connected and the monitor serving: its HTTP server starts once the state file is
    restored, which may finish after the venues connect."""
    await venues.wait_connected(timeout=30)
    await asyncio.wait_for(monitor.started.wait(), timeout=30)


async def _show(
    venues: DemoVenues,
    monitor: Monitor,
    scenario: DemoScenario,
    console: Console,
    interactive: bool,
    duration: float | None,
) -> int:
    config = monitor.config
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    runner = asyncio.create_task(monitor.run(stop))
    player: asyncio.Task[None] | None = None
    try:
        connected = asyncio.create_task(_serving(monitor, venues))
        await asyncio.wait([runner, connected], return_when=asyncio.FIRST_COMPLETED)
        if runner.done():
            connected.cancel()
            return await _finish(runner)
        await connected
        metrics = f"http://{config.server.host}:{monitor.http_port}/metrics"
        console.print(f"riskmon demo: five venue simulators on loopback; metrics at {metrics}; Ctrl-C to stop")
        for venue, url in venues.endpoints().items():
            console.print(f"  {venue}: {url}", highlight=False)
        console.print(f"  alerts webhook: {venues.webhook.url}", highlight=False)
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


class _TradingSystem:
    """Declares the scenario's orders as a trading system does: `POST /api/v1/orders` to the
    monitor's own HTTP server on loopback, which arms each order's activation watchdog."""

    def __init__(self, monitor: Monitor) -> None:
        self._monitor = monitor
        # trust_env=False: a proxy from the environment must never see loopback traffic.
        self._client = httpx.AsyncClient(timeout=INTAKE_TIMEOUT, trust_env=False)

    async def __aenter__(self) -> _TradingSystem:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def declare(self, intake: OrderIntake) -> None:
        url = f"http://{self._monitor.config.server.host}:{self._monitor.http_port}{ORDERS_PATH}"
        body = {"venue": intake.venue, "order_id": intake.order_id, "placed_at": intake.placed_at, "desk": intake.desk}
        try:
            answer = await self._client.post(url, json=body)
            answer.raise_for_status()
        except httpx.HTTPError as exc:
            # The story must go on on a loaded machine: hand the order to the monitor directly.
            log.warning("order intake over HTTP failed (%s); declaring order %s directly", exc, intake.order_id)
            await self._monitor.declare_order(intake)


async def _finish(runner: asyncio.Task[None]) -> int:
    with contextlib.suppress(asyncio.CancelledError):
        await runner
    return 0
