"""The socket between riskmon and its delivery process: length-prefixed pickled tuples.

Pickle is safe here because both ends are this program: the socket is a socket pair made by the
parent and inherited by the child, reachable by no one else.
"""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Callable
from typing import Any, cast

Message = tuple[Any, ...]

_HEADER = 4
# A notification batch is at most a few hundred KiB; anything far larger is a broken peer.
MAX_MESSAGE = 64 * 1024 * 1024


class ChannelError(RuntimeError):
    pass


class Channel(asyncio.Protocol):
    def __init__(self, on_message: Callable[[Message], None], on_closed: Callable[[], None]) -> None:
        self._on_message = on_message
        self._on_closed = on_closed
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        if not buffer:  # the usual case, whole messages in one read: parsed where they are, not copied
            taken = self._parse(data)
            if taken < len(data):
                buffer += memoryview(data)[taken:]
            return
        buffer += data
        # A message's handler that raises closes the connection (asyncio's fatal error): no bytes to keep.
        del buffer[: self._parse(buffer)]

    def _parse(self, data: bytes | bytearray) -> int:
        """Hand on each whole message at the start of `data`; returns how many bytes they took."""
        start = 0
        with memoryview(data) as view:
            while len(view) - start >= _HEADER:
                size = int.from_bytes(view[start : start + _HEADER], "big")
                if size > MAX_MESSAGE:
                    raise ChannelError(f"a message of {size} bytes")
                end = start + _HEADER + size
                if len(view) < end:
                    break
                message = pickle.loads(view[start + _HEADER : end])  # noqa: S301 - our own child/parent
                start = end
                self._on_message(message)
        return start

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._on_closed()

    @property
    def open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def send(self, message: Message) -> bool:
        """Queue a message for the peer; False if the socket is already closed."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        body = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
        transport.write(len(body).to_bytes(_HEADER, "big") + body)
        return True

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
