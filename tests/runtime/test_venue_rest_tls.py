"""Every venue's REST client shares one TLS context: httpx builds one per client otherwise, loading
the CA bundle each time (tens of milliseconds on a restart's path for every REST venue)."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import pytest

from riskmon.asgi_server import AsgiServer, Receive, Scope, Send, respond
from riskmon.tls import default_ssl_context
from riskmon.venues.rest import VenueRest

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def venue(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await respond(send, 200, scope["path"].encode(), "text/plain")


async def test_two_venue_clients_build_one_tls_context_between_them(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[ssl.SSLContext] = []
    real: Callable[..., ssl.SSLContext] = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(ssl, "create_default_context", counting)
    default_ssl_context.cache_clear()  # as in a fresh process
    server = AsgiServer(venue, "127.0.0.1", 0)
    await server.start()
    prophetx = VenueRest(f"http://127.0.0.1:{server.port}/partner", 5.0)
    totalis = VenueRest(f"http://127.0.0.1:{server.port}/api", 5.0, {"X-API-Key": "k"})
    try:
        assert await prophetx.call("GET", "/orders") == "/partner/orders"
        assert await totalis.call("GET", "/mm/quotes") == "/api/mm/quotes"
    finally:
        await prophetx.aclose()
        await totalis.aclose()
        await server.stop()
    assert len(built) == 1
    assert default_ssl_context() is built[0]
    assert built[0].verify_mode is ssl.CERT_REQUIRED
    assert built[0].check_hostname
