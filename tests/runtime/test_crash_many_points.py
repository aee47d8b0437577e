"""SIGKILL a real `riskmon run` at many points of a scripted session and restart it each time: the
final exposure and the notifications (once duplicates are dropped by idempotency key) equal those
of a run without kills, and every notification reached the receiver at least once.

Mango, ProphetX and Totalis simulators run in the test process on loopback; riskmon is a
subprocess with its state file in tmp_path. The script: fills cross a limit and come back, a lost
ProphetX activation times out, an RFQ quote is confirmed and another misses its deadline until the
venue withdraws it, a fork revokes a fill. Kills fall at seeded points: right after the breaching
fill, while the receiver holds a delivery open, and at seeded step boundaries and mid-steps. Every
wait is on a milestone (a position in GET /api/v1/exposure, a notification received, /readyz).

Idempotency keys carry wall-clock episode times, so they differ between the two runs: the runs are
compared on (status, alertname, labels) after each dropped its own duplicates by key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from riskmon.asgi_server import AsgiServer, Receive, Scope, Send, read_body, respond
from riskmon.notify.webhook import IDEMPOTENCY_HEADER
from riskmon.venues.mango_v3.simulator import MangoV3FillsSimulator
from riskmon.venues.prophetx.simulator import ProphetXSimulator
from riskmon.venues.totalis.simulator import TotalisRfqSimulator
from tests.runtime.mango_desk import DESK, SOL, trade
from tests.runtime.process_support import WAIT, free_port, hook_alerting, poll, ready, sol_at, start_riskmon, stop

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

SEED = 7
TOKEN = "crash-T0ken-0123456789"
PX_ACCESS, PX_SECRET, PX_ACCOUNT = "AKcrashAccess01", "SKcrashSecret10", "acct-crash"
TOT_KEY, TOT_MM = "totalis-crash-key", "did:privy:mm-crash"
LEGS = [
    {"venue": "kalshi", "market_ticker": "KXBTC-26JUN01-T72500", "side": "yes"},
    {"venue": "polymarket", "market_ticker": "0x" + "ab" * 32, "side": "no"},
]

CONFIG = """
state:
  path: {state}
server:
  port: {port}
  token: {token}
alerts:
  event_resolve_after: 1s
venues:
  mango:
    kind: mango_v3_fills
    urls: ["{mango}"]
    reconnect: {{initial: 10ms, max: 50ms}}
  px:
    kind: prophetx
    rest_url: {px}
    access_key: {px_access}
    secret_key: {px_secret}
    activation_timeout: 1s
    health_check_gap: 60s
    rest_timeout: 2s
    feed_down_grace: 10s
    reconnect: {{initial: 10ms, max: 50ms}}
  tot:
    kind: totalis_rfq
    ws_url: {tot_ws}
    rest_url: {tot_rest}
    api_key: {tot_key}
    rest_timeout: 2s
    feed_down_grace: 10s
    reconnect: {{initial: 10ms, max: 50ms}}
desks:
  sol-desk:
    accounts: {{mango: [{desk}]}}
    limits:
      max_net_notional_usd: [{{market: SOL-PERP, max_usd: 2500}}]
      warn_at: 1
      clear_at: 0.9
  bets:
    accounts: {{px: [{px_account}]}}
  rfq-desk:
    accounts: {{tot: ["{tot_mm}"]}}
