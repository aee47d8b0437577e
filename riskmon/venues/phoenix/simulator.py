"""Loopback simulator of the Phoenix perpetuals WebSocket (protocols.md §5, §6).

Written from protocols.md only, never from the adapter, so the two check each other.

Public API (all ``async`` methods send before returning, in the order called):
- ``PhoenixSimulator(*, markets, authorities, jwt=None, host="127.0.0.1", ping_interval=None)``;
  ``start()``, ``stop()`` (idempotent, closes clients with 1001), ``url`` (``ws://…/v1/ws``).
- state: ``connections``, ``subscriptions`` (every subscribe message received, in order),
  ``wait_for_connections(n)``, ``wait_for_subscriptions(n)`` (counted once replied to).
- traderState: ``set_position``, ``close_position``, ``set_order``, ``close_order``,
  ``set_collateral``; faults ``skip_trader_sequence``, ``send_stale_trader_delta``.
- exchange: ``set_market_status``, ``close_market``, ``tombstone_market``, ``add_market``,
  ``update_market_parameters``, ``set_exchange_status``; fault ``skip_exchange_sequence``.
- public channels: ``push_market``, ``push_mids``, ``push_trade``, ``push_orderbook``,
  ``push_funding``, each only to that channel's (and symbol's) subscribers.
- transport/auth faults: ``disconnect_all(code)`` (1006 aborts the TCP connection),
  ``send_raw``, ``send_malformed(kind)``, ``set_answer_pings``, ``expire_token``/``set_jwt``;
  ``ping_clients()`` is the explicit form of the optional ``ping_interval`` keepalive.

Shapes fixed by the brief where protocols.md is silent [I]: see sim_frames (exchange
market), sim_exchange (exchange frames), sim_trader (traderState rows) and
sim_server (unsubscribe reply, control errors).

Fidelity gaps, accepted on purpose:
- exchange frames are JSON only: the real default encoding (base64+zstd) is refused with
  ``subscriptionError`` ``unsupported_encoding``, so clients must ask for ``"encoding":"json"``;
- candles are refused with ``subscriptionError`` ``unsupported_channel``;
- ``set_answer_pings(False)`` pauses reading the client sockets (websockets answers pings
  inside its reader), so the simulator then also ignores subscribes, like a hung server;
- an expired token stays refused (401) until ``set_jwt``; the real venue's other auth
  closes (4403, 1008, invalid_access_token, ...) are only reachable via ``disconnect_all``;
- trader capabilities, splines, triggers and spot collaterals are always the empty/active
  defaults; slotIndex is always 0; malformed frames go to every client and change no state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Literal

from riskmon.venues.phoenix.sim_exchange import PhoenixMarketsBase
from riskmon.venues.phoenix.sim_frames import (
    JsonObj,
    SimMarket,
    SubscriptionKey,
    dumps,
    subscription_key,
)
from riskmon.venues.phoenix.sim_server import JWT_SUBPROTOCOL, WS_PATH
from riskmon.venues.phoenix.sim_trader import SimOrder, SimPosition, Subaccount, TraderState

__all__ = ["JWT_SUBPROTOCOL", "WS_PATH", "MalformedKind", "PhoenixSimulator", "SimMarket"]

logger = logging.getLogger(__name__)

MalformedKind = Literal[
    "not_json", "unknown_channel_message", "trader_missing_sequence", "position_bad_lots", "exchange_bad_sequence"
]

_PHANTOM_LOTS = -777  # in frames a client must drop: visible if it applies them anyway


class PhoenixSimulator(PhoenixMarketsBase):
    """A real WebSocket server on loopback speaking the Phoenix perps protocol."""

    def __init__(
        self,
        *,
        markets: Sequence[SimMarket],
        authorities: Sequence[str],
        jwt: str | None = None,
        host: str = "127.0.0.1",
        ping_interval: float | None = None,
    ) -> None:
        super().__init__(markets=markets, jwt=jwt, host=host, ping_interval=ping_interval)
        if not authorities:
            raise ValueError("at least one authority is required")
        self._authorities = tuple(dict.fromkeys(authorities))
        self._traders: dict[tuple[str, int], TraderState] = {}

    # ---- views -----------------------------------------------------------------------

    def trader_snapshot(self, authority: str, trader_pda_index: int = 0) -> JsonObj:
        """The snapshot a subscribe would get now (does not advance the slot)."""
        return self._trader(authority, trader_pda_index).snapshot_frame(self._slot, self.market)

    # ---- traderState -----------------------------------------------------------------

    async def set_position(
        self,
        authority: str,
        symbol: str,
        base_lots: int,
        entry_price_ticks: int,
        *,
        subaccount: int = 0,
        trade: dict[str, Any] | None = None,
        unsettled_funding_lots: int = 0,
        accumulated_funding_lots: int = 0,
        trader_pda_index: int = 0,
    ) -> JsonObj:
        """Upsert a position (``change":"updated``); ``trade`` adds a tradeHistory row
        whose defaults describe the fill from the old to the new size (keys given win)."""
        m = self.market(symbol)
        trader = self._trader(authority, trader_pda_index)
        sub = trader.subaccount(subaccount)
        old = sub.positions.get(symbol)
        pos = SimPosition(
            symbol,
            base_lots,
            entry_price_ticks,
            trader.next_position_number(),
            unsettled_funding_lots,
            accumulated_funding_lots,
        )
        sub.positions[symbol] = pos
        slot = self._next_slot()
        history: list[JsonObj] = []
        if trade is not None:
            history.append(
                trader.trade_row(
                    m,
                    before_lots=old.base_lots if old is not None else 0,
                    after_lots=base_lots,
                    price_ticks=entry_price_ticks,
                    slot=slot,
                    timestamp=int(time.time()),
                    overrides=trade,
                )
            )
        rows = [{"symbol": symbol, "change": "updated", "position": pos.row(m)}]
        return self._send_trader_delta(trader, sub, slot, positions=rows, tradeHistory=history)

    async def close_position(
        self, authority: str, symbol: str, subaccount: int = 0, *, trader_pda_index: int = 0
    ) -> JsonObj:
        self.market(symbol)
        trader = self._trader(authority, trader_pda_index)
        sub = trader.subaccount(subaccount)
        if sub.positions.pop(symbol, None) is None:
            raise ValueError(f"{authority} has no {symbol} position in subaccount {subaccount}")
        rows = [{"symbol": symbol, "change": "closed"}]
        return self._send_trader_delta(trader, sub, self._next_slot(), positions=rows)

    async def set_order(
        self,
        authority: str,
        symbol: str,
        *,
        side: Literal["bid", "ask"],
        price_ticks: int,
        size_lots: int,
        initial_size_lots: int | None = None,
        order_sequence_number: int | None = None,
        order_type: str = "limit",
        reduce_only: bool = False,
        is_stop_loss: bool = False,
        status: str = "open",
        subaccount: int = 0,
        trader_pda_index: int = 0,
    ) -> int:
        """Upsert a resting order; returns its orderSequenceNumber (a new one if not given)."""
        if side not in ("bid", "ask"):
            raise ValueError(f"side must be bid or ask, not {side!r}")
        m = self.market(symbol)
        trader = self._trader(authority, trader_pda_index)
        sub = trader.subaccount(subaccount)
        number = order_sequence_number if order_sequence_number is not None else trader.next_order_number(side)
        order = SimOrder(
            symbol,
            number,
            side,
            price_ticks,
            size_lots,
            initial_size_lots if initial_size_lots is not None else size_lots,
            order_type,
            reduce_only,
            is_stop_loss,
            status,
        )
        sub.orders[(symbol, number)] = order
        rows = [{"symbol": symbol, "orders": [{"change": "updated", **order.row(m)}]}]
        self._send_trader_delta(trader, sub, self._next_slot(), orders=rows)
        return number

    async def close_order(
        self,
        authority: str,
        symbol: str,
        order_sequence_number: int,
        *,
        status: str = "cancelled",
        subaccount: int = 0,
        trader_pda_index: int = 0,
    ) -> JsonObj:
        m = self.market(symbol)
        trader = self._trader(authority, trader_pda_index)
        sub = trader.subaccount(subaccount)
        order = sub.orders.pop((symbol, order_sequence_number), None)
        if order is None:
            raise ValueError(f"{authority} has no {symbol} order {order_sequence_number}")
        order.status = status
        rows = [{"symbol": symbol, "orders": [{"change": "closed", **order.row(m)}]}]
        return self._send_trader_delta(trader, sub, self._next_slot(), orders=rows)

    async def set_collateral(
        self, authority: str, amount: str, subaccount: int = 0, *, trader_pda_index: int = 0
    ) -> JsonObj:
        """Set the subaccount's collateral (a u64 string of quote lots, sent as is)."""
        if not amount.isdigit():
            raise ValueError(f"collateral must be a u64 string of quote lots, not {amount!r}")
        trader = self._trader(authority, trader_pda_index)
        sub = trader.subaccount(subaccount)
        sub.collateral = amount
        return self._send_trader_delta(trader, sub, self._next_slot())

    async def skip_trader_sequence(self, authority: str, n: int = 2, *, trader_pda_index: int = 0) -> None:
        """Fault: the trader's next delta (any subaccount) has sequence = previous + n."""
        if n < 2:
            raise ValueError("a skip must jump by at least 2")
        self._trader(authority, trader_pda_index).pending_skip = n

    async def send_stale_trader_delta(
        self, authority: str, *, subaccount: int = 0, trader_pda_index: int = 0
    ) -> JsonObj:
        """Fault: a delta with sequence = current - 1 carrying a phantom position and zero
        collateral; state is unchanged, so a client must drop it."""
        trader = self._trader(authority, trader_pda_index)
        sub = trader.subaccount(subaccount)
        frame = self._phantom_delta(trader, sub, max(sub.sequence - 1, 0), str(_PHANTOM_LOTS))
        self._publish(("traderState", trader.authority, trader.pda_index), frame)
        return frame

    # ---- malformed frames --------------------------------------------------------------

    async def send_malformed(self, kind: MalformedKind, *, authority: str | None = None) -> str:
        """Send one defective frame to every client; no state changes. Returns the frame."""
        trader = self._trader(authority if authority is not None else self._authorities[0], 0)
        sub = trader.subaccount(0)
        if kind == "not_json":
            text = '{"channel":"traderState","authority":'  # a frame cut short
        elif kind == "unknown_channel_message":
            text = dumps({"channel": "candlesV9", "symbol": next(iter(self._markets)), "data": []})
        elif kind == "trader_missing_sequence":
            frame = self._phantom_delta(trader, sub, sub.sequence + 1, str(_PHANTOM_LOTS))
            del frame["deltas"][0]["sequence"]
            text = dumps(frame)
        elif kind == "position_bad_lots":
            text = dumps(self._phantom_delta(trader, sub, sub.sequence + 1, "12x"))
        elif kind == "exchange_bad_sequence":
            symbol = next(iter(self._markets))
            frame = self._exchange_delta_frame(
                "not-a-u64", [{"kind": "marketStatusChanged", "symbol": symbol, "status": "paused"}]
            )
            text = dumps(frame)
        else:
            raise ValueError(f"unknown malformed kind: {kind!r}")
        self._broadcast(text)
        return text

    # ---- hooks and internals -------------------------------------------------------------

    def _subscription_key(self, sub: object) -> SubscriptionKey:
        return subscription_key(sub, markets=self._markets, authorities=self._authorities)

    def _snapshot(self, key: SubscriptionKey) -> JsonObj | None:
        if key[0] == "exchange":
            return self.exchange_snapshot()
        if key[0] == "traderState":
            _, authority, pda = key
            assert isinstance(authority, str)
            assert isinstance(pda, int)
            return self.trader_snapshot(authority, pda)
        return None

    def _trader(self, authority: str, pda_index: int) -> TraderState:
        if authority not in self._authorities:
            raise ValueError(f"unknown authority {authority!r}")
        if not 0 <= pda_index <= 255:
            raise ValueError(f"traderPdaIndex {pda_index} is not a u8")
        return self._traders.setdefault((authority, pda_index), TraderState(authority, pda_index))

    def _send_trader_delta(self, trader: TraderState, sub: Subaccount, slot: int, **rows: list[JsonObj]) -> JsonObj:
        frame = trader.delta_frame(slot, [sub.delta(trader.next_sequence(sub), **rows)])
        self._publish(("traderState", trader.authority, trader.pda_index), frame)
        return frame

    def _phantom_delta(self, trader: TraderState, sub: Subaccount, sequence: int, lots: str) -> JsonObj:
        symbol = next(iter(self._markets))
        phantom = SimPosition(symbol, _PHANTOM_LOTS, 1, 0).row(self.market(symbol))
        phantom["basePositionLots"] = lots
        delta = sub.delta(sequence, positions=[{"symbol": symbol, "change": "updated", "position": phantom}])
        delta["collateral"] = "0"
        return trader.delta_frame(self._slot, [delta])
