"""REST half of the Totalis RFQ simulator: quote reads, confirm/withdraw and the MM heartbeat.

Routes (header ``X-API-Key``; protocols.md §4.1, §4.3, §4.4):
- ``GET /mm/quotes[?status=<status>]`` -> ``{"data":{"quotes":[<row>...]}}`` ([I] row shape, see
  ``SimQuote.rest_row``).
- ``POST /mm/quotes/{id}/confirm`` -> ``{"data":{"status":"confirmed","quote_id","execution_id"}}``;
  404 unknown, 403 another MM's quote, 409 not in ``accepted`` status / past its deadline /
  insufficient balance.
- ``POST /mm/quotes/{id}/withdraw`` -> ``{"data":{"status":"withdrawn","quote_id"}}`` ([I] shape);
  same errors.
- ``POST /v1/mm/heartbeat`` -> ``{"data":{"status":"ok","mm_id","ttl_ms":60000}}``.
Every error uses the §4.4 envelope ``{"error":{"code","message"}}``.
"""

from __future__ import annotations

import hmac
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from riskmon.asgi_server import Receive, Scope, Send, read_body, respond
from riskmon.venues.sim_base_asgi import RestFault
from riskmon.venues.totalis.sim_frames import QUOTE_STATUSES, SimQuote, dumps

__all__ = ["RestApi", "RestCall"]

_HEARTBEAT_TTL_MS = 60_000
_FAULT_CODES = {429: "rate_limited", 500: "internal_error", 502: "bad_gateway", 503: "service_unavailable"}
_QUOTE_PREFIX = "/mm/quotes/"


@dataclass(frozen=True)
class RestCall:
    """One REST request as the simulator answered it, for assertions."""

    method: str
    path: str
    query: str
    status: int


class _Reply(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str) -> tuple[int, bytes]:
    return status, dumps({"error": {"code": code, "message": message}}).encode()


class RestApi:
    """State and routing of the REST endpoints; the simulator owns the quotes and the WebSocket."""

    def __init__(
        self,
        api_key: str,
        mm_id: str,
        quotes: dict[str, SimQuote],
        foreign_quotes: dict[str, str],
        clock: Callable[[], float],
        on_confirm: Callable[[SimQuote, str | None], Awaitable[dict[str, Any]]],
        on_withdraw: Callable[[SimQuote], Awaitable[dict[str, Any]]],
        history: int,
    ) -> None:
        self._api_key = api_key.encode()
        self._mm_id = mm_id
        self._quotes = quotes
        self._foreign = foreign_quotes
        self._clock = clock
        self._on_confirm = on_confirm
        self._on_withdraw = on_withdraw
        self.calls: deque[RestCall] = deque(maxlen=history)
        self.heartbeats = 0
        self.last_heartbeat_at: float | None = None
        self.insufficient_balance = False
        self._fault = RestFault()

    def reset(self) -> None:
        self.calls.clear()
        self.heartbeats = 0
        self.last_heartbeat_at = None
        self.insufficient_balance = False
        self.heal()

    def fail(self, status: int, times: int | None) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"fault status must be an HTTP error, got {status}")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for until heal)")
        self._fault.fail(status, times)

    def heal(self) -> None:
        self._fault.heal()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        # Drain the body (none of the routes takes one) so keep-alive connections stay usable.
        await read_body(receive)
        status, body, headers = self._injected_failure(path)
        if not status:
            status, body = await self._route(method, path, query, scope)
        self.calls.append(RestCall(method, path, query, status))
        await respond(send, status, body, "application/json", headers)

    def _injected_failure(self, path: str) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        status = self._fault.take(path)
        if status is None:
            return 0, b"", []
        code = _FAULT_CODES.get(status, "error")
        _, body = _error(status, code, f"simulated fault {status}")
        retry = [(b"retry-after", b"1")] if status in (429, 503) else []
        return status, body, retry

    async def _route(self, method: str, path: str, query: str, scope: Scope) -> tuple[int, bytes]:
        supplied = next((v for k, v in scope["headers"] if k.lower() == b"x-api-key"), b"")
        if not hmac.compare_digest(supplied, self._api_key):
            return _error(401, "unauthorized", "missing or invalid API key")
        try:
            if path == "/mm/quotes":
                self._require(method, "GET")
                return 200, self._list_quotes(query)
            if path == "/v1/mm/heartbeat":
                self._require(method, "POST")
                self.heartbeats += 1
                self.last_heartbeat_at = self._clock()
                return 200, dumps(
                    {"data": {"status": "ok", "mm_id": self._mm_id, "ttl_ms": _HEARTBEAT_TTL_MS}}
                ).encode()
            if path.startswith(_QUOTE_PREFIX):
                quote_id, _, action = path[len(_QUOTE_PREFIX) :].partition("/")
                if action in ("confirm", "withdraw") and quote_id:
                    self._require(method, "POST")
                    return 200, await self._quote_action(urllib.parse.unquote(quote_id), action)
            raise _Reply(404, "not_found", f"no route for {path}")
        except _Reply as reply:
            return _error(reply.status, reply.code, reply.message)

    @staticmethod
    def _require(method: str, allowed: str) -> None:
        if method != allowed:
            raise _Reply(405, "method_not_allowed", f"use {allowed}")

    def _list_quotes(self, query: str) -> bytes:
        wanted = urllib.parse.parse_qs(query).get("status")
        if wanted and not set(wanted) <= QUOTE_STATUSES:
            raise _Reply(400, "invalid_request", f"unknown status filter {wanted}")
        rows = [q.rest_row() for q in self._quotes.values() if not wanted or q.status in wanted]
        return dumps({"data": {"quotes": rows}}).encode()

    async def _quote_action(self, quote_id: str, action: str) -> bytes:
        if quote_id in self._foreign:
            raise _Reply(403, "forbidden", "quote belongs to another market maker")
        quote = self._quotes.get(quote_id)
        if quote is None:
            raise _Reply(404, "not_found", f"quote {quote_id} not found")
        if quote.status != "accepted":
            raise _Reply(409, "invalid_status", f"quote is {quote.status}, not accepted")
        if action == "withdraw":
            await self._on_withdraw(quote)
            return dumps({"data": {"status": "withdrawn", "quote_id": quote_id}}).encode()
        if self._clock() > quote.confirmation_deadline:
            # The venue unwinds a missed deadline itself; the test scripts that with withdraw()/expire().
            raise _Reply(409, "deadline_passed", "confirmation deadline has passed")
        if self.insufficient_balance:
            raise _Reply(409, "insufficient_balance", "pending risk exceeds free USDC")
        data = await self._on_confirm(quote, None)
        return dumps(
            {"data": {"status": "confirmed", "quote_id": quote_id, "execution_id": data["execution_id"]}}
        ).encode()
