"""Mobula Perp Events stream codec (protocols.md §2): text frames in, normalized events out.

The stream pushes one perp event per frame for every trader on the subscribed chains; only the
desks' wallets become fills, liquidations, amendments and cancels, while every executed order,
anyone's, is the market's latest trade price. Nothing on this stream is sequenced or replayed:
identical frames can repeat after a reconnect, so every event carries the §2.4 dedupe key and the
engine's ledgers drop repeats.

Nearly every frame is another trader's, so a frame is first decoded only as far as its trader and
its mark (TradeFacts). A desk's frame, a control frame and anything that first pass cannot place
are decoded whole (Envelope, then PerpEvent) and checked field by field, which says what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import msgspec

from riskmon.config.schema import MobulaPerpEventsVenue
from riskmon.events import (
    Event,
    FillReceived,
    FrameMalformed,
    Heartbeat,
    Liquidation,
    Liquidity,
    MarkKind,
    MarkPrice,
    OrderStatus,
    OrderUpdate,
    PositionAmended,
    Side,
    Subscribed,
    SubscriptionFailed,
)
from riskmon.venues.mobula.frames import (
    FAMILIES,
    FAMILY_AMEND,
    FAMILY_FILL,
    FAMILY_LIQUIDATION,
    BadValue,
    Envelope,
    ParsedEvent,
    PerpEvent,
    TradeFacts,
    amendment_details,
    closing_side,
    envelope_decoder,
    event_decoder,
    facts_decoder,
    fill_side,
    trade_values,
)

SUBSCRIPTION = "perp-events"
_PING = msgspec.json.encode({"event": "ping"}).decode()
_MAX_REASON = 200
# Words in a venue error that mean the key is wrong: reconnecting with the same config cannot help.
AUTH_WORDS = ("auth", "api key", "apikey", "unauthori", "forbidden", "invalid key")


class MobulaPerpEventsCodec:
    def __init__(self, venue: str, accounts: Mapping[str, str], config: MobulaPerpEventsVenue) -> None:
        """`accounts` maps each desk wallet (any letter case) to the desk that owns it."""
        self.venue = venue
        # The wire sends addresses lowercase while configs often hold checksummed ones.
        self._owners = {account.lower(): desk for account, desk in accounts.items()}
        self._config = config
        self._outbox: list[str | bytes] = []
        self._pong_outstanding = False
        self._subscription_id: str | None = None

    @property
    def subscription_id(self) -> str | None:
        """The id the venue gave this connection's subscription (for an unsubscribe), once acked."""
        return self._subscription_id

    @property
    def pong_outstanding(self) -> bool:
        return self._pong_outstanding

    def connection_opened(self) -> None:
        self._outbox.clear()  # whatever was queued belonged to the dead socket
        self._pong_outstanding = False
        self._subscription_id = None
        self._outbox.append(self._subscribe_frame())

    def _subscribe_frame(self) -> str:
        # No `filters`: a server-side filter on our wallets would have to name the trader field, and
        # that name differs by exchange (traderAddress on Gains, account on Lighter, §2.3). A wrong
        # filter silently hides a desk's breach, so every event is taken and filtered locally.
        frame = {
            "type": "stream",
            "authorization": self._config.api_key.reveal(),
            "payload": {
                "name": self._config.subscription_name,
                "chainIds": list(self._config.chain_ids),
                "events": ["order"],
                "subscriptionTracking": "true",  # a string on this stream (§2.1), unlike the positions WSS
            },
        }
        return msgspec.json.encode(frame).decode()

    def send_ping(self) -> None:
        self._outbox.append(_PING)
        self._pong_outstanding = True

    def data_to_send(self) -> list[str | bytes]:
        out, self._outbox = self._outbox, []
        return out

    def receive_bytes(self, data: bytes) -> list[Event]:
        return [self._malformed("binary frame on a text-only stream")]

    def receive_rest(self, source: str, body: str) -> list[Event]:
        return [self._malformed(f"the Mobula perp-events stream has no REST call {source[:40]!r}")]

    def receive_text(self, text: str) -> list[Event]:
        try:
            frame = facts_decoder.decode(text)
        except msgspec.DecodeError:
            return self._receive_checked(text)  # which says what is wrong
        facts = frame.data
        if facts is msgspec.UNSET:
            return self._receive_checked(text)  # a control frame
        kind = facts.type
        market = facts.market
        trader = facts.traderAddress or facts.account
        if kind is None or not market or trader is None or trader == "" or (family := FAMILIES.get(kind)) is None:
            return self._receive_checked(text)  # which says what is missing
        wallet = trader.lower() if isinstance(trader, str) else str(trader)
        if wallet in self._owners:
            return self._receive_checked(text)  # a desk's event: decoded and checked whole
        return self._another_traders(kind, family, market, facts)

    def _receive_checked(self, text: str) -> list[Event]:
        """Any frame but another trader's: the envelope, then its data, each decoded whole and checked."""
        try:
            envelope = envelope_decoder.decode(text)
        except msgspec.ValidationError as exc:
            return [self._malformed(f"unexpected frame shape: {exc}")]
        except msgspec.DecodeError:
            return [self._malformed("not JSON")]
        if not len(envelope.data):
            return self._control(envelope)
        try:
            event = event_decoder.decode(envelope.data)
        except msgspec.ValidationError as exc:
            return [self._malformed(f"unexpected event shape: {exc}")]
        except msgspec.DecodeError:
            return [self._malformed("data is not JSON")]
        return self._push(event, envelope)

    def _malformed(self, reason: str) -> FrameMalformed:
        return FrameMalformed(self.venue, reason)

    # -- control frames ---------------------------------------------------------------------------

    def _control(self, envelope: Envelope) -> list[Event]:
        event = envelope.event
        if event == "subscribed":
            if envelope.subscriptionId is not None:
                self._subscription_id = str(envelope.subscriptionId)
            # The same name as a refusal of it, so the ack resolves that alert.
            return [Subscribed(self.venue, SUBSCRIPTION)]
        if event == "pong":
            # The venue is alive: the same liveness signal as ProphetX's health_check, so the
            # heartbeat-gap metric covers this venue too. The subscription id names the connection.
            self._pong_outstanding = False
            return [Heartbeat(self.venue, self._subscription_id or "")]
        if event == "ping":
            return []  # [I] not documented from the server side; the client's own pings keep it alive
        if event == "error" or envelope.type == "error" or envelope.error is not None:
            return [self._refused(envelope)]
        if event is not None:
            return [self._malformed(f"unknown control event {_label(event)}")]
        return [self._malformed("neither a perp event nor a control frame")]

    def _refused(self, envelope: Envelope) -> SubscriptionFailed:
        text = next(
            (v for v in (envelope.message, envelope.error, envelope.reason) if isinstance(v, str) and v),
            None,
        )
        if text is None and isinstance(envelope.error, dict):
            inner = envelope.error.get("message")
            text = inner if isinstance(inner, str) and inner else None
        if text is None:
            return SubscriptionFailed(self.venue, SUBSCRIPTION, "the venue refused the subscription")
        # A venue may quote the rejected authorization back; it must never reach an alert or a log.
        # This is the one place besides the subscribe frame that needs the key's value.
        key = self._config.api_key.reveal()
        if key:
            text = text.replace(key, "***")
        reason = "".join(ch if ch.isprintable() else " " for ch in text)[:_MAX_REASON]
        misconfigured = any(word in reason.lower() for word in AUTH_WORDS)
        return SubscriptionFailed(self.venue, SUBSCRIPTION, reason, misconfigured=misconfigured)

    # -- perp events ------------------------------------------------------------------------------

    def _push(self, event: PerpEvent, envelope: Envelope) -> list[Event]:
        kind = event.type
        if kind is None:
            return [self._malformed("event without a type")]
        family = FAMILIES.get(kind)
        if family is None:
            return [self._malformed(f"unknown event type {_label(kind)}")]
        market = event.market
        if not market:
            return [self._malformed(f"{kind} without a market")]
        trader = event.traderAddress or event.account
        if trader is None or trader == "":
            # Without the trader there is no telling whether a desk traded: counted, never skipped.
            return [self._malformed(f"{kind} without a trader")]
        wallet = trader.lower() if isinstance(trader, str) else str(trader)
        desk = self._owners.get(wallet)
        if desk is None:
            return self._another_traders(kind, family, market, event)
        try:
            parsed = ParsedEvent(event, kind, market, wallet, envelope.chainId, trade_values(event))
            if family == FAMILY_FILL:
                return self._fill(parsed, desk)
            if family == FAMILY_LIQUIDATION:
                return self._liquidation(parsed, desk)
        except BadValue as exc:
            return [self._malformed(f"{kind}: {exc}")]
        except msgspec.ValidationError as exc:
            return [self._malformed(f"unexpected event shape: {exc}")]
        if family == FAMILY_AMEND:
            return [self._amended(parsed, desk, amendment_details(envelope.data))]
        return self._canceled(parsed, desk)

    def _another_traders(self, kind: str, family: int, market: str, facts: TradeFacts) -> list[Event]:
        """Another trader's event: an execution is the market's trade price, anything else nothing.

        Only what the mark is built from is read and checked (date, price, size), as strictly as
        for a desk; the rest of the frame is never decoded.
        """
        if family >= FAMILY_AMEND:
            return []
        try:
            venue_ts, price_field, price, quantity_field, quantity = trade_values(facts)
        except BadValue as exc:
            return [self._malformed(f"{kind}: {exc}")]
        except msgspec.ValidationError as exc:
            return [self._malformed(f"unexpected event shape: {exc}")]
        if price is not None and price <= 0:
            return [self._malformed(f"{kind}: {price_field} is not positive")]
        if quantity is not None and quantity <= 0:
            return [self._malformed(f"{kind}: {quantity_field} is not positive")]
        if price is None:
            return []
        return [MarkPrice(self.venue, market, price, venue_ts or 0.0)]

    def _mark(self, p: ParsedEvent) -> list[Event]:
        # Only executions are checked for sign: an amendment's stray zero must not drop the frame.
        if p.price is not None and p.price <= 0:
            raise BadValue(f"{p.price_field} is not positive")
        if p.quantity is not None and p.quantity <= 0:
            raise BadValue(f"{p.quantity_field} is not positive")
        if p.price is None:
            return []
        return [MarkPrice(self.venue, p.market, p.price, p.venue_ts or 0.0, MarkKind.TRADE)]

    def _fill(self, p: ParsedEvent, desk: str | None) -> list[Event]:
        out = self._mark(p)
        if desk is None:
            return out
        if p.quantity is None:
            raise BadValue("no amount (baseAmountRaw or size)")
        if p.price is None:
            raise BadValue("no price (priceUSD, priceQuote or price)")
        out.append(self._fill_event(p, desk, fill_side(p), p.quantity, p.price))
        return out

    def _liquidation(self, p: ParsedEvent, desk: str | None) -> list[Event]:
        out = self._mark(p)
        if desk is None:
            return out
        if p.kind == "LIQUIDATION_LONG":
            side = Side.SELL
        elif p.kind == "LIQUIDATION_SHORT":
            side = Side.BUY
        else:  # the older single LIQUIDATION type: the liquidated position's direction says
            side = closing_side(p)
        out.append(
            Liquidation(
                venue=self.venue,
                desk=desk,
                account=p.wallet,
                market=p.market,
                side=side,
                quantity=p.quantity,
                price=p.price,
                key=p.key,
                venue_ts=p.venue_ts or 0.0,
            )
        )
        # [I] A liquidation without a price still alerts, but a fill needs one: the position is then
        # left as it was (an over- rather than understatement) until the positions stream reconciles.
        if p.quantity is not None and p.price is not None:
            out.append(self._fill_event(p, desk, side, p.quantity, p.price))
        return out

    def _fill_event(self, p: ParsedEvent, desk: str, side: Side, quantity: Decimal, price: Decimal) -> FillReceived:
        # [I] Mobula sends no maker/taker flag: market orders, TP/SL triggers and liquidations take
        # liquidity; limit orders are taken as resting ones. Fee rates are not on the wire either.
        liquidity = Liquidity.MAKER if p.kind.startswith("LIMIT_") else Liquidity.TAKER
        return FillReceived(
            venue=self.venue,
            desk=desk,
            account=p.wallet,
            market=p.market,
            side=side,
            quantity=quantity,
            price=price,
            fill_key=p.key,
            stream=p.stream,
            sequence=p.sequence,
            liquidity=liquidity,
            fee_rate=Decimal(0),
            venue_ts=p.venue_ts or 0.0,
        )

    def _amended(self, p: ParsedEvent, desk: str, details: tuple[tuple[str, str], ...]) -> PositionAmended:
        # TRADE_STORED arrives beside the MARKET_* of the same transaction (§2.4), so amendments never
        # move exposure. [?] Whether POSITION_SIZE_* also come with a fill frame is not documented;
        # they are recorded only, and the positions stream is what reconciles a size change.
        return PositionAmended(
            venue=self.venue,
            desk=desk,
            account=p.wallet,
            market=p.market,
            change=p.kind,
            key=p.key,
            details=details,
            venue_ts=p.venue_ts,
        )

    def _canceled(self, p: ParsedEvent, desk: str) -> list[Event]:
        event = p.event
        order_id = event.tradeId if event.tradeId is not None else event.transactionHash
        if order_id is None or order_id == "":
            return [self._malformed(f"{p.kind} without a tradeId or transactionHash")]
        cancel_reason = event.extra.cancelReason if event.extra is not None else None
        return [
            OrderUpdate(
                venue=self.venue,
                desk=desk,
                account=p.wallet,
                order_id=str(order_id),
                market=p.market,
                status=OrderStatus.CANCELED,
                venue_status=p.kind,
                sequence=None,
                venue_ts=p.venue_ts or 0.0,
                reason=None if cancel_reason is None else f"cancelReason={cancel_reason}",
            )
        ]


def _label(word: str) -> str:
    """A venue's event name fit for a reason: short identifiers only, anything else withheld."""
    if len(word) <= 40 and word.replace("_", "").replace("-", "").isalnum() and word.isascii():
        return word
    return "(unprintable)"
