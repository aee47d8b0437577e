"""Mango v3 fills feed codec (protocols.md §1.2): text frames in, normalized events out.

Frames are either a per-market checkpoint (`events`: every fill still in the queue's ring
window) or an update (`event` + `status` New/Revoke). Only fills where a desk account is maker
or taker become FillReceived; every New fill, ours or not, moves the market's mark price.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Mapping
from decimal import Decimal
from typing import Literal

import base58
import msgspec

from riskmon.config.schema import MarketLots
from riskmon.events import (
    Event,
    FillReceived,
    FillRevoked,
    FillSnapshot,
    FrameMalformed,
    Liquidity,
    MarkPrice,
    Side,
)
from riskmon.venues.codec_support import BoundedMemo
from riskmon.venues.mango_v3.fill_event import (
    EVENT_TYPE_FILL,
    FILL_EVENT_SIZE,
    FillCore,
    FillEventError,
    decode_fill_core,
    fee_rate,
    unpack_mark_fields,
)
from riskmon.venues.mango_v3.markets import LotConverter, market_converters


class _Frame(msgspec.Struct, frozen=True, gc=False):
    # Unknown keys are tolerated: the producer added slot/write_version in 2022 and may add more.
    market: str
    queue: str
    event: str | None = None
    events: list[str] | None = None
    status: Literal["New", "Revoke"] | None = None
    slot: int | None = None
    write_version: int | None = None


class _WireFrame(msgspec.Struct, frozen=True, gc=False):
    """_Frame with the events base64-decoded by msgspec itself, in C: half the cost of binascii.

    msgspec's base64 is never laxer than binascii's strict mode (it refuses some padding that
    binascii takes), so a frame it refuses is decoded again as a _Frame: same events, same errors.
    """

    market: str
    queue: str
    event: bytes | None = None
    events: list[bytes] | None = None
    status: Literal["New", "Revoke"] | None = None
    slot: int | None = None
    write_version: int | None = None


_decoder = msgspec.json.Decoder(_Frame)
_wire_decoder = msgspec.json.Decoder(_WireFrame)

# A market trades at a few thousand distinct prices and sizes at a time: each Decimal is built once.
_LOTS_MEMO_SIZE = 8192


class _MarketUnits:
    """One market's exact lots -> UI conversions, each distinct value built once."""

    __slots__ = ("price", "quantity")

    def __init__(self, converter: LotConverter) -> None:
        self.price: BoundedMemo[int, Decimal] = BoundedMemo(converter.price, _LOTS_MEMO_SIZE)
        self.quantity: BoundedMemo[int, Decimal] = BoundedMemo(converter.quantity, _LOTS_MEMO_SIZE)


def _desk_keys(accounts: Mapping[str, str]) -> dict[bytes, tuple[str, str]]:
    """Raw 32-byte pubkey -> (account, desk) for each configured account that is a canonical pubkey.

    Any other string never equals the base58 text of a 32-byte key, so it could never match a fill.
    """
    keys: dict[bytes, tuple[str, str]] = {}
    for account, desk in accounts.items():
        try:
            key = base58.b58decode(account)
        except ValueError:
            continue
        if len(key) == 32 and base58.b58encode(key).decode("ascii") == account:
            keys[key] = (account, desk)
    return keys


