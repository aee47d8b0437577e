"""REST side of the ProphetX simulator (protocols.md §3.1, §3.4): login/refresh, connection-config,
the channel register calls (v4 and legacy), order look-ups and market books.

Every response body is JSON wrapped in ``data`` (errors are ``{"error": "<code>"}``).
[I] connection-config is wrapped in ``data`` too, like every other response.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qs

from riskmon.asgi_server import Receive, Scope, Send, read_body, respond
from riskmon.venues.prophetx.sim_frames import (
    BROADCAST_CHANNEL,
    dumps,
    event_channel,
    make_token,
    private_channel,
    sign,
    subtype_channel,
)
from riskmon.venues.prophetx.sim_pusher import AppConfig, PusherHub
from riskmon.venues.prophetx.sim_state import MarketBook, WagerBook
from riskmon.venues.sim_base_asgi import RestFault

__all__ = ["REFRESH_TTL", "RestApi"]

logger = logging.getLogger(__name__)

REFRESH_TTL = 3 * 24 * 3600.0  # §3.1: refresh tokens last about three days
_ORDER_PATHS = ("/partner/mm/get_order/", "/partner/mm/get_wager/", "/partner/v4/mm/get_order/")
_SUB_TYPES = ("tournament", "event", "event_subtype")
_NUMERIC_ID = re.compile(r"^[0-9]{1,19}$")
_SUBTYPE_ID = re.compile(r"^([0-9]{1,19}):([A-Za-z0-9_.-]{1,64})$")


class _HttpError(Exception):
    def __init__(self, status: int, code: str) -> None:
        super().__init__(code)
        self.status = status
        self.code = code


class RestApi:
    def __init__(
        self,
        *,
        hub: PusherHub,
        app: AppConfig,
        wagers: WagerBook,
        markets: MarketBook,
        account_id: str,
        access_key: str,
        secret_key: str,
        token_ttl: float,
        channel_limit: int,
        clock: Callable[[], float],
        ws_host: Callable[[], str],
    ) -> None:
        self._hub = hub
        self._app = app
        self._wagers = wagers
        self._markets = markets
        self._account_id = account_id
        self._credentials = (access_key, secret_key)
        self._token_ttl = token_ttl
        self._channel_limit = channel_limit
        self._clock = clock
        self._ws_host = ws_host
        self._access: dict[str, float] = {}  # token -> expiry (unix s, per clock)
        self._refresh: dict[str, float] = {}
        self._token_serial = 0
        self._fault = RestFault()
        self.rest_calls: list[tuple[str, str]] = []

    @property
    def user_data(self) -> str:
        return dumps({"id": self._account_id})

    # ---- faults ----------------------------------------------------------------------

    def fail(self, status: int, times: int | None, paths: str | Sequence[str] | None) -> None:
        self._fault.fail(status, times, paths)

    def heal(self) -> None:
        self._fault.heal()

    def revoke_tokens(self) -> None:
        self._access.clear()
        self._refresh.clear()

    # ---- ASGI ------------------------------------------------------------------------

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        self.rest_calls.append((method, path))
        body = await read_body(receive)
        failed = self._fault.take(path)
        if failed is not None:
            code = "rate_limit_reached" if failed == 429 else f"simulated_{failed}"
            status, obj = failed, {"error": code}
        else:
            try:
                status, obj = 200, self._route(method, path, scope, body)
            except _HttpError as exc:
                status, obj = exc.status, {"error": exc.code}
        await respond(send, status, dumps(obj).encode(), "application/json")

    def _route(self, method: str, path: str, scope: Scope, body: bytes | None) -> dict[str, Any]:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = parse_qs(scope["query_string"].decode("latin-1"))
        if body is None:
            raise _HttpError(413, "payload_too_large")
        if method == "POST" and path == "/partner/auth/login":
            req = _json_body(body)
            if (req.get("access_key"), req.get("secret_key")) != self._credentials:
                raise _HttpError(401, "unauthorized")
            return {"data": self._issue_tokens()}
        if method == "POST" and path == "/partner/auth/refresh":
            token = _json_body(body).get("refresh_token")
            if not isinstance(token, str) or self._clock() >= self._refresh.get(token, 0.0):
                raise _HttpError(401, "unauthorized")
            return {"data": self._issue_tokens()}
        self._check_bearer(headers)
        if method == "GET" and path == "/partner/websocket/connection-config":
            return {"data": self.connection_config()}
        if method == "POST" and path == "/partner/v4/mm/websocket":
            req = _json_body(body)
            if req.get("service", "pusher") != "pusher":
                raise _HttpError(400, "unknown_service")
            return self._register(req.get("socket_id"), req.get("subscriptions", []))
        if method == "POST" and path == "/partner/mm/pusher":
            return self._register(_form_or_json(body).get("socket_id"), _header_subscriptions(headers))
        if method == "GET" and path.startswith(_ORDER_PATHS):
            wager = self._wagers.find(path.rsplit("/", 1)[1])
            if wager is None:
                raise _HttpError(404, "order_not_found")
            return {"data": wager.info()}
        if method == "GET" and path in ("/partner/mm/get_markets", "/partner/v4/mm/get_markets"):
            event_id = _int_param(query, "event_id")
            return {"data": {"markets": self._markets.rest_markets(event_id)}}
        if method == "GET" and path in ("/partner/mm/get_multiple_markets", "/partner/v4/mm/get_multiple_markets"):
            raw = query.get("event_ids", [""])[0]
            ids = [part.strip() for part in raw.split(",") if part.strip()]
            if not ids or not all(_NUMERIC_ID.match(i) for i in ids):
                raise _HttpError(400, "malformed_id")
            return {"data": {i: self._markets.rest_markets(int(i)) for i in ids}}
        raise _HttpError(404, "not_found")

    # ---- auth ------------------------------------------------------------------------

    def _issue_tokens(self) -> dict[str, Any]:
        now = self._clock()
        self._token_serial += 1
        access_exp, refresh_exp = now + self._token_ttl, now + REFRESH_TTL
        claims = {"sub": self._account_id, "iat": int(now), "jti": self._token_serial}
        access = make_token(self._credentials[1], {**claims, "exp": int(access_exp), "typ": "access"})
        refresh = make_token(self._credentials[1], {**claims, "exp": int(refresh_exp), "typ": "refresh"})
        self._access[access] = access_exp
        self._refresh[refresh] = refresh_exp
        return {
            "access_token": access,
            "refresh_token": refresh,
            "access_expire_time": int(access_exp),
            "refresh_expire_time": int(refresh_exp),
        }

    def _check_bearer(self, headers: dict[str, str]) -> None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or self._clock() >= self._access.get(token.strip(), 0.0):
            raise _HttpError(401, "unauthorized")

    def connection_config(self) -> dict[str, Any]:
        return {
            "app_id": self._app.app_id,
            "key": self._app.key,
            "cluster": self._app.cluster,
            "ws_host": self._ws_host(),
            "service": "pusher",
        }

    # ---- register --------------------------------------------------------------------

    def _register(self, socket_id: object, subscriptions: object) -> dict[str, Any]:
        sock = self._hub.socket(socket_id) if isinstance(socket_id, str) else None
        if sock is None:
            raise _HttpError(400, "invalid_socket_id")
        echo, tournaments, events, subtypes = _parse_subscriptions(subscriptions)
        key, secret, sid = self._app.key, self._app.secret, sock.socket_id

        def grant(name: str, bindings: list[tuple[str, str]], scope: dict[str, Any] | None = None) -> dict[str, Any]:
            entry: dict[str, Any] = {
                "channel_name": name,
                "auth": sign(key, secret, f"{sid}:{name}"),
                "binding_events": [{"name": n, "type": t} for n, t in bindings],
            }
            if scope is not None:
                entry["scope"] = scope
            return entry

        private = private_channel(self._account_id)
        channels = [
            grant(
                BROADCAST_CHANNEL, [*((f"tournament_{t}", "tournament") for t in tournaments), ("general", "general")]
            ),
            grant(private, [("wagers", "wagers"), ("health_check", "private_system_signal")]),
            *(grant(event_channel(e), [("market_selections", "market_selections")], {"event_id": e}) for e in events),
            *(
                # [I] per-prop channels carry the sub_type in their scope as well
                grant(
                    subtype_channel(e, st),
                    [("market_selections", "market_selections")],
                    {"event_id": e, "sub_type": st},
                )
                for e, st in subtypes
            ),
        ]
        names = [c["channel_name"] for c in channels]
        if len(sock.ever_registered | set(names)) > self._channel_limit:
            raise _HttpError(400, "exceed_subscription_count")
        self._hub.authorize(sock, names)
        user_data = self.user_data
        return {
            "auth": channels[1]["auth"],  # [I] top-level auth: the private channel's signature
            "data": {
                "success": True,
                "status": "CONNECTED",
                "updated_at": int(self._clock()),
                "subscriptions": echo,
                "authorized_channel": channels,
                "channel_count": len(channels),
                "channel_limit": self._channel_limit,
                "authenticated": {"auth": sign(key, secret, f"{sid}::user::{user_data}"), "user_data": user_data},
            },
        }


def _parse_subscriptions(
    subscriptions: object,
) -> tuple[list[dict[str, Any]], list[str], list[int], list[tuple[int, str]]]:
    if not isinstance(subscriptions, list):
        raise _HttpError(400, "malformed_subscriptions")
    echo: list[dict[str, Any]] = []
    tournaments: dict[str, None] = {}  # dicts keep first-seen order and drop duplicates
    events: dict[int, None] = {}
    subtypes: dict[tuple[int, str], None] = {}
    for sub in subscriptions:
        if not isinstance(sub, dict) or not isinstance(sub.get("ids", []), list):
            raise _HttpError(400, "malformed_subscriptions")
        kind = sub.get("type")
        if kind not in _SUB_TYPES:
            raise _HttpError(400, "unknown_type")
        ids = [str(i) for i in sub.get("ids", [])]
        if any("*" in i for i in ids):
            raise _HttpError(400, "wildcard_not_allowed")
        for i in ids:
            if kind == "event_subtype":
                m = _SUBTYPE_ID.match(i)
                if m is None:
                    raise _HttpError(400, "malformed_id")
                subtypes[(int(m.group(1)), m.group(2))] = None
            elif _NUMERIC_ID.match(i) is None:
                raise _HttpError(400, "malformed_id")
            elif kind == "tournament":
                tournaments[i] = None
            else:
                events[int(i)] = None
        echo.append({"type": kind, "ids": ids})
    return echo, list(tournaments), list(events), list(subtypes)


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(body or b"{}")
    except ValueError:
        raise _HttpError(400, "bad_request") from None
    if not isinstance(obj, dict):
        raise _HttpError(400, "bad_request")
    return obj


def _form_or_json(body: bytes) -> dict[str, Any]:
    # The legacy register call is sent as a form or as JSON (§3.1).
    try:
        return _json_body(body)
    except _HttpError:
        form = parse_qs(body.decode("latin-1"))
        return {k: v[0] for k, v in form.items()}


def _header_subscriptions(headers: dict[str, str]) -> object:
    raw = headers.get("header-subscriptions")
    if raw is None:
        return []
    try:
        return json.loads(raw)
    except ValueError:
        raise _HttpError(400, "malformed_subscriptions") from None


def _int_param(query: dict[str, list[str]], name: str) -> int:
    raw = query.get(name, [""])[0]
    if _NUMERIC_ID.match(raw) is None:
        raise _HttpError(400, "malformed_id")
    return int(raw)
