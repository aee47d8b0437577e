"""Mango v3 EventQueue event encoders for the fills-feed simulator.

Written from protocols.md §1.3 only (never from the adapter's decoder), so that the
simulator and the adapter check each other. All integers are little-endian; the
FillEvent is the BPF ``#[repr(C)]`` layout of 200 bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Literal

import base58

__all__ = [
    "EVENT_SIZE",
    "EVENT_TYPE_FILL",
    "EVENT_TYPE_OUT",
    "SimFill",
    "decode_fill_event_for_tests",
    "encode_fill_event",
    "encode_out_event",
    "event_seq_num",
    "is_fill_event",
]

EVENT_SIZE = 200
EVENT_TYPE_FILL = 0
EVENT_TYPE_OUT = 1

_I80F48_ONE = 2**48
# Enough digits that raw / 2**48 of any 16-byte value is exact (48 fractional digits
# plus at most 39 integer digits), so decode -> encode round-trips bit for bit.
_DECIMAL_PREC = 100

# event_type, taker_side, maker_slot, maker_out, version, market_fees_applied, 2 pad,
# timestamp, seq_num, maker, maker_order_id, maker_client_order_id, maker_fee,
# best_initial, maker_timestamp, taker, taker_order_id, taker_client_order_id,
# taker_fee, price, quantity
_FILL = struct.Struct("<6B2xQQ32s16sQ16sqQ32s16sQ16sqq")
# event_type, side, slot, 5 pad, timestamp, seq_num, owner, quantity, padding to 200
_OUT = struct.Struct("<3B5xQQ32sq136x")
assert _FILL.size == EVENT_SIZE
assert _OUT.size == EVENT_SIZE

_SIDE_CODE: dict[str, int] = {"bid": 0, "ask": 1}
_SIDE_NAME: dict[int, Literal["bid", "ask"]] = {0: "bid", 1: "ask"}


@dataclass(frozen=True)
class SimFill:
    """A fill the simulator is asked to emit.

    The fields after ``taker_client_order_id`` are not needed by a risk monitor but
    exist so that real FillEvents can be re-encoded byte for byte.
    """

    maker: str  # base58 MangoAccount pubkey
    taker: str
    taker_side: Literal["bid", "ask"]
    price_lots: int
    quantity_lots: int  # base lots
    timestamp: int  # unix seconds
    maker_fee: Decimal = Decimal("-0.0003")
    taker_fee: Decimal = Decimal("0.0005")
    maker_order_id: int = 0
    taker_order_id: int = 0
    maker_client_order_id: int = 0
    taker_client_order_id: int = 0
    maker_slot: int = 0
    maker_out: bool = False
    version: int = 1
    market_fees_applied: bool = True
    best_initial: int = 0
    maker_timestamp: int | None = None  # None: same as timestamp


def _pubkey_bytes(key: str, what: str) -> bytes:
    raw = base58.b58decode(key)
    if len(raw) != 32:
        raise ValueError(f"{what} is not a 32-byte base58 pubkey: {key!r}")
    return raw


def _i128(value: int, what: str) -> bytes:
    try:
        return value.to_bytes(16, "little", signed=True)
    except OverflowError:
        raise ValueError(f"{what} does not fit in i128: {value}") from None


def _i80f48(rate: Decimal, what: str) -> bytes:
    with localcontext() as ctx:
        ctx.prec = _DECIMAL_PREC
        raw = int((rate * _I80F48_ONE).to_integral_value(rounding=ROUND_HALF_EVEN))
    return _i128(raw, what)


def _from_i80f48(raw: bytes) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = _DECIMAL_PREC
        return Decimal(int.from_bytes(raw, "little", signed=True)) / Decimal(_I80F48_ONE)


def encode_fill_event(fill: SimFill, seq_num: int) -> bytes:
    """Encode ``fill`` as the 200-byte FillEvent stored at ``seq_num``."""
    if fill.taker_side not in _SIDE_CODE:
        raise ValueError(f"taker_side must be 'bid' or 'ask', not {fill.taker_side!r}")
    maker_ts = fill.timestamp if fill.maker_timestamp is None else fill.maker_timestamp
    try:
        return _FILL.pack(
            EVENT_TYPE_FILL,
            _SIDE_CODE[fill.taker_side],
            fill.maker_slot,
            int(fill.maker_out),
            fill.version,
            int(fill.market_fees_applied),
            fill.timestamp,
            seq_num,
            _pubkey_bytes(fill.maker, "maker"),
            _i128(fill.maker_order_id, "maker_order_id"),
            fill.maker_client_order_id,
            _i80f48(fill.maker_fee, "maker_fee"),
            fill.best_initial,
            maker_ts,
            _pubkey_bytes(fill.taker, "taker"),
            _i128(fill.taker_order_id, "taker_order_id"),
            fill.taker_client_order_id,
            _i80f48(fill.taker_fee, "taker_fee"),
            fill.price_lots,
            fill.quantity_lots,
        )
    except struct.error as exc:
        raise ValueError(f"fill field out of range: {exc}") from None


def encode_out_event(
    seq_num: int, owner: str, timestamp: int, side: int = 0, slot: int = 0, quantity: int = 0
) -> bytes:
    """Encode an Out event (an order leaving the book): it takes a seq number but is no fill."""
    return _OUT.pack(EVENT_TYPE_OUT, side, slot, timestamp, seq_num, _pubkey_bytes(owner, "owner"), quantity)


def is_fill_event(raw: bytes) -> bool:
    return len(raw) == EVENT_SIZE and raw[0] == EVENT_TYPE_FILL


def event_seq_num(raw: bytes) -> int:
    # seq_num sits at offset 16 in every event variant (Fill, Out, Liquidate).
    return int.from_bytes(raw[16:24], "little")


def decode_fill_event_for_tests(raw: bytes) -> dict[str, object]:
    """Decode a FillEvent into the keyword arguments of :class:`SimFill` plus
    ``event_type`` and ``seq_num``. Test helper only; the adapter has its own decoder."""
    if len(raw) != EVENT_SIZE:
        raise ValueError(f"FillEvent must be {EVENT_SIZE} bytes, got {len(raw)}")
    (
        event_type,
        side,
        maker_slot,
        maker_out,
        version,
        fees_applied,
        timestamp,
        seq_num,
        maker,
        maker_oid,
        maker_coid,
        maker_fee,
        best_initial,
        maker_ts,
        taker,
        taker_oid,
        taker_coid,
        taker_fee,
        price,
        quantity,
    ) = _FILL.unpack(raw)
    if event_type != EVENT_TYPE_FILL:
        raise ValueError(f"not a FillEvent (event_type={event_type})")
    return {
        "event_type": event_type,
        "seq_num": seq_num,
        "maker": base58.b58encode(maker).decode("ascii"),
        "taker": base58.b58encode(taker).decode("ascii"),
        "taker_side": _SIDE_NAME[side],
        "price_lots": price,
        "quantity_lots": quantity,
        "timestamp": timestamp,
        "maker_fee": _from_i80f48(maker_fee),
        "taker_fee": _from_i80f48(taker_fee),
        "maker_order_id": int.from_bytes(maker_oid, "little", signed=True),
        "taker_order_id": int.from_bytes(taker_oid, "little", signed=True),
        "maker_client_order_id": maker_coid,
        "taker_client_order_id": taker_coid,
        "maker_slot": maker_slot,
        "maker_out": bool(maker_out),
        "version": version,
        "market_fees_applied": bool(fees_applied),
        "best_initial": best_initial,
        "maker_timestamp": maker_ts,
    }
