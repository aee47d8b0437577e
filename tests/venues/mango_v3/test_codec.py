"""The Mango v3 codec against real frames from Mango's documentation: bytes in, events out."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import pytest

from riskmon.events import FillReceived, FillRevoked, FillSnapshot, FrameMalformed, Liquidity, MarkPrice, Side
from riskmon.venues.mango_v3.codec import MangoV3FillsCodec
from riskmon.venues.mango_v3.fill_event import FILL_EVENT_SIZE, FillEventError, decode_fill_event, i80f48
from riskmon.venues.mango_v3.markets import MAINNET_LOTS, LotConverter

ALPHA = "CGcrpkxyx92vjyQApsr1jTN6M5PeERKSEaH1zskzccRG"  # taker of the update fill, 34 checkpoint fills
BETA = "3Ux4jMr9S5ZtUyuR9jPSj4oeZ25cFr3gh7J6XMwpuyjP"  # maker of the update fill
SOL_QUEUE = "31cKs646dt1YkA3zPyxZ7rUAkxTBz279w4XEobFXcAKP"


@pytest.fixture
def codec() -> MangoV3FillsCodec:
    return MangoV3FillsCodec("mango", {ALPHA: "alpha", BETA: "beta"})


def test_every_real_checkpoint_event_decodes_to_a_well_formed_fill(mango_real: dict[str, Any]) -> None:
    frame = json.loads(mango_real["checkpoint_frame"])
    assert len(frame["events"]) == 113
    sol = LotConverter(MAINNET_LOTS["SOL-PERP"])
    seqs = []
    for encoded in frame["events"]:
        raw = base64.b64decode(encoded)
        assert len(raw) == FILL_EVENT_SIZE
        fill = decode_fill_event(raw)
        assert fill.event_type == 0
        assert fill.taker_side in (0, 1)
        assert 1_647_900_000 < fill.timestamp < 1_648_000_000  # March 2022, when the docs were written
        assert fill.maker_timestamp <= fill.timestamp
        assert fill.price_lots > 0
        assert fill.quantity_lots > 0
        # SOL traded between $80 and $100 that week; fee rates are small fractions.
        assert Decimal(80) < sol.price(fill.price_lots) < Decimal(100)
        assert abs(fill.maker_fee) < Decimal("0.001")
        assert Decimal(0) < fill.taker_fee < Decimal("0.001")
        assert len(fill.maker) in (43, 44)
        assert len(fill.taker) in (43, 44)
        seqs.append(fill.seq_num)
    assert len(set(seqs)) == 113
    assert max(seqs) - min(seqs) < 256  # the checkpoint is one ring window


def test_real_update_frame_decodes_to_1_98_sol_at_90_47(mango_real: dict[str, Any]) -> None:
    frame = json.loads(mango_real["update_frame"])
    fill = decode_fill_event(base64.b64decode(frame["event"]))
    assert (fill.price_lots, fill.quantity_lots, fill.timestamp, fill.seq_num) == (9047, 198, 1647993413, 1012918)
    assert fill.taker_side == 0
    assert (fill.maker, fill.taker) == (BETA, ALPHA)
    assert fill.maker_fee.quantize(Decimal("0.000001")) == Decimal("-0.000300")
    assert fill.taker_fee.quantize(Decimal("0.000001")) == Decimal("0.000400")
    sol = LotConverter(MAINNET_LOTS["SOL-PERP"])
    assert sol.price(fill.price_lots) == Decimal("90.47")
    assert sol.quantity(fill.quantity_lots) == Decimal("1.98")


def test_update_becomes_a_fill_for_each_desk_side_and_a_mark(
    codec: MangoV3FillsCodec, mango_real: dict[str, Any]
) -> None:
    events = codec.receive_text(mango_real["update_frame"])
    mark, *fills = events
    assert mark == MarkPrice("mango", "SOL-PERP", Decimal("90.47"), 1647993413.0)
    by_desk = {f.desk: f for f in fills if isinstance(f, FillReceived)}
    assert set(by_desk) == {"alpha", "beta"}
    taker, maker = by_desk["alpha"], by_desk["beta"]
    assert (taker.side, taker.liquidity) == (Side.BUY, Liquidity.TAKER)
    assert (maker.side, maker.liquidity) == (Side.SELL, Liquidity.MAKER)  # the maker sold to a buying taker
    for fill in (taker, maker):
        assert fill.quantity == Decimal("1.98")
        assert fill.price == Decimal("90.47")
        assert (fill.market, fill.stream, fill.sequence) == ("SOL-PERP", SOL_QUEUE, 1012918)
    assert taker.fill_key != maker.fill_key


def test_fills_of_other_accounts_only_move_the_mark(mango_real: dict[str, Any]) -> None:
    codec = MangoV3FillsCodec("mango", {"FE8o2cp5PmvTxwwk5JowWUXSFJusK7WoiZGhWT7mgXvT": "gamma"})
    events = codec.receive_text(mango_real["update_frame"])
    assert [type(e) for e in events] == [MarkPrice]


def test_checkpoint_is_a_snapshot_with_the_window_over_all_fills(
    codec: MangoV3FillsCodec, mango_real: dict[str, Any]
) -> None:
    events = codec.receive_text(mango_real["checkpoint_frame"])
    mark, snapshot = events
    assert isinstance(mark, MarkPrice)
    assert isinstance(snapshot, FillSnapshot)
    assert snapshot.window_start == 1012507  # lowest seq of all 113 fills, not only ours
    assert (snapshot.stream, snapshot.market) == (SOL_QUEUE, "SOL-PERP")
    alpha = [f for f in snapshot.fills if f.desk == "alpha"]
    assert len(alpha) == 34
    assert len({f.fill_key for f in snapshot.fills}) == len(snapshot.fills)
    assert mark.venue_ts == 1647992246.0  # the newest fill sets the mark


def test_revoke_names_exactly_the_fill_its_bytes_carry(codec: MangoV3FillsCodec, mango_real: dict[str, Any]) -> None:
    new = [e for e in codec.receive_text(mango_real["update_frame"]) if isinstance(e, FillReceived)]
    revoke_frame = json.loads(mango_real["update_frame"])
    revoke_frame["status"] = "Revoke"
    revokes = codec.receive_text(json.dumps(revoke_frame))
    assert all(isinstance(r, FillRevoked) for r in revokes)
    assert sorted(r.fill_key for r in revokes if isinstance(r, FillRevoked)) == sorted(f.fill_key for f in new)


def _corrupt(frame: str, **changes: Any) -> str:
    data = json.loads(frame)
    data.update(changes)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda f: f[:-7], "not JSON"),
        (lambda f: "[1, 2]", "unexpected frame shape"),
        (lambda f: _corrupt(f, event="!!not-base64!!"), "not valid base64"),
        (lambda f: _corrupt(f, event=base64.b64encode(b"\0" * 120).decode()), "120 bytes"),
        (lambda f: _corrupt(f, event=base64.b64encode(b"\1" + b"\0" * 199).decode()), "not a fill"),
        (lambda f: _corrupt(f, status="Pending"), "unexpected frame shape"),
        (lambda f: _corrupt(f, slot="12"), "unexpected frame shape"),
        (lambda f: _corrupt(f, events=[]), "neither a checkpoint"),
        (lambda f: _corrupt(f, status=None), "neither a checkpoint"),
    ],
)
def test_malformed_frames_become_one_counted_drop(
    codec: MangoV3FillsCodec, mango_real: dict[str, Any], make: Any, reason: str
) -> None:
    events = codec.receive_text(make(mango_real["update_frame"]))
    assert len(events) == 1
    assert isinstance(events[0], FrameMalformed)
    assert reason in events[0].reason


def test_malformed_reason_never_echoes_frame_content(codec: MangoV3FillsCodec) -> None:
    secret = "sk_live_DO_NOT_LOG"
    for frame in (f'{{"market": "{secret}", "queue": 1}}', f"{secret} not json", f'{{"{secret}": 1}}'):
        (event,) = codec.receive_text(frame)
        assert isinstance(event, FrameMalformed)
        assert secret not in event.reason


def test_one_bad_event_drops_the_whole_checkpoint(codec: MangoV3FillsCodec, mango_real: dict[str, Any]) -> None:
    # Merging a partial checkpoint could void a live fill, so none of it is used.
    frame = json.loads(mango_real["checkpoint_frame"])
    frame["events"][40] = frame["events"][40][:-8]
    (event,) = codec.receive_text(json.dumps(frame))
    assert isinstance(event, FrameMalformed)
    assert "checkpoint" in event.reason


def test_binary_frames_are_dropped(codec: MangoV3FillsCodec) -> None:
    (event,) = codec.receive_bytes(b"\x00\x01")
    assert isinstance(event, FrameMalformed)
    assert codec.data_to_send() == []


def test_desk_fill_on_a_market_without_lot_sizes_is_never_guessed(mango_real: dict[str, Any]) -> None:
    codec = MangoV3FillsCodec("mango", {ALPHA: "alpha"})
    (event,) = codec.receive_text(_corrupt(mango_real["update_frame"], market="LUNA-PERP"))
    assert isinstance(event, FrameMalformed)
    assert "LUNA-PERP" in event.reason
    other = MangoV3FillsCodec("mango", {"FE8o2cp5PmvTxwwk5JowWUXSFJusK7WoiZGhWT7mgXvT": "gamma"})
    assert other.receive_text(_corrupt(mango_real["update_frame"], market="LUNA-PERP")) == []


def test_configured_lot_sizes_override_the_builtin_ones(mango_real: dict[str, Any]) -> None:
    from riskmon.config.schema import MarketLots

    lots = {"SOL-PERP": MarketLots(base_lot_size=100_000_000, quote_lot_size=100, base_decimals=9)}
    codec = MangoV3FillsCodec("mango", {ALPHA: "alpha"}, lots)
    fill = next(e for e in codec.receive_text(mango_real["update_frame"]) if isinstance(e, FillReceived))
    assert fill.quantity == Decimal("19.8")
    assert fill.price == Decimal("9.047")


def test_unknown_keys_are_tolerated(codec: MangoV3FillsCodec, mango_real: dict[str, Any]) -> None:
    events = codec.receive_text(_corrupt(mango_real["update_frame"], slot=128473812, write_version=9, extra=True))
    assert sum(isinstance(e, FillReceived) for e in events) == 2


def test_i80f48_is_exact() -> None:
    raw = (3 * 2**47).to_bytes(16, "little", signed=True)  # 1.5
    assert i80f48(raw) == Decimal("1.5")
    assert i80f48((-(2**46)).to_bytes(16, "little", signed=True)) == Decimal("-0.25")


def test_fill_event_rejects_wrong_sizes_and_sides() -> None:
    with pytest.raises(FillEventError, match="expected 200"):
        decode_fill_event(b"\0" * 199)
    with pytest.raises(FillEventError, match="neither bid nor ask"):
        decode_fill_event(b"\0\x07" + b"\0" * 198)


# ---- cheap decoding: the fast paths must say exactly what the strict ones say -------------------


def test_base64_that_only_binascii_takes_is_judged_as_before(codec: MangoV3FillsCodec) -> None:
    # A complete base64 text with a stray "=": binascii's strict mode takes it, msgspec refuses it.
    # The frame falls back to the strict decode and fails on the event's size, not on its shape.
    encoded = base64.b64encode(b"\0" * 198).decode() + "="
    frame = json.dumps({"market": "SOL-PERP", "queue": SOL_QUEUE, "status": "New", "event": encoded})
    (event,) = codec.receive_text(frame)
    assert isinstance(event, FrameMalformed)
    assert event.reason == "SOL-PERP: event is 198 bytes, expected 200"


@pytest.mark.parametrize("status", ["New", "Revoke"])
def test_a_fill_of_nobody_we_know_is_checked_as_strictly_as_ours(codec: MangoV3FillsCodec, status: str) -> None:
    # Other traders' fills skip building a FillCore: the event's type and side are still checked.
    for raw, reason in [
        (b"\2" + b"\0" * 199, "SOL-PERP: event type 2 is not a fill"),
        (b"\0\5" + b"\0" * 198, "SOL-PERP: taker side 5 is neither bid nor ask"),
    ]:
        event = base64.b64encode(raw).decode()
        frame = json.dumps({"market": "SOL-PERP", "queue": SOL_QUEUE, "status": status, "event": event})
        assert codec.receive_text(frame) == [FrameMalformed("mango", reason)]


def test_a_fill_of_nobody_we_know_moves_the_mark_exactly(mango_real: dict[str, Any]) -> None:
    nobody = MangoV3FillsCodec("mango", {"FE8o2cp5PmvTxwwk5JowWUXSFJusK7WoiZGhWT7mgXvT": "gamma"})
    ours = MangoV3FillsCodec("mango", {ALPHA: "alpha"})
    [mark] = nobody.receive_text(mango_real["update_frame"])
    assert mark == ours.receive_text(mango_real["update_frame"])[0]  # the same mark as when the fill is ours
    assert mark == MarkPrice("mango", "SOL-PERP", Decimal("90.47"), mark.venue_ts)


def test_a_wrong_type_event_is_still_a_shape_error(codec: MangoV3FillsCodec) -> None:
    (event,) = codec.receive_text(f'{{"market":"SOL-PERP","queue":"{SOL_QUEUE}","status":"New","event":12345}}')
    assert isinstance(event, FrameMalformed)
    assert event.reason.startswith("unexpected frame shape: Expected `str | null`, got `int`")


def test_accounts_that_are_no_pubkey_never_match_and_do_not_break_the_others(mango_real: dict[str, Any]) -> None:
    # Not base58, a key of the wrong length, and a non-canonical spelling (a leading "1" adds a zero byte).
    codec = MangoV3FillsCodec("mango", {"not-base58!": "x", "abc": "y", "1" + ALPHA: "z", ALPHA: "alpha"})
    fills = [e for e in codec.receive_text(mango_real["update_frame"]) if isinstance(e, FillReceived)]
    assert [(f.desk, f.account, f.liquidity) for f in fills] == [("alpha", ALPHA, Liquidity.TAKER)]


def test_codec_fills_match_the_full_decode_of_every_checkpoint_event(mango_real: dict[str, Any]) -> None:
    frame = json.loads(mango_real["checkpoint_frame"])
    full = [decode_fill_event(base64.b64decode(encoded)) for encoded in frame["events"]]
    codec = MangoV3FillsCodec("mango", {ALPHA: "alpha", BETA: "beta"})
    snapshot = next(e for e in codec.receive_text(mango_real["checkpoint_frame"]) if isinstance(e, FillSnapshot))
    sol = LotConverter(MAINNET_LOTS["SOL-PERP"])
    expected = sorted(
        (fill.seq_num, account, role, sol.price(fill.price_lots), sol.quantity(fill.quantity_lots), fee)
        for fill in full
        for account, role, fee in (
            (fill.maker, Liquidity.MAKER, fill.maker_fee),
            (fill.taker, Liquidity.TAKER, fill.taker_fee),
        )
        if account in (ALPHA, BETA)
    )
    got = sorted((f.sequence, f.account, f.liquidity, f.price, f.quantity, f.fee_rate) for f in snapshot.fills)
    assert got == expected
    assert len(got) >= 34


def test_bounded_memo_computes_each_key_once_and_forgets_when_full() -> None:
    from riskmon.venues.codec_support import BoundedMemo

    calls: list[int] = []

    def square(n: int) -> int:
        calls.append(n)
        return n * n

    memo = BoundedMemo(square, limit=3)
    assert [memo(n) for n in (1, 2, 1, 3, 2)] == [1, 4, 1, 9, 4]
    assert calls == [1, 2, 3]
    assert memo(4) == 16  # the fourth key clears the three before it
    assert len(memo) == 1
    assert memo(1) == 1
    assert calls == [1, 2, 3, 4, 1]
    with pytest.raises(ValueError, match="at least one"):
        BoundedMemo(square, limit=0)
