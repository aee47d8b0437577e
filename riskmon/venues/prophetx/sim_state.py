"""Venue-side state of the ProphetX simulator: the account's wagers and the market books.

Wager life cycle (protocols.md §3.2-§3.3): placed ``inactive`` -> ``open`` (activated) or
``invalid`` (failed activation); ``open`` -> fills (``update_type: "matching"``) ->
``canceled`` / settled statuses. Every state change bumps the wager's ``sequence_number``
(placement is 1) and keeps a snapshot, so a stale update can replay an older version.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from riskmon.venues.prophetx.sim_frames import american_profit, default_line_id

__all__ = [
    "MATCHING_STATUSES",
    "STATUSES",
    "WINNING_STATUSES",
    "MarketBook",
    "Wager",
    "WagerBook",
]

STATUSES = frozenset(
    {"inactive", "open", "invalid", "canceled", "void", "wiped", "manually_settled", "settled", "closed"}
)
MATCHING_STATUSES = frozenset({"unmatched", "partially_matched", "fully_matched"})
WINNING_STATUSES = frozenset({"won", "lost", "no_result", "tbd", "manually_won", "manually_lost", "draw", "push"})
_MAX_STAKE = 100_000_000.0


def _dec(x: float) -> Decimal:
    return Decimal(str(x))


@dataclass(eq=False)
class Wager:
    id: str
    user_id: str
    external_id: str
    sport_event_id: int
    market_id: int
    outcome_id: int
    line_id: str
    line: float
    odds: int
    stake: float
    matched_stake: float = 0.0
    matched_odds: int = 0  # [I] 0 until the first fill; protocols.md does not say
    totally_matched_stake: float = 0.0
    unmatched_stake: float = 0.0
    matching_status: str = "unmatched"
    winning_status: str = "tbd"
    status: str = "inactive"
    update_type: str = "status"
    sequence_number: int = 1
    reason: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    last_frame: str | None = None

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "user_id": self.user_id,
            "external_id": self.external_id,
            "sport_event_id": self.sport_event_id,
            "market_id": self.market_id,
            "outcome_id": self.outcome_id,
            "line_id": self.line_id,
            "line": self.line,
            "odds": self.odds,
            "stake": self.stake,
            "profit": american_profit(self.stake, self.odds),
            "matched_stake": self.matched_stake,
            "matched_odds": self.matched_odds,
            "totally_matched_stake": self.totally_matched_stake,
            "unmatched_stake": self.unmatched_stake,
            "matching_status": self.matching_status,
            "winning_status": self.winning_status,
            "status": self.status,
            "update_type": self.update_type,
            "sequence_number": self.sequence_number,
        }
        if self.reason is not None:
            out["reason"] = self.reason  # [I] failure reason of an ``invalid`` wager
        return out

    def bump(self, update_type: str) -> dict[str, Any]:
        self.update_type = update_type
        self.sequence_number += 1
        snapshot = self.info()
        self.history.append(snapshot)
        return snapshot


class WagerBook:
    """The simulated account's wagers, keyed by wager id."""

    def __init__(self, account_id: str) -> None:
        self._account_id = account_id
        self._wagers: dict[str, Wager] = {}
        self._external_ids: set[str] = set()
        self._next_id = 1_000_000_001

    def place(
        self,
        *,
        event_id: int,
        market_id: int,
        outcome_id: int,
        odds: int,
        stake: float,
        line: float,
        line_id: str | None,
        external_id: str | None,
        order_id: str | None,
    ) -> Wager:
        if not (100 <= odds <= 10_000 or -10_000 <= odds <= -101):
            raise ValueError(f"odds {odds} off the American odds ladder (-10000..-101, 100..10000)")
        if not 0 < stake <= _MAX_STAKE:
            raise ValueError(f"stake {stake} outside (0, {_MAX_STAKE:.0f}]")
        if order_id is None:
            order_id = str(self._next_id)
            self._next_id += 1
        if order_id in self._wagers:
            raise ValueError(f"order id {order_id!r} already exists")
        if external_id is None:
            external_id = f"sim-{order_id}"
        if external_id in self._external_ids:
            raise ValueError(f"wager_external_id_existed: {external_id!r}")
        wager = Wager(
            id=order_id,
            user_id=self._account_id,
            external_id=external_id,
            sport_event_id=event_id,
            market_id=market_id,
            outcome_id=outcome_id,
            line_id=line_id if line_id is not None else default_line_id(outcome_id, line),
            line=line,
            odds=odds,
            stake=stake,
            unmatched_stake=stake,
        )
        wager.history.append(wager.info())
        self._wagers[order_id] = wager
        self._external_ids.add(external_id)
        return wager

    def get(self, order_id: str) -> Wager:
        try:
            return self._wagers[order_id]
        except KeyError:
            raise KeyError(f"unknown order id {order_id!r}") from None

    def find(self, order_id: str) -> Wager | None:
        return self._wagers.get(order_id)

    def activate(self, order_id: str) -> Wager:
        w = self._expect(order_id, "inactive")
        w.status = "open"
        w.bump("status")
        return w

    def reject(self, order_id: str, reason: str) -> Wager:
        w = self._expect(order_id, "inactive")
        w.status = "invalid"
        w.reason = reason
        w.bump("status")
        return w

    def match(self, order_id: str, stake: float, odds: int | None) -> Wager:
        w = self._expect(order_id, "open")
        if not 0 < stake <= w.unmatched_stake:
            raise ValueError(f"match stake {stake} outside (0, unmatched {w.unmatched_stake}]")
        total = _dec(w.totally_matched_stake) + _dec(stake)
        w.matched_stake = stake
        w.matched_odds = w.odds if odds is None else odds
        w.totally_matched_stake = float(total)
        w.unmatched_stake = float(_dec(w.stake) - total)
        w.matching_status = "fully_matched" if w.unmatched_stake == 0 else "partially_matched"
        w.bump("matching")
        return w

    def cancel(self, order_id: str) -> Wager:
        w = self.get(order_id)
        if w.status not in ("inactive", "open") or w.unmatched_stake == 0:
            raise ValueError(f"order {order_id!r} has nothing to cancel (status {w.status}, {w.matching_status})")
        w.unmatched_stake = 0.0
        if w.totally_matched_stake > 0:
            # §3.3: cancelling a partial fill leaves the matched part live as open + fully_matched.
            w.matching_status = "fully_matched"
        else:
            w.status = "canceled"
        w.bump("status")
        return w

    def set_status(self, order_id: str, status: str, winning_status: str | None) -> Wager:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        if winning_status is not None and winning_status not in WINNING_STATUSES:
            raise ValueError(f"unknown winning_status {winning_status!r}")
        w = self.get(order_id)
        w.status = status
        if winning_status is not None:
            w.winning_status = winning_status
        w.bump("status")
        return w

    def stale_info(self, order_id: str) -> dict[str, Any]:
        w = self.get(order_id)
        if len(w.history) < 2:
            raise ValueError(f"order {order_id!r} has no older version to replay")
        return copy.deepcopy(w.history[-2])

    def _expect(self, order_id: str, status: str) -> Wager:
        w = self.get(order_id)
        if w.status != status:
            raise ValueError(f"order {order_id!r} is {w.status}, not {status}")
        return w