"""


# --- the receiver ---------------------------------------------------------------------------------


@dataclass
class Received:
    key: str
    status: str
    alertname: str
    labels: tuple[tuple[str, str], ...]


@dataclass
class Receiver:
    """Records every request (idempotency key, body) as it arrives; can hold one open until released."""

    requests: list[Received] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    hold: Callable[[Received], bool] | None = None
    holding: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = json.loads(await read_body(receive) or b"{}")
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        [alert] = body["alerts"]  # group_by "...": one alert per notification
        labels = tuple(sorted(alert["labels"].items()))
        got = Received(headers[IDEMPOTENCY_HEADER.lower()], body["status"], alert["labels"]["alertname"], labels)
        self.requests.append(got)
        self.changed.set()
        if self.hold is not None and self.hold(got):
            self.hold = None
            self.holding.set()
            await self.release.wait()
            await respond(send, 503, b"gone", "text/plain")
            return
        await respond(send, 200, b"ok", "text/plain")

    def deduped(self) -> Counter[tuple[str, str, tuple[tuple[str, str], ...]]]:
        first = {r.key: r for r in self.requests}
        return Counter((r.status, r.alertname, r.labels) for r in first.values())

    def count(self, alertname: str, status: str) -> int:
        return sum(1 for s, name, _ in self.deduped().elements() if (s, name) == (status, alertname))

    async def wait_for(self, alertname: str, status: str, n: int = 1) -> None:
        async with asyncio.timeout(WAIT):
            while self.count(alertname, status) < n:
                self.changed.clear()
                await self.changed.wait()


# --- riskmon in a subprocess ----------------------------------------------------------------------


class Riskmon:
    def __init__(self, config: Path, port: int) -> None:
        self._config = config
        self.port = port
        self.process: asyncio.subprocess.Process | None = None
        self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2.0)
        self.kills = 0

    async def start(self) -> None:
        self.process = await start_riskmon(self._config, stderr=asyncio.subprocess.DEVNULL)
        await self.poll(lambda: ready(self.client))

    async def poll(self, condition: Callable[[], Awaitable[bool]]) -> None:
        assert self.process is not None
        await poll(self.process, condition)

    async def exposure(self) -> dict[str, Any]:
        answer: dict[str, Any] = (await self.client.get("/api/v1/exposure")).json()
        return answer

    async def kill_and_restart(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        assert self.process.returncode == -signal.SIGKILL
        self.kills += 1
        await self.start()

    async def stop(self) -> None:
        if self.process is not None:
            await stop(self.process)
        await self.client.aclose()


# --- one run of the script ------------------------------------------------------------------------


@dataclass
class Run:
    exposure: dict[str, Any]
    notifications: Counter[tuple[str, str, tuple[tuple[str, str], ...]]]
    receiver: Receiver
    kills: int


def stable(value: Any) -> Any:
    """The exposure answer without the times it was generated or marked at."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if not k.startswith("generated_at")}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


