"""Quote model and payload builders for the Totalis RFQ simulator (protocols.md §4.2-§4.3).

Shapes that protocols.md marks [?] or [I] follow the simulator brief; each such place says so.
Money is held as ``Decimal`` (USDC has 6 decimals) and written as JSON numbers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any, Literal, get_args

__all__ = [
    "MALFORMED_KINDS",
    "QUOTE_STATUSES",
    "AcceptOrder",
    "EventKey",
    "MalformedKind",
    "QuoteStatus",
    "SimLeg",
    "SimQuote",
    "check_economics",
    "dumps",
    "iso_ms",
    "malformed_frame",
    "parse_legs",
    "to_unix",
]

EventKey = Literal["type", "event"]
AcceptOrder = Literal["quote_first", "mm_first", "quote_only", "mm_only"]
QuoteStatus = Literal["accepted", "confirmed", "executed", "expired", "rejected", "withdrawn", "settled", "cancelled"]
QUOTE_STATUSES: frozenset[str] = frozenset(get_args(QuoteStatus))
MalformedKind = Literal["not_json", "no_event_key", "unknown_event", "missing_quote_id", "bad_deadline"]
MALFORMED_KINDS: tuple[str, ...] = get_args(MalformedKind)

_USDC = Decimal("0.000001")
_LEG_KEYS = frozenset({"leg_id", "venue", "event_ticker", "market_ticker", "side", "leg_odds"})
# Venue limits (protocols.md §4.3): the simulator refuses quotes the venue could never accept,
# so a test cannot script an impossible trade by accident.
_MIN_LEGS, _MAX_LEGS = 2, 5
_USER_COST_RANGE = (Decimal(1), Decimal(100))
_ODDS_RANGE = (Decimal("1.01"), Decimal(1000))
# [I] the quote's own expiry is not carried by the accept events; accepted quotes were live
# for at most expires_in_ms (15 s in the §4.1 example), so valid_until lies shortly after acceptance.
_VALID_FOR_S = 10.0


def dumps(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))


def iso_ms(ts: float) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``, the form of every documented Totalis timestamp."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_unix(when: datetime | float) -> float:
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise ValueError("confirmation_deadline must be timezone-aware")
        return when.timestamp()
    return float(when)


def _wire_time(ts: float, epoch_ms: bool) -> str | int:
    # protocols.md §4.2 [I]: adapters must parse both ISO strings and epoch milliseconds.
    return round(ts * 1000) if epoch_ms else iso_ms(ts)


def _money(value: Decimal) -> float:
    return float(value.quantize(_USDC))


@dataclass(frozen=True)
class SimLeg:
    leg_id: str
    venue: Literal["kalshi", "polymarket"]
    event_ticker: str
    market_ticker: str
    side: Literal["yes", "no"]
    leg_odds: Decimal


def parse_legs(legs: Sequence[Mapping[str, Any]], payout_odds: Decimal) -> tuple[SimLeg, ...]:
    """Validate caller legs and fill the optional fields (leg_id, event_ticker, leg_odds)."""
    if not _MIN_LEGS <= len(legs) <= _MAX_LEGS:
        raise ValueError(f"a parlay has {_MIN_LEGS}-{_MAX_LEGS} legs, got {len(legs)}")
    # Without leg prices, spread the parlay odds evenly: the product matches to rounding.
    even_odds = Decimal(str(round(float(payout_odds) ** (1 / len(legs)), 4)))
    parsed: list[SimLeg] = []
    for i, leg in enumerate(legs):
        unknown = set(leg) - _LEG_KEYS
        if unknown:
            raise ValueError(f"leg {i}: unknown keys {sorted(unknown)}")
        venue, side, ticker = leg.get("venue"), leg.get("side"), leg.get("market_ticker")
        if venue not in ("kalshi", "polymarket"):
            raise ValueError(f"leg {i}: venue must be 'kalshi' or 'polymarket', got {venue!r}")
        if side not in ("yes", "no"):
            raise ValueError(f"leg {i}: side must be 'yes' or 'no', got {side!r}")
        if not isinstance(ticker, str) or not ticker:
            raise ValueError(f"leg {i}: market_ticker is required")
        # Kalshi market tickers extend their event ticker by one '-' segment; a Polymarket
        # market is a condition id with no such structure, so it stands for its own event.
        default_event = ticker.rsplit("-", 1)[0] if venue == "kalshi" and "-" in ticker else ticker
        parsed.append(
            SimLeg(
                leg_id=str(leg.get("leg_id", f"leg-{i + 1}")),
                venue=venue,
                event_ticker=str(leg.get("event_ticker", default_event)),
                market_ticker=ticker,
                side=side,
                leg_odds=Decimal(str(leg["leg_odds"])) if "leg_odds" in leg else even_odds,
            )
        )
    if len({leg.leg_id for leg in parsed}) != len(parsed):
        raise ValueError("duplicate leg_id")
    return tuple(parsed)


def check_economics(user_cost: Decimal, payout_odds: Decimal) -> None:
    if not _USER_COST_RANGE[0] <= user_cost <= _USER_COST_RANGE[1]:
        raise ValueError(f"user_cost must be 1-100 USDC, got {user_cost}")
    if not _ODDS_RANGE[0] <= payout_odds <= _ODDS_RANGE[1]:
        raise ValueError(f"payout_odds must be 1.01-1000, got {payout_odds}")


@dataclass(eq=False)
class SimQuote:
    """One quote of ours that a user accepted, and where it stands now."""

    quote_id: str
    rfq_id: str
    market_maker_id: str
    user_id: str
    user_cost: Decimal
    payout_odds: Decimal
    legs: tuple[SimLeg, ...]
    confirmation_deadline: float
    accepted_at: float
    status: QuoteStatus = "accepted"
    execution_id: str | None = None

    @property
    def total_payout(self) -> Decimal:
        return (self.user_cost * self.payout_odds).quantize(_USDC)

    @property
    def mm_cost(self) -> Decimal:
        # protocols.md §4.3: the MM's maximum loss, e.g. 25 x 4.25 = 106.25 -> 81.25.
        return self.total_payout - self.user_cost.quantize(_USDC)

    def exposure_shares(self) -> list[Decimal]:
        # [I] per-leg share of mm_cost: an even split, the remainder on the last leg, so the
        # shares add up to mm_cost exactly in Decimal.
        share = (self.mm_cost / len(self.legs)).quantize(_USDC, rounding=ROUND_DOWN)
        shares = [share] * len(self.legs)
        shares[-1] = self.mm_cost - share * (len(self.legs) - 1)
        return shares

    def exposure_legs(self) -> list[dict[str, Any]]:
        # [I] protocols.md §4.2: exposure_legs[] inner fields were truncated in every source.
        return [
            {
                "leg_id": leg.leg_id,
                "venue": leg.venue,
                "event_ticker": leg.event_ticker,
                "market_ticker": leg.market_ticker,
                "side": leg.side,
                "exposure_usd": float(share),
            }
            for leg, share in zip(self.legs, self.exposure_shares(), strict=True)
        ]

    def request_hash(self) -> str:
        basis = dumps(
            {
                "rfq_id": self.rfq_id,
                "user_cost": str(self.user_cost),
                "legs": [[leg.venue, leg.market_ticker, leg.side] for leg in self.legs],
            }
        )
        return "sha256:" + hashlib.sha256(basis.encode()).hexdigest()

    def quote_object(self, epoch_ms: bool) -> dict[str, Any]:
        # [I] the §4.1 quote object plus leg_prices; request_version is always 1 because the
        # simulator has no pre-trade channel on which a request could be revised.
        return {
            "id": self.quote_id,
            "market_maker_id": self.market_maker_id,
            "request_version": 1,
            "request_hash": self.request_hash(),
            "payout_odds": float(self.payout_odds),
            "user_cost": _money(self.user_cost),
            "total_payout": _money(self.total_payout),
            "mm_cost": _money(self.mm_cost),
            "valid_until": _wire_time(self.accepted_at + _VALID_FOR_S, epoch_ms),
            "leg_prices": [{"leg_id": leg.leg_id, "leg_odds": float(leg.leg_odds)} for leg in self.legs],
        }

    def quote_accepted(self, epoch_ms: bool) -> dict[str, Any]:
        return {
            "quote_id": self.quote_id,
            "rfq_id": self.rfq_id,
            "confirmation_deadline": _wire_time(self.confirmation_deadline, epoch_ms),
        }

    def mm_quote_accepted(self, epoch_ms: bool) -> dict[str, Any]:
        return {
            "rfq_id": self.rfq_id,
            "quote_id": self.quote_id,
            "user_id": self.user_id,
            "quote": self.quote_object(epoch_ms),
            "exposure_legs": self.exposure_legs(),
            "confirmation_deadline": _wire_time(self.confirmation_deadline, epoch_ms),
            "accepted_at": _wire_time(self.accepted_at, epoch_ms),
        }

    def rest_row(self) -> dict[str, Any]:
        # [I] GET /mm/quotes row: the endpoint is named in §4.4 but its shape is not documented.
        row: dict[str, Any] = {
            "id": self.quote_id,
            "rfq_id": self.rfq_id,
            "status": self.status,
            "mm_cost": _money(self.mm_cost),
            "user_cost": _money(self.user_cost),
            "payout_odds": float(self.payout_odds),
            "confirmation_deadline": iso_ms(self.confirmation_deadline),
            "accepted_at": iso_ms(self.accepted_at),
        }
        if self.execution_id is not None:
            row["execution_id"] = self.execution_id
        row["exposure_legs"] = self.exposure_legs()
        return row


def malformed_frame(kind: str, event_key: EventKey, channel: str, now: float) -> str:
    """One defective event frame on ``channel``; only the named defect makes it invalid."""
    deadline = iso_ms(now + 30)
    data: dict[str, Any] = {"quote_id": "q-malformed", "rfq_id": "rfq-malformed", "confirmation_deadline": deadline}
    if kind == "not_json":
        return dumps({event_key: "quote:accepted", "channel": channel, "data": data})[:40]
    if kind == "no_event_key":
        return dumps({"channel": channel, "data": data})
    if kind == "unknown_event":
        return dumps({event_key: "quote:teleported", "channel": channel, "data": data})
    if kind == "missing_quote_id":
        del data["quote_id"]
        return dumps({event_key: "quote:accepted", "channel": channel, "data": data})
    if kind == "bad_deadline":
        data["confirmation_deadline"] = "not-a-date"
        return dumps({event_key: "quote:accepted", "channel": channel, "data": data})
    raise ValueError(f"unknown malformed kind: {kind!r}")
