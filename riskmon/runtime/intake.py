"""The order intake endpoint: `POST /api/v1/orders`.

The trading system declares each order it places, so the activation watchdog arms before the venue
says anything about it. The endpoint authorizes (a bearer token, when one is configured), reads a
bounded body, decodes it with a typed msgspec decoder, validates it against the configured venues and
desks and hands one `OrderIntake` to the sink (the engine's inbound queue), then answers 202.

`parse_order` and `authorize` are pure, so the rules can be tested without a server. No input makes
the endpoint raise: every failure is an HTTP answer, and the token never appears in an answer, a log
line or an exception.
"""

from __future__ import annotations

import asyncio
import logging
import math
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec

from riskmon.asgi_server import Receive, Scope, Send, respond
from riskmon.config.types import Secret
from riskmon.events import OrderIntake
from riskmon.runtime.api_common import (
    Answer,
    BodyRejected,
    BodyTooLarge,
    ClientGone,
    decode_body,
    read_request_body,
    refuse_unauthorized,
    shown,
    too_large,
)

log = logging.getLogger(__name__)

ORDERS_PATH = "/api/v1/orders"
ALLOWED_METHODS = "POST"
MAX_BODY_BYTES = 64 * 1024
MAX_ORDER_ID_CHARS = 200
# placed_at is unix seconds. A value past this (the year 5138) is a timestamp in milliseconds or
# microseconds: accepted, it would arm a deadline that never comes and the watchdog would stay silent.
MAX_PLACED_AT = 1e11
# How long a request waits for room on the engine's inbound queue before it is refused with 503.
SINK_TIMEOUT = 5.0

IntakeSink = Callable[[OrderIntake], Awaitable[None]]

_JSON = "application/json"
_SHOWN_NAMES = 10  # configured names listed in an error message, at most
# Control (Cc), format (Cf: bidi overrides, zero-width) and surrogate (Cs) characters.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})


@dataclass(frozen=True, kw_only=True)
class OrderIntakePolicy:
    """What the endpoint accepts.

    `venues`: venues whose orders have an activation watchdog. `untracked_venues`: venues that are
    configured but have none (their orders are refused with a message that says so, not "unknown").
    `desks`: configured desk names. `token`: the bearer token required for writes, when set.
    """

    venues: frozenset[str]
    desks: frozenset[str]
    token: Secret | None
    untracked_venues: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        both = self.venues & self.untracked_venues
        if both:
            raise ValueError(f"venues both tracked and untracked: {_names(both)}")
        if self.token is not None and not self.token.reveal():
            raise ValueError("the intake token must not be empty")


class IntakeRejected(Exception):
    """A request the endpoint refuses; `message` says why and is safe to send to the client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Request(msgspec.Struct, forbid_unknown_fields=True):
    venue: str
    order_id: str
    placed_at: float | None = None
    desk: str | None = None


_DECODER = msgspec.json.Decoder(_Request)


def parse_order(body: bytes, policy: OrderIntakePolicy) -> OrderIntake:
    """The order a request body declares; IntakeRejected (and nothing else) when it is not acceptable."""
    try:
        request = decode_body(_DECODER, body, "order")
    except BodyRejected as exc:
        raise IntakeRejected(str(exc)) from None
    _check_venue(request.venue, policy)
    _check_order_id(request.order_id)
    if request.placed_at is not None:
        _check_placed_at(request.placed_at)
    if request.desk is not None and request.desk not in policy.desks:
        known = f"configured desks: {_names(policy.desks)}" if policy.desks else "no desks are configured"
        raise IntakeRejected(f"unknown desk {shown(request.desk)} ({known})")
    return OrderIntake(request.venue, request.order_id, placed_at=request.placed_at, desk=request.desk)


def _check_venue(venue: str, policy: OrderIntakePolicy) -> None:
    if not venue:
        raise IntakeRejected("venue must be a non-empty string")
    if venue in policy.venues:
        return
    tracked = f"venues that take order intake: {_names(policy.venues)}" if policy.venues else "no venue takes it"
    if venue in policy.untracked_venues:
        raise IntakeRejected(
            f"venue {shown(venue)} has no activation watchdog, so it takes no order intake ({tracked})"
        )
    raise IntakeRejected(f"unknown venue {shown(venue)} ({tracked})")


def _check_order_id(order_id: str) -> None:
    if not 1 <= len(order_id) <= MAX_ORDER_ID_CHARS:
        raise IntakeRejected(f"order_id must be 1 to {MAX_ORDER_ID_CHARS} characters, got {len(order_id)}")
    for position, char in enumerate(order_id):
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            raise IntakeRejected(f"order_id has a control character (U+{ord(char):04X}) at position {position}")


def _check_placed_at(placed_at: float) -> None:
    if not math.isfinite(placed_at) or placed_at <= 0:
        raise IntakeRejected("placed_at must be a finite number of unix seconds > 0")
    if placed_at >= MAX_PLACED_AT:
        raise IntakeRejected(f"placed_at must be unix seconds; {placed_at:g} looks like milliseconds")


class OrderIntakeEndpoint:
    """The ASGI handler for ORDERS_PATH."""

    def __init__(self, sink: IntakeSink, policy: OrderIntakePolicy, *, sink_timeout: float = SINK_TIMEOUT) -> None:
        self._sink = sink
        self._policy = policy
        self._sink_timeout = sink_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            status, payload, headers = await self._handle(scope, receive)
        except ClientGone:
            return  # the client left before sending its whole body: nothing was accepted
        except Exception:
            # A bug, not the client's fault. The traceback holds no header values, so no token.
            log.exception("order intake failed")
            status, payload, headers = 500, {"error": "internal error"}, []
        await respond(send, status, msgspec.json.encode(payload), _JSON, headers)

    async def _handle(self, scope: Scope, receive: Receive) -> Answer:
        if scope["method"] != "POST":
            return 405, {"error": f"method {scope['method']} not allowed; use POST"}, [(b"allow", b"POST")]
        refused = refuse_unauthorized(scope, self._policy.token, log, "order intake")
        if refused is not None:
            return refused
        try:
            body = await read_request_body(scope, receive, MAX_BODY_BYTES)
        except BodyTooLarge:
            return too_large(MAX_BODY_BYTES)
        try:
            order = parse_order(body, self._policy)
        except IntakeRejected as exc:
            log.debug("order intake: rejected: %r", exc.message)
            return 400, {"error": exc.message}, []
        try:
            async with asyncio.timeout(self._sink_timeout):
                await self._sink(order)
        except TimeoutError:
            log.warning("order intake: the engine queue stayed full; refused %r order %r", order.venue, order.order_id)
            return 503, {"error": "the monitor is busy; retry"}, [(b"retry-after", b"1")]
        except Exception:
            log.exception("order intake: could not hand %r order %r to the engine", order.venue, order.order_id)
            return 503, {"error": "order intake is unavailable; retry"}, [(b"retry-after", b"1")]
        log.debug("order intake: accepted %r order %r", order.venue, order.order_id)
        return 202, {"accepted": True, "venue": order.venue, "order_id": order.order_id}, []


def _names(names: frozenset[str]) -> str:
    shown = sorted(names)[:_SHOWN_NAMES]
    more = f" and {len(names) - len(shown)} more" if len(names) > len(shown) else ""
    return ", ".join(shown) + more
