"""The silences endpoint: list, create and expire silences over HTTP.

    GET    /api/v1/silences[?state=active|pending|expired]   200, JSON list
    GET    /api/v1/silences/{id}                            200, JSON silence; 404 unknown
    POST   /api/v1/silences                                 201, JSON silence; 400 refused; 413 too large
    DELETE /api/v1/silences/{id}                            200, JSON silence (expired); 404 unknown

Writes need the bearer token when one is configured (401 otherwise); reads do not, like the rest of
the read API. A POST body is `{"matchers": [...], "starts_at"?: T, "ends_at": T | "duration": "2h",
"created_by": "...", "comment": "..."}` where T is RFC3339 or unix seconds. The endpoint resolves times
with the runtime's clock and hands the request to `SilenceApi`, which persists it and re-evaluates
muting. No input makes the endpoint raise, and the token never appears in an answer or a log line.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from urllib.parse import parse_qs

import msgspec

from riskmon.alerts.silences import SILENCE_STATES, Silence, SilenceError, SilenceState, UnknownSilence
from riskmon.asgi_server import Receive, Scope, Send, respond
from riskmon.clock import Clock, SystemClock
from riskmon.config.types import Duration, Secret
from riskmon.notify.webhook import rfc3339
from riskmon.runtime.api_common import (
    Answer,
    BodyRejected,
    BodyTooLarge,
    ClientGone,
    bounded,
    decode_body,
    read_request_body,
    refuse_unauthorized,
    shown,
    too_large,
)

log = logging.getLogger(__name__)

SILENCES_PATH = "/api/v1/silences"
MAX_BODY_BYTES = 64 * 1024
MAX_ID_CHARS = 100
# Unix seconds past this (the year 5138) are milliseconds: a silence ending then would never end.
MAX_UNIX_SECONDS = 1e11

_JSON = "application/json"
_STATES: dict[str, SilenceState] = {state: state for state in SILENCE_STATES}
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


class SilenceApi(Protocol):
    """What the runtime provides: it stamps `now`, persists (SilenceStore) and re-evaluates muting.

    `add` and `expire` raise SilenceError (UnknownSilence for an unknown id) with a message for the client.
    """

    async def add(
        self, matchers: Sequence[str], *, starts_at: float | None, ends_at: float, created_by: str, comment: str
    ) -> Silence: ...

    async def expire(self, silence_id: str) -> Silence: ...

    def get(self, silence_id: str) -> Silence | None: ...

    def list(self, state: SilenceState | None) -> list[Silence]: ...


class _NewSilence(msgspec.Struct, forbid_unknown_fields=True):
    matchers: list[str]
    created_by: str
    comment: str
    starts_at: str | float | None = None
    ends_at: str | float | None = None
    duration: str | float | None = None


_DECODER = msgspec.json.Decoder(_NewSilence)


def parse_time(name: str, value: str | float) -> float:
    """Unix seconds from RFC3339 text or a number of unix seconds; SilenceError when it is neither."""
    if isinstance(value, str):
        if not _RFC3339.fullmatch(value):
            raise SilenceError(f"{name} must be RFC3339 (2024-05-01T12:00:00Z) or unix seconds")
        try:
            return datetime.fromisoformat(value.upper()).timestamp()
        except ValueError as exc:
            raise SilenceError(f"{name}: {exc}") from None
    if not math.isfinite(value) or value <= 0:
        raise SilenceError(f"{name} must be a finite number of unix seconds > 0")
    if value >= MAX_UNIX_SECONDS:
        raise SilenceError(f"{name} must be unix seconds; {value:g} looks like milliseconds")
    return float(value)


@dataclass(frozen=True, slots=True)
class NewSilence:
    """A POST body with its times resolved to unix seconds."""

    matchers: list[str]
    starts_at: float | None
    ends_at: float
    created_by: str
    comment: str


def parse_new_silence(body: bytes, now: float) -> NewSilence:
    """The silence a POST body asks for; SilenceError when it is malformed."""
    try:
        request = decode_body(_DECODER, body, "silence")
    except BodyRejected as exc:
        raise SilenceError(str(exc)) from None
    starts_at = None if request.starts_at is None else parse_time("starts_at", request.starts_at)
    if (request.ends_at is None) == (request.duration is None):
        raise SilenceError("give exactly one of ends_at and duration")
    if request.ends_at is not None:
        ends_at = parse_time("ends_at", request.ends_at)
    else:
        try:
            duration = Duration.parse(request.duration)
        except ValueError as exc:
            raise SilenceError(f"duration: {exc}") from None
        if duration <= 0:
            raise SilenceError("duration must be more than zero")
        ends_at = max(starts_at or now, now) + duration
    return NewSilence(request.matchers, starts_at, ends_at, request.created_by, request.comment)


def silence_json(silence: Silence, now: float) -> dict[str, object]:
    return {
        "id": silence.id,
        "matchers": list(silence.matchers),
        "starts_at": rfc3339(silence.starts_at),
        "ends_at": rfc3339(silence.ends_at),
        "created_by": silence.created_by,
        "comment": silence.comment,
        "created_at": rfc3339(silence.created_at),
        "updated_at": rfc3339(silence.updated_at),
        "state": silence.state(now),
    }


class SilenceEndpoint:
    """The ASGI handler for SILENCES_PATH and the paths under it."""

    def __init__(self, registry: SilenceApi, token: Secret | None, *, clock: Clock | None = None) -> None:
        if token is not None and not token.reveal():
            raise ValueError("the API token must not be empty")
        self._registry = registry
        self._token = token
        self._clock: Clock = clock or SystemClock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            status, payload, headers = await self._handle(scope, receive)
        except ClientGone:
            return
        except Exception:
            # A bug, not the client's fault. The traceback holds no header values, so no token.
            log.exception("silences endpoint failed")
            status, payload, headers = 500, {"error": "internal error"}, []
        await respond(send, status, msgspec.json.encode(payload), _JSON, headers)

    async def _handle(self, scope: Scope, receive: Receive) -> Answer:
        path: str = scope["path"].rstrip("/")
        method: str = scope["method"]
        if path == SILENCES_PATH:
            if method in ("GET", "HEAD"):
                return self._list(scope)
            if method == "POST":
                return await self._write(scope, receive, None)
            return _not_allowed(method, "GET, HEAD, POST")
        silence_id = path.removeprefix(SILENCES_PATH + "/")
        if silence_id == path or "/" in silence_id or not 0 < len(silence_id) <= MAX_ID_CHARS:
            return 404, {"error": "not found"}, []
        if method in ("GET", "HEAD"):
            silence = self._registry.get(silence_id)
            if silence is None:
                return 404, {"error": f"no silence with id {shown(silence_id)}"}, []
            return 200, silence_json(silence, self._clock.now()), []
        if method == "DELETE":
            return await self._write(scope, receive, silence_id)
        return _not_allowed(method, "GET, HEAD, DELETE")

    def _list(self, scope: Scope) -> Answer:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        states = query.get("state", [])
        if len(states) > 1 or (states and states[0] not in SILENCE_STATES):
            return 400, {"error": f"state must be one of {', '.join(SILENCE_STATES)}"}, []
        state = _STATES[states[0]] if states else None
        now = self._clock.now()
        return 200, [silence_json(s, now) for s in self._registry.list(state)], []

    async def _write(self, scope: Scope, receive: Receive, expire_id: str | None) -> Answer:
        refused = refuse_unauthorized(scope, self._token, log, "silences")
        if refused is not None:
            return refused
        try:
            if expire_id is not None:
                silence = await self._registry.expire(expire_id)
                log.info("silences: expired %s", silence.id)
                return 200, silence_json(silence, self._clock.now()), []
            body = await read_request_body(scope, receive, MAX_BODY_BYTES)
            request = parse_new_silence(body, self._clock.now())
            silence = await self._registry.add(
                request.matchers,
                starts_at=request.starts_at,
                ends_at=request.ends_at,
                created_by=request.created_by,
                comment=request.comment,
            )
        except BodyTooLarge:
            return too_large(MAX_BODY_BYTES)
        except UnknownSilence as exc:
            return 404, {"error": bounded(str(exc))}, []
        except SilenceError as exc:
            log.debug("silences: refused: %r", str(exc))
            return 400, {"error": bounded(str(exc))}, []
        log.info("silences: %s created %s for %s", silence.created_by, silence.id, ",".join(silence.matchers))
        return 201, silence_json(silence, self._clock.now()), []


def _not_allowed(method: str, allow: str) -> Answer:
    return 405, {"error": f"method {shown(method)} not allowed; use {allow}"}, [(b"allow", allow.encode())]
