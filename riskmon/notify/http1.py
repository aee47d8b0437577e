"""A direct HTTP/1.1 POST to plain-http receivers over kept-alive asyncio streams.

On loopback an httpx POST costs ~1.2 ms of CPU in the delivery process, a plain HTTP/1.1 request on
a kept-alive stream ~0.2 ms, and that difference is most of an alert's way from the outbox to its
receiver. So `http://` receivers that no proxy applies to get this sender; `https://` and proxied
ones keep httpx (`WebhookSender`), and both behave the same to the outbox: same headers, status
handling, timeouts and masked error texts (named as httpx names its errors).

The protocol is h11's (sans-I/O): `post_request` builds the request, `ResponseReader` turns response
bytes into the status and whether the connection can carry the next request. `ReceiverPool` and
`DirectSender` are the thin I/O around them: one pool of connections per receiver queue, bounded by
the receiver's max_concurrency.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import h11
import httpx

from riskmon import __version__
from riskmon.config.types import Secret
from riskmon.notify.webhook import ReceiverErrors, SendResult, post_headers, status_result

# A response body is read (and dropped) up to this much to keep its connection for the next
# request; a larger one costs the connection instead of the memory.
BODY_LIMIT = 64 * 1024
_READ_SIZE = 64 * 1024


def proxy_applies(url: str) -> bool:
    """Whether a proxy variable (HTTP_PROXY / HTTPS_PROXY / ALL_PROXY, either case) covers `url`
    and NO_PROXY does not exempt its host. Read by the standard library's public rules, which agree
    with httpx's for host names, domain suffixes, addresses and `*` (httpx's own reader is private)."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


def goes_direct(url: str, client: httpx.AsyncClient) -> bool:
    """Plain http that `client` would not proxy: the receivers `DirectSender` serves."""
    return urlsplit(url).scheme == "http" and not (client.trust_env and proxy_applies(url))


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a receiver's requests go, and what every one of them carries besides its own headers."""

    host: str
    port: int
    target: bytes  # path and query, as httpx encodes them
    fixed_headers: tuple[tuple[bytes, bytes], ...]

    @classmethod
    def of(cls, url: str) -> Origin:
        parsed = httpx.URL(url)
        headers = [(b"Host", parsed.netloc), (b"User-Agent", f"riskmon/{__version__}".encode())]
        parts = urlsplit(url)
        if parts.username or parts.password:  # as httpx does: URL userinfo becomes Basic auth
            userinfo = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
            headers.append((b"Authorization", b"Basic " + base64.b64encode(userinfo.encode())))
        return cls(parsed.raw_host.decode("ascii"), parsed.port or 80, parsed.raw_path, tuple(headers))


def post_request(origin: Origin, headers: dict[str, str], body: bytes) -> h11.Request:
    fields = [*origin.fixed_headers, *((k.encode(), v.encode()) for k, v in headers.items())]
    fields.append((b"Content-Length", str(len(body)).encode()))
    return h11.Request(method="POST", target=origin.target, headers=fields)


class ResponseReader:
    """One response, fed as bytes (b"" at EOF); its body is counted and dropped."""

    def __init__(self, conn: h11.Connection, body_limit: int = BODY_LIMIT) -> None:
        self._conn = conn
        self._body_limit = body_limit
        self.response: h11.Response | None = None
        self.body_bytes = 0

    def feed(self, data: bytes) -> bool:
        """True once the response is complete, or its body is past the limit. Raises
        h11.RemoteProtocolError on a malformed response or one the peer cut short."""
        self._conn.receive_data(data)
        while True:
            event = self._conn.next_event()
            if event is h11.NEED_DATA:
                return False
            if isinstance(event, h11.Response):
                self.response = event
            elif isinstance(event, h11.Data):
                self.body_bytes += len(event.data)
                if self.body_bytes > self._body_limit:
                    return True
            elif isinstance(event, h11.EndOfMessage):
                return True
            elif isinstance(event, h11.ConnectionClosed):
                raise h11.RemoteProtocolError("Server disconnected without sending a response.")
            # InformationalResponse (1xx): the final response follows.

    @property
    def reusable(self) -> bool:
        """Both sides done and neither asked to close (Connection: close, HTTP/1.0, body cut)."""
        return self._conn.our_state is h11.DONE and self._conn.their_state is h11.DONE

    def header(self, name: bytes) -> str | None:
        assert self.response is not None
        return next((v.decode("latin-1") for k, v in self.response.headers if k == name), None)


