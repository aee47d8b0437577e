"""The Totalis market maker's quotes and RFQ positions as events (protocols.md §4.2-§4.4): from the
post-trade WebSocket's payloads and the `GET /mm/quotes` records alike, with the desk that owns
them, and the RFQs they keep followed. Which frame carries which payload is the codec's business.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import msgspec

from riskmon.config.types import Secret
from riskmon.events import (
    Event,
    FrameMalformed,
    QuoteStatus,
    QuoteUpdate,
    RfqPositionStatus,
    RfqPositionUpdate,
)
from riskmon.venues.totalis.following import FollowedRfqs
from riskmon.venues.totalis.frames import (
    PRE_TRADE_STATUSES,
    RECORD_STATUS,
    Header,
    QuoteEvent,
    Unusable,
    channel_id,
    error_text,
    legs_of,
    lenient_unix_seconds,
    outcome_text,
    quote_record_decoder,
    unix_seconds,
    worst_case_loss,
)

MM_CHANNEL = "mm:quotes:"
RFQ_CHANNEL = "rfq:"
# Unknown names are echoed only when they read like the venue's event words (`quote:accepted`):
# no digits or capitals, which keys and tokens nearly always have.
_EVENT_WORD = re.compile(r"[a-z][a-z_.:\-]{0,47}")
_VENUE_TEXT_LIMIT = 200


class VenueText:
    """Venue-supplied text made fit for an event: capped, and never carrying our key even if echoed."""

    __slots__ = ("_api_key",)

    def __init__(self, api_key: Secret) -> None:
        self._api_key = api_key

    def safe(self, text: str) -> str:
        key = self._api_key.reveal()
        if key:
            text = text.replace(key, "***")
        return text[:_VENUE_TEXT_LIMIT]

    def safe_optional(self, text: str | None) -> str | None:
        return None if text is None else self.safe(text)

    def label(self, name: str) -> str:
        """A name the venue sent that we do not know, quoted only when it reads like one of its words."""
        if _EVENT_WORD.fullmatch(name) and self._api_key.reveal() not in name:
            return repr(name)
        return "(unprintable name)"


class MarketMakerQuotes:
    def __init__(
        self,
        venue: str,
        accounts: Mapping[str, str],
        default_desk: str | None,
        text: VenueText,
        follow: Callable[[str], None],
    ) -> None:
        """`accounts` maps a market-maker id (the auth:success user_id) to its desk; quotes of an
        unmapped market maker belong to `default_desk` (the venue's only desk, when there is one).
        `follow(rfq_id)` is called for each RFQ a quote or a position makes live."""
        self.venue = venue
        self.market_maker: str | None = None  # the auth:success user_id, once the venue said it
        self.following = FollowedRfqs()
        self._desks = dict(accounts)
        self._default_desk = default_desk
        self._text = text
        self._follow = follow

    def owner(self, mm_id: str | None) -> tuple[str, str] | None:
        """(desk, account) of our quotes. Before auth:success the market-maker id is unknown: the
        only mapped id when there is exactly one, else the default desk with account ""."""
        mm_id = mm_id or self.market_maker
        if mm_id is None and len(self._desks) == 1:
            mm_id = next(iter(self._desks))
        if mm_id is not None and mm_id in self._desks:
            return self._desks[mm_id], mm_id
        if self._default_desk is not None:
            return self._default_desk, mm_id or ""
        return None

    def quote_event(self, status: QuoteStatus, envelope: Header, payload: QuoteEvent) -> list[Event]:
        quote_id = payload.quote_id or (payload.quote.id if payload.quote is not None else None)
        if not quote_id:
            raise Unusable("without quote_id")
        owner = self.owner(channel_id(envelope, payload, MM_CHANNEL))
        if owner is None:
            return [FrameMalformed(self.venue, self._text.safe("quotes for a market maker no desk lists"))]
        # A deadline we cannot read would silently disarm the confirmation watchdog: drop loudly.
        try:
            deadline = unix_seconds(payload.confirmation_deadline)
        except Unusable as exc:
            raise Unusable(f"confirmation_deadline {exc}") from None
        legs = legs_of(payload.exposure_legs)
        loss = worst_case_loss((payload.quote, payload), legs)
        rfq_id = payload.rfq_id or self.following.rfq_of(quote_id)
        venue_ts = lenient_unix_seconds(payload.accepted_at)
        if venue_ts is None:
            venue_ts = lenient_unix_seconds(payload.timestamp)
        desk, account = owner
        reason = None if payload.reason is None else self._text.safe(payload.reason)
        execution_id = payload.execution_id
        update = QuoteUpdate(
            self.venue, desk, account, quote_id, rfq_id, status, venue_ts, loss, deadline, reason, execution_id, legs
        )
        followed = self.following.quote_seen(quote_id, rfq_id, status)
        if followed is not None:
            self._follow(followed)
        return [update]

    def position_event(self, status: RfqPositionStatus, envelope: Header, payload: QuoteEvent) -> list[Event]:
        rfq_id = payload.rfq_id or channel_id(envelope, payload, RFQ_CHANNEL)
        if not rfq_id:
            raise Unusable("without rfq_id")
        owner = self.owner(channel_id(envelope, payload, MM_CHANNEL))
        if owner is None:
            return [FrameMalformed(self.venue, self._text.safe("positions for a market maker no desk lists"))]
        if status is RfqPositionStatus.SETTLED:
            detail = outcome_text(payload.outcome)
        elif status is RfqPositionStatus.CANCELLED:
            detail = payload.reason
        elif status is RfqPositionStatus.ERROR:
            detail = error_text(payload.error)
        else:
            detail = None
        desk, account = owner
        if self.following.position_seen(rfq_id, status):
            self._follow(rfq_id)
        venue_ts = lenient_unix_seconds(payload.timestamp)
        detail = None if detail is None else self._text.safe(detail)
        return [RfqPositionUpdate(self.venue, desk, account, rfq_id, status, venue_ts, payload.position_pda, detail)]

    def reconciled_quote(self, raw: msgspec.Raw) -> list[Event]:
        """One `GET /mm/quotes` record: its quote's update, and its position's when the RFQ ended."""
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
            raise Unusable(f"quote status {self._text.label(record.status or '')}")
        status, position_status = RECORD_STATUS[word]
        if position_status is not None and not record.rfq_id:
            raise Unusable(f"{word} quote without rfq_id")
        owner = self.owner(record.market_maker_id)
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
                reason=self._text.safe_optional(record.reason),
                execution_id=record.execution_id,
                legs=legs,
            )
        ]
        if position_status is not None and record.rfq_id:
            # Close first, so following the executed quote does not subscribe a finished RFQ.
            if self.following.position_seen(record.rfq_id, position_status):
                self._follow(record.rfq_id)
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
                    detail=self._text.safe_optional(detail),
                )
            )
        followed = self.following.quote_seen(quote_id, record.rfq_id, status)
        if followed is not None:
            self._follow(followed)
        return events
