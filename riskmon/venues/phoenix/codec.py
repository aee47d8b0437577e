"""Phoenix perpetuals WebSocket codec (protocols.md §5): frames in, normalized events out.

On each connection the codec queues, as binary frames like the SDK sends them, subscribes to
traderState (our authority), exchange (JSON encoding), allMids and `market` for each configured
symbol. It then turns

- traderState snapshots and deltas into PositionsReported (exact, from lots; see trader_state.py),
  a missed delta into SequenceGap plus a traderState resubscribe for a fresh snapshot;
- exchange snapshots and sequenced deltas into the market units positions need and
  MarketStatusChanged whenever a market's status really changes, a skipped sequence into
  SequenceGap plus an exchange resubscribe;
- the first snapshot after a gap (from the resubscribe or a reconnect) into StreamResynced for
  each stream that gapped, after the snapshot's own events, so riskmon can time the recovery;
- market / allMids into MarkPrice (mark / mid), trades into TradeExecuted, orderbook into BookSnapshot,
  read by market_channels.py;
- subscribe confirmations and errors into Subscribed / SubscriptionFailed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import msgspec

from riskmon.config.schema import PhoenixVenue
from riskmon.events import (
    Event,
    FrameMalformed,
    PositionsReported,
    SequenceGap,
    StreamResynced,
    Subscribed,
    SubscriptionFailed,
)
from riskmon.venues.phoenix.exchange_state import EXCHANGE_STREAM, ExchangeBook
from riskmon.venues.phoenix.frames import (
    AllMidsPush,
    BadField,
    ChannelError,
    ControlReply,
    Envelope,
    ExchangeDelta,
    ExchangeSnapshot,
    MarketPush,
    Push,
    SubaccountState,
    SubscriptionRef,
    SubscriptionStatus,
    TraderDelta,
    TraderSnapshot,
    TraderStatePush,
    TradesPush,
    validation_reason,
)
from riskmon.venues.phoenix.market_channels import MarketChannels
from riskmon.venues.phoenix.trader_state import Report, TraderBook, parse_subaccounts

_MAX_REASON = 200
_TOO_DEEP = "JSON nested too deeply"

_push = msgspec.json.Decoder(Push)
_envelope = msgspec.json.Decoder(Envelope)
_control = msgspec.json.Decoder(ControlReply)
_status = msgspec.json.Decoder(SubscriptionStatus)
_channel_error = msgspec.json.Decoder(ChannelError)
_trader = msgspec.json.Decoder(TraderSnapshot | TraderDelta)
_exchange = msgspec.json.Decoder(ExchangeSnapshot | ExchangeDelta)


class PhoenixCodec:
    def __init__(self, venue: str, accounts: Mapping[str, str], config: PhoenixVenue) -> None:
        """`accounts` maps each desk's wallet authority to the desk; `config.authority` is subscribed."""
        self.venue = venue
        self._desks = dict(accounts)
        self._config = config
        self._outbox: list[str | bytes] = []
        self._books: dict[tuple[str, int], TraderBook] = {}  # absent: no snapshot since (re)subscribing
        # Streams that reported a SequenceGap not yet ended by a snapshot, per (authority,
        # traderPdaIndex), in gap order. Kept across reconnects: the next snapshot ends them.
        self._trader_gaps: dict[tuple[str, int], dict[str, None]] = {}
        self._exchange = ExchangeBook(venue)  # market units and statuses, kept across connections
        self._market_channels = MarketChannels(venue, self._units)  # its trade replay guard spans connections
        self._handlers: dict[str, Callable[[str | bytes], list[Event]]] = {
            "subscriptionConfirmed": self._subscription_confirmed,
            "subscriptionError": self._subscription_error,
            "subscriptionStatus": self._subscription_status,
            "error": self._channel_error,
            "traderState": self._trader_state,
            "exchange": self._exchange_frame,
            "market": self._market_channels.market_frame,
            "allMids": self._market_channels.all_mids_frame,
            "trades": self._market_channels.trades_frame,
            "orderbook": self._market_channels.orderbook_frame,
            "fundingRate": _nothing,
            "candle": _nothing,
            "candles": _nothing,
        }

    def connection_opened(self) -> None:
        # Sequences are per subscription: the new subscriptions start with fresh snapshots.
        self._outbox.clear()
        self._books.clear()
        self._exchange.resubscribed()
        self._subscribe(self._trader_subscription(self._config.authority, self._config.trader_pda_index))
        self._subscribe(_EXCHANGE_SUBSCRIPTION)
        self._subscribe({"channel": "allMids"})
        for symbol in self._config.symbols:
            self._subscribe({"channel": "market", "symbol": symbol})

    def receive_text(self, text: str) -> list[Event]:
        return self._receive(text)

    def receive_bytes(self, data: bytes) -> list[Event]:
        return self._receive(data)  # the server may send JSON in binary frames too

    def receive_rest(self, source: str, body: str) -> list[Event]:
        return [self._malformed("the Phoenix stream has no REST call")]

    def data_to_send(self) -> list[str | bytes]:
        frames, self._outbox = self._outbox, []
        return frames

    # --- dispatch ------------------------------------------------------------------------------

    def _receive(self, frame: str | bytes) -> list[Event]:
        # The busy channels in one decode (frames.Push); anything else, and any frame the union
        # refuses, is read as before: Envelope first, then by channel or type.
        try:
            push = _push.decode(frame)
        except msgspec.DecodeError:
            return self._receive_by_envelope(frame)
        except RecursionError:
            return [self._malformed(_TOO_DEEP)]  # msgspec stops at Python's recursion limit
        if push.type is not None:
            return self._receive_by_envelope(frame)  # a control reply's tag decides: the Envelope path's rule
        try:
            if isinstance(push, AllMidsPush):
                return self._market_channels.all_mids(push)
            if isinstance(push, TradesPush):
                return self._market_channels.trades(push)
            if isinstance(push, MarketPush):
                return self._market_channels.market(push)
            if isinstance(push, TraderStatePush):
                if push.message_type == "snapshot" and push.subaccounts is not None:
                    return self._trader_snapshot(push.authority, push.trader_pda_index, push.subaccounts)
                if push.message_type == "delta" and push.deltas is not None:
                    return self._trader_delta(push.authority, push.trader_pda_index, push.deltas)
                return self._receive_by_envelope(frame)  # its error is TraderSnapshot | TraderDelta's to name
            return self._market_channels.orderbook(push)
        except BadField as exc:
            return [self._malformed(f"{push.__struct_config__.tag}: {exc}")]
        except ArithmeticError:
            return [self._malformed(f"{push.__struct_config__.tag}: a number is out of range")]

    def _receive_by_envelope(self, frame: str | bytes) -> list[Event]:
        try:
            envelope = _envelope.decode(frame)
        except msgspec.ValidationError:
            return [self._malformed("not a JSON object with a string channel or type")]
        except msgspec.DecodeError:
            return [self._malformed("not JSON")]
        except RecursionError:
            return [self._malformed(_TOO_DEEP)]
        name = envelope.type if envelope.type in self._handlers else envelope.channel
        handler = self._handlers.get(name) if name is not None else None
        if name is None or handler is None:
            return [self._malformed("unknown channel or message type")]
        try:
            return handler(frame)
        except msgspec.ValidationError as exc:
            return [self._malformed(f"{name}: {validation_reason(exc)}")]
        except BadField as exc:
            return [self._malformed(f"{name}: {exc}")]
        except ArithmeticError:
            return [self._malformed(f"{name}: a number is out of range")]
        except RecursionError:
            return [self._malformed(f"{name}: {_TOO_DEEP}")]

    def _malformed(self, reason: str) -> FrameMalformed:
        return FrameMalformed(self.venue, reason)

    def _subscribe(self, subscription: dict[str, object]) -> None:
        self._outbox.append(msgspec.json.encode({"type": "subscribe", "subscription": subscription}))

    def _resubscribe(self, subscription: dict[str, object]) -> None:
        self._outbox.append(msgspec.json.encode({"type": "unsubscribe", "subscription": subscription}))
        self._subscribe(subscription)

    @staticmethod
    def _trader_subscription(authority: str, trader_pda_index: int) -> dict[str, object]:
        return {"channel": "traderState", "authority": authority, "traderPdaIndex": trader_pda_index}

    # --- control -------------------------------------------------------------------------------

    def _subscription_confirmed(self, frame: str | bytes) -> list[Event]:
        return [Subscribed(self.venue, _label(_control.decode(frame).subscription))]

    def _subscription_error(self, frame: str | bytes) -> list[Event]:
        reply = _control.decode(frame)
        reason = _short(f"{reply.code}: {reply.message}")
        # The server judged the request itself invalid: resending it as it is cannot succeed.
        misconfigured = reply.code == "invalid_subscription"
        return [SubscriptionFailed(self.venue, _label(reply.subscription), reason, misconfigured)]

    def _subscription_status(self, frame: str | bytes) -> list[Event]:
        status = _status.decode(frame)
        return [Subscribed(self.venue, _label(status.subscription))] if status.status == "subscribed" else []

    def _channel_error(self, frame: str | bytes) -> list[Event]:
        error = _channel_error.decode(frame)
        return [SubscriptionFailed(self.venue, "error channel", _short(f"{error.code}: {error.error}"))]

    # --- traderState ---------------------------------------------------------------------------

    def _trader_state(self, frame: str | bytes) -> list[Event]:
        message = _trader.decode(frame)
        if isinstance(message, TraderSnapshot):
            return self._trader_snapshot(message.authority, message.trader_pda_index, message.subaccounts)
        return self._trader_delta(message.authority, message.trader_pda_index, message.deltas)

    def _trader_snapshot(self, authority: str, trader_pda_index: int, rows: list[SubaccountState]) -> list[Event]:
        if authority not in self._desks:
            return [self._malformed("positions for an authority no desk lists")]
        key = (authority, trader_pda_index)
        book = TraderBook(parse_subaccounts(rows, snapshot=True))
        self._books[key] = book
        reported = self._reported(authority, book.snapshot_report(self._units))
        # The stream is rebuilt even when positions wait for units: the sequences are whole again.
        resynced = self._trader_gaps.pop(key, {})
        return reported + [StreamResynced(self.venue, stream) for stream in resynced]

    def _trader_delta(self, authority: str, trader_pda_index: int, rows: list[SubaccountState]) -> list[Event]:
        if authority not in self._desks:
            return [self._malformed("positions for an authority no desk lists")]
        key = (authority, trader_pda_index)
        deltas = parse_subaccounts(rows, snapshot=False)
        book_or_none = self._books.get(key)
        if book_or_none is None:
            return []  # no snapshot yet: a delta cannot be placed on a state we do not hold
        gaps = book_or_none.gaps(deltas)
        if gaps:
            del self._books[key]  # deltas are ignored until the fresh snapshot rebuilds it
            self._resubscribe(self._trader_subscription(authority, trader_pda_index))
            events: list[Event] = []
            outstanding = self._trader_gaps.setdefault(key, {})
            for gap in gaps:
                stream = f"traderState:{gap.subaccount}"
                outstanding[stream] = None
                events.append(SequenceGap(self.venue, stream, gap.expected, gap.received))
            return events
        return self._reported(authority, book_or_none.apply_deltas(deltas, self._units))

    def _units(self, symbol: str) -> int | None:
        override = self._config.markets.get(symbol)
        if override is not None:
            return override.base_lots_decimals
        return self._exchange.base_lots_decimals(symbol)

    def _reported(self, authority: str, report: Report | None) -> list[Event]:
        if report is None:
            return []
        desk = self._desks[authority]
        return [PositionsReported(self.venue, desk, authority, report.positions, report.complete, report.sequence)]

    def _release_held(self) -> list[Event]:
        events: list[Event] = []
        for (authority, _), book in self._books.items():
            events.extend(self._reported(authority, book.release_held(self._units)))
        return events

    # --- exchange ------------------------------------------------------------------------------

    def _exchange_frame(self, frame: str | bytes) -> list[Event]:
        update = self._exchange.apply(_exchange.decode(frame))
        if update.resubscribe:
            self._resubscribe(_EXCHANGE_SUBSCRIPTION)
        events = update.events + self._release_held()  # the frame may have brought units we waited for
        if update.resynced:
            events.append(StreamResynced(self.venue, EXCHANGE_STREAM))
        return events


_EXCHANGE_SUBSCRIPTION: dict[str, object] = {"channel": "exchange", "encoding": "json"}


def _nothing(frame: str | bytes) -> list[Event]:
    return []  # fundingRate and candles: known channels the risk monitor does not use


def _label(subscription: SubscriptionRef | None) -> str:
    if subscription is None:
        return "unknown"
    channel = subscription.channel[:40]
    return f"{channel}:{subscription.symbol[:40]}" if subscription.symbol else channel


def _short(text: str) -> str:
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."
