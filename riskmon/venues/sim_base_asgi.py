"""What the REST + websocket venue simulators (ProphetX, Totalis) share: one uvicorn server on a
loopback port serving both, its lifecycle and addresses, and the REST fault mode.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence

from riskmon.asgi_server import AsgiApp, AsgiServer, Receive, Scope, Send

logger = logging.getLogger(__name__)

_HOST = "127.0.0.1"


class AsgiSimServer:
    """REST (`http`) and websocket (`websocket`) handlers on one loopback port; `rest_path` prefixes the REST url.

    Subclasses open and close their socket hub in `_accept_sockets` and `_close_sockets`.
    """

    def __init__(self, *, name: str, http: AsgiApp, websocket: AsgiApp, rest_path: str = "") -> None:
        self._name = name
        self._handlers = {"http": http, "websocket": websocket}
        self._rest_path = rest_path
        self._server: AsgiServer | None = None

    # ---- hooks -----------------------------------------------------------------------

    def _accept_sockets(self, accepting: bool) -> None:
        """Let new websocket clients in (True, at start) or turn them away (False, at stop)."""

    async def _close_sockets(self) -> None:
        """Close every open websocket (1001) at stop."""

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("simulator already started")

        # A plain coroutine function: uvicorn's interface detection takes a bound method for ASGI2.
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            handler = self._handlers.get(scope["type"])
            if handler is not None:
                await handler(scope, receive, send)

        self._accept_sockets(True)
        server = AsgiServer(app, _HOST, 0, websockets=True)
        await server.start()
        self._server = server
        logger.info("%s simulator listening on %s", self._name, self.rest_url)

    async def stop(self) -> None:
        """Close every socket with 1001 and stop serving; safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        self._accept_sockets(False)
        await self._close_sockets()
        await server.stop()

    @property
    def port(self) -> int:
        if self._server is None or self._server.port is None:
            raise RuntimeError("simulator not started")
        return self._server.port

    @property
    def rest_url(self) -> str:
        return f"http://{_HOST}:{self.port}{self._rest_path}"

    @property
    def ws_host(self) -> str:
        return f"ws://{_HOST}:{self.port}"


async def client_texts(receive: Receive) -> AsyncIterator[str]:
    """The text of every frame an accepted ASGI websocket client sends, until it disconnects;
    a binary frame is read as UTF-8, undecodable bytes replaced."""
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        yield text if text is not None else (message.get("bytes") or b"").decode("utf-8", "replace")


class RestFault:
    """The REST fault mode: answer ``status`` to the next ``times`` calls (None: until healed),
    only on paths starting with one of ``paths`` (None: every path)."""

    def __init__(self) -> None:
        self._status: int | None = None
        self._left: int | None = None
        self._paths: tuple[str, ...] | None = None

    def fail(self, status: int, times: int | None, paths: str | Sequence[str] | None = None) -> None:
        self._status, self._left = status, times
        self._paths = (paths,) if isinstance(paths, str) else tuple(paths) if paths is not None else None

    def heal(self) -> None:
        self._status = self._left = self._paths = None

    def take(self, path: str) -> int | None:
        """The status to answer this call with, or None to serve it; counts the call against ``times``."""
        status = self._status
        if status is None or (self._paths is not None and not path.startswith(self._paths)):
            return None
        if self._left is not None:
            self._left -= 1
            if self._left <= 0:
                self.heal()
        return status
