"""Totalis parlay RFQ codec (protocols.md §4.2-§4.4): the post-trade WebSocket and the
`GET /mm/quotes` reconciliation, text in, QuoteUpdate / RfqPositionUpdate out.

Handshake per connection: `auth` first; on `auth:success` the market maker's own quote channel,
then every RFQ it follows. The venue never redelivers, so the codec remembers which RFQs are still
live (a quote holding or converted to exposure, a position not yet closed) and follows them again
on every new connection; the session reconciles what was missed over REST through `receive_rest`.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping

import msgspec

from riskmon.config.schema import TotalisRfqVenue
from riskmon.events import (
    Event,
    FrameMalformed,
    Heartbeat,
    QuoteStatus,
    QuoteUpdate,
    RfqPositionStatus,
    RfqPositionUpdate,
    Subscribed,
    SubscriptionFailed,
)
from riskmon.venues.totalis.frames import (
    CLOSED_POSITION,
    CONTROL_EVENTS,
    KNOWN_EVENTS,
    LIVE_QUOTE,
    POSITION_EVENTS,
    PRE_TRADE_STATUSES,
    QUOTE_EVENTS,
    RECORD_STATUS,
    ErrorDetail,
    Header,
    QuoteEvent,
    Unusable,
    channel_id,
    encode_frame,
    envelope_decoder,
    error_text,
    event_payload,
    framed_decoder,
    is_array,
    is_object,
    legs_of,
    lenient_unix_seconds,
    outcome_text,
    quote_record_decoder,
    quotes_body_decoder,
    quotes_holder_decoder,
    raw_list_decoder,
    unix_seconds,
    worst_case_loss,
)

_MM_CHANNEL = "mm:quotes:"
_RFQ_CHANNEL = "rfq:"
# Unknown names are echoed only when they read like the venue's event words (`quote:accepted`):
# no digits or capitals, which keys and tokens nearly always have.
_EVENT_WORD = re.compile(r"[a-z][a-z_.:\-]{0,47}")
_CLOSED_RFQS_KEPT = 4096
_VENUE_TEXT_LIMIT = 200


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
        self._desks = dict(accounts)
        self._default_desk = default_desk
        self._api_key = config.api_key
        self._configured_rfqs = list(config.rfq_ids)
        self._outbox: list[str | bytes] = []
        # Per connection.
        self._mm_id: str | None = None
        self._authenticated = False
        self._queued_channels: set[str] = set()
        self._pong_outstanding = False
        # Across connections: what must be followed again after a reconnect.
        self._live_quotes: dict[str, str] = {}  # quote_id -> rfq_id
        self._open_positions: dict[str, None] = {}  # rfq_ids, insertion-ordered
        # Late copies of a closed RFQ's events must not make it followed again; bounded memory.
        self._closed_rfqs: OrderedDict[str, None] = OrderedDict()

    @property
    def mm_id(self) -> str | None:
        return self._mm_id

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
            return [self._malformed(f"unknown event {self._label(shown)}")]
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
            return [self._malformed(f"the Totalis codec has no REST call {self._label(source)}")]
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
                events.extend(self._reconciled_quote(raw))
            except Unusable as exc:
                unusable.append(str(exc))
        if unusable:
            events.append(self._malformed(f"{len(unusable)} of {len(records)} quotes unusable: {unusable[0]}"))
        return events

    # WebSocket frames

    def _dispatch(self, name: str, envelope: Header, payload: QuoteEvent) -> list[Event]:
        if name in QUOTE_EVENTS:
            return self._quote_event(QUOTE_EVENTS[name], envelope, payload)
        if name in POSITION_EVENTS:
            return self._position_event(POSITION_EVENTS[name], envelope, payload)
        if name == "auth:success":
            return self._auth_success(envelope.user_id or payload.user_id)
        if name == "auth:error":
            self._authenticated = False
            message = self._venue_text(envelope.message or payload.message or "authentication refused")
            return [SubscriptionFailed(self.venue, "auth", message, misconfigured=True)]
        if name == "subscribed":
            channel = envelope.channel or payload.channel
            if not channel:
                raise Unusable("ack without a channel")
            return [Subscribed(self.venue, self._venue_text(channel))]
        if name == "error":
            channel = self._venue_text(envelope.channel or payload.channel or "ws")
            message = self._venue_text(envelope.message or payload.message or "error without a message")
            return [SubscriptionFailed(self.venue, channel, message)]
        # pong: the session reads liveness off pong_outstanding; the engine gets the same liveness
        # signal as ProphetX's health_check, so the heartbeat-gap metric covers this venue too.
        # Totalis names no connection; the pong's own timestamp is the venue's clock when readable.
        self._pong_outstanding = False
        return [Heartbeat(self.venue, "", lenient_unix_seconds(payload.timestamp))]

    def _auth_success(self, user_id: str | None) -> list[Event]:
        if not user_id:
            raise Unusable("without user_id")
        self._mm_id = user_id
        self._authenticated = True
        self._subscribe(_MM_CHANNEL + user_id)
        for rfq_id in [*self._configured_rfqs, *self._live_rfqs()]:
            self._subscribe(_RFQ_CHANNEL + rfq_id)
        events: list[Event] = [Subscribed(self.venue, "auth")]
        if user_id not in self._desks and self._default_desk is None:
            # Say so now rather than only dropping each quote later.
            events.append(
                SubscriptionFailed(
                    self.venue, _MM_CHANNEL + user_id, "no desk lists this market maker", misconfigured=True
                )
            )
        return events

    def _quote_event(self, status: QuoteStatus, envelope: Header, payload: QuoteEvent) -> list[Event]:
        quote_id = payload.quote_id or (payload.quote.id if payload.quote is not None else None)
        if not quote_id:
            raise Unusable("without quote_id")
        owner = self._owner(channel_id(envelope, payload, _MM_CHANNEL))
        if owner is None:
            return [self._malformed("quotes for a market maker no desk lists")]
        # A deadline we cannot read would silently disarm the confirmation watchdog: drop loudly.
        try:
            deadline = unix_seconds(payload.confirmation_deadline)
        except Unusable as exc:
            raise Unusable(f"confirmation_deadline {exc}") from None
        legs = legs_of(payload.exposure_legs)
        loss = worst_case_loss((payload.quote, payload), legs)
        rfq_id = payload.rfq_id or self._live_quotes.get(quote_id)
        venue_ts = lenient_unix_seconds(payload.accepted_at)
        if venue_ts is None:
            venue_ts = lenient_unix_seconds(payload.timestamp)
        desk, account = owner
        reason = None if payload.reason is None else self._venue_text(payload.reason)
        execution_id = payload.execution_id
        update = QuoteUpdate(
            self.venue, desk, account, quote_id, rfq_id, status, venue_ts, loss, deadline, reason, execution_id, legs
        )
        self._track_quote(quote_id, rfq_id, status)
        return [update]

    def _position_event(self, status: RfqPositionStatus, envelope: Header, payload: QuoteEvent) -> list[Event]:
        rfq_id = payload.rfq_id or channel_id(envelope, payload, _RFQ_CHANNEL)
        if not rfq_id:
            raise Unusable("without rfq_id")
        owner = self._owner(channel_id(envelope, payload, _MM_CHANNEL))
        if owner is None:
            return [self._malformed("positions for a market maker no desk lists")]
        if status is RfqPositionStatus.SETTLED:
            detail = outcome_text(payload.outcome)
        elif status is RfqPositionStatus.CANCELLED:
            detail = payload.reason
        elif status is RfqPositionStatus.ERROR:
            detail = error_text(payload.error)
        else:
            detail = None
        desk, account = owner
        self._track_position(rfq_id, status)
        venue_ts = lenient_unix_seconds(payload.timestamp)
        detail = None if detail is None else self._venue_text(detail)
        return [RfqPositionUpdate(self.venue, desk, account, rfq_id, status, venue_ts, payload.position_pda, detail)]

    # REST reconciliation

    def _reconciled_quote(self, raw: msgspec.Raw) -> list[Event]:
        try:
            record = quote_record_decoder.decode(raw)
        except msgspec.ValidationError as exc:
            raise Unusable(f"unexpected quote shape: {exc}") from None
        quote_id = record.id or record.quote_id
        if not quote_id:
            raise Unusable("quote without id")
        word = (record.status or "").lower()
        if word in PRE_TRADE_STATUSES:
            return []
        if word not in RECORD_STATUS:
            raise Unusable(f"quote status {self._label(record.status or '')}")
        status, position_status = RECORD_STATUS[word]
        if position_status is not None and not record.rfq_id:
            raise Unusable(f"{word} quote without rfq_id")
        owner = self._owner(record.market_maker_id)
        if owner is None:
            raise Unusable("quotes for a market maker no desk lists")
        try:
            deadline = unix_seconds(record.confirmation_deadline)
        except Unusable as exc:
            raise Unusable(f"confirmation_deadline {exc}") from None
        legs = legs_of(record.exposure_legs)
        loss = worst_case_loss((record,), legs)
        venue_ts = lenient_unix_seconds(record.updated_at)
        if venue_ts is None and status is QuoteStatus.ACCEPTED:
            venue_ts = lenient_unix_seconds(record.accepted_at)
        desk, account = owner
        events: list[Event] = [
            QuoteUpdate(
                venue=self.venue,
                desk=desk,
                account=account,
                quote_id=quote_id,
                rfq_id=record.rfq_id,
                status=status,
                venue_ts=venue_ts,
                worst_case_loss_usd=loss,
                confirmation_deadline=deadline,
                reason=self._optional_text(record.reason),
                execution_id=record.execution_id,
                legs=legs,
            )
        ]
        if position_status is not None and record.rfq_id:
            # Close first, so following the executed quote does not subscribe a finished RFQ.
            self._track_position(record.rfq_id, position_status)
            detail = record.reason if position_status is RfqPositionStatus.CANCELLED else outcome_text(record.outcome)
            if word == "bought_back":
                detail = detail or word  # the only trace that this was not a plain settlement
            events.append(
                RfqPositionUpdate(
                    venue=self.venue,
                    desk=desk,
                    account=account,
                    rfq_id=record.rfq_id,
                    status=position_status,
                    venue_ts=lenient_unix_seconds(record.updated_at),
                    position_pda=record.position_pda,
                    detail=self._optional_text(detail),
                )
            )
        self._track_quote(quote_id, record.rfq_id, status)
        return events

    def _rest_refused(self, error: ErrorDetail) -> SubscriptionFailed:
        code = (error.code or "").lower()
        message = self._venue_text(f"{error.code or 'error'}: {error.message or 'no message'}")
        misconfigured = code in {"unauthorized", "forbidden", "invalid_api_key"}
        return SubscriptionFailed(self.venue, "rest:quotes", message, misconfigured=misconfigured)

    # Ownership and following

    def _owner(self, mm_id: str | None) -> tuple[str, str] | None:
        """(desk, account) of our quotes. Before auth:success the market-maker id is unknown: the
        only mapped id when there is exactly one, else the default desk with account ""."""
        mm_id = mm_id or self._mm_id
        if mm_id is None and len(self._desks) == 1:
            mm_id = next(iter(self._desks))
        if mm_id is not None and mm_id in self._desks:
            return self._desks[mm_id], mm_id
        if self._default_desk is not None:
            return self._default_desk, mm_id or ""
        return None

    def _track_quote(self, quote_id: str, rfq_id: str | None, status: QuoteStatus) -> None:
        if status not in LIVE_QUOTE:
            self._live_quotes.pop(quote_id, None)
            return
        if rfq_id is None or rfq_id in self._closed_rfqs:
            return
        self._live_quotes[quote_id] = rfq_id
        self._follow(rfq_id)

    def _track_position(self, rfq_id: str, status: RfqPositionStatus) -> None:
        if status in CLOSED_POSITION:
            self._open_positions.pop(rfq_id, None)
            self._live_quotes = {q: r for q, r in self._live_quotes.items() if r != rfq_id}
            self._closed_rfqs[rfq_id] = None
            self._closed_rfqs.move_to_end(rfq_id)
            while len(self._closed_rfqs) > _CLOSED_RFQS_KEPT:
                self._closed_rfqs.popitem(last=False)
        elif rfq_id not in self._closed_rfqs:
            self._open_positions[rfq_id] = None
            self._follow(rfq_id)

    def _live_rfqs(self) -> list[str]:
        live = dict.fromkeys([*self._live_quotes.values(), *self._open_positions])
        return [rfq_id for rfq_id in live if rfq_id not in self._closed_rfqs]

    def _follow(self, rfq_id: str) -> None:
        # Before auth:success the socket cannot subscribe; the auth answer follows every live RFQ.
        if self._authenticated:
            self._subscribe(_RFQ_CHANNEL + rfq_id)

    def _subscribe(self, channel: str) -> None:
        if channel not in self._queued_channels:
            self._queued_channels.add(channel)
            self._outbox.append(encode_frame({"type": "subscribe", "channel": channel}))

    # Safe text

    def _venue_text(self, text: str) -> str:
        """Venue-supplied text for an event: capped, and never carrying our key even if echoed."""
        key = self._api_key.reveal()
        if key:
            text = text.replace(key, "***")
        return text[:_VENUE_TEXT_LIMIT]

    def _optional_text(self, text: str | None) -> str | None:
        return None if text is None else self._venue_text(text)

    def _label(self, name: str) -> str:
        if _EVENT_WORD.fullmatch(name) and self._api_key.reveal() not in name:
            return repr(name)
        return "(unprintable name)"

    def _malformed(self, reason: str) -> FrameMalformed:
        return FrameMalformed(self.venue, self._venue_text(reason))
