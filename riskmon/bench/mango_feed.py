"""A Mango v3 fill stream for benchmarks: frames as the venue sends them, decoded by the real codec."""

from __future__ import annotations

import binascii
from typing import Literal, TypeVar

import msgspec

from riskmon.config import MonitorConfig
from riskmon.events import Event, FillReceived, MarkPrice, Side
from riskmon.venues.base import Inbound
from riskmon.venues.mango_v3.sim_events import SimFill, encode_fill_event
from riskmon.venues.registry import build_codec

MANGO = "mango"
DESK_ACCOUNT = "DMjLV5AdbdnAxEE9CCJYdzGhEDVAaKPJDRTZQ7kgMZwm"
MAKER = "GJw8MDxaeVh4sSNsi6cEWSHW5bp93UAtCBuMo18hW2nX"
OTHER_TAKER = "5ZWj7a1f8tWkjBESHKgrLmXshuXxqeY9SYcfbshpAqPG"
MARKET = "SOL-PERP"
QUEUE = "31cKs646dt1YkA3zPyxZ7rUAkxTBz279w4XEobFXcAKP"
OWN_FILL_EVERY = 10  # one frame in ten carries a fill of the desk
_PRICES = 64  # distinct mark prices the feed cycles through

_E = TypeVar("_E", MarkPrice, FillReceived)


class MangoFeed:
    """Mango fill frames as the venue sends them, each a fresh sequence number."""

    def __init__(
        self, config: MonitorConfig, *, frames: bool, timestamp: int, own_fill_every: int = OWN_FILL_EVERY
    ) -> None:
        """`own_fill_every`: one frame in that many is a fill of the desk (0: none, marks only)."""
        self._codec = build_codec(config, MANGO)
        self._frames = frames
        self._own_fill_every = own_fill_every
        self._timestamp = timestamp
        self._prefix = f'{{"market":"{MARKET}","queue":"{QUEUE}","status":"New","event":"'
        self._raw_other = [
            encode_fill_event(self._fill(OTHER_TAKER, "bid" if k % 2 else "ask", k, timestamp), 0)
            for k in range(_PRICES)
        ]
        self._raw_own = {
            Side.BUY: encode_fill_event(self._fill(DESK_ACCOUNT, "bid", _PRICES // 2, timestamp), 0),
            Side.SELL: encode_fill_event(self._fill(DESK_ACCOUNT, "ask", _PRICES // 2, timestamp), 0),
        }
        self._text = self._frame(self._raw_other[0], 0)
        self._marks = [self._decode(raw, MarkPrice) for raw in self._raw_other]
        self._own = {side: self._decode(raw, FillReceived) for side, raw in self._raw_own.items()}
        self._seq = 0
        self._own_fills = 0

    @staticmethod
    def _fill(taker: str, taker_side: Literal["bid", "ask"], k: int, timestamp: int) -> SimFill:
        return SimFill(MAKER, taker, taker_side, price_lots=14_968 + k, quantity_lots=10, timestamp=timestamp)

    def _frame(self, template: bytes, seq: int) -> str:
        raw = template[:16] + seq.to_bytes(8, "little") + template[24:]  # seq_num sits at offset 16
        return self._prefix + binascii.b2a_base64(raw, newline=False).decode("ascii") + '"}'

    def _decode(self, raw: bytes, kind: type[_E]) -> _E:
        events = self._codec.receive_text(self._frame(raw, 0))
        return next(event for event in events if isinstance(event, kind))

    def position(self, now: float) -> list[Inbound]:
        """Two buys of the desk, so it holds a position that every later mark re-prices."""
        return [self._next(now, Side.BUY), self._next(now, Side.BUY)]

    def next_item(self, now: float) -> Inbound:
        return self._next(now, self._next_own_side())

    def next_frame(self) -> str:
        """The next frame's text only (the same stream as `next_item`), for a sender that frames it."""
        own = self._next_own_side()
        self._seq += 1
        return self._frame(self._raw_own[own] if own is not None else self._raw_other[self._seq % _PRICES], self._seq)

    def own_fill_frame(self, side: Side, quantity_lots: int) -> str:
        """A fill of the desk of `quantity_lots` at the middle price, with the next sequence number."""
        self._seq += 1
        taker_side: Literal["bid", "ask"] = "bid" if side is Side.BUY else "ask"
        fill = SimFill(MAKER, DESK_ACCOUNT, taker_side, 14_968 + _PRICES // 2, quantity_lots, self._timestamp)
        return self._frame(encode_fill_event(fill, 0), self._seq)

    def _next_own_side(self) -> Side | None:
        if self._own_fill_every <= 0 or (self._seq + 1) % self._own_fill_every != 0:
            return None
        self._own_fills += 1
        return Side.SELL if self._own_fills % 2 else Side.BUY

    def _next(self, now: float, own: Side | None) -> Inbound:
        self._seq += 1
        seq = self._seq
        if self._frames:
            text = self._frame(self._raw_own[own] if own is not None else self._raw_other[seq % _PRICES], seq)
            return Inbound(MANGO, now, text, self._codec.receive_text(text))
        events: list[Event] = [self._marks[seq % _PRICES]]
        if own is not None:
            fill_key = f"{QUEUE}:{seq}:bench:taker"
            events.append(msgspec.structs.replace(self._own[own], fill_key=fill_key, sequence=seq))
        return Inbound(MANGO, now, self._text, events)
