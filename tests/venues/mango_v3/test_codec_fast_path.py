"""The Mango v3 codec's route for other traders' fills, on recorded frames.

A new fill of nobody we know is read from a few unpacked fields and becomes a mark; everything
else (a desk's fill, a revoke, a checkpoint, an event that fails a check) takes the checked route.
Both are held to the full decode of the same bytes (decode_fill_event and the lot conversion).
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import pytest

from riskmon.events import FillReceived, FillRevoked, FillSnapshot, FrameMalformed, Liquidity, MarkPrice, Side
from riskmon.venues.mango_v3.codec import MangoV3FillsCodec
from riskmon.venues.mango_v3.fill_event import decode_fill_event, pubkey_text, unpack_mark_fields
from riskmon.venues.mango_v3.markets import MAINNET_LOTS, LotConverter
from riskmon.venues.mango_v3.sim_events import SimFill, encode_fill_event

ALPHA = "CGcrpkxyx92vjyQApsr1jTN6M5PeERKSEaH1zskzccRG"
BETA = "3Ux4jMr9S5ZtUyuR9jPSj4oeZ25cFr3gh7J6XMwpuyjP"
NOBODY = "FE8o2cp5PmvTxwwk5JowWUXSFJusK7WoiZGhWT7mgXvT"
SOL_QUEUE = "31cKs646dt1YkA3zPyxZ7rUAkxTBz279w4XEobFXcAKP"
SOL = LotConverter(MAINNET_LOTS["SOL-PERP"])


def _update(raw: bytes, status: str = "New", market: str = "SOL-PERP", **extra: Any) -> str:
    return json.dumps(
        {"market": market, "queue": SOL_QUEUE, "status": status, "event": base64.b64encode(raw).decode(), **extra}
    )


def _recorded_events(mango_real: dict[str, Any]) -> list[bytes]:
    checkpoint = json.loads(mango_real["checkpoint_frame"])
    update = json.loads(mango_real["update_frame"])
    return [base64.b64decode(e) for e in [*checkpoint["events"], update["event"]]]


def test_the_mark_fields_are_those_of_the_full_decode(mango_real: dict[str, Any]) -> None:
    for raw in _recorded_events(mango_real):
        full = decode_fill_event(raw)
        event_type, taker_side, timestamp, maker, taker, price_lots = unpack_mark_fields(raw)
        assert (event_type, taker_side, timestamp, price_lots) == (0, full.taker_side, full.timestamp, full.price_lots)
        assert (pubkey_text(maker), pubkey_text(taker)) == (full.maker, full.taker)


@pytest.mark.parametrize("accounts", [{NOBODY: "gamma"}, {ALPHA: "alpha"}, {BETA: "beta"}, {ALPHA: "a", BETA: "b"}])
@pytest.mark.parametrize("status", ["New", "Revoke"])
def test_every_recorded_fill_gives_the_events_of_its_full_decode(
    mango_real: dict[str, Any], accounts: dict[str, str], status: str
) -> None:
    codec = MangoV3FillsCodec("mango", accounts)
    ours = 0
    for raw in _recorded_events(mango_real):
        frame = _update(raw, status)
        events = codec.receive_text(frame)
        full = decode_fill_event(raw)
        mine = [role for role, key in ((Liquidity.MAKER, full.maker), (Liquidity.TAKER, full.taker)) if key in accounts]
        ours += len(mine)
        if status == "Revoke":
            assert [type(e) for e in events] == [FillRevoked] * len(mine)  # a revoke never moves the mark
            new = [e.fill_key for e in codec.receive_text(_update(raw)) if isinstance(e, FillReceived)]
            assert [e.fill_key for e in events if isinstance(e, FillRevoked)] == new  # reversed exactly
            continue
        mark = MarkPrice("mango", "SOL-PERP", SOL.price(full.price_lots), float(full.timestamp))
        assert events[0] == mark
        fills = [f for f in events[1:] if isinstance(f, FillReceived)]
        assert len(fills) == len(events) - 1
        assert [(f.liquidity, f.account) for f in fills] == [
            (role, full.maker if role is Liquidity.MAKER else full.taker) for role in mine
        ]
        for fill in fills:
            taker_side = Side.BUY if full.taker_side == 0 else Side.SELL
            is_taker = fill.liquidity is Liquidity.TAKER
            assert fill.side == (taker_side if is_taker else taker_side.opposite())
            assert (fill.price, fill.quantity) == (mark.price, SOL.quantity(full.quantity_lots))
            assert fill.fee_rate == (full.taker_fee if is_taker else full.maker_fee)
            assert (fill.sequence, fill.venue_ts, fill.stream) == (full.seq_num, mark.venue_ts, SOL_QUEUE)
    if accounts != {NOBODY: "gamma"}:
        assert ours > 0  # the recorded fills include the desks' own


def test_a_fill_between_two_of_our_accounts_is_two_fills_that_one_revoke_reverses() -> None:
    codec = MangoV3FillsCodec("mango", {ALPHA: "alpha", BETA: "beta"})
    raw = encode_fill_event(SimFill(BETA, ALPHA, "ask", price_lots=9047, quantity_lots=198, timestamp=1647993413), 77)
    mark, maker, taker = codec.receive_text(_update(raw, slot=12))
    assert mark == MarkPrice("mango", "SOL-PERP", Decimal("90.47"), 1647993413.0)
    assert isinstance(maker, FillReceived)
    assert isinstance(taker, FillReceived)
    # The taker sold (ask), so the maker bought; same size and price, one key each.
    assert (maker.desk, maker.side, maker.liquidity, maker.as_of) == ("beta", Side.BUY, Liquidity.MAKER, 12)
    assert (taker.desk, taker.side, taker.liquidity, taker.as_of) == ("alpha", Side.SELL, Liquidity.TAKER, 12)
    assert maker.quantity == taker.quantity == Decimal("1.98")
    assert maker.fill_key.endswith(":maker")
    assert taker.fill_key == maker.fill_key.removesuffix("maker") + "taker"
    assert maker.fill_key.startswith(f"{SOL_QUEUE}:77:")
    revokes = codec.receive_text(_update(raw, "Revoke"))
    assert revokes == [
        FillRevoked("mango", maker.fill_key, SOL_QUEUE, "SOL-PERP", 77),
        FillRevoked("mango", taker.fill_key, SOL_QUEUE, "SOL-PERP", 77),
    ]
    # A checkpoint holding the same bytes names the same fills: merging it double-counts nothing.
    checkpoint = json.dumps({"market": "SOL-PERP", "queue": SOL_QUEUE, "events": [base64.b64encode(raw).decode()]})
    _mark, snapshot = codec.receive_text(checkpoint)
    assert isinstance(snapshot, FillSnapshot)
    assert [f.fill_key for f in snapshot.fills] == [maker.fill_key, taker.fill_key]


@pytest.mark.parametrize("accounts", [{NOBODY: "gamma"}, {ALPHA: "alpha"}])
@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda raw: raw[:199], "SOL-PERP: event is 199 bytes, expected 200"),
        (lambda raw: raw + b"\0", "SOL-PERP: event is 201 bytes, expected 200"),
        (lambda raw: raw + b"\0" * 10_000, "SOL-PERP: event is 10200 bytes, expected 200"),
        (lambda raw: b"\1" + raw[1:], "SOL-PERP: event type 1 is not a fill"),
        (lambda raw: raw[:1] + b"\2" + raw[2:], "SOL-PERP: taker side 2 is neither bid nor ask"),
    ],
)
def test_an_event_that_fails_a_check_is_one_counted_drop_whoever_traded(
    mango_real: dict[str, Any], accounts: dict[str, str], mutate: Any, reason: str
) -> None:
    codec = MangoV3FillsCodec("mango", accounts)
    raw = base64.b64decode(json.loads(mango_real["update_frame"])["event"])
    assert codec.receive_text(_update(mutate(raw))) == [FrameMalformed("mango", reason)]


def test_unknown_and_oversize_fields_are_skipped_on_the_fast_route(mango_real: dict[str, Any]) -> None:
    codec = MangoV3FillsCodec("mango", {NOBODY: "gamma"})
    raw = base64.b64decode(json.loads(mango_real["update_frame"])["event"])
    (mark,) = codec.receive_text(_update(raw))
    padded = _update(raw, slot=128473812, write_version=9, padding="x" * 1_000_000, nested={"a": [1, {"b": None}]})
    assert codec.receive_text(padded) == [mark]
    # Keys the route reads, of the wrong type, are still shape errors.
    (event,) = codec.receive_text(_update(raw, slot="12"))
    assert isinstance(event, FrameMalformed)
    assert event.reason.startswith("unexpected frame shape")


def test_a_strangers_fill_on_a_market_without_lot_sizes_is_nothing_and_a_desks_is_a_drop(
    mango_real: dict[str, Any],
) -> None:
    raw = base64.b64decode(json.loads(mango_real["update_frame"])["event"])
    assert MangoV3FillsCodec("mango", {NOBODY: "gamma"}).receive_text(_update(raw, market="LUNA-PERP")) == []
    (event,) = MangoV3FillsCodec("mango", {ALPHA: "alpha"}).receive_text(_update(raw, market="LUNA-PERP"))
    assert event == FrameMalformed("mango", "fill on LUNA-PERP has no lot sizes configured")
