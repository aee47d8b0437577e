"""The read-only state endpoints: readiness, exposure and active alerts, as JSON.

    GET /readyz                                        200 ready | 503 not ready, per-venue and delivery reasons
    GET /api/v1/exposure[?desk=D][&venue=V]            200; 404 unknown desk or venue
    GET /api/v1/alerts[?state=pending|firing][&filter=MATCHER]...   200; 400 bad state or matcher

Reads need no token, like /metrics (the server binds to loopback by default). HEAD is answered like
GET; any other method gets 405 with `Allow`. An unknown or repeated query parameter is a 400, so a
typo (`?dsk=`) never silently returns everything. The bodies are built by the pure views
(riskmon.runtime.readiness, riskmon.runtime.state_views) between two engine steps: the engine
runs in the same event loop and never awaits mid-step, so a response is always one consistent state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from urllib.parse import parse_qs

import msgspec

from riskmon.alerts.matchers import parse_matchers
from riskmon.asgi_server import AsgiApp, Receive, Scope, Send, respond
from riskmon.clock import Clock
from riskmon.engine.engine import Engine
from riskmon.notify.notifier import Notifier
from riskmon.runtime.api_common import Answer, bounded, shown
from riskmon.runtime.delivery_process import DeliveryState
from riskmon.runtime.readiness import delivery_assumed_up, readiness, readiness_json
from riskmon.runtime.state_views import ALERT_STATES, UnknownName, alerts_view, exposure_view

log = logging.getLogger(__name__)

READYZ_PATH = "/readyz"
EXPOSURE_PATH = "/api/v1/exposure"
ALERTS_PATH = "/api/v1/alerts"

_JSON = "application/json"
_ALLOW = "GET, HEAD"
_MAX_FILTERS = 32

Query = Mapping[str, list[str]]


class ReadEndpoint:
    """A GET/HEAD JSON endpoint: `answer` turns the query (known parameters only) into a response."""

    def __init__(self, name: str, params: Collection[str], answer: Callable[[Query], Answer]) -> None:
        self._name = name
        self._params = frozenset(params)
        self._answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            status, payload, headers = self._handle(scope)
        except Exception:
            log.exception("%s endpoint failed", self._name)
            status, payload, headers = 500, {"error": "internal error"}, []
        await respond(send, status, msgspec.json.encode(payload), _JSON, headers)

    def _handle(self, scope: Scope) -> Answer:
        method: str = scope["method"]
        if method not in ("GET", "HEAD"):
            return 405, {"error": f"method {shown(method)} not allowed; use {_ALLOW}"}, [(b"allow", _ALLOW.encode())]
        raw = scope.get("query_string", b"").decode("latin-1")
        query = parse_qs(raw, encoding="utf-8", errors="replace")
        unknown = sorted(set(query) - self._params)
        if unknown:
            allowed = ", ".join(sorted(self._params)) or "none"
            return 400, {"error": bounded(f"unknown query parameter {shown(unknown[0])}; allowed: {allowed}")}, []
        return self._answer(query)


def _single(query: Query, name: str) -> str | None:
    values = query.get(name, [])
    if len(values) > 1:
        raise ValueError(f"give {name} at most once")
    return values[0] if values else None


def readiness_endpoint(
    engine: Engine, unavailable: Collection[str], delivery_state: Callable[[], DeliveryState] = delivery_assumed_up
) -> ReadEndpoint:
    def answer(query: Query) -> Answer:
        verdict = readiness(engine, unavailable, delivery_state())
        return (200 if verdict.ready else 503), readiness_json(verdict), []

    return ReadEndpoint("readyz", (), answer)


def exposure_endpoint(engine: Engine, clock: Clock) -> ReadEndpoint:
    def answer(query: Query) -> Answer:
        try:
            desk, venue = _single(query, "desk"), _single(query, "venue")
        except ValueError as exc:
            return 400, {"error": str(exc)}, []
        try:
            return 200, exposure_view(engine, clock.now(), desk=desk, venue=venue), []
        except UnknownName as exc:
            return 404, {"error": bounded(str(exc))}, []

    return ReadEndpoint("exposure", ("desk", "venue"), answer)


def alerts_endpoint(engine: Engine, notifier: Notifier, clock: Clock) -> ReadEndpoint:
    def answer(query: Query) -> Answer:
        try:
            state = _single(query, "state")
        except ValueError as exc:
            return 400, {"error": str(exc)}, []
        if state is not None and state not in ALERT_STATES:
            return 400, {"error": f"state must be one of {', '.join(ALERT_STATES)}"}, []
        filters = query.get("filter", [])
        if len(filters) > _MAX_FILTERS:
            return 400, {"error": f"at most {_MAX_FILTERS} filter matchers"}, []
        try:
            matchers = parse_matchers(filters)
        except ValueError as exc:
            return 400, {"error": bounded(f"filter: {exc}")}, []
        chosen = next((s for s in ALERT_STATES if s == state), None)
        return 200, alerts_view(engine, notifier, clock.now(), state=chosen, matchers=matchers), []

    return ReadEndpoint("alerts", ("state", "filter"), answer)


def state_mounts(
    engine: Engine,
    notifier: Notifier,
    unavailable: Collection[str],
    clock: Clock,
    delivery_state: Callable[[], DeliveryState] = delivery_assumed_up,
) -> dict[str, AsgiApp]:
    """The paths this module serves, for HttpServer's `mounts`."""
    return {
        READYZ_PATH: readiness_endpoint(engine, unavailable, delivery_state),
        EXPOSURE_PATH: exposure_endpoint(engine, clock),
        ALERTS_PATH: alerts_endpoint(engine, notifier, clock),
    }
