"""The monitor's HTTP server: /metrics, /healthz and the endpoints the runtime mounts (the
order intake `POST /api/v1/orders`, silences, `POST /-/reload`), served by uvicorn on a loopback socket.

The runtime owns signals (Ctrl-C, SIGTERM), so uvicorn's own signal capture is switched off.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from riskmon.asgi_server import AsgiApp, AsgiServer, Receive, Scope, Send, respond
from riskmon.runtime.intake import ORDERS_PATH, IntakeSink, OrderIntakeEndpoint, OrderIntakePolicy

_READ_METHODS = ("GET", "HEAD")


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
            await respond(send, 200, generate_latest(registry), CONTENT_TYPE_LATEST)
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