class _Connection:
    __slots__ = ("protocol", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = h11.Connection(h11.CLIENT)

    @property
    def alive(self) -> bool:
        return not (self.writer.is_closing() or self.reader.at_eof())


class _Stale(Exception):
    """A reused connection failed before the receiver could have seen the request."""


class _Step:
    """How far a request got, to name a failure as httpx would."""

    __slots__ = ("error", "timeout")

    def __init__(self) -> None:
        self.timeout, self.error = "PoolTimeout", "ConnectError"

    def at(self, timeout: str, error: str) -> None:
        self.timeout, self.error = timeout, error

    def failure(self, exc: OSError | h11.ProtocolError) -> str:
        return self.error if isinstance(exc, OSError) else type(exc).__name__


class ReceiverPool:
    """Kept-alive connections to one receiver, at most `limit` open at once."""

    def __init__(self, origin: Origin, limit: int) -> None:
        self.origin = origin
        self.limit = max(1, limit)
        self._slots = asyncio.Semaphore(self.limit)
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        self._closed = False

    async def exchange(self, request: h11.Request, body: bytes, step: _Step) -> ResponseReader:
        async with self._slots:
            while self._idle:
                conn = self._idle.pop()
                if not conn.alive:
                    self._discard(conn)
                    continue
                with contextlib.suppress(_Stale):
                    return await self._exchange_on(conn, request, body, step, reused=True)
                break  # one retry, on a fresh connection
            step.at("ConnectTimeout", "ConnectError")
            reader, writer = await asyncio.open_connection(self.origin.host, self.origin.port)
            conn = _Connection(reader, writer)
            self._open.add(conn)
            return await self._exchange_on(conn, request, body, step, reused=False)

    async def _exchange_on(
        self, conn: _Connection, request: h11.Request, body: bytes, step: _Step, *, reused: bool
    ) -> ResponseReader:
        keep = False
        try:
            protocol = conn.protocol
            wire = protocol.send(request)
            step.at("WriteTimeout", "WriteError")
            try:
                conn.writer.write(wire + protocol.send(h11.Data(data=body)) + protocol.send(h11.EndOfMessage()))
                await conn.writer.drain()
                step.at("ReadTimeout", "ReadError")
                data = await conn.reader.read(_READ_SIZE)
            except OSError:
                if reused:
                    raise _Stale from None
                raise
            if not data:
                if reused:
                    raise _Stale
                raise h11.RemoteProtocolError("Server disconnected without sending a response.")
            response = ResponseReader(protocol)
            while not response.feed(data):
                data = await conn.reader.read(_READ_SIZE)
            # Bytes past the response's end would be read as the next one's: not worth keeping.
            keep = response.reusable and not protocol.trailing_data[0] and not self._closed
            if keep:
                protocol.start_next_cycle()
                self._idle.append(conn)
            return response
        finally:
            if not keep:  # cut short, cancelled, or the peer asked to close
                self._discard(conn)

    @property
    def in_use(self) -> bool:
        return bool(self._open)

    def _discard(self, conn: _Connection) -> None:
        self._open.discard(conn)
        conn.writer.close()

    def close(self) -> None:
        """No connection is kept from now on; those in use close when their request ends."""
        self._closed = True
        for conn in self._idle:
            self._discard(conn)
        self._idle.clear()

    async def aclose(self) -> None:
        """Close every connection, in use or not (the requests on them fail), and wait until they are."""
        writers = [conn.writer for conn in self._open]
        self.close()
        for conn in list(self._open):
            self._discard(conn)
        for writer in writers:
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class ReceiverPools:
    """The pools of the receiver queues, kept across reloads while a queue's origin and bound stay."""

    def __init__(self) -> None:
        self._pools: dict[str, ReceiverPool] = {}
        self._retired: list[ReceiverPool] = []

    def pool(self, queue: str, origin: Origin, limit: int) -> ReceiverPool:
        pool = self._pools.get(queue)
        if pool is not None and pool.origin == origin and pool.limit == max(1, limit):
            return pool
        if pool is not None:
            self._retire(pool)
        pool = self._pools[queue] = ReceiverPool(origin, limit)
        return pool

    def keep_only(self, queues: Iterable[str]) -> None:
        """Close the pools of queues reloaded away."""
        kept = set(queues)
        for queue in [q for q in self._pools if q not in kept]:
            self._retire(self._pools.pop(queue))

    def _retire(self, pool: ReceiverPool) -> None:
        pool.close()
        # Kept until stop only while a request still holds one of its connections.
        self._retired = [p for p in (*self._retired, pool) if p.in_use]

    async def aclose(self) -> None:
        pools, self._pools = [*self._pools.values(), *self._retired], {}
        self._retired = []
        for pool in pools:
            await pool.aclose()


class DirectSender:
    """The webhook POST of `WebhookSender`, on a `ReceiverPool`'s connections."""

    def __init__(
        self,
        url: str,
        *,
        hmac_secret: Secret | None,
        timeout: float,
        pool: ReceiverPool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = hmac_secret
        self._timeout = timeout
        self._pool = pool
        self._clock = clock
        self._errors = ReceiverErrors(url, hmac_secret)
        self.endpoint = self._errors.endpoint

    async def send(self, payload: bytes, idempotency_key: str) -> SendResult:
        headers = post_headers(payload, idempotency_key, self._secret, self._clock())
        step = _Step()
        try:
            request = post_request(self._pool.origin, headers, payload)  # h11 checks the headers here
            async with asyncio.timeout(self._timeout):
                answer = await self._pool.exchange(request, payload, step)
        except TimeoutError:
            return self._errors.failure(step.timeout)
        except (OSError, h11.ProtocolError) as exc:
            return self._errors.failure(step.failure(exc), exc)
        assert answer.response is not None
        return status_result(
            answer.response.status_code,
            answer.header(b"retry-after"),
            answer.header(b"date"),
            self._clock(),
            self.endpoint,
        )
