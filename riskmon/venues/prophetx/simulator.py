"""Loopback simulator of the ProphetX market-maker API: REST plus the Pusher WebSocket
(protocols.md §3), both on one loopback port.

Written from protocols.md only, never from the adapter, so the two check each other.

Public API (``ProphetXSimulator``): ``start``/``stop`` (idempotent; sockets closed with 1001);
``rest_url`` (``http://127.0.0.1:PORT/partner``), ``ws_host``, ``ws_url`` (``/app/<key>?protocol=7``).
REST: auth login/refresh, ``websocket/connection-config``, register (``v4/mm/websocket``, legacy
``mm/pusher``), ``mm/get_order/{id}`` (+ ``mm/get_wager``, ``v4/mm/get_order``), ``mm/get_markets``,
``mm/get_multiple_markets``. Trading: ``place_order`` (``inactive``, REST only), ``activate``,
``reject``, ``match``, ``cancel``, ``settle``, ``set_status``. Books: ``push_market_selections``,
``set_rest_book_only``, ``push_matched_bet``, ``push_broadcast``. Keepalive: ``emit_health_check``
(also every ``health_check_interval`` s), ``server_ping``. ``wait_for_*`` helpers synchronise
callers. Faults: ``fail_rest``/``heal_rest``, ``revoke_tokens``, ``change_connection_config``,
``stop_health_check``/``resume_health_check``, ``drop_next_activation``, ``repeat_last_update``,
``send_stale_update``, ``disconnect_all``, ``send_malformed``.

Shapes fixed here where protocols.md is silent ([I]): every REST body, connection-config
included, is wrapped in ``data``; errors are ``{"error": "<code>"}``; the register response's
top-level ``auth`` is the private channel's signature; per-prop channels carry
``scope: {"event_id", "sub_type"}``; wager frames use ``op: "u"``, matched_bet ``op: "c"``,
market_selections ``op: "u"``; ``matched_odds`` is 0 before the first fill; an ``invalid``
wager carries ``reason``; ``market_selections`` ``info.id`` is the market id; register echoes
subscription ids as strings;
``disconnect_all`` closes with 4200 (Pusher "reconnect immediately").

Fidelity gaps, accepted on purpose:
- tokens are JWT-shaped but opaque; the old access token stays valid after a refresh, and
  refresh tokens may be reused until they expire.
- no order placement over REST (``place_wager``/``submit_order``), no balance, tournaments or
  ladder endpoints, no rate limit (429 only through ``fail_rest``).
- Pusher fan-out is per channel: a socket on the broadcast channel gets every tournament's
  events, whatever tournaments it registered (clients bind by event name, as Pusher does).
- uvicorn answers WebSocket-level pings; Pusher's ``activity_timeout`` is announced but the
  server never drops an idle socket. No presence channels, client events or ``pusher:unsubscribe`` reply.
- the v4/Talaria ``orders`` event is not emitted; wagers use the legacy ``wagers`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from riskmon.venues.prophetx.sim_frames import (
    BROADCAST_CHANNEL,
    HEALTH_PAYLOAD_B64,
    MalformedKind,
    broadcast_frame,
    envelope,
    event_channel,
    event_frame,
    malformed_frame,
    private_channel,
    pusher_frame,
    selection_level,
)
from riskmon.venues.prophetx.sim_pusher import AppConfig, PusherHub
from riskmon.venues.prophetx.sim_rest import RestApi
from riskmon.venues.prophetx.sim_state import MarketBook, Wager, WagerBook
from riskmon.venues.sim_base_asgi import AsgiSimServer

__all__ = ["MalformedKind", "ProphetXSimulator", "selection_level"]

logger = logging.getLogger(__name__)


class ProphetXSimulator(AsgiSimServer):
    """REST and Pusher WebSocket of ProphetX on one loopback port (uvicorn via AsgiServer)."""

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        *,
        account_id: str = "acct-1",
        app_key: str = "sim-key",
        app_secret: str = "sim-secret",  # noqa: S107 - a loopback simulator's well-known default
        health_check_interval: float | None = 5.0,
        token_ttl: float = 1200.0,
        clock: Callable[[], float] = time.time,
        channel_limit: int = 400,
    ) -> None:
        if health_check_interval is not None and health_check_interval <= 0:
            raise ValueError("health_check_interval must be positive or None")
        self._account_id = account_id
        self._clock = clock
        self._health_interval = health_check_interval
        self._app = AppConfig(app_id="sim", key=app_key, secret=app_secret, cluster="sim1")
        self._config_generation = 1
        self._hub = PusherHub(self._app)
        self._wagers = WagerBook(account_id)
        self._markets = MarketBook()
        self._rest = RestApi(
            hub=self._hub,
            app=self._app,
            wagers=self._wagers,
            markets=self._markets,
            account_id=account_id,
            access_key=access_key,
            secret_key=secret_key,
            token_ttl=token_ttl,
            channel_limit=channel_limit,
            clock=clock,
            ws_host=lambda: self.ws_host,
        )
        super().__init__(name="prophetx", http=self._rest.handle, websocket=self._hub.handle, rest_path="/partner")
        self._health_task: asyncio.Task[None] | None = None
        self._health_stopped = False
        self._health_ticks = 0
        self._drop_activations = 0

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        await super().start()
        if self._health_interval is not None:
            self._health_task = asyncio.create_task(self._health_loop(self._health_interval))

    async def stop(self) -> None:
        task, self._health_task = self._health_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await super().stop()

    def _accept_sockets(self, accepting: bool) -> None:
        self._hub.set_accepting(accepting)

    async def _close_sockets(self) -> None:
        await self._hub.close_all(1001, "going away")

    @property
    def ws_url(self) -> str:
        return f"{self.ws_host}/app/{self._app.key}?protocol=7"

    @property
    def app_key(self) -> str:
        return self._app.key

    @property
    def cluster(self) -> str:
        return self._app.cluster

    @property
    def private_channel(self) -> str:
        return private_channel(self._account_id)

    @property
    def rest_calls(self) -> list[tuple[str, str]]:
        return self._rest.rest_calls

    @property
    def pongs(self) -> list[str]:
        """Socket ids, one per ``pusher:pong`` received."""
        return self._hub.pongs

    @property
    def connection_count(self) -> int:
        return len(self._hub.sockets)

    def socket_ids(self) -> list[str]:
        return [s.socket_id for s in self._hub.sockets]

    def subscribed_channels(self, socket_id: str) -> set[str]:
        sock = self._hub.socket(socket_id)
        return set(sock.subscribed) if sock is not None else set()

    # ---- synchronisation for tests and the demo ------------------------------------------
    # The timeout parameters are part of the simulator's agreed test API.

    async def wait_for_connections(self, n: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Return once at least ``n`` sockets are connected; TimeoutError otherwise."""
        await self._hub.waiters.wait_for(lambda: len(self._hub.sockets) >= n, timeout)

    async def wait_for_subscribed(self, n: int, channel: str | None = None, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """At least ``n`` sockets on ``channel`` (or ``n`` subscriptions in all when None)."""
        await self._hub.waiters.wait_for(lambda: self._hub.subscriber_count(channel) >= n, timeout)

    async def wait_for_signed_in(self, n: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        await self._hub.waiters.wait_for(lambda: sum(s.user_data is not None for s in self._hub.sockets) >= n, timeout)

    @property
    def health_ticks(self) -> int:
        """Background health-check loop iterations, sent or suppressed."""
        return self._health_ticks

    async def wait_for_health_ticks(self, n: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        await self._hub.waiters.wait_for(lambda: self._health_ticks >= n, timeout)

    async def wait_for_pongs(self, n: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        await self._hub.waiters.wait_for(lambda: len(self._hub.pongs) >= n, timeout)

    # ---- trading -------------------------------------------------------------------------

    def place_order(
        self,
        *,
        event_id: int,
        market_id: int,
        outcome_id: int,
        odds: int,
        stake: float,
        external_id: str | None = None,
        order_id: str | None = None,
    ) -> str:
        """Create an ``inactive`` wager, visible on REST only; returns its id."""
        level = self._markets.find_level(event_id, market_id, outcome_id)
        wager = self._wagers.place(
            event_id=event_id,
            market_id=market_id,
            outcome_id=outcome_id,
            odds=odds,
            stake=stake,
            line=float(level["line"]) if level is not None else 0.0,
            line_id=str(level["line_id"]) if level is not None else None,
            external_id=external_id,
            order_id=order_id,
        )
        return wager.id

    def order_info(self, order_id: str) -> dict[str, Any]:
        """The wager as REST ``get_order`` shows it now."""
        return self._wagers.get(order_id).info()

    async def activate(self, order_id: str) -> None:
        wager = self._wagers.activate(order_id)
        if self._drop_activations > 0:
            self._drop_activations -= 1
            self._publish_wager(wager, send=False)
        else:
            self._publish_wager(wager)

    async def reject(self, order_id: str, reason: str = "insufficient_balance") -> None:
        self._publish_wager(self._wagers.reject(order_id, reason))

    async def match(self, order_id: str, stake: float, odds: int | None = None) -> None:
        self._publish_wager(self._wagers.match(order_id, stake, odds))

    async def cancel(self, order_id: str) -> None:
        """Cancel the unmatched rest: ``canceled``, or ``open`` + ``fully_matched`` after a partial fill."""
        self._publish_wager(self._wagers.cancel(order_id))

    async def settle(self, order_id: str, winning_status: str, *, status: str = "settled") -> None:
        self._publish_wager(self._wagers.set_status(order_id, status, winning_status))

    async def set_status(self, order_id: str, status: str, *, winning_status: str | None = None) -> None:
        """Any §3.3 status (void, wiped, closed, ...) as a ``status`` update."""
        self._publish_wager(self._wagers.set_status(order_id, status, winning_status))

    def _publish_wager(self, wager: Wager, *, send: bool = True) -> None:
        frame = event_frame("wagers", self.private_channel, self._now_ns(), "wager", "u", {"info": wager.history[-1]})
        wager.last_frame = frame
        if send:
            self._hub.publish(self.private_channel, frame)

    # ---- broadcast -----------------------------------------------------------------------

    async def push_market_selections(
        self,
        event_id: int,
        market_id: int,
        selections: list[list[dict[str, Any]]],
        *,
        sequence_number: int,
        name: str | None = None,
        market_type: str | None = None,
        line: float | None = None,
    ) -> int:
        """Send a book on the event's channel and make REST agree; returns sockets reached."""
        meta = (name, market_type, line)
        info = self._markets.update(event_id, market_id, selections, sequence_number, meta, rest_only=False)
        payload = {"sport_event_id": event_id, "market_id": market_id, "info": info}
        channel = event_channel(event_id)
        frame = event_frame("market_selections", channel, self._now_ns(), "market_selections", "u", payload)
        return self._hub.publish(channel, frame)

    def set_rest_book_only(
        self,
        event_id: int,
        market_id: int,
        selections: list[list[dict[str, Any]]],
        *,
        sequence_number: int | None = None,
        name: str | None = None,
        market_type: str | None = None,
        line: float | None = None,
    ) -> None:
        """Book drift: REST ``get_markets`` shows ``selections``, the stream never says so."""
        meta = (name, market_type, line)
        self._markets.update(event_id, market_id, selections, sequence_number, meta, rest_only=True)

    async def push_matched_bet(self, tournament_id: int | str, info: dict[str, Any]) -> int:
        frame = broadcast_frame(f"tournament_{tournament_id}", self._now_ns(), "matched_bet", "c", {"info": info})
        return self._hub.publish(BROADCAST_CHANNEL, frame)

    async def push_broadcast(self, event: str, change_type: str, op: str, payload: dict[str, Any]) -> int:
        """Any other broadcast change (tournament, sport_event, market, market_line)."""
        frame = broadcast_frame(event, self._now_ns(), change_type, op, payload)
        return self._hub.publish(BROADCAST_CHANNEL, frame)

    # ---- keepalive ---------------------------------------------------------------------

    async def emit_health_check(self) -> int:
        """One health_check on the private channel (unless stopped); returns sockets reached."""
        if self._health_stopped:
            return 0
        data = envelope(self._now_ns(), "private_system_signal", "u", HEALTH_PAYLOAD_B64)
        return self._hub.publish(self.private_channel, pusher_frame("health_check", data, self.private_channel))

    async def server_ping(self) -> int:
        """``pusher:ping`` to every socket; answers land in ``pongs``."""
        return self._hub.send_all(pusher_frame("pusher:ping", "{}"))

    async def _health_loop(self, interval: float) -> None:
        while True:  # cancelled by stop()
            await asyncio.sleep(interval)
            await self.emit_health_check()
            self._health_ticks += 1
            self._hub.waiters.notify()

    # ---- faults --------------------------------------------------------------------------

    def fail_rest(
        self, status: int = 503, *, times: int | None = None, paths: str | Sequence[str] | None = None
    ) -> None:
        """Answer REST calls (whose path starts with one of ``paths``) with ``status``,
        ``times`` times or until ``heal_rest()``."""
        self._rest.fail(status, times, paths)

    def heal_rest(self) -> None:
        self._rest.heal()

    def revoke_tokens(self) -> None:
        """Invalidate every access and refresh token: the next call gets 401."""
        self._rest.revoke_tokens()

    def change_connection_config(self, key: str | None = None, cluster: str | None = None) -> None:
        """Rotate the Pusher key/cluster; only ``/app/<new key>`` accepts new sockets from now on."""
        self._config_generation += 1
        self._app.key = key if key is not None else f"sim-key-{self._config_generation}"
        self._app.cluster = cluster if cluster is not None else f"sim{self._config_generation}"

    def stop_health_check(self) -> None:
        self._health_stopped = True

    def resume_health_check(self) -> None:
        self._health_stopped = False

    def drop_next_activation(self) -> None:
        """The next ``activate()`` changes REST state but sends no WS message."""
        self._drop_activations += 1

    async def repeat_last_update(self, order_id: str) -> None:
        """Re-send the wager's last frame byte for byte (a duplicate)."""
        frame = self._wagers.get(order_id).last_frame
        if frame is None:
            raise ValueError(f"order {order_id!r} has sent no update yet")
        self._hub.publish(self.private_channel, frame)

    async def send_stale_update(self, order_id: str) -> None:
        """Send the wager's previous version (older ``sequence_number``) as a fresh frame."""
        info = self._wagers.stale_info(order_id)
        frame = event_frame("wagers", self.private_channel, self._now_ns(), "wager", "u", {"info": info})
        self._hub.publish(self.private_channel, frame)

    async def disconnect_all(self, code: int = 4200, reason: str = "reconnect") -> None:
        """Close every socket; returns once their handlers have cleaned up."""
        await self._hub.close_all(code, reason)

    async def send_malformed(self, kind: MalformedKind) -> int:
        """A ``wagers`` frame broken at one encoding layer, to private-channel subscribers."""
        return self._hub.publish(self.private_channel, malformed_frame(kind, self.private_channel, self._now_ns()))

    # ---- internals -----------------------------------------------------------------------

    def _now_ns(self) -> int:
        return int(self._clock() * 1_000_000_000)