class MangoV3FillsCodec:
    def __init__(
        self,
        venue: str,
        accounts: Mapping[str, str],
        markets: Mapping[str, MarketLots] | None = None,
    ) -> None:
        """`accounts` maps each desk's MangoAccount pubkey to the desk that owns it."""
        self.venue = venue
        self._desk_keys = _desk_keys(accounts)
        self._markets = {name: _MarketUnits(converter) for name, converter in market_converters(markets or {}).items()}
        # Each market's price memo on its own: the one lookup a fill of nobody we know needs.
        self._prices = {name: units.price for name, units in self._markets.items()}

    def connection_opened(self) -> None:
        pass  # the legacy feed sends checkpoints unasked: nothing to reset or send

    def receive_bytes(self, data: bytes) -> list[Event]:
        return [FrameMalformed(self.venue, "binary frame on a text-only feed")]

    def receive_rest(self, source: str, body: str) -> list[Event]:
        return [FrameMalformed(self.venue, f"the Mango fills feed has no REST call {source!r}")]

    def data_to_send(self) -> list[str | bytes]:
        return []  # the legacy feed has no subscribe, auth or heartbeat

    def receive_text(self, text: str) -> list[Event]:
        try:
            frame = _wire_decoder.decode(text)
        except msgspec.DecodeError:
            return self._receive_strict(text)
        raw = frame.event
        if raw is not None and frame.status == "New" and frame.events is None and len(raw) == FILL_EVENT_SIZE:
            # Nearly every frame: a new fill of other traders, which only moves the mark. Only what
            # the mark and the checks need is unpacked; anything else takes the checked route.
            event_type, taker_side, timestamp, maker_key, taker_key, price_lots = unpack_mark_fields(raw)
            if event_type == EVENT_TYPE_FILL and taker_side <= 1:
                desk_keys = self._desk_keys
                if maker_key in desk_keys or taker_key in desk_keys:
                    return self._update(frame, raw, "New")
                prices = self._prices.get(frame.market)
                if prices is None:
                    return []
                return [MarkPrice(self.venue, frame.market, prices[price_lots], float(timestamp))]
        return self._route(frame)

    def _receive_strict(self, text: str) -> list[Event]:
        """Malformed, or base64 only binascii takes: the strict decode says which."""
        try:
            frame = _decoder.decode(text)
        except msgspec.ValidationError as exc:
            return [self._malformed(f"unexpected frame shape: {exc}")]
        except msgspec.DecodeError:
            return [self._malformed("not JSON")]
        return self._route(frame)

    def _route(self, frame: _Frame | _WireFrame) -> list[Event]:
        event = frame.event
        if event is not None and frame.status is not None and frame.events is None:
            return self._update(frame, event, frame.status)
        if frame.events is not None and event is None:
            return self._checkpoint(frame, frame.events)
        return [self._malformed("neither a checkpoint nor a New/Revoke update")]

    def _malformed(self, reason: str) -> FrameMalformed:
        return FrameMalformed(self.venue, reason)

    def _update(
        self, frame: _Frame | _WireFrame, encoded: str | bytes, status: Literal["New", "Revoke"]
    ) -> list[Event]:
        try:
            # bytes: msgspec already decoded the base64 (see _WireFrame).
            raw = encoded if isinstance(encoded, bytes) else _strict_base64(encoded)
            fill = decode_fill_core(raw)
        except FillEventError as exc:
            return [self._malformed(f"{frame.market}: {exc}")]
        maker = self._desk_keys.get(fill.maker_key)
        taker = self._desk_keys.get(fill.taker_key)
        if status == "Revoke":
            # A revoke carries the voided fill's exact bytes: the same keys as the fills it voids.
            prefix = _fill_key_prefix(frame.queue, fill.seq_num, raw)
            return [
                FillRevoked(self.venue, prefix + role, frame.queue, frame.market, fill.seq_num)
                for side, role in ((maker, _MAKER_ROLE), (taker, _TAKER_ROLE))
                if side is not None
            ]
        units = self._markets.get(frame.market)
        out: list[Event] = []
        if units is not None:
            out.append(MarkPrice(self.venue, frame.market, units.price[fill.price_lots], float(fill.timestamp)))
        if maker is None and taker is None:
            return out
        fills = self._our_fills(frame, raw, fill, maker, taker, units)
        if isinstance(fills, FrameMalformed):
            return [fills]
        out += fills
        return out

    def _checkpoint(self, frame: _Frame | _WireFrame, encoded_events: list[str] | list[bytes]) -> list[Event]:
        decoded: list[tuple[bytes, FillCore]] = []
        for encoded in encoded_events:
            try:
                raw = encoded if isinstance(encoded, bytes) else _strict_base64(encoded)
                decoded.append((raw, decode_fill_core(raw)))
            except FillEventError as exc:
                # A checkpoint with one unreadable event cannot say what the window holds, and
                # merging it could void a live fill: drop the whole frame.
                return [self._malformed(f"{frame.market} checkpoint: {exc}")]
        units = self._markets.get(frame.market)
        desk_keys = self._desk_keys
        ours: list[FillReceived] = []
        for raw, fill in decoded:
            maker = desk_keys.get(fill.maker_key)
            taker = desk_keys.get(fill.taker_key)
            if maker is None and taker is None:
                continue
            fills = self._our_fills(frame, raw, fill, maker, taker, units)
            if isinstance(fills, FrameMalformed):
                return [fills]
            ours += fills
        out: list[Event] = []
        window_start = window_end = None
        if decoded:
            window_start = min(fill.seq_num for _, fill in decoded)
            window_end = max(fill.seq_num for _, fill in decoded)
            if units is not None:
                newest = max(decoded, key=lambda item: item[1].seq_num)[1]
                out.append(MarkPrice(self.venue, frame.market, units.price[newest.price_lots], float(newest.timestamp)))
        out.append(
            FillSnapshot(self.venue, frame.queue, frame.market, tuple(ours), window_start, window_end, frame.slot)
        )
        return out

    def _our_fills(
        self,
        frame: _Frame | _WireFrame,
        raw: bytes,
        fill: FillCore,
        maker: tuple[str, str] | None,
        taker: tuple[str, str] | None,
        units: _MarketUnits | None,
    ) -> list[FillReceived] | FrameMalformed:
        """A FillReceived for each side of the fill that is one of our desks: maker first."""
        if units is None:
            # Never guess units for a desk's own fill: surface it as a counted, logged drop.
            return self._malformed(f"fill on {frame.market} has no lot sizes configured")
        venue, market, queue, seq_num = self.venue, frame.market, frame.queue, fill.seq_num
        quantity = units.quantity[fill.quantity_lots]
        price = units.price[fill.price_lots]
        prefix = _fill_key_prefix(queue, seq_num, raw)
        venue_ts = float(fill.timestamp)
        taker_bought = fill.taker_side == 0
        out = []
        # Positional: FillReceived(venue, desk, account, market, side, quantity, price, fill_key,
        # stream, sequence, liquidity, fee_rate, venue_ts, as_of).
        if maker is not None:
            account, desk = maker
            side = Side.SELL if taker_bought else Side.BUY  # the maker takes the other side
            fill_key = prefix + _MAKER_ROLE
            fee = fee_rate[fill.maker_fee_raw]
            out.append(
                FillReceived(
                    venue, desk, account, market, side, quantity, price, fill_key,
                    queue, seq_num, Liquidity.MAKER, fee, venue_ts, frame.slot,
                )
            )  # fmt: skip
        if taker is not None:
            account, desk = taker
            side = Side.BUY if taker_bought else Side.SELL
            fill_key = prefix + _TAKER_ROLE
            fee = fee_rate[fill.taker_fee_raw]
            out.append(
                FillReceived(
                    venue, desk, account, market, side, quantity, price, fill_key,
                    queue, seq_num, Liquidity.TAKER, fee, venue_ts, frame.slot,
                )
            )  # fmt: skip
        return out


_MAKER_ROLE = Liquidity.MAKER.value
_TAKER_ROLE = Liquidity.TAKER.value


def _strict_base64(encoded: str) -> bytes:
    try:
        return binascii.a2b_base64(encoded, strict_mode=True)
    except binascii.Error:
        raise FillEventError("event is not valid base64") from None


def _fill_key_prefix(queue: str, seq_num: int, raw: bytes) -> str:
    """A fill's key without its role: `queue:seq:digest:`, then `maker` or `taker`.

    After a fork a different fill can reuse a seq_num, so the bytes are part of the identity;
    the role separates the two sides of a fill between two of our own accounts.
    """
    digest = hashlib.blake2b(raw, digest_size=12).hexdigest()
    return f"{queue}:{seq_num}:{digest}:"
