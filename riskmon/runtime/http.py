"""The monitor's HTTP server: /metrics and /healthz, served by uvicorn on a loopback socket.

The runtime owns signals (Ctrl-C, SIGTERM), so uvicorn's own signal capture is switched off.
"""

from __future__ import annotations

import json

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from riskmon.asgi_server import AsgiApp, AsgiServer, Receive, Scope, Send, respond


def build_app(registry: CollectorRegistry) -> AsgiApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if scope["method"] not in ("GET", "HEAD"):
            await respond(send, 405, b"method not allowed\n", "text/plain")
        elif path == "/metrics":
            await respond(send, 200, generate_latest(registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            await respond(send, 200, json.dumps({"status": "ok"}).encode(), "application/json")
        else:
            await respond(send, 404, b"not found\n", "text/plain")

    return app


class HttpServer(AsgiServer):
    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        super().__init__(build_app(registry), host, port)
