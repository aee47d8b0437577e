"""The monitor state that threshold rules and absent rules' `while` conditions read.

A rule's names decide where it is evaluated: any `market.*` name makes it run once per
(desk, instrument) a desk has held; otherwise any `desk.*` name, once per desk; any `venue.*`
name, once per venue; only `firm.*` names, once. `firm.*` mixes with any scope; desk or market
names mixed with venue names are an error, since no single key gives both. A desk's own rules
see that desk only (and, for venue scope, the venues the desk has accounts on).

firm.gross_usd                    sum of every desk's gross USD notional
firm.pending_rfq_usd              accepted RFQ quotes awaiting confirmation, at worst-case loss, all desks
firm.worst_case_loss_usd          confirmed worst-case loss of bets and RFQ positions, all desks

desk.gross_usd                    sum of |net USD notional| over the desk's instruments
desk.pending_rfq_usd              the desk's accepted, unconfirmed RFQ quotes at worst-case loss
desk.worst_case_loss_usd          the desk's confirmed worst-case loss (bets, RFQ positions)
desk.open_orders                  the desk's orders pending activation or open
desk.positions                    the desk's non-flat positions (per venue, account and market)

market.net_usd                    net USD notional of the desk in the instrument (missing without a mark)
market.position                   net base units of the desk in the instrument
market.mark_age_seconds           seconds since the instrument's last price (missing before the first
                                  price seen while a rule reads this name)

venue.feed_up                     1 while the venue's feed is connected, else 0
venue.reconnects                  times a connected feed went down
venue.malformed                   frames dropped as malformed
venue.fills                       fills applied (duplicates excluded)
venue.duplicates                  fills and events dropped as repeats
venue.sequence_gaps               sequence gaps detected
venue.seconds_since_message       seconds since the last frame (missing before the first)
venue.seconds_since_heartbeat     seconds since the last venue heartbeat (missing before the first)
venue.pending_activations         orders awaiting the venue's activation confirmation
venue.open_orders                 our orders pending activation or open on the venue
venue.quotes_awaiting_confirmation  accepted RFQ quotes awaiting confirmation

The market label of a market-scope alert is the instrument (the underlying when configured).
A missing value is "no decision" for that key, never a zero.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, NamedTuple

from riskmon.engine.exposure import ExposureBook
from riskmon.engine.stats import VenueStats
from riskmon.engine.trading import OrderBook
from riskmon.events import OrderStatus, OrderUpdate
from riskmon.rules.conditions import Numeric

Scope = Literal["firm", "desk", "market", "venue"]
LIVE_ORDER = frozenset({OrderStatus.PENDING, OrderStatus.OPEN})


class ScopeKey(NamedTuple):
    desk: str | None = None
    instrument: str | None = None
    venue: str | None = None

    def labels(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.desk is not None:
            out["desk"] = self.desk
        if self.instrument is not None:
            out["market"] = self.instrument
        if self.venue is not None:
            out["venue"] = self.venue
        return out


@dataclass(slots=True)
class MonitorState:
    """Read access to the engine's state, plus the little rules need that the engine does not keep."""

    book: ExposureBook
    orders: OrderBook
    stats: Mapping[str, VenueStats]
    pending_activations: Callable[[str], int]
    quotes_awaiting_confirmation: Callable[[str], int]
    mark_seen_at: dict[str, float] = field(default_factory=dict)
    open_orders_by_desk: Counter[str] = field(default_factory=Counter)
    open_orders_by_venue: Counter[str] = field(default_factory=Counter)

    def recount_open_orders(self) -> None:
        self.open_orders_by_desk.clear()
        self.open_orders_by_venue.clear()
        for order in self.orders.orders():
            if order.status in LIVE_ORDER:
                self.open_orders_by_desk[order.desk] += 1
                self.open_orders_by_venue[order.venue] += 1

    def order_moved(self, was_live: bool, current: OrderUpdate | None) -> None:
        """Account for one order update once the order book applied it."""
        if current is None:
            return
        live = current.status in LIVE_ORDER
        if live != was_live:
            step = 1 if live else -1
            self.open_orders_by_desk[current.desk] += step
            self.open_orders_by_venue[current.venue] += step

    def values(self, names: Iterable[str], key: ScopeKey, now: float) -> dict[str, Numeric]:
        out: dict[str, Numeric] = {}
        for name in names:
            value = STATE_NAMES[name](self, key, now)
            if value is not None:
                out[name] = value
        return out


Getter = Callable[[MonitorState, ScopeKey, float], Numeric | None]


def _desk(key: ScopeKey) -> str:
    assert key.desk is not None
    return key.desk


def _venue(state: MonitorState, key: ScopeKey) -> VenueStats:
    assert key.venue is not None
    return state.stats.get(key.venue) or VenueStats()


