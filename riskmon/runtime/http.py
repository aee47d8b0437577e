"""The monitor's HTTP server: /metrics, /healthz and, when the runtime wires a sink, the order
intake (`POST /api/v1/orders`, see riskmon.runtime.intake), served by uvicorn on a loopback socket.

The runtime owns signals (Ctrl-C, SIGTERM), so uvicorn's own signal capture is switched off.
"""

from __future__ import annotations

import json

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from riskmon.asgi_server import AsgiApp, AsgiServer, Receive, Scope, Send, respond
from riskmon.runtime.intake import ORDERS_PATH, IntakeSink, OrderIntakeEndpoint, OrderIntakePolicy

_READ_METHODS = ("GET", "HEAD")


def build_app(registry: CollectorRegistry, orders: AsgiApp | None = None) -> AsgiApp:
    """The router. `orders` serves ORDERS_PATH; without it that path is not found."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == ORDERS_PATH and orders is not None:
            await orders(scope, receive, send)
        elif path not in ("/metrics", "/healthz"):
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
    ) -> None:
        orders: AsgiApp | None = None
        if intake is not None:
            if intake_policy is None:
                raise ValueError("an order intake sink needs an intake_policy (venues, desks, token)")
            orders = OrderIntakeEndpoint(intake, intake_policy)
        super().__init__(build_app(registry, orders), host, port)
