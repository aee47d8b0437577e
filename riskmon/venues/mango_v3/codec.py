"""Mango v3 fills feed codec (protocols.md §1.2): text frames in, normalized events out.

Frames are either a per-market checkpoint (`events`: every fill still in the queue's ring
window) or an update (`event` + `status` New/Revoke). Only fills where a desk account is maker
or taker become FillReceived; every New fill, ours or not, moves the market's mark price.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Mapping
from typing import Literal

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
from riskmon.venues.mango_v3.fill_event import FillEvent, FillEventError, decode_fill_event
from riskmon.venues.mango_v3.markets import LotConverter, market_converters


class _Frame(msgspec.Struct, frozen=True):
    # Unknown keys are tolerated: the producer added slot/write_version in 2022 and may add more.
    market: str
    queue: str
    event: str | None = None
    events: list[str] | None = None
    status: Literal["New", "Revoke"] | None = None
    slot: int | None = None
    write_version: int | None = None


_decoder = msgspec.json.Decoder(_Frame)


class MangoV3FillsCodec:
    def __init__(
        self,
        venue: str,
        accounts: Mapping[str, str],
        markets: Mapping[str, MarketLots] | None = None,
    ) -> None:
        """`accounts` maps each desk's MangoAccount pubkey to the desk that owns it."""
        self.venue = venue
        self._owners = dict(accounts)
        self._markets = market_converters(markets or {})

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
            frame = _decoder.decode(text)
        except msgspec.ValidationError as exc:
            return [self._malformed(f"unexpected frame shape: {exc}")]
        except msgspec.DecodeError:
            return [self._malformed("not JSON")]
        if frame.events is not None and frame.event is None:
            return self._checkpoint(frame, frame.events)
        if frame.event is not None and frame.status is not None and frame.events is None:
            return self._update(frame, frame.event, frame.status)
        return [self._malformed("neither a checkpoint nor a New/Revoke update")]

    def _malformed(self, reason: str) -> FrameMalformed:
        return FrameMalformed(self.venue, reason)

    def _decode(self, encoded: str) -> tuple[bytes, FillEvent]:
        try:
            raw = binascii.a2b_base64(encoded, strict_mode=True)
        except binascii.Error:
            raise FillEventError("event is not valid base64") from None
        return raw, decode_fill_event(raw)

    def _update(self, frame: _Frame, encoded: str, status: Literal["New", "Revoke"]) -> list[Event]:
        try:
            raw, fill = self._decode(encoded)
        except FillEventError as exc:
            return [self._malformed(f"{frame.market}: {exc}")]
        lots = self._markets.get(frame.market)
        out: list[Event] = []
        if status == "Revoke":
            for _account, role in self._our_roles(fill):
                out.append(
                    FillRevoked(
                        venue=self.venue,
                        fill_key=_fill_key(frame.queue, fill.seq_num, raw, role),
                        stream=frame.queue,
                        market=frame.market,
                        sequence=fill.seq_num,
                    )
                )
            return out
        if lots is not None:
            out.append(MarkPrice(self.venue, frame.market, lots.price(fill.price_lots), float(fill.timestamp)))
        fills = self._our_fills(frame, raw, fill, lots)
        if isinstance(fills, FrameMalformed):
            return [fills]
        out.extend(fills)
        return out

    def _checkpoint(self, frame: _Frame, encoded_events: list[str]) -> list[Event]:
        decoded: list[tuple[bytes, FillEvent]] = []
        for encoded in encoded_events:
            try:
                decoded.append(self._decode(encoded))
            except FillEventError as exc:
                # A checkpoint with one unreadable event cannot say what the window holds, and
                # merging it could void a live fill: drop the whole frame.
                return [self._malformed(f"{frame.market} checkpoint: {exc}")]
        lots = self._markets.get(frame.market)
        ours: list[FillReceived] = []
        for raw, fill in decoded:
            fills = self._our_fills(frame, raw, fill, lots)
            if isinstance(fills, FrameMalformed):
                return [fills]
            ours.extend(fills)
        window_start = min((fill.seq_num for _, fill in decoded), default=None)
        window_end = max((fill.seq_num for _, fill in decoded), default=None)
        out: list[Event] = []
        if decoded and lots is not None:
            newest = max(decoded, key=lambda item: item[1].seq_num)[1]
            out.append(MarkPrice(self.venue, frame.market, lots.price(newest.price_lots), float(newest.timestamp)))
        out.append(
            FillSnapshot(self.venue, frame.queue, frame.market, tuple(ours), window_start, window_end, frame.slot)
        )
        return out

    def _our_roles(self, fill: FillEvent) -> list[tuple[str, Liquidity]]:
        roles: list[tuple[str, Liquidity]] = []
        if fill.maker in self._owners:
            roles.append((fill.maker, Liquidity.MAKER))
        if fill.taker in self._owners:
            roles.append((fill.taker, Liquidity.TAKER))
        return roles

    def _our_fills(
        self, frame: _Frame, raw: bytes, fill: FillEvent, lots: LotConverter | None
    ) -> list[FillReceived] | FrameMalformed:
        roles = self._our_roles(fill)
        if not roles:
            return []
        if lots is None:
            # Never guess units for a desk's own fill: surface it as a counted, logged drop.
            return self._malformed(f"fill on {frame.market} has no lot sizes configured")
        taker_side = Side.BUY if fill.taker_side == 0 else Side.SELL
        out = []
        for account, role in roles:
            is_taker = role is Liquidity.TAKER
            out.append(
                FillReceived(
                    venue=self.venue,
                    desk=self._owners[account],
                    account=account,
                    market=frame.market,
                    side=taker_side if is_taker else taker_side.opposite(),
                    quantity=lots.quantity(fill.quantity_lots),
                    price=lots.price(fill.price_lots),
                    fill_key=_fill_key(frame.queue, fill.seq_num, raw, role),
                    stream=frame.queue,
                    sequence=fill.seq_num,
                    liquidity=role,
                    fee_rate=fill.taker_fee if is_taker else fill.maker_fee,
                    venue_ts=float(fill.timestamp),
                    as_of=frame.slot,
                )
            )
        return out


def _fill_key(queue: str, seq_num: int, raw: bytes, role: Liquidity) -> str:
    # After a fork a different fill can reuse a seq_num, so the bytes are part of the identity;
    # the role separates the two sides of a fill between two of our own accounts.
    digest = hashlib.blake2b(raw, digest_size=12).hexdigest()
    return f"{queue}:{seq_num}:{digest}:{role.value}"