@dataclass(eq=False)
class _Market:
    event_id: int
    market_id: int
    name: str
    type: str
    line: float
    stream_seq: int = 0
    rest_seq: int = 0
    stream: list[list[dict[str, Any]]] = field(default_factory=list)
    rest: list[list[dict[str, Any]]] = field(default_factory=list)

    def info(self, selections: list[list[dict[str, Any]]], sequence_number: int) -> dict[str, Any]:
        # [I] info.id is the market id; the §3.2 example shows a different number there.
        return {
            "id": self.market_id,
            "name": self.name,
            "type": self.type,
            "line": self.line,
            "sequence_number": sequence_number,
            "selections": copy.deepcopy(selections),
        }


class MarketBook:
    """Books per (event, market): what the stream last said, and what REST says now.

    The two agree unless a drift fault changed only the REST side.
    """

    def __init__(self) -> None:
        self._markets: dict[tuple[int, int], _Market] = {}

    def update(
        self,
        event_id: int,
        market_id: int,
        selections: list[list[dict[str, Any]]],
        sequence_number: int | None,
        meta: tuple[str | None, str | None, float | None],
        *,
        rest_only: bool,
    ) -> dict[str, Any]:
        """Store a book; ``meta`` is (name, type, line), None keeping the current value."""
        name, type_, line = meta
        m = self._markets.get((event_id, market_id))
        if m is None:
            m = _Market(event_id, market_id, name or f"Market {market_id}", type_ or "moneyline", line or 0.0)
            self._markets[(event_id, market_id)] = m
        m.name = name if name is not None else m.name
        m.type = type_ if type_ is not None else m.type
        m.line = line if line is not None else m.line
        m.rest = copy.deepcopy(selections)
        m.rest_seq = sequence_number if sequence_number is not None else m.rest_seq + 1
        if not rest_only:
            m.stream = copy.deepcopy(selections)
            m.stream_seq = m.rest_seq
        return m.info(m.stream, m.stream_seq)

    def rest_markets(self, event_id: int) -> list[dict[str, Any]]:
        return [m.info(m.rest, m.rest_seq) for (ev, _), m in self._markets.items() if ev == event_id]

    def find_level(self, event_id: int, market_id: int, outcome_id: int) -> dict[str, Any] | None:
        m = self._markets.get((event_id, market_id))
        if m is None:
            return None
        for side in m.stream:
            for level in side:
                if level.get("outcome_id") == outcome_id:
                    return level
        return None
