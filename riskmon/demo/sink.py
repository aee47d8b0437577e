"""The demo's alert receiver: a loopback endpoint that takes Alertmanager-v4 webhook POSTs.

Without it the demo's alerts reach only the console, and the delivery metrics (notifications by
outcome, outbox depth, delivery latency, dead letters) stay empty. It plays a short outage so the
outbox's retries show: from the first POST it answers 503 (`Retry-After: 1`) for `outage` seconds,
then refuses the first notification it had not seen before with 422, once, so a dead letter shows
too. Everything else is accepted; a retry of an accepted notification (same `Idempotency-Key`) is
acknowledged and not recorded twice, as a well-behaved receiver does.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from riskmon.asgi_server import AsgiServer, Receive, Scope, Send, read_body, respond

ALERTS_PATH = "/alerts"
# Long enough for a few retries of the first notifications, short enough to end within the scenario.
OUTAGE_SECONDS = 4.0
RETRY_AFTER_SECONDS = 1


@dataclass
class OutageScript:
    """What the receiver answers a notification at `now`: pure, so tests drive it with times."""

    outage: float = OUTAGE_SECONDS
    started_at: float | None = None
    refused: str | None = None  # the Idempotency-Key refused for good
    seen: set[str] = field(default_factory=set)

    def answer(self, key: str, now: float) -> int:
        if self.started_at is None:
            self.started_at = now
        new = key not in self.seen
        self.seen.add(key)
        if now < self.started_at + self.outage:
            return 503
        if self.refused is None and new:
            self.refused = key
            return 422
        return 422 if key == self.refused else 200


class DemoWebhookSink:
    def __init__(self, outage: float = OUTAGE_SECONDS, now: Callable[[], float] = time.monotonic) -> None:
        self.script = OutageScript(outage)
        self._now = now

        # A plain coroutine function: uvicorn would take a bound method for an ASGI2 app.
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await self._serve(scope, receive, send)

        self._server = AsgiServer(app, "127.0.0.1", 0)
        # Accepted notifications, once each, in arrival order.
        self.received: list[dict[str, Any]] = []
        self.answers: Counter[int] = Counter()
        self._accepted: set[str] = set()

    @property
    def url(self) -> str:
        if self._server.port is None:
            raise RuntimeError("the webhook sink is not started")
        return f"http://127.0.0.1:{self._server.port}{ALERTS_PATH}"

    async def start(self) -> None:
        await self._server.start()

    async def stop(self) -> None:
        await self._server.stop()

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        status, headers = self._handle(scope, await read_body(receive))
        self.answers[status] += 1
        await respond(send, status, b"", "text/plain", headers)

    def _handle(self, scope: Scope, body: bytes | None) -> tuple[int, list[tuple[bytes, bytes]]]:
        if scope["path"] != ALERTS_PATH:
            return 404, []
        if scope["method"] != "POST":
            return 405, [(b"allow", b"POST")]
        payload = _v4_payload(body)
        if payload is None:
            return 400, []
        key = dict(scope["headers"]).get(b"idempotency-key", b"").decode("latin-1")
        status = self.script.answer(key, self._now())
        if status == 503:
            return status, [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())]
        if status == 200 and key not in self._accepted:
            self._accepted.add(key)
            self.received.append(payload)
        return status, []


def _v4_payload(body: bytes | None) -> dict[str, Any] | None:
    """The body when it is an Alertmanager v4 webhook message, else None."""
    if not body:
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if not isinstance(payload, dict) or payload.get("version") != "4" or not isinstance(payload.get("alerts"), list):
        return None
    return payload
