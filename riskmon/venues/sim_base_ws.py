"""What the websocket venue simulators (Mango, Mobula, Phoenix) share: a loopback server's
lifecycle and address, the clients connected to it, waiting for them, and closing them.

A simulator subclasses `WsSimServer`, serves each connection in `_serve_client` inside
`_connected(client)` (and `_sending(client)` when it queues frames per client), and says how its
venue's websocket stack behaves in `_serve_options`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

logger = logging.getLogger(__name__)

# Keeps disconnect_all/stop quick when a client never answers the closing handshake.
_CLOSE_TIMEOUT = 2.0


@dataclass(eq=False)
class SimClient:
    conn: ServerConnection
    gone: asyncio.Event = field(default_factory=asyncio.Event)  # set once its handler has cleaned up


@dataclass(eq=False)
class QueuedClient(SimClient):
    # One ordered outbox per client (like a venue's per-peer channel): a snapshot is queued before
    # any later update, and a slow client never stalls the others.
    outbox: asyncio.Queue[str | bytes] = field(default_factory=asyncio.Queue)


ClientT = TypeVar("ClientT", bound=SimClient)


class WsSimServer(Generic[ClientT]):
    """A real websocket server on loopback; `name` goes in the log, `path` ends the url."""

    def __init__(self, *, name: str, host: str, port: int = 0, path: str = "") -> None:
        self._name = name
        self._host = host
        self._port = port
        self._path = path
        self._server: Server | None = None
        self._tls = False
        self._clients: set[ClientT] = set()
        self._changed = asyncio.Condition()

    # ---- hooks -----------------------------------------------------------------------

    async def _serve_client(self, conn: ServerConnection) -> None:
        raise NotImplementedError

    def _serve_options(self) -> dict[str, Any]:
        """More `websockets.serve` options (handshake hooks, keepalive); default: no transport pings."""
        return {"ping_interval": None}

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self, tls: ssl.SSLContext | None = None) -> None:
        """Listen; with `tls` (a server context holding the certificate) clients connect over wss://."""
        if self._server is not None:
            raise RuntimeError("simulator already started")
        self._server = await serve(
            self._serve_client,
            self._host,
            self._port,
            compression=None,  # venues negotiate none, and it costs per message
            close_timeout=_CLOSE_TIMEOUT,
            ssl=tls,
            **self._serve_options(),
        )
        self._tls = tls is not None
        logger.info("%s simulator listening on %s", self._name, self.url)

    async def stop(self) -> None:
        """Close every client with 1001 and stop listening; safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await server.wait_closed()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("simulator not started")
        port = self._server.sockets[0].getsockname()[1]
        host = f"[{self._host}]" if ":" in self._host else self._host
        scheme = "wss" if self._tls else "ws"
        return f"{scheme}://{host}:{port}{self._path}"

    # ---- clients ---------------------------------------------------------------------

    @property
    def connections(self) -> int:
        return len(self._clients)

    # The timeout parameters are part of the simulators' agreed test API.
    async def wait_for_connections(self, n: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Return once at least ``n`` clients are connected; TimeoutError otherwise."""
        await self._wait(lambda: len(self._clients) >= n, timeout)

    async def _wait(self, predicate: Callable[[], bool], timeout: float) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def _connected(self, client: ClientT) -> AsyncIterator[None]:
        """`client` counts as connected (and waiters hear of it) for the body's duration."""
        self._clients.add(client)
        await self._notify()
        try:
            yield
        finally:
            self._clients.discard(client)
            client.gone.set()
            await self._notify()

    @staticmethod
    @contextlib.asynccontextmanager
    async def _sending(client: QueuedClient) -> AsyncIterator[None]:
        """Send `client`'s outbox in order while the body runs."""

        async def send_loop() -> None:
            try:
                while True:
                    await client.conn.send(await client.outbox.get())
            except ConnectionClosed:
                # A client gone mid-broadcast only ends its own loop; its handler cleans up.
                logger.debug("client %s closed while sending", client.conn.remote_address)

        sender = asyncio.create_task(send_loop())
        try:
            yield
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    async def _close_clients(self, clients: Sequence[ClientT], code: int, reason: str) -> None:
        """Close `clients` with `code`; returns once their handlers have cleaned up."""
        await asyncio.gather(*(c.conn.close(code, reason) for c in clients))
        await asyncio.gather(*(c.gone.wait() for c in clients))
