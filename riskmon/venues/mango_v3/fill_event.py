"""The 200-byte Mango v3 FillEvent (protocols.md §1.3): bytes in, typed fields out."""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from decimal import Decimal
from typing import NamedTuple

import base58
import msgspec

from riskmon.venues.codec_support import BoundedMemo

FILL_EVENT_SIZE = 200
EVENT_TYPE_FILL = 0

# event_type, taker_side, maker_slot, maker_out, version, market_fees_applied, 2 pad,
# timestamp, seq_num, maker, maker_order_id, maker_client_order_id, maker_fee, best_initial,
# maker_timestamp, taker, taker_order_id, taker_client_order_id, taker_fee, price, quantity
_LAYOUT = struct.Struct("<6B2xQQ32s16sQ16sqQ32s16sQ16sqq")
assert _LAYOUT.size == FILL_EVENT_SIZE
# Only what a risk monitor reads: event_type, taker_side, timestamp, seq_num, maker, maker_fee,
# taker, taker_fee, price, quantity. The rest stays packed, so nothing else is converted.
_CORE_LAYOUT = struct.Struct("<BB6xQQ32s24x16s16x32s24x16sqq")
assert _CORE_LAYOUT.size == FILL_EVENT_SIZE
# Less again, for a fill of nobody we know (nearly every frame), which only moves the mark:
# event_type, taker_side, timestamp, maker, taker, price. Two pubkeys and four integers instead of
# four byte strings and six integers.
_MARK_LAYOUT = struct.Struct("<BB6xQ8x32s56x32s40xq8x")
assert _MARK_LAYOUT.size == FILL_EVENT_SIZE

_I80F48_ONE = Decimal(2**48)


class FillEventError(ValueError):
    pass


class FillEvent(msgspec.Struct, frozen=True, gc=False):
    event_type: int
    taker_side: int  # 0 = bid (taker bought), 1 = ask (taker sold)
    maker_slot: int
    maker_out: bool
    version: int
    market_fees_applied: bool
    timestamp: int  # unix seconds, on-chain clock
    seq_num: int
    maker: str  # base58 MangoAccount
    maker_order_id: int
    maker_client_order_id: int
    maker_fee: Decimal  # fee rate; negative is a rebate
    best_initial: int
    maker_timestamp: int
    taker: str
    taker_order_id: int
    taker_client_order_id: int
    taker_fee: Decimal
    price_lots: int
    quantity_lots: int  # base lots (the on-chain comment calling them quote lots is wrong)


class FillCore(NamedTuple):
    """The fields of a FillEvent that a fill or a mark needs, with pubkeys and fees still raw.

    Comparing raw pubkeys against the desks' decoded accounts means a fill of nobody we know
    costs no base58 encoding at all.
    """

    event_type: int
    taker_side: int  # 0 = bid (taker bought), 1 = ask (taker sold)
    timestamp: int
    seq_num: int
    maker_key: bytes  # the 32 raw bytes of the maker's MangoAccount
    maker_fee_raw: bytes  # I80F48: see fee_rate
    taker_key: bytes
    taker_fee_raw: bytes
    price_lots: int
    quantity_lots: int


# FillCore's fields as a plain tuple, in its order.
FillCoreFields = tuple[int, int, int, int, bytes, bytes, bytes, bytes, int, int]

# A FillCore from its fields without FillCore._make's Python frame (a third of the decode).
fill_core: Callable[[FillCoreFields], FillCore] = functools.partial(tuple.__new__, FillCore)
_unpack_core = _CORE_LAYOUT.unpack
# The mark's fields of a 200-byte event, unchecked: the caller checks the size, type and side.
unpack_mark_fields: Callable[[bytes], tuple[int, int, int, bytes, bytes, int]] = _MARK_LAYOUT.unpack


def i80f48(raw: bytes) -> Decimal:
    """I80F48 fixed point: a 128-bit two's complement integer over 2**48, converted without float loss."""
    return Decimal(int.from_bytes(raw, "little", signed=True)) / _I80F48_ONE


# A market's fee rates are a handful of values: each is converted once.
fee_rate: BoundedMemo[bytes, Decimal] = BoundedMemo(i80f48, 4096)


@functools.lru_cache(maxsize=65_536)
def pubkey_text(key: bytes) -> str:
    """The base58 text of a raw pubkey; accounts repeat heavily and the base58 package is pure Python."""
    return base58.b58encode(key).decode("ascii")


def decode_fill_core(raw: bytes) -> FillCore:
    """What decode_fill_event checks, with the same errors, returning only the fields a fill needs."""
    return fill_core(fill_core_fields(raw))


def fill_core_fields(raw: bytes) -> FillCoreFields:
    """decode_fill_core as a plain tuple, checked the same way."""
    if len(raw) != FILL_EVENT_SIZE:
        raise FillEventError(f"event is {len(raw)} bytes, expected {FILL_EVENT_SIZE}")
    fields: FillCoreFields = _unpack_core(raw)
    event_type, taker_side = fields[0], fields[1]
    if event_type != EVENT_TYPE_FILL:
        raise FillEventError(f"event type {event_type} is not a fill")
    if taker_side > 1:
        raise FillEventError(f"taker side {taker_side} is neither bid nor ask")
    return fields


def decode_fill_event(raw: bytes) -> FillEvent:
    """Every field of the event, pubkeys in base58 (the codec needs only decode_fill_core)."""
    if len(raw) != FILL_EVENT_SIZE:
        raise FillEventError(f"event is {len(raw)} bytes, expected {FILL_EVENT_SIZE}")
    (
        event_type,
        taker_side,
        maker_slot,
        maker_out,
        version,
        fees_applied,
        timestamp,
        seq_num,
        maker,
        maker_order_id,
        maker_client_order_id,
        maker_fee,
        best_initial,
        maker_timestamp,
        taker,
        taker_order_id,
        taker_client_order_id,
        taker_fee,
        price,
        quantity,
    ) = _LAYOUT.unpack(raw)
    if event_type != EVENT_TYPE_FILL:
        raise FillEventError(f"event type {event_type} is not a fill")
    if taker_side > 1:
        raise FillEventError(f"taker side {taker_side} is neither bid nor ask")
    return FillEvent(
        event_type=event_type,
        taker_side=taker_side,
        maker_slot=maker_slot,
        maker_out=bool(maker_out),
        version=version,
        market_fees_applied=bool(fees_applied),
        timestamp=timestamp,
        seq_num=seq_num,
        maker=pubkey_text(maker),
        maker_order_id=int.from_bytes(maker_order_id, "little", signed=True),
        maker_client_order_id=maker_client_order_id,
        maker_fee=fee_rate(maker_fee),
        best_initial=best_initial,
        maker_timestamp=maker_timestamp,
        taker=pubkey_text(taker),
        taker_order_id=int.from_bytes(taker_order_id, "little", signed=True),
        taker_client_order_id=taker_client_order_id,
        taker_fee=fee_rate(taker_fee),
        price_lots=price,
        quantity_lots=quantity,
    )
