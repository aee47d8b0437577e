"""Loopback simulator of the legacy Mango v3 fills WebSocket feed (protocols.md §1.2).

Written from protocols.md only, never from the adapter, so the two check each other.

The legacy ``service-mango-fills`` has no subscribe and no auth: every client gets one
checkpoint frame per configured market on connect, then one text frame per fill update
(``New`` or ``Revoke``). The simulator keeps each market's EventQueue (seq_num plus a
256-slot ring) so that checkpoints, forks and rollbacks follow the service's diff rules.

Fidelity gaps, accepted on purpose:
- the legacy handler never reads the client half of the socket, so it never answers
  pings; ``websockets`` answers pings by itself. Clients must not rely on pongs anyway.
- checkpoint frames on connect come in configured market order, not HashMap order.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from websockets.asyncio.server import ServerConnection

from riskmon.venues.mango_v3.sim_events import (
    EVENT_SIZE,
    SimFill,
    decode_fill_event_for_tests,
    encode_fill_event,
    encode_out_event,
    is_fill_event,
)
from riskmon.venues.sim_base_ws import QueuedClient, WsSimServer

__all__ = [
    "QUEUE_LEN",
    "MalformedKind",
    "MangoV3FillsSimulator",
    "SimFill",
    "SimMarket",
    "decode_fill_event_for_tests",
    "encode_fill_event",
]

logger = logging.getLogger(__name__)

QUEUE_LEN = 256  # hardcoded by the service, as EVENT_SIZE is
MalformedKind = Literal["not_json", "bad_base64", "short_event", "unknown_status", "wrong_type"]

# Plausible mainnet magnitudes (protocols.md example frames) so adapters see u64-sized numbers.
_FIRST_SLOT = 128_473_811
_FIRST_WRITE_VERSION = 918_273_645
# Owner of simulated Out events; it never reaches a client, any 32-byte key will do.
_OUT_OWNER = "11111111111111111111111111111111"


@dataclass(frozen=True)
class SimMarket:
    name: str  # e.g. "SOL-PERP"
    queue: str  # event-queue pubkey (base58)


@dataclass(eq=False)
class _Queue:
    """One market's EventQueue as the service sees it after the latest account write."""

    market: SimMarket
    slot: int
    write_version: int
    seq_num: int = 0
    # ring[seq % QUEUE_LEN] = (seq, event bytes); None where a rollback vacated a slot,
    # because the bytes the fork restores there were overwritten long ago.
    ring: list[tuple[int, bytes] | None] = field(default_factory=lambda: [None] * QUEUE_LEN)
    last_timestamp: int = 0

    def events_in_window(self) -> list[bytes]:
        window = range(max(0, self.seq_num - QUEUE_LEN), self.seq_num)
        return [raw for seq in window if (raw := self.entry(seq)) is not None]

    def entry(self, seq: int) -> bytes | None:
        if not max(0, self.seq_num - QUEUE_LEN) <= seq < self.seq_num:
            return None
        held = self.ring[seq % QUEUE_LEN]
        return held[1] if held is not None and held[0] == seq else None

    def push(self, raw: bytes) -> None:
        self.ring[self.seq_num % QUEUE_LEN] = (self.seq_num, raw)
        self.seq_num += 1


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _dumps(obj: dict[str, object]) -> str:
    # Compact like serde_json; dict order is the field order the service emits.
    return json.dumps(obj, separators=(",", ":"))


