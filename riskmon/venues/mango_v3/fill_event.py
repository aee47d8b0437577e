"""The 200-byte Mango v3 FillEvent (protocols.md §1.3): bytes in, typed fields out."""

from __future__ import annotations

import struct
from decimal import Decimal

import base58
import msgspec

FILL_EVENT_SIZE = 200
EVENT_TYPE_FILL = 0

# event_type, taker_side, maker_slot, maker_out, version, market_fees_applied, 2 pad,
# timestamp, seq_num, maker, maker_order_id, maker_client_order_id, maker_fee, best_initial,
# maker_timestamp, taker, taker_order_id, taker_client_order_id, taker_fee, price, quantity
_LAYOUT = struct.Struct("<6B2xQQ32s16sQ16sqQ32s16sQ16sqq")
assert _LAYOUT.size == FILL_EVENT_SIZE

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


def i80f48(raw: bytes) -> Decimal:
    """I80F48 fixed point: a 128-bit two's complement integer over 2**48, converted without float loss."""
    return Decimal(int.from_bytes(raw, "little", signed=True)) / _I80F48_ONE


def decode_fill_event(raw: bytes) -> FillEvent:
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
        maker=base58.b58encode(maker).decode("ascii"),
        maker_order_id=int.from_bytes(maker_order_id, "little", signed=True),
        maker_client_order_id=maker_client_order_id,
        maker_fee=i80f48(maker_fee),
        best_initial=best_initial,
        maker_timestamp=maker_timestamp,
        taker=base58.b58encode(taker).decode("ascii"),
        taker_order_id=int.from_bytes(taker_order_id, "little", signed=True),
        taker_client_order_id=taker_client_order_id,
        taker_fee=i80f48(taker_fee),
        price_lots=price,
        quantity_lots=quantity,
    )
