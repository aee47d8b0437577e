"""Tests for the legacy Mango v3 fills-feed simulator (protocols.md §1.2-§1.3)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import base58
import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from riskmon.venues.mango_v3.sim_events import event_seq_num
from riskmon.venues.mango_v3.simulator import (
    QUEUE_LEN,
    MalformedKind,
    MangoV3FillsSimulator,
    SimFill,
    SimMarket,
    decode_fill_event_for_tests,
    encode_fill_event,
)
from tests.venues.session_harness import started
from tests.venues.sim_client import recv_json

DATA_FILE = Path(__file__).resolve().parents[2] / "data" / "mango_v3_fills_real.json"
SOL = SimMarket("SOL-PERP", "31cKs646dt1YkA3zPyxZ7rUAkxTBz279w4XEobFXcAKP")
BTC = SimMarket("BTC-PERP", "7t5Me8RieYKsFpfLEV8jnpqcqswNpyWD95ZqgUXuLV8Z")
MARKETS = (SOL, BTC)
CHECKPOINT_KEYS = ["events", "market", "queue", "slot", "write_version"]
UPDATE_KEYS = ["event", "market", "queue", "status", "slot", "write_version"]
TIMEOUT = 5.0
SIM_FILL_FIELDS = {f.name for f in dataclasses.fields(SimFill)}


def pubkey(n: int) -> str:
    return base58.b58encode(bytes([n % 256]) * 32).decode("ascii")


def make_fill(n: int, *, price: int = 9047, side: str = "bid") -> SimFill:
    return SimFill(
        maker=pubkey(n),
        taker=pubkey(n + 100),
        taker_side="bid" if side == "bid" else "ask",
        price_lots=price,
        quantity_lots=10 + n,
        timestamp=1_700_000_000 + n,
    )


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def sim_fill_from(raw: bytes) -> tuple[SimFill, int]:
    fields = decode_fill_event_for_tests(raw)
    seq = fields["seq_num"]
    assert isinstance(seq, int)
    kwargs: dict[str, Any] = {k: v for k, v in fields.items() if k in SIM_FILL_FIELDS}
    return SimFill(**kwargs), seq


# ---- encoder against real frames ------------------------------------------------


@pytest.fixture(scope="module")
def real_frames() -> tuple[dict[str, Any], dict[str, Any]]:
    if not DATA_FILE.is_file():
        pytest.skip(f"real Mango v3 frames not found at {DATA_FILE} (shared/ is beside the repo)")
    data = json.loads(DATA_FILE.read_text())
    return json.loads(data["checkpoint_frame"]), json.loads(data["update_frame"])


def test_encoder_reproduces_real_update_event(real_frames: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _, update = real_frames
    raw = base64.b64decode(update["event"], validate=True)
    fill, seq = sim_fill_from(raw)

    # The worked example of protocols.md §1.4, so the decoder itself is checked too.
    assert (fill.price_lots, fill.quantity_lots, fill.timestamp) == (9047, 198, 1647993413)
    assert fill.taker_side == "bid"
    assert round(fill.maker_fee, 10) == Decimal("-0.0003")
    assert round(fill.taker_fee, 10) == Decimal("0.0004")
    assert fill.taker == "CGcrpkxyx92vjyQApsr1jTN6M5PeERKSEaH1zskzccRG"
    assert encode_fill_event(fill, seq) == raw


def test_encoder_reproduces_all_real_checkpoint_events(
    real_frames: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    checkpoint, _ = real_frames
    events = [base64.b64decode(e, validate=True) for e in checkpoint["events"]]
    assert len(events) == 113
    seqs = []
    for raw in events:
        fill, seq = sim_fill_from(raw)
        assert encode_fill_event(fill, seq) == raw
        seqs.append(seq)
    assert seqs == sorted(seqs)  # oldest to newest


def test_encoder_layout_offsets() -> None:
    fill = SimFill(
        maker=pubkey(1),
        taker=pubkey(2),
        taker_side="ask",
        price_lots=9047,
        quantity_lots=198,
        timestamp=1647993413,
        maker_order_id=-5,
        taker_client_order_id=77,
    )
    raw = encode_fill_event(fill, 1012918)

    def le(lo: int, hi: int, signed: bool = False) -> int:
        return int.from_bytes(raw[lo:hi], "little", signed=signed)

    assert len(raw) == 200
    assert raw[0:6] == bytes([0, 1, 0, 0, 1, 1])  # Fill, taker Ask, slot 0, not out, v1, fees applied
    assert raw[6:8] == b"\0\0"
    assert le(8, 16) == 1647993413
    assert le(16, 24) == 1012918 == event_seq_num(raw)
    assert raw[24:56] == bytes([1]) * 32
    assert le(56, 72, signed=True) == -5
    assert le(80, 96, signed=True) == round(Decimal("-0.0003") * 2**48) == -84442493013
    assert le(104, 112) == 1647993413  # maker_timestamp defaults to the fill time
    assert raw[112:144] == bytes([2]) * 32
    assert le(160, 168) == 77
    assert le(168, 184, signed=True) == round(Decimal("0.0005") * 2**48)
    assert (le(184, 192, signed=True), le(192, 200, signed=True)) == (9047, 198)


def test_encoder_rejects_bad_pubkey_and_overflow() -> None:
    with pytest.raises(ValueError, match="32-byte"):
        encode_fill_event(dataclasses.replace(make_fill(1), maker=pubkey(1)[:-5]), 0)
    with pytest.raises(ValueError, match="out of range"):
        encode_fill_event(dataclasses.replace(make_fill(1), price_lots=2**63), 0)


# ---- the server -------------------------------------------------------------------


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[MangoV3FillsSimulator]:
    async with started(MangoV3FillsSimulator(MARKETS)) as server:
        yield server


async def recv_checkpoints(ws: ClientConnection) -> dict[str, dict[str, Any]]:
    frames = [await recv_json(ws) for _ in MARKETS]
    for frame in frames:
        assert list(frame) == CHECKPOINT_KEYS
    return {f["market"]: f for f in frames}


async def recv_update(ws: ClientConnection, status: str) -> tuple[bytes, dict[str, Any]]:
    frame = await recv_json(ws)
    assert list(frame) == UPDATE_KEYS
    assert frame["status"] == status
    return base64.b64decode(frame["event"], validate=True), frame


def decoded(events: list[str]) -> list[bytes]:
    return [base64.b64decode(e, validate=True) for e in events]


@pytest.mark.integration
@pytest.mark.asyncio
async def test_checkpoint_per_market_then_new_frames(sim: MangoV3FillsSimulator) -> None:
    before = [await sim.push_fill("SOL-PERP", make_fill(n)) for n in range(3)]
    async with connect(sim.url) as ws:
        checkpoints = await recv_checkpoints(ws)
        sol, btc = checkpoints["SOL-PERP"], checkpoints["BTC-PERP"]
        assert decoded(sol["events"]) == before
        assert sol["queue"] == SOL.queue
        assert btc["events"] == []
        assert btc["queue"] == BTC.queue
        assert sim.checkpoint_frames() == [
            json.dumps(sol, separators=(",", ":")),
            json.dumps(btc, separators=(",", ":")),
        ]

        raw = await sim.push_fill("BTC-PERP", make_fill(7, side="ask"))
        event, frame = await recv_update(ws, "New")
        assert event == raw
        assert (frame["market"], frame["queue"]) == ("BTC-PERP", BTC.queue)
        assert frame["slot"] > sol["slot"]
        assert frame["write_version"] > sol["write_version"]
        assert decode_fill_event_for_tests(event)["seq_num"] == 0  # each queue has its own seq

        raw = await sim.push_fill("SOL-PERP", make_fill(8))
        event, later = await recv_update(ws, "New")
        assert event == raw
        assert decode_fill_event_for_tests(event)["seq_num"] == 3
        assert later["slot"] > frame["slot"]
        assert later["write_version"] > frame["write_version"]


@pytest.mark.integration
@pytest.mark.asyncio
async def test_out_events_take_seq_numbers_but_are_never_sent(sim: MangoV3FillsSimulator) -> None:
    async with connect(sim.url) as ws:
        await recv_checkpoints(ws)
        first = await sim.push_fill("SOL-PERP", make_fill(1))
        await sim.push_out("SOL-PERP")
        await sim.push_out("SOL-PERP")
        second = await sim.push_fill("SOL-PERP", make_fill(2))
        # The very next frames are the two fills: nothing was sent for the Out events.
        assert (await recv_update(ws, "New"))[0] == first
        assert (await recv_update(ws, "New"))[0] == second
        assert [event_seq_num(first), event_seq_num(second)] == [0, 3]
    assert sim.seq_num("SOL-PERP") == 4
    assert sim.fills_in_window("SOL-PERP") == [first, second]
    async with connect(sim.url) as ws:
        assert decoded((await recv_checkpoints(ws))["SOL-PERP"]["events"]) == [first, second]


@pytest.mark.integration
@pytest.mark.asyncio
async def test_checkpoint_window_is_last_256_events(sim: MangoV3FillsSimulator) -> None:
    pushed = [await sim.push_fill("SOL-PERP", make_fill(n)) for n in range(290)]
    for _ in range(10):
        await sim.push_out("SOL-PERP")
    # Window [300-256, 300) = seqs 44..299, of which 290..299 are Out events.
    window = sim.fills_in_window("SOL-PERP")
    assert window == pushed[44:]
    assert len(window) == QUEUE_LEN - 10
    async with connect(sim.url) as ws:
        events = decoded((await recv_checkpoints(ws))["SOL-PERP"]["events"])
    assert events == pushed[44:]
    assert [event_seq_num(e) for e in events] == list(range(44, 290))


@pytest.mark.integration
@pytest.mark.asyncio
async def test_fork_replace_revokes_old_then_sends_new_with_same_seq(sim: MangoV3FillsSimulator) -> None:
    fills = [await sim.push_fill("SOL-PERP", make_fill(n)) for n in range(3)]
    async with connect(sim.url) as ws:
        await recv_checkpoints(ws)
        old, new = await sim.fork_replace("SOL-PERP", 1, make_fill(50, price=9100))
        assert old == fills[1]
        revoked, revoke_frame = await recv_update(ws, "Revoke")
        added, new_frame = await recv_update(ws, "New")
        assert revoked == old
        assert added == new != old
        assert event_seq_num(added) == event_seq_num(revoked) == 1
        # One account write produced both frames.
        assert (revoke_frame["slot"], revoke_frame["write_version"]) == (
            new_frame["slot"],
            new_frame["write_version"],
        )
    assert sim.fills_in_window("SOL-PERP") == [fills[0], new, fills[2]]

    with pytest.raises(ValueError, match="ring window"):
        await sim.fork_replace("SOL-PERP", 3, make_fill(51))


@pytest.mark.integration
@pytest.mark.asyncio
async def test_fork_over_an_out_event_sends_only_new(sim: MangoV3FillsSimulator) -> None:
    await sim.push_out("SOL-PERP")
    async with connect(sim.url) as ws:
        await recv_checkpoints(ws)
        _, new = await sim.fork_replace("SOL-PERP", 0, make_fill(3))
        marker = await sim.push_fill("SOL-PERP", make_fill(4))
        assert (await recv_update(ws, "New"))[0] == new
        assert (await recv_update(ws, "New"))[0] == marker


@pytest.mark.integration
@pytest.mark.asyncio
async def test_rollback_revokes_dropped_fills_and_checkpoint_forgets_them(
    sim: MangoV3FillsSimulator,
) -> None:
    f0 = await sim.push_fill("SOL-PERP", make_fill(0))
    f1 = await sim.push_fill("SOL-PERP", make_fill(1))
    f2 = await sim.push_fill("SOL-PERP", make_fill(2))
    await sim.push_out("SOL-PERP")
    f4 = await sim.push_fill("SOL-PERP", make_fill(4))
    async with connect(sim.url) as ws:
        await recv_checkpoints(ws)
        revoked = await sim.rollback("SOL-PERP", 3)
        assert revoked == [f2, f4]
        assert (await recv_update(ws, "Revoke"))[0] == f2
        assert (await recv_update(ws, "Revoke"))[0] == f4
        assert sim.seq_num("SOL-PERP") == 2

        # The fork's chain reuses seq 2 for a different fill.
        reused = await sim.push_fill("SOL-PERP", make_fill(9, price=9000))
        event, _ = await recv_update(ws, "New")
        assert event == reused != f2
        assert event_seq_num(event) == 2

    async with connect(sim.url) as ws:
        assert decoded((await recv_checkpoints(ws))["SOL-PERP"]["events"]) == [f0, f1, reused]

    with pytest.raises(ValueError, match="roll back"):
        await sim.rollback("SOL-PERP", 4)


@pytest.mark.integration
@pytest.mark.asyncio
async def test_disconnect_all_closes_clients_and_reconnect_gets_fresh_checkpoint(
    sim: MangoV3FillsSimulator,
) -> None:
    async with connect(sim.url) as a, connect(sim.url) as b:
        await sim.wait_for_connections(2)
        assert sim.connection_count == 2
        await recv_checkpoints(a)
        await recv_checkpoints(b)
        await sim.disconnect_all()
        assert sim.connection_count == 0
        for ws in (a, b):
            with pytest.raises(ConnectionClosed) as closed:
                await recv_json(ws)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1001

    missed = await sim.push_fill("BTC-PERP", make_fill(5))
    async with connect(sim.url) as ws:
        await sim.wait_for_connections(1)
        assert decoded((await recv_checkpoints(ws))["BTC-PERP"]["events"]) == [missed]


@pytest.mark.integration
@pytest.mark.asyncio
async def test_send_checkpoints_duplicates_them(sim: MangoV3FillsSimulator) -> None:
    raw = await sim.push_fill("SOL-PERP", make_fill(1))
    async with connect(sim.url) as ws:
        first = await recv_checkpoints(ws)
        await sim.wait_for_connections(1)
        await sim.send_checkpoints()
        assert await recv_checkpoints(ws) == first
        assert decoded(first["SOL-PERP"]["events"]) == [raw]


@pytest.mark.integration
@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["not_json", "bad_base64", "short_event", "unknown_status", "wrong_type"])
async def test_send_malformed(sim: MangoV3FillsSimulator, kind: MalformedKind) -> None:
    async with connect(sim.url) as ws:
        await recv_checkpoints(ws)
        await sim.send_malformed(kind)
        async with asyncio.timeout(TIMEOUT):
            text = await ws.recv()
    assert isinstance(text, str)
    if kind == "not_json":
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
        return
    frame = json.loads(text)
    if kind == "bad_base64":
        with pytest.raises(binascii.Error):
            base64.b64decode(frame["event"], validate=True)
    elif kind == "short_event":
        assert len(base64.b64decode(frame["event"], validate=True)) == 100
        assert frame["status"] == "New"
    elif kind == "unknown_status":
        assert frame["status"] not in ("New", "Revoke")
        assert len(base64.b64decode(frame["event"], validate=True)) == 200
    else:
        assert not isinstance(frame["event"], str)
        assert not isinstance(frame["slot"], int)


@pytest.mark.integration
@pytest.mark.asyncio
async def test_send_raw(sim: MangoV3FillsSimulator) -> None:
    async with connect(sim.url) as ws:
        await recv_checkpoints(ws)
        await sim.send_raw('{"hello":"world"}')
        assert await recv_json(ws) == {"hello": "world"}


@pytest.mark.integration
@pytest.mark.asyncio
async def test_silent_mode_changes_state_but_sends_nothing(sim: MangoV3FillsSimulator) -> None:
    async with connect(sim.url) as ws:
        await recv_checkpoints(ws)
        sim.set_silent(True)
        quiet = await sim.push_fill("SOL-PERP", make_fill(1))
        await sim.rollback("SOL-PERP", 1)
        quiet2 = await sim.push_fill("SOL-PERP", make_fill(2))
        sim.set_silent(False)
        loud = await sim.push_fill("SOL-PERP", make_fill(3))
        # The first frame after the silence is the loud fill: the silent updates were dropped.
        assert (await recv_update(ws, "New"))[0] == loud
    assert quiet != quiet2
    async with connect(sim.url) as ws:
        assert decoded((await recv_checkpoints(ws))["SOL-PERP"]["events"]) == [quiet2, loud]


@pytest.mark.integration
@pytest.mark.asyncio
async def test_a_vanished_client_does_not_stop_the_broadcast(sim: MangoV3FillsSimulator) -> None:
    async with connect(sim.url) as healthy:
        gone = await connect(sim.url)
        await sim.wait_for_connections(2)
        await recv_checkpoints(healthy)
        gone.transport.abort()  # no closing handshake: the server finds out while sending
        pushed = [await sim.push_fill("SOL-PERP", make_fill(n)) for n in range(20)]
        received = [(await recv_update(healthy, "New"))[0] for _ in pushed]
        assert received == pushed
        await gone.wait_closed()


@pytest.mark.integration
@pytest.mark.asyncio
async def test_wait_for_connections_times_out(sim: MangoV3FillsSimulator) -> None:
    with pytest.raises(TimeoutError):
        await sim.wait_for_connections(1, timeout=0.05)


@pytest.mark.integration
@pytest.mark.asyncio
async def test_stop_closes_clients_with_1001() -> None:
    server = MangoV3FillsSimulator(MARKETS)
    await server.start()
    assert server.url.startswith("ws://127.0.0.1:")
    try:
        async with connect(server.url) as ws:
            await recv_checkpoints(ws)
            await server.stop()
            with pytest.raises(ConnectionClosed) as closed:
                await recv_json(ws)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1001
    finally:
        await server.stop()
    with pytest.raises(RuntimeError):
        _ = server.url


@pytest.mark.asyncio
async def test_unknown_market_and_bad_config_are_rejected() -> None:
    server = MangoV3FillsSimulator(MARKETS)
    with pytest.raises(ValueError, match="unknown market"):
        await server.push_fill("DOGE-PERP", make_fill(1))
    with pytest.raises(ValueError, match="duplicate"):
        MangoV3FillsSimulator([SOL, SOL])