def _since(then: float | None, now: float) -> float | None:
    return None if then is None else now - then


def _mark_age(state: MonitorState, key: ScopeKey, now: float) -> float | None:
    assert key.instrument is not None
    return _since(state.mark_seen_at.get(key.instrument), now)


def _net_usd(state: MonitorState, key: ScopeKey, now: float) -> Decimal | None:
    desk, instrument = key.desk, key.instrument  # read per price: no helper call for the checks
    assert desk is not None
    assert instrument is not None
    return state.book.desk_market_net(desk, instrument)


def _position(state: MonitorState, key: ScopeKey, now: float) -> Decimal:
    desk, instrument = key.desk, key.instrument
    assert desk is not None
    assert instrument is not None
    return state.book.desk_market_position(desk, instrument)


def _venue_name(key: ScopeKey) -> str:
    assert key.venue is not None
    return key.venue


STATE_NAMES: dict[str, Getter] = {
    "firm.gross_usd": lambda s, k, n: s.book.firm_gross(),
    "firm.pending_rfq_usd": lambda s, k, n: s.book.firm_pending(),
    "firm.worst_case_loss_usd": lambda s, k, n: s.book.firm_worst_case_loss(),
    "desk.gross_usd": lambda s, k, n: s.book.desk_gross(_desk(k)),
    "desk.pending_rfq_usd": lambda s, k, n: s.book.desk_pending(_desk(k)),
    "desk.worst_case_loss_usd": lambda s, k, n: s.book.desk_worst_case_loss(_desk(k)),
    "desk.open_orders": lambda s, k, n: s.open_orders_by_desk[_desk(k)],
    "desk.positions": lambda s, k, n: s.book.desk_open_positions(_desk(k)),
    "market.net_usd": _net_usd,
    "market.position": _position,
    "market.mark_age_seconds": _mark_age,
    "venue.feed_up": lambda s, k, n: int(_venue(s, k).feed_up),
    "venue.reconnects": lambda s, k, n: _venue(s, k).reconnects,
    "venue.malformed": lambda s, k, n: _venue(s, k).malformed,
    "venue.fills": lambda s, k, n: _venue(s, k).fills,
    "venue.duplicates": lambda s, k, n: _venue(s, k).duplicates,
    "venue.sequence_gaps": lambda s, k, n: _venue(s, k).sequence_gaps,
    "venue.seconds_since_message": lambda s, k, n: _since(_venue(s, k).last_frame_at, n),
    "venue.seconds_since_heartbeat": lambda s, k, n: _since(_venue(s, k).last_heartbeat_at, n),
    "venue.pending_activations": lambda s, k, n: s.pending_activations(_venue_name(k)),
    "venue.open_orders": lambda s, k, n: s.open_orders_by_venue[_venue_name(k)],
    "venue.quotes_awaiting_confirmation": lambda s, k, n: s.quotes_awaiting_confirmation(_venue_name(k)),
}


class ScopeError(ValueError):
    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name  # the name to point the caret at


def scope_of(names: Iterable[str]) -> Scope:
    """The scope a set of state names implies; ScopeError for unknown names or a mix."""
    namespaces: dict[str, str] = {}
    for name in sorted(names):
        if name not in STATE_NAMES:
            known = ", ".join(sorted({n.split(".", 1)[0] + ".*" for n in STATE_NAMES}))
            raise ScopeError(f"unknown state name {name!r} (namespaces: {known}; see riskmon.rules.state_values)", name)
        namespaces.setdefault(name.split(".", 1)[0], name)
    if "venue" in namespaces and ("desk" in namespaces or "market" in namespaces):
        other = namespaces.get("market") or namespaces["desk"]
        raise ScopeError(
            f"{namespaces['venue']!r} (per venue) cannot be mixed with {other!r} (per desk): no single key has both",
            namespaces["venue"],
        )
    if "market" in namespaces:
        return "market"
    if "desk" in namespaces:
        return "desk"
    return "venue" if "venue" in namespaces else "firm"


SCOPE_LABELS: dict[Scope, tuple[str, ...]] = {
    "firm": (),
    "desk": ("desk",),
    "market": ("desk", "market"),
    "venue": ("venue",),
}


def scope_keys(scope: Scope, state: MonitorState, desks: Iterable[str], venues: Iterable[str]) -> list[ScopeKey]:
    """Every key a rule of this scope is evaluated for, among `desks` and `venues`."""
    if scope == "firm":
        return [ScopeKey()]
    if scope == "desk":
        return [ScopeKey(desk=desk) for desk in desks]
    if scope == "venue":
        return [ScopeKey(venue=venue) for venue in venues]
    wanted = set(desks)
    return [ScopeKey(desk, instrument) for desk, instrument in state.book.held_instruments() if desk in wanted]
