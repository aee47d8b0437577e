"""ProphetX payloads as events (protocols.md §3.2-§3.3): the desk's orders, the order books and the
public trades, from the Pusher channels and from the REST reads alike, decoded statelessly (the
engine drops older sequence numbers). The handshake that opens those channels is the codec's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType

import msgspec

from riskmon.events import (
    BookLevel,
    BookSide,
    BookSnapshot,
    Event,
    FrameMalformed,
    Heartbeat,
    OrderStatus,
    OrderUpdate,
    TradeExecuted,
)
from riskmon.venues.codec_support import BoundedMemo
from riskmon.venues.prophetx.frames import (
    BookPayload,
    Identifier,
    LayerError,
    LevelInfo,
    OrderInfo,
    OrderPayload,
    PusherFrame,
    TradePayload,
    decode_envelope,
    decode_payload,
)
from riskmon.venues.prophetx.rest_answers import decode_rest_order

# §3.3 status -> our lifecycle.
ORDER_STATUSES: Mapping[str, OrderStatus] = MappingProxyType(
    {
        "inactive": OrderStatus.PENDING,
        "open": OrderStatus.OPEN,
        "invalid": OrderStatus.REJECTED,
        "canceled": OrderStatus.CANCELED,
        "void": OrderStatus.VOID,
        "wiped": OrderStatus.VOID,
        "settled": OrderStatus.SETTLED,
        "manually_settled": OrderStatus.SETTLED,
        "closed": OrderStatus.SETTLED,
    }
)
# Backing an outcome at American odds risks the stake; a cancel leaves the matched part standing.
_MATCHED_STAKE_AT_RISK = frozenset({OrderStatus.PENDING, OrderStatus.OPEN, OrderStatus.CANCELED})
_ZERO = Decimal(0)

# The private event was renamed with Talaria/v4 (§3.2): `wagers`/`wager` then `orders`/`order`.
_ORDER_EVENTS = frozenset({"wagers", "orders"})
_ORDER_CHANGES = frozenset({"wager", "order", "wagers", "orders"})
# The CFTC-wording docs use the singular / trade_execution names for the same broadcasts.
# A book's change_type -> how its errors name it (made once: books are most frames).
_BOOK_LAYERS = {change: f"{change} payload" for change in ("market_selections", "market_selection")}
_TRADE_CHANGES = frozenset({"matched_bet", "trade_execution"})
_CATALOGUE_CHANGES = frozenset({"tournament", "sport_event", "market", "market_line"})
_HEARTBEAT_CHANGE = "private_system_signal"

IDENTIFIER = re.compile(r"[A-Za-z0-9_.:-]{1,48}")

_order_decoder = msgspec.json.Decoder(OrderPayload)
_book_decoder = msgspec.json.Decoder(BookPayload)
_trade_decoder = msgspec.json.Decoder(TradePayload)
# A payload read only to check it is JSON: Raw validates it without building its objects.
_json_checker = msgspec.json.Decoder(msgspec.Raw)


class ChannelEvents:
    def __init__(self, venue: str, accounts: Mapping[str, str], default_desk: str | None) -> None:
        """`accounts` maps ProphetX account/user ids to desks; `default_desk` owns unmapped orders
        (the private channel only carries our own account's orders)."""
        self.venue = venue
        self._owners = dict(accounts)
        self._default_desk = default_desk
        default_accounts = [a for a, desk in self._owners.items() if desk == default_desk]
        self._default_account = default_accounts[0] if len(default_accounts) == 1 else ""

    def channel_event(self, frame: PusherFrame, socket_id: str | None) -> list[Event]:
        """A channel's (not the Pusher protocol's) frame; raises LayerError when it is unreadable."""
        envelope = decode_envelope(frame)
        change = envelope.change_type
        event = frame.event
        book_layer = _BOOK_LAYERS.get(change)
        if book_layer is not None and event != "health_check" and event not in _ORDER_EVENTS:
            return [self.book(decode_payload(envelope, _book_decoder), book_layer)]  # most frames
        venue_ts = envelope.timestamp / 1_000_000_000  # int / int: correctly rounded, unlike float(ns) / 1e9
        if change == _HEARTBEAT_CHANGE or event == "health_check":
            decode_payload(envelope, _json_checker)  # `e30=`, i.e. {}: checked, not used
            return [Heartbeat(self.venue, socket_id or "", venue_ts)]
        if change in _ORDER_CHANGES or event in _ORDER_EVENTS:
            return [self.order_update(decode_payload(envelope, _order_decoder).info, venue_ts)]
        if change in _TRADE_CHANGES:
            return [self._trade(decode_payload(envelope, _trade_decoder), venue_ts)]
        if change in _CATALOGUE_CHANGES:
            decode_payload(envelope, _json_checker)
            return []  # tournaments, events, markets and lines: catalogue, not risk
        return [FrameMalformed(self.venue, f"unknown change_type {safe_word(change)}")]

    def rest_order(self, body: str) -> Event:
        info, timestamp = decode_rest_order(body)
        if isinstance(timestamp, int) and not isinstance(timestamp, bool):
            return self.order_update(info, _epoch_seconds(timestamp))
        return self.order_update(info, 0.0)

    def order_update(self, info: OrderInfo, venue_ts: float) -> Event:
        not_finite = info.non_finite()
        if not_finite is not None:
            return FrameMalformed(self.venue, f"order {safe_word(str(info.id))}: `{not_finite}` is not a finite number")
        venue_status = info.status
        status = ORDER_STATUSES.get(venue_status)
        if status is None:
            return FrameMalformed(
                self.venue, f"order {safe_word(str(info.id))}: unknown status {safe_word(venue_status)}"
            )
        user_id = info.user_id
        if user_id is not None:
            account = str(user_id)
            desk = self._owners.get(account, self._default_desk)
        else:
            account, desk = self._default_account, self._default_desk
        if desk is None:
            return FrameMalformed(self.venue, "order for an account no desk lists")
        filled = info.totally_matched_stake
        if filled is None:
            filled = info.matched_stake
        # The matched stake is None when the venue did not say how much matched: unknown, not 0.
        worst_case = filled if status in _MATCHED_STAKE_AT_RISK else _ZERO
        external_id = info.external_id
        odds, stake = info.odds, info.stake
        return OrderUpdate(
            self.venue,
            desk,
            account,
            str(info.id),
            _markets[(info.sport_event_id, info.market_id, info.outcome_id)],
            status,
            venue_status,
            info.sequence_number,
            venue_ts,
            info.why,
            None if external_id is None else str(external_id),
            # [?] §3.2: v4 may call odds/stake `price`/`quantity`; the legacy names win if both.
            info.price if odds is None else odds,
            info.quantity if stake is None else stake,
            filled,
            info.matched_odds,
            worst_case,
        )

    def book(self, payload: BookPayload, layer: str) -> Event:
        """The stream's and REST's books alike, so the two compare equal when the venue agrees."""
        sides: list[BookSide] = []
        for selection in payload.info.selections:
            levels: list[BookLevel] = []
            for level in selection:
                price, size = level.odds, level.stake
                # One test for the usual level (legacy names, both finite); anything else is sorted out,
                # and named, by _level_amounts.
                if (
                    price is None
                    or size is None
                    or level.price is not None
                    or level.quantity is not None
                    or not price.is_finite()
                    or not size.is_finite()
                ):
                    price, size = _level_amounts(level, layer)
                levels.append(BookLevel(price, size))
            # An empty side has no level to name its outcome: it stays, unnamed, in its place.
            outcome = selection[0].outcome_id if selection else None
            sides.append(BookSide("" if outcome is None else str(outcome), tuple(levels)))
        return BookSnapshot(
            self.venue,
            f"{payload.sport_event_id}/{payload.market_id}",
            tuple(sides),
            payload.info.sequence_number,
        )

    def _trade(self, payload: TradePayload, venue_ts: float) -> Event:
        info = payload.info
        not_finite = info.non_finite()
        if not_finite is not None:
            raise LayerError(f"matched_bet payload: `{not_finite}` is not a finite number")
        price = info.matched_odds if info.matched_odds is not None else info.odds
        if price is None:
            raise LayerError("matched_bet payload: no odds")
        return TradeExecuted(
            self.venue,
            _markets[(info.sport_event_id, info.market_id, info.outcome_id)],
            price,
            info.matched_stake,
            info.sequence_number,
            venue_ts,
        )


def _level_amounts(level: LevelInfo, layer: str) -> tuple[Decimal, Decimal]:
    not_finite = level.non_finite()
    if not_finite is not None:
        raise LayerError(f"{layer}: `{not_finite}` is not a finite number")
    price = level.odds if level.odds is not None else level.price
    size = level.stake if level.stake is not None else level.quantity
    if price is None or size is None:
        raise LayerError(f"{layer}: a level without odds or stake")
    return price, size


def _market(ids: tuple[Identifier | None, Identifier | None, Identifier | None]) -> str:
    return "/".join("?" if part is None else str(part) for part in ids)


# An order's or trade's market name, per (event, market, outcome): a busy desk trades a few of them.
_markets: BoundedMemo[tuple[Identifier | None, Identifier | None, Identifier | None], str] = BoundedMemo(
    _market, limit=4096
)


def safe_word(word: object) -> str:
    """A venue word fit for a log line: short identifiers pass, anything else is elided."""
    text = str(word)
    return repr(text) if IDENTIFIER.fullmatch(text) else "<unprintable>"


def _epoch_seconds(value: int) -> float:
    # [I] REST timestamps are undocumented in unit; epoch magnitudes tell ns, µs, ms and s apart.
    for divisor, above in ((1_000_000_000, 10**17), (1_000_000, 10**14), (1_000, 10**11)):
        if abs(value) >= above:
            return value / divisor
    return float(value)
