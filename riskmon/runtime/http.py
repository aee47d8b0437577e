"""The monitor's HTTP server: /metrics, /healthz and the endpoints the runtime mounts (the
order intake `POST /api/v1/orders`, silences, `POST /-/reload`, and the read-only state API of
riskmon.runtime.state_api: /readyz, /api/v1/exposure, /api/v1/alerts), served by uvicorn on a
loopback socket.

/healthz says only that the process serves (200 while it answers at all); /readyz says whether
every venue is connected and reconciled. Unknown paths are 404; a wrong method is 405 with Allow.

The runtime owns signals (Ctrl-C, SIGTERM), so uvicorn's own signal capture is switched off.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import Metric

from riskmon.asgi_server import AsgiApp, AsgiServer, Receive, Scope, Send, respond
from riskmon.runtime.intake import ORDERS_PATH, IntakeSink, OrderIntakeEndpoint, OrderIntakePolicy

_READ_METHODS = ("GET", "HEAD")


class _Collected:
    """Metric families already read from the engine, for formatting away from the event loop."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


async def exposition(registry: CollectorRegistry) -> bytes:
    """The /metrics body. Reading state must happen on the loop (the engine's one writer runs
    there); turning thousands of series into text does not, so it runs in a thread and the
    engine pauses only for the read."""
    families = list(registry.collect())
    return await asyncio.to_thread(generate_latest, _Collected(families))


def build_app(registry: CollectorRegistry, mounts: Mapping[str, AsgiApp] | None = None) -> AsgiApp:
    """The router. `mounts` maps a path to the app serving it; a key ending in `/` takes the subtree."""
    mounted = sorted((mounts or {}).items(), key=lambda item: len(item[0]), reverse=True)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        for prefix, handler in mounted:
            if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
                await handler(scope, receive, send)
                return
        if path not in ("/metrics", "/healthz"):
            await respond(send, 404, b"not found\n", "text/plain")
        elif scope["method"] not in _READ_METHODS:
            await respond(send, 405, b"method not allowed\n", "text/plain", [(b"allow", b"GET, HEAD")])
        elif path == "/metrics":
            await respond(send, 200, await exposition(registry), CONTENT_TYPE_LATEST)
        else:
            await respond(send, 200, json.dumps({"status": "ok"}).encode(), "application/json")

    return app


class HttpServer(AsgiServer):
    def __init__(
        self,
        registry: CollectorRegistry,
        host: str,
        port: int,
        *,
        intake: IntakeSink | None = None,
        intake_policy: OrderIntakePolicy | None = None,
        mounts: Mapping[str, AsgiApp] | None = None,
    ) -> None:
        routes = dict(mounts or {})
        if intake is not None:
            if intake_policy is None:
                raise ValueError("an order intake sink needs an intake_policy (venues, desks, token)")
            routes[ORDERS_PATH] = OrderIntakeEndpoint(intake, intake_policy)
        super().__init__(build_app(registry, routes), host, port)
