"""What every venue adapter provides: a pure codec and an I/O session around it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from riskmon.events import Event


class VenueCodec(Protocol):
    """Sans-I/O protocol core: frames in, normalized events out, frames to send queued.

    No sockets, clocks or tasks: the same codec serves the live session and replay.
    """

    venue: str

    def connection_opened(self) -> None:
        """A new connection is open: reset per-connection state and queue the handshake frames."""

    def receive_text(self, text: str) -> list[Event]: ...

    def receive_bytes(self, data: bytes) -> list[Event]: ...

    def receive_rest(self, source: str, body: str) -> list[Event]:
        """A REST response the session fetched (`source` names the call, e.g. "get_order").

        REST answers go through the codec like frames, so a capture of them replays the same way.
        """
        ...

    def data_to_send(self) -> list[str | bytes]: ...


@runtime_checkable
class PingingCodec(VenueCodec, Protocol):
    """A venue with an application-level ping: the session decides when, the codec says what."""

    def send_ping(self) -> None:
        """Queue a ping frame; `pong_outstanding` stays True until the venue answers."""

    @property
    def pong_outstanding(self) -> bool: ...


class Inbound:
    """What a session hands the engine task: the raw frame (for capture) and its events.

    `rest` names the REST call when `frame` is a REST response body rather than a stream frame.
    """

    __slots__ = ("events", "frame", "received_at", "rest", "venue")

    def __init__(
        self,
        venue: str,
        received_at: float,
        frame: str | bytes | None,
        events: list[Event],
        rest: str | None = None,
    ) -> None:
        self.venue = venue
        self.received_at = received_at
        self.frame = frame
        self.events = events
        self.rest = rest


InboundSink = Callable[[Inbound], Awaitable[None]]


INVALID_URL = "(invalid URL)"


def redact_endpoint(url: str) -> str:
    """scheme://host:port only: paths and queries can carry keys, and logs must never show them."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return INVALID_URL
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal keeps its brackets, or the port is ambiguous
    return f"{parts.scheme}://{host}{port}"