class MangoV3FillsSimulator(WsSimServer[QueuedClient]):
    """A real WebSocket server on loopback speaking the legacy v3 fills protocol."""

    def __init__(self, markets: Sequence[SimMarket], host: str = "127.0.0.1", port: int = 0) -> None:
        if not markets:
            raise ValueError("at least one market is required")
        names = [m.name for m in markets]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate market names: {names}")
        super().__init__(name="mango v3 fills", host=host, port=port)
        self._slot = _FIRST_SLOT
        self._write_version = _FIRST_WRITE_VERSION
        self._queues: dict[str, _Queue] = {m.name: _Queue(m, self._slot, self._write_version) for m in markets}
        self._silent = False

    # The legacy service sends no keepalive pings and negotiates no compression (the base's defaults).

    @property
    def connection_count(self) -> int:
        return self.connections

    # ---- queue state changes ---------------------------------------------------

    async def push_fill(self, market: str, fill: SimFill) -> bytes:
        """Append a fill at the queue's seq_num and broadcast it as ``New``."""
        q = self._queue(market)
        raw = encode_fill_event(fill, q.seq_num)
        q.push(raw)
        q.last_timestamp = fill.timestamp
        self._account_write(q)
        self._broadcast([self._update_frame(q, raw, "New")])
        return raw

    async def push_out(self, market: str) -> None:
        """Append an Out event: it takes a seq number, so clients see a seq gap, no frame."""
        q = self._queue(market)
        q.push(encode_out_event(q.seq_num, _OUT_OWNER, q.last_timestamp))
        self._account_write(q)

    async def fork_replace(self, market: str, seq_num: int, fill: SimFill) -> tuple[bytes, bytes]:
        """A fork rewrote the event at ``seq_num``: Revoke the old fill, then New the new one."""
        q = self._queue(market)
        old = q.entry(seq_num)
        if old is None:
            raise ValueError(
                f"{market}: seq {seq_num} is not held in the ring window [{max(0, q.seq_num - QUEUE_LEN)}, {q.seq_num})"
            )
        new = encode_fill_event(fill, seq_num)
        q.ring[seq_num % QUEUE_LEN] = (seq_num, new)
        self._account_write(q)
        # The service diffs slot bytes: an unchanged slot yields nothing, and an old
        # non-fill (Out) event is replaced without a Revoke.
        frames: list[str] = []
        if old != new:
            if is_fill_event(old):
                frames.append(self._update_frame(q, old, "Revoke"))
            frames.append(self._update_frame(q, new, "New"))
        self._broadcast(frames)
        return old, new

    async def rollback(self, market: str, count: int) -> list[bytes]:
        """A fork dropped the last ``count`` events: Revoke every fill among them."""
        q = self._queue(market)
        if not 1 <= count <= min(q.seq_num, QUEUE_LEN):
            raise ValueError(f"{market}: cannot roll back {count} of seq_num {q.seq_num}")
        new_seq = q.seq_num - count
        revoked: list[bytes] = []
        for seq in range(new_seq, q.seq_num):
            raw = q.entry(seq)
            if raw is not None and is_fill_event(raw):
                revoked.append(raw)
            q.ring[seq % QUEUE_LEN] = None
        q.seq_num = new_seq
        self._account_write(q)
        self._broadcast([self._update_frame(q, raw, "Revoke") for raw in revoked])
        return revoked

    # ---- faults ----------------------------------------------------------------

    async def disconnect_all(self) -> None:
        """Close every client with 1001; returns once their handlers have cleaned up."""
        await self._close_clients(list(self._clients), 1001, "going away")

    async def send_checkpoints(self) -> None:
        """Duplicate checkpoint: clients must merge it as a replay, not count new fills."""
        self._broadcast(self.checkpoint_frames(), forced=True)

    async def send_malformed(self, kind: MalformedKind) -> None:
        q = next(iter(self._queues.values()))
        head = {"market": q.market.name, "queue": q.market.queue}
        # A real-looking event, so that only the named defect makes the frame invalid.
        sample = encode_fill_event(
            SimFill(
                maker=_OUT_OWNER,
                taker=_OUT_OWNER,
                taker_side="bid",
                price_lots=1,
                quantity_lots=1,
                timestamp=q.last_timestamp,
            ),
            q.seq_num,
        )
        frame: str
        if kind == "not_json":
            frame = '{"event":"AAAB'  # a frame cut short
        elif kind == "bad_base64":
            frame = self._update_frame(q, sample, "New").replace(_b64(sample), "!!not*base64!!")
        elif kind == "short_event":
            frame = self._update_frame(q, sample[: EVENT_SIZE // 2], "New")
        elif kind == "unknown_status":
            frame = self._update_frame(q, sample, "Pending")
        elif kind == "wrong_type":
            frame = _dumps(
                {
                    "event": 12345,
                    **head,
                    "status": "New",
                    "slot": str(q.slot),
                    "write_version": q.write_version,
                }
            )
        else:
            raise ValueError(f"unknown malformed kind: {kind!r}")
        self._broadcast([frame], forced=True)

    async def send_raw(self, text: str) -> None:
        self._broadcast([text], forced=True)

    def set_silent(self, silent: bool) -> None:
        """Silent: state changes go on but no update is sent (checkpoints on connect still are)."""
        self._silent = silent

    # ---- views for tests ---------------------------------------------------------

    def checkpoint_frames(self) -> list[str]:
        return [self._checkpoint_frame(q) for q in self._queues.values()]

    def fills_in_window(self, market: str) -> list[bytes]:
        return [raw for raw in self._queue(market).events_in_window() if is_fill_event(raw)]

    def seq_num(self, market: str) -> int:
        return self._queue(market).seq_num

    # ---- internals ---------------------------------------------------------------

    def _queue(self, market: str) -> _Queue:
        try:
            return self._queues[market]
        except KeyError:
            raise ValueError(f"unknown market {market!r}") from None

    def _account_write(self, q: _Queue) -> None:
        # Every queue change is a new account write with a later slot and write_version.
        self._slot += 1
        self._write_version += 7
        q.slot, q.write_version = self._slot, self._write_version

    def _checkpoint_frame(self, q: _Queue) -> str:
        events = [_b64(raw) for raw in q.events_in_window() if is_fill_event(raw)]
        return _dumps(
            {
                "events": events,
                "market": q.market.name,
                "queue": q.market.queue,
                "slot": q.slot,
                "write_version": q.write_version,
            }
        )

    @staticmethod
    def _update_frame(q: _Queue, raw: bytes, status: str) -> str:
        return _dumps(
            {
                "event": _b64(raw),
                "market": q.market.name,
                "queue": q.market.queue,
                "status": status,
                "slot": q.slot,
                "write_version": q.write_version,
            }
        )

    def _broadcast(self, frames: list[str], *, forced: bool = False) -> None:
        if not frames or (self._silent and not forced):
            return
        for client in self._clients:
            for frame in frames:
                client.outbox.put_nowait(frame)

    async def _serve_client(self, conn: ServerConnection) -> None:
        client = QueuedClient(conn)
        # Queue the checkpoints before registering, so no update slips in between.
        for frame in self.checkpoint_frames():
            client.outbox.put_nowait(frame)
        logger.debug("client %s connected", conn.remote_address)
        async with self._connected(client), self._sending(client):
            # The legacy handler never reads; it only learns of a close from the socket.
            await conn.wait_closed()
        logger.debug("client %s disconnected", conn.remote_address)
