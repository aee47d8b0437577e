"""ProphetX session: the Pusher flow of protocols.md §3.1 around the pure codec.

REST login (token refreshed on a timer) → connection config → socket → `connection_established`
→ channel registration over REST with the socket id → the codec signs in and subscribes with the
auth strings the registration returned (channel names are read from it, never built). The
connection config is re-read periodically and a change (the Talaria cutover moves hosts) means
reconnect. A new socket id after any reconnect means a new registration.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import msgspec

from riskmon import __version__
from riskmon.config.schema import ProphetXVenue
from riskmon.events import Event, SubscriptionFailed
from riskmon.venues.prophetx.codec import ProphetXCodec
from riskmon.venues.rest import VenueRest
from riskmon.venues.session_failures import VenueUnavailable
from riskmon.venues.stream_session import StreamSettings, StreamTarget
from riskmon.venues.venue_session import VenueStreamSession

log = logging.getLogger(__name__)

# [I] get_multiple_markets' cap is undocumented for the MM API (the Market Data API allows 50);
# 20 ids, the MM API's batch size for wagers (§3.4), keeps every answer and URL well within it.
MARKETS_PER_CALL = 20


class _Tokens(msgspec.Struct):
    access_token: str
    refresh_token: str | None = None


class _TokenResponse(msgspec.Struct):
    data: _Tokens


class ConnectionConfig(msgspec.Struct, frozen=True):
    key: str
    cluster: str | None = None
    ws_host: str | None = None
    app_id: str | None = None
    service: str | None = None


class _WrappedConfig(msgspec.Struct):
    data: ConnectionConfig


def ws_url(config: ConnectionConfig) -> str:
    """The Pusher socket URL: Talaria's `ws_host` when given, else the hosted cluster's."""
    path = f"/app/{quote(config.key, safe='')}?protocol=7&client=riskmon&version={__version__}"
    if config.ws_host:
        host = config.ws_host.rstrip("/")
        if "://" not in host:
            host = f"wss://{host}"
        return host + path
    return f"wss://ws-{config.cluster}.pusher.com{path}"


def parse_connection_config(body: str) -> ConnectionConfig:
    # Wrapped in `data` like the other responses, or bare as the docs print it: accept both.
    try:
        return msgspec.json.decode(body, type=_WrappedConfig).data
    except msgspec.DecodeError:
        pass
    try:
        return msgspec.json.decode(body, type=ConnectionConfig)
    except msgspec.DecodeError:
        raise VenueUnavailable("connection config: unexpected response shape") from None


class ProphetXSession(VenueStreamSession[ProphetXVenue, ProphetXCodec]):
    # Up once every registered channel is subscribed: an open socket without its channels is
    # blind to the desk's orders.
    up_on_open = False

    def settings(self, config: ProphetXVenue) -> StreamSettings:
        # Pusher clients ping after `activity_timeout` of silence; pinging on that period is
        # the simple superset, and a missing pusher:pong means a dead socket.
        return replace(
            super().settings(config), ping_interval=config.activity_timeout, pong_timeout=config.pong_timeout
        )

    def setup(self) -> None:
        self._rest = VenueRest(self.config.rest_url, self.config.rest_timeout)
        self._tokens: _Tokens | None = None
        self._token_at = 0.0
        self._connection: ConnectionConfig | None = None
        self._registering = False
        self._up = False

    # Auth --------------------------------------------------------------------------------------

    async def _login(self) -> None:
        body = await self._rest.call(
            "POST",
            "/auth/login",
            json={"access_key": self.config.access_key.reveal(), "secret_key": self.config.secret_key.reveal()},
        )
        self._tokens = _decode_tokens(body, "login")
        self._token_at = time.monotonic()

    async def refresh_token(self) -> None:
        """Refresh the access token, falling back to a full login when the refresh is refused."""
        tokens = self._tokens
        if tokens is None or tokens.refresh_token is None:
            await self._login()
            return
        try:
            body = await self._rest.call("POST", "/auth/refresh", json={"refresh_token": tokens.refresh_token})
            refreshed = _decode_tokens(body, "refresh")
            if refreshed.refresh_token is None:
                refreshed.refresh_token = tokens.refresh_token
            self._tokens = refreshed
            self._token_at = time.monotonic()
        except VenueUnavailable as exc:
            log.info("%s: token refresh refused (%s); logging in again", self.venue, exc)
            await self._login()

    def _auth(self) -> dict[str, str]:
        if self._tokens is None:
            raise VenueUnavailable("not logged in")
        return {"Authorization": f"Bearer {self._tokens.access_token}"}

    async def authed_call(self, method: str, path: str, **kwargs: Any) -> str:
        """A REST call with the bearer token, logging in first when there is none.

        A token refused before its refresh was due (revoked by the venue, or expired while the
        host slept: the refresh age is monotonic time) is renewed once and the call retried;
        otherwise every reconnect would fail on it until the next scheduled refresh.
        """
        if self._tokens is None:
            await self._login()
        try:
            return await self._rest.call(method, path, headers=self._auth(), **kwargs)
        except VenueUnavailable as exc:
            if exc.status != 401:
                raise
            log.info("%s: access token refused (%s); renewing it", self.venue, exc)
        await self.refresh_token()
        return await self._rest.call(method, path, headers=self._auth(), **kwargs)

    # Session hooks -----------------------------------------------------------------------------

    async def prepare(self) -> StreamTarget:
        if self._tokens is None or time.monotonic() - self._token_at >= self.config.token_refresh:
            await self.refresh_token()
        self._connection = parse_connection_config(await self.authed_call("GET", "/websocket/connection-config"))
        return StreamTarget(ws_url(self._connection))

    async def after_frame(self, events: list[Event]) -> None:
        codec = self.venue_codec
        if not self._up and codec.channels and codec.subscribed_channels.issuperset(codec.channels):
            self._up = True
            await self.report_up()
        if codec.needs_registration and not self._registering:
            self._registering = True
            try:
                await self._register()
            finally:
                self._registering = False

    async def _register(self) -> None:
        socket_id = self.venue_codec.socket_id
        subscriptions = [{"type": s.type, "ids": list(s.ids)} for s in self.config.subscriptions]
        try:
            body = await self.authed_call(
                "POST",
                "/v4/mm/websocket",
                json={"socket_id": socket_id, "service": "pusher", "subscriptions": subscriptions},
            )
        except VenueUnavailable as exc:
            # 400 is a refused subscription set (unknown type, over channel_limit): the config must change.
            failure = SubscriptionFailed(self.venue, "channel registration", str(exc), misconfigured=exc.status == 400)
            await self.report(failure)
            self.drop_connection(f"channel registration failed ({exc})")
            return
        await self.deliver_rest("register", body)

    async def on_disconnected(self) -> None:
        self._up = False

    def background(self) -> list[Callable[[], Coroutine[Any, Any, None]]]:
        return [self._refresh_tokens, self._watch_connection_config]

    async def _refresh_tokens(self) -> None:
        while True:
            await self._heartbeat_sleep(self.config.token_refresh)
            try:
                await self.refresh_token()
            except VenueUnavailable as exc:
                log.warning("%s: token refresh failed: %s", self.venue, exc)

    async def _watch_connection_config(self) -> None:
        while True:
            await self._heartbeat_sleep(self.config.config_refresh)
            try:
                latest = parse_connection_config(await self.authed_call("GET", "/websocket/connection-config"))
            except VenueUnavailable as exc:
                log.warning("%s: connection config check failed: %s", self.venue, exc)
                continue
            if latest != self._connection:
                self.drop_connection("connection config changed")
                return

    # Reconciliation reads (used by the watchdogs) ----------------------------------------------

    async def fetch_order(self, order_id: str, *, source: str = "get_order") -> list[Event]:
        """`GET mm/get_order/{id}` through the codec, so the engine sees the venue's answer.

        `source` names the read in captures ("reconcile_order" for the activation watchdog's).
        VenueUnavailable when the venue does not answer 2xx (status 404: no such order).
        """
        body = await self.authed_call("GET", f"/mm/get_order/{quote(order_id, safe='')}")
        return await self.deliver_rest(source, body)

    async def fetch_books(self, event_ids: Sequence[str]) -> list[Event]:
        """The venue's books of these events (`mm/get_multiple_markets`), one BookSnapshot a market.

        Each answer goes through the codec as "markets", built as the stream's books are, so the
        scheduled reconciliation compares like with like. A failed call raises VenueUnavailable;
        the answers of the calls before it have been handed on already.
        """
        unique = list(dict.fromkeys(event_ids))
        events: list[Event] = []
        for start in range(0, len(unique), MARKETS_PER_CALL):
            chunk = unique[start : start + MARKETS_PER_CALL]
            body = await self.authed_call("GET", "/mm/get_multiple_markets", params={"event_ids": ",".join(chunk)})
            events.extend(await self.deliver_rest("markets", body))
        return events

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            await self._rest.aclose()


def _decode_tokens(body: str, what: str) -> _Tokens:
    try:
        return msgspec.json.decode(body, type=_TokenResponse).data
    except msgspec.DecodeError:
        raise VenueUnavailable(f"{what}: unexpected response shape") from None
