"""Totalis parlay RFQ codec (protocols.md §4.2-§4.4): the post-trade WebSocket and the
`GET /mm/quotes` reconciliation, text in, QuoteUpdate / RfqPositionUpdate out.

Handshake per connection: `auth` first; on `auth:success` the market maker's own quote channel,
then every RFQ it follows. The venue never redelivers, so the RFQs still live (following.py) are
followed again on every new connection; the session reconciles what was missed over REST through
`receive_rest`. This module reads frames and bodies; what their quotes and positions mean as events
is quote_events'.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from riskmon.config.schema import TotalisRfqVenue
from riskmon.events import Event, FrameMalformed, Heartbeat, Subscribed, SubscriptionFailed
from riskmon.venues.totalis.frames import (
    CONTROL_EVENTS,
    KNOWN_EVENTS,
    POSITION_EVENTS,
    QUOTE_EVENTS,
    ErrorDetail,
    Header,
    QuoteEvent,
    Unusable,
    encode_frame,
    envelope_decoder,
    event_payload,
    framed_decoder,
    is_array,
    is_object,
    lenient_unix_seconds,
    quotes_body_decoder,
    quotes_holder_decoder,
    raw_list_decoder,
)
from riskmon.venues.totalis.quote_events import MM_CHANNEL, RFQ_CHANNEL, MarketMakerQuotes, VenueText


def _event_name(header: Header) -> str | None:
    # [?] §4.2: the event name is under `type` or `event`; whichever names a known event wins.
    if header.type in KNOWN_EVENTS:
        return header.type
    if header.event in KNOWN_EVENTS:
        return header.event
    return None


class TotalisRfqCodec:
    def __init__(
        self,
        venue: str,
        accounts: Mapping[str, str],
        default_desk: str | None,
        config: TotalisRfqVenue,
    ) -> None:
        """`accounts` maps a market-maker id (the auth:success user_id) to its desk; quotes of an
        unmapped market maker belong to `default_desk` (the venue's only desk, when there is one)."""
        self.venue = venue
        self._api_key = config.api_key
        self._text = VenueText(config.api_key)
        self._configured_rfqs = list(config.rfq_ids)
        self._outbox: list[str | bytes] = []
        # Per connection.
        self._authenticated = False
        self._queued_channels: set[str] = set()
        self._pong_outstanding = False
        # Across connections: the market maker's id and the RFQs to follow again after a reconnect.
        self._quotes = MarketMakerQuotes(venue, accounts, default_desk, self._text, self._follow)

    @property
    def mm_id(self) -> str | None:
        return self._quotes.market_maker

    @property
    def authenticated(self) -> bool:
        return self._authenticated

    @property
    def pong_outstanding(self) -> bool:
        return self._pong_outstanding

    def connection_opened(self) -> None:
        self._outbox = []  # anything queued for the old socket is stale: auth must go first
        self._authenticated = False
        self._queued_channels = set()
        self._pong_outstanding = False
        self._outbox.append(encode_frame({"type": "auth", "api_key": self._api_key.reveal()}))

    def send_ping(self) -> None:
        self._outbox.append(encode_frame({"type": "ping"}))
        self._pong_outstanding = True

    def data_to_send(self) -> list[str | bytes]:
        out, self._outbox = self._outbox, []
        return out

    def receive_bytes(self, data: bytes) -> list[Event]:
        return [self._malformed("binary frame on a text-only feed")]

    def receive_text(self, text: str) -> list[Event]:
        # The usual frame in one decode; any other (no `data` object, a field of an odd type, not
        # JSON) is read as before, header first, so its events and reasons stay the same.
        try:
            framed = framed_decoder.decode(text)
        except (msgspec.DecodeError, UnicodeError, RecursionError):
            return self._receive_enveloped(text)
        payload = framed.data
        if payload is None:
            return self._receive_enveloped(text)
        name = _event_name(framed)
        if name is None:
            return self._receive_enveloped(text)  # the unknown name, reported as that path words it
        try:
            return self._dispatch(name, framed, payload)
        except Unusable as exc:
            return [self._malformed(f"{name}: {exc}")]

    def _receive_enveloped(self, text: str) -> list[Event]:
        try:
            envelope = envelope_decoder.decode(text)
        except msgspec.ValidationError as exc:
            return [self._malformed(f"unexpected frame shape: {exc}")]
        except (msgspec.DecodeError, UnicodeError, RecursionError):
            return [self._malformed("not JSON")]
        name = _event_name(envelope)
        if name is None:
            shown = envelope.type or envelope.event
            if shown is None:
                return [self._malformed("frame without a type or event key")]
            return [self._malformed(f"unknown event {self._text.label(shown)}")]
        try:
            try:
                payload = event_payload(envelope, text)
            except Unusable:
                if name not in CONTROL_EVENTS:
                    raise
                # A control frame's own keys were read with the envelope: an odd extra field must
                # not lose a pong or an auth answer.
                payload = QuoteEvent()
            return self._dispatch(name, envelope, payload)
        except Unusable as exc:
            return [self._malformed(f"{name}: {exc}")]

    def receive_rest(self, source: str, body: str) -> list[Event]:
        # "reconcile_quotes" is the same read made by the scheduled reconciliation.
        if source not in ("quotes", "reconcile_quotes"):
            return [self._malformed(f"the Totalis codec has no REST call {self._text.label(source)}")]
        try:
            parsed = quotes_body_decoder.decode(body)
            records = parsed.quotes
            if records is None and is_array(parsed.data):
                records = raw_list_decoder.decode(parsed.data)
            elif records is None and is_object(parsed.data):
                records = quotes_holder_decoder.decode(parsed.data).quotes
        except msgspec.ValidationError as exc:
            return [self._malformed(f"unexpected quotes body shape: {exc}")]
        except (msgspec.DecodeError, UnicodeError, RecursionError):
            return [self._malformed("quotes body not JSON")]
        if parsed.error is not None:
            return [self._rest_refused(parsed.error)]
        if records is None:
            return [self._malformed("quotes body without a quotes list")]
        events: list[Event] = []
        unusable: list[str] = []
        for raw in records:
            # Each quote update is absolute, so the usable ones stand even when a neighbour is bad.
            try:
                events.extend(self._quotes.reconciled_quote(raw))
            except Unusable as exc:
                unusable.append(str(exc))
        if unusable:
            events.append(self._malformed(f"{len(unusable)} of {len(records)} quotes unusable: {unusable[0]}"))
        return events

    # WebSocket frames

    def _dispatch(self, name: str, envelope: Header, payload: QuoteEvent) -> list[Event]:
        if name in QUOTE_EVENTS:
            return self._quotes.quote_event(QUOTE_EVENTS[name], envelope, payload)
        if name in POSITION_EVENTS:
            return self._quotes.position_event(POSITION_EVENTS[name], envelope, payload)
        if name == "auth:success":
            return self._auth_success(envelope.user_id or payload.user_id)
        if name == "auth:error":
            self._authenticated = False
            message = self._text.safe(envelope.message or payload.message or "authentication refused")
            return [SubscriptionFailed(self.venue, "auth", message, misconfigured=True)]
        if name == "subscribed":
            channel = envelope.channel or payload.channel
            if not channel:
                raise Unusable("ack without a channel")
            return [Subscribed(self.venue, self._text.safe(channel))]
        if name == "error":
            channel = self._text.safe(envelope.channel or payload.channel or "ws")
            message = self._text.safe(envelope.message or payload.message or "error without a message")
            return [SubscriptionFailed(self.venue, channel, message)]
        # pong: the session reads liveness off pong_outstanding; the engine gets the same liveness
        # signal as ProphetX's health_check, so the heartbeat-gap metric covers this venue too.
        # Totalis names no connection; the pong's own timestamp is the venue's clock when readable.
        self._pong_outstanding = False
        return [Heartbeat(self.venue, "", lenient_unix_seconds(payload.timestamp))]

    def _auth_success(self, user_id: str | None) -> list[Event]:
        if not user_id:
            raise Unusable("without user_id")
        self._quotes.market_maker = user_id
        self._authenticated = True
        self._subscribe(MM_CHANNEL + user_id)
        for rfq_id in [*self._configured_rfqs, *self._quotes.following.live_rfqs()]:
            self._subscribe(RFQ_CHANNEL + rfq_id)
        events: list[Event] = [Subscribed(self.venue, "auth")]
        if self._quotes.owner(user_id) is None:
            # Say so now rather than only dropping each quote later.
            events.append(
                SubscriptionFailed(
                    self.venue, MM_CHANNEL + user_id, "no desk lists this market maker", misconfigured=True
                )
            )
        return events

    # REST reconciliation

    def _rest_refused(self, error: ErrorDetail) -> SubscriptionFailed:
        code = (error.code or "").lower()
        message = self._text.safe(f"{error.code or 'error'}: {error.message or 'no message'}")
        misconfigured = code in {"unauthorized", "forbidden", "invalid_api_key"}
        return SubscriptionFailed(self.venue, "rest:quotes", message, misconfigured=misconfigured)

    # Following

    def _follow(self, rfq_id: str) -> None:
        # Before auth:success the socket cannot subscribe; the auth answer follows every live RFQ.
        if self._authenticated:
            self._subscribe(RFQ_CHANNEL + rfq_id)

    def _subscribe(self, channel: str) -> None:
        if channel not in self._queued_channels:
            self._queued_channels.add(channel)
            self._outbox.append(encode_frame({"type": "subscribe", "channel": channel}))

    # Dropped frames

    def _malformed(self, reason: str) -> FrameMalformed:
        return FrameMalformed(self.venue, self._text.safe(reason))