async def play(tmp: Path, kill_points: set[str]) -> Run:
    mango = MangoV3FillsSimulator([SOL])
    prophetx = ProphetXSimulator(PX_ACCESS, PX_SECRET, account_id=PX_ACCOUNT, health_check_interval=None)
    totalis = TotalisRfqSimulator(TOT_KEY, mm_id=TOT_MM)
    receiver = Receiver()
    hook = AsgiServer(receiver, "127.0.0.1", 0)
    async with contextlib.AsyncExitStack() as stack:
        for server in (mango, prophetx, totalis, hook):
            await server.start()
            stack.push_async_callback(server.stop)
        port = free_port()
        config = tmp / "monitor.yaml"
        config.write_text(
            CONFIG.format(
                state=tmp / "state.db",
                port=port,
                token=TOKEN,
                mango=mango.url,
                px=prophetx.rest_url,
                px_access=PX_ACCESS,
                px_secret=PX_SECRET,
                tot_ws=totalis.ws_url,
                tot_rest=totalis.rest_url,
                tot_key=TOT_KEY,
                desk=DESK,
                px_account=PX_ACCOUNT,
                tot_mm=TOT_MM,
            )
            + hook_alerting(hook)
        )
        riskmon = Riskmon(config, port)
        stack.push_async_callback(riskmon.stop)
        await riskmon.start()

        async def point(name: str) -> None:
            if name in kill_points:
                await riskmon.kill_and_restart()

        async def position(expected: str) -> None:
            await riskmon.poll(lambda: sol_at(riskmon.client, Decimal(expected)))

        # 1. Fills up to 10 SOL ($1,500 of a $2,500 limit), then 10 more: breached.
        await mango.push_fill(SOL.name, trade(1_000))
        await point("first-fill:pushed")
        await position("10")
        await point("first-fill:applied")
        await mango.push_fill(SOL.name, trade(1_000))
        await point("breach:pushed")
        await position("20")
        await receiver.wait_for("ExposureLimitBreach", "firing")
        await point("breach:notified")

        # 2. A lost ProphetX activation: the watchdog times out, asks REST, warns activated late.
        order = prophetx.place_order(event_id=10078829, market_id=219, outcome_id=4, odds=-110, stake=220.0)
        prophetx.drop_next_activation()
        declared = await riskmon.client.post(
            "/api/v1/orders",
            json={"venue": "px", "order_id": order, "desk": "bets"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert declared.status_code < 300, declared.text
        await prophetx.activate(order)
        await receiver.wait_for("OrderActivationTimeout", "firing")
        await point("activation:notified")

        # 3. Back under the limit; the receiver holds the resolution open (a kill during delivery).
        if "breach-resolved:delivering" in kill_points:
            receiver.hold = lambda r: (r.alertname, r.status) == ("ExposureLimitBreach", "resolved")
        await mango.push_fill(SOL.name, trade(-800))
        if "breach-resolved:delivering" in kill_points:
            async with asyncio.timeout(WAIT):
                await receiver.holding.wait()
            await riskmon.kill_and_restart()
            receiver.release.set()
        await position("12")
        await receiver.wait_for("ExposureLimitBreach", "resolved")
        await point("breach-resolved:notified")

        # 4. An RFQ quote accepted and confirmed; another that misses its deadline, then withdrawn.
        deadline = time.time() + 30
        await totalis.accept_quote(
            quote_id="q-1", rfq_id="rfq-1", user_cost=25, payout_odds=4.0, legs=LEGS, confirmation_deadline=deadline
        )
        await totalis.confirm("q-1")
        await point("quote:confirmed")
        await totalis.accept_quote(
            quote_id="q-2",
            rfq_id="rfq-2",
            user_cost=60,
            payout_odds=2.5,
            legs=LEGS,
            confirmation_deadline=time.time() + 1.0,
        )
        await point("quote:accepted")
        await receiver.wait_for("RfqConfirmationMissed", "firing")
        await point("quote:missed")
        await totalis.withdraw("q-2")
        await receiver.wait_for("RfqConfirmationMissed", "resolved")

        # 5. A fork: a fill of 1 SOL comes and is revoked.
        await mango.push_fill(SOL.name, trade(100))
        await position("13")
        await point("fork:filled")
        await mango.rollback(SOL.name, 1)
        await point("fork:revoked")
        await position("12")
        await receiver.wait_for("FillRevoked", "firing")

        # Every alert that fired has resolved (event alerts after 1 s) and nothing is left to send.
        for name in ("ExposureLimitBreach", "OrderActivationTimeout", "RfqConfirmationMissed", "FillRevoked"):
            await receiver.wait_for(name, "resolved")
        exposure = stable(await riskmon.exposure())
        return Run(exposure, receiver.deduped(), receiver, riskmon.kills)


POINTS = [
    "first-fill:pushed",
    "first-fill:applied",
    "breach:notified",
    "activation:notified",
    "quote:confirmed",
    "quote:accepted",
    "quote:missed",
    "fork:filled",
    "fork:revoked",
]


async def test_sigkill_at_many_points_ends_as_a_run_without_kills(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    kill_points = {"breach:pushed", "breach-resolved:delivering", *rng.sample(POINTS, 7)}
    (tmp_path / "reference").mkdir()
    (tmp_path / "killed").mkdir()
    reference = await play(tmp_path / "reference", set())
    killed = await play(tmp_path / "killed", kill_points)

    assert killed.kills == len(kill_points) >= 8
    assert killed.exposure == reference.exposure
    assert killed.notifications == reference.notifications
    names = {(status, name) for status, name, _ in reference.notifications}
    assert names == {
        (status, name)
        for status in ("firing", "resolved")
        for name in ("ExposureLimitBreach", "OrderActivationTimeout", "RfqConfirmationMissed", "FillRevoked")
    }
    # The held delivery was retried after the restart: its key arrived more than once, and every
    # key the killed run produced was received (the counter above is built from received requests).
    held = [r for r in killed.receiver.requests if (r.alertname, r.status) == ("ExposureLimitBreach", "resolved")]
    assert len(held) >= 2
    assert len({r.key for r in held}) == 1
