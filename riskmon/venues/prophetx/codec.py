"""ProphetX Pusher codec (protocols.md §3): the handshake, its REST answers, and which frames go where.

The session does the REST calls; this core says what is needed (`needs_registration` once the
server has given a socket_id) and turns the registration answer into signin and subscribe frames.
What the channels carry (orders, books, trades) becomes events in channel_events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import msgspec

from riskmon.events import Event, FrameMalformed, Subscribed, SubscriptionFailed
from riskmon.venues.prophetx.channel_events import IDENTIFIER, ChannelEvents, safe_word
from riskmon.venues.prophetx.frames import (
    ConnectionEstablished,
    LayerError,
    PusherError,
    PusherFrame,
    decode_data,
    decode_frame,
    decode_json,
)
from riskmon.venues.prophetx.rest_answers import AuthorizedChannel, RegistrationResponse, decode_rest_markets

# REST sources: an order read (the activation watchdog's is `reconcile_order`), and the books of
# get_multiple_markets / get_markets (`markets:<event id>` for a get_markets answer naming no event).
_ORDER_SOURCES = frozenset({"get_order", "get_wager", "reconcile_order"})
_MARKETS_SOURCE = "markets"

_connection_decoder = msgspec.json.Decoder(ConnectionEstablished)
_error_decoder = msgspec.json.Decoder(PusherError)
_registration_decoder = msgspec.json.Decoder(RegistrationResponse)
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class ChannelBinding:
    """A channel the registration authorized: what it carries and what it is about (no auth)."""

    name: str
    binding_events: tuple[tuple[str, str | None], ...]  # (event name, type)
    scope: Mapping[str, Any]


class ProphetXCodec:
    def __init__(self, venue: str, accounts: Mapping[str, str], default_desk: str | None) -> None:
        """`accounts` maps ProphetX account/user ids to desks; `default_desk` owns unmapped orders
        (the private channel only carries our own account's orders)."""
        self.venue = venue
        self._events = ChannelEvents(venue, accounts, default_desk)
        self._outbox: list[str | bytes] = []
        self._pong_outstanding = False
        self._socket_id: str | None = None
        self._activity_timeout: float | None = None
        self._needs_registration = False
        self._bindings: dict[str, ChannelBinding] = {}
        self._auths: dict[str, str] = {}  # channel -> signature; also redacted out of error text
        self._requested: set[str] = set()
        self._subscribed: set[str] = set()
        self._signin_requested = False

    # ---- VenueCodec / PingingCodec ------------------------------------------------------------

    def connection_opened(self) -> None:
        # A new socket means a new socket_id: every signature of the old one is worthless.
        self._outbox.clear()
        self._pong_outstanding = False
        self._socket_id = None
        self._activity_timeout = None
        self._needs_registration = False
        self._bindings.clear()
        self._auths.clear()
        self._requested.clear()
        self._subscribed.clear()
        self._signin_requested = False

    def data_to_send(self) -> list[str | bytes]:
        frames, self._outbox = self._outbox, []
        return frames

    def send_ping(self) -> None:
        self._send("pusher:ping", {})
        self._pong_outstanding = True

    @property
    def pong_outstanding(self) -> bool:
        return self._pong_outstanding

    @property
    def socket_id(self) -> str | None:
        return self._socket_id

    @property
    def activity_timeout(self) -> float | None:
        """Seconds of silence after which the client should ping, as the server said."""
        return self._activity_timeout

    @property
    def needs_registration(self) -> bool:
        return self._needs_registration

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self._bindings)

    @property
    def channel_bindings(self) -> Mapping[str, ChannelBinding]:
        return MappingProxyType(self._bindings)

    @property
    def subscribed_channels(self) -> frozenset[str]:
        return frozenset(self._subscribed)

    def receive_bytes(self, data: bytes) -> list[Event]:
        return [self._malformed("binary frame on a text-only feed")]

    def receive_rest(self, source: str, body: str) -> list[Event]:
        try:
            if source == "register":
                return self._registration(body)
            if source in _ORDER_SOURCES:
                return [self._events.rest_order(body)]
            books_of, colon, asked = source.partition(":")
            if books_of == _MARKETS_SOURCE and (not colon or IDENTIFIER.fullmatch(asked)):
                books = decode_rest_markets(body, asked or None)
                book = self._events.book
                return [book(b, f"book {safe_word(b.sport_event_id)}/{safe_word(b.market_id)}") for b in books]
        except LayerError as exc:
            return [self._malformed(f"{source}: {exc}")]  # a source named above: safe
        return [self._malformed(f"no REST call {safe_word(source)}")]

    def receive_text(self, text: str) -> list[Event]:
        try:
            frame = decode_frame(text)
            if frame.event.startswith(("pusher:", "pusher_internal:")):
                return self._protocol(frame)
            return self._events.channel_event(frame, self._socket_id)
        except LayerError as exc:
            return [self._malformed(str(exc))]

    # ---- handshake ------------------------------------------------------------------------------

    def _protocol(self, frame: PusherFrame) -> list[Event]:
        event = frame.event
        if event == "pusher:connection_established":
            established = decode_data(frame, ConnectionEstablished, _connection_decoder, "connection_established")
            self._socket_id = established.socket_id
            timeout = established.activity_timeout
            self._activity_timeout = float(timeout) if timeout is not None else None
            self._needs_registration = True
            return []
        if event == "pusher:ping":
            self._send("pusher:pong", {})
            return []
        if event == "pusher:pong":
            self._pong_outstanding = False
            return []
        if event == "pusher:signin_success":
            return [Subscribed(self.venue, "user signin")]
        if event == "pusher_internal:subscription_succeeded":
            if frame.channel is None:
                raise LayerError("subscription_succeeded without a channel")
            self._subscribed.add(frame.channel)
            return [Subscribed(self.venue, frame.channel)]
        if event in ("pusher:error", "pusher:subscription_error", "pusher_internal:subscription_error"):
            return [self._pusher_error(frame)]
        return []  # other protocol chatter (subscription_count, cache_miss) carries no risk

    def _pusher_error(self, frame: PusherFrame) -> SubscriptionFailed:
        try:
            error = decode_data(frame, PusherError, _error_decoder, "pusher error")
        except LayerError:
            error = PusherError()  # a refusal is still a refusal when its details are unreadable
        message = error.message or "no message"
        for auth in self._auths.values():
            # Pusher's invalid-signature message quotes the signature it was sent.
            for part in (auth, auth.rpartition(":")[2]):
                if part:  # an empty part would match between every character
                    message = message.replace(part, "<auth>")
        code = "?" if error.code is None else str(error.code)
        # Pusher protocol: 4000-4099 means do not reconnect unchanged (app unknown, disabled, ...).
        misconfigured = error.code is not None and 4000 <= error.code <= 4099
        if frame.channel is not None:
            self._subscribed.discard(frame.channel)
        return SubscriptionFailed(self.venue, frame.channel or "pusher", f"code {code}: {message[:200]}", misconfigured)

    def _registration(self, body: str) -> list[Event]:
        if self._socket_id is None:
            raise LayerError("registration answer without an established connection")
        response = decode_json(_registration_decoder, body, "registration")
        data = response.data
        if data is None or data.success is False or not data.authorized_channel:
            words = [safe_word(w) for w in (response.error, response.code, response.message) if w is not None]
            if data is not None and data.status is not None:
                words.append(safe_word(data.status))
            reason = ", ".join(words) or "no channels authorized"
            return [SubscriptionFailed(self.venue, "channel registration", reason, misconfigured=False)]
        # Read names and signatures from the answer only (§3.1): service numbers differ by docs.
        authorized: dict[str, AuthorizedChannel] = {c.channel_name: c for c in data.authorized_channel}
        if data.authenticated is not None and not self._signin_requested:
            raw_user = bytes(data.authenticated.user_data)
            # A JSON string as documented; any other JSON value is passed on as its exact text.
            user_data = msgspec.json.decode(raw_user, type=str) if raw_user.startswith(b'"') else raw_user.decode()
            self._send("pusher:signin", {"auth": data.authenticated.auth, "user_data": user_data})
            self._signin_requested = True
        # The v4 registration is declarative: a new answer on the same socket replaces the set.
        for name in sorted(self._requested - authorized.keys()):
            self._send("pusher:unsubscribe", {"channel": name})
            self._subscribed.discard(name)
            self._requested.discard(name)
        self._bindings = {
            name: ChannelBinding(
                name, tuple((b.name, b.type) for b in channel.binding_events), MappingProxyType(channel.scope or {})
            )
            for name, channel in authorized.items()
        }
        self._auths = {name: channel.auth for name, channel in authorized.items()}
        for name, channel in authorized.items():
            if name not in self._requested:
                self._send("pusher:subscribe", {"auth": channel.auth, "channel": name})
                self._requested.add(name)
        self._needs_registration = False
        return []

    # ---- helpers --------------------------------------------------------------------------------

    def _send(self, event: str, data: dict[str, str]) -> None:
        self._outbox.append(_encoder.encode({"event": event, "data": data}).decode())

    def _malformed(self, reason: str) -> FrameMalformed:
        return FrameMalformed(self.venue, reason)
