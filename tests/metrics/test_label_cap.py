"""Bounded labels: markets beyond server.metrics.max_markets fold into market="other" with totals
preserved, and free-text reasons map to fixed sets."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.samples import Sample

from riskmon.config.loader import parse_config
from riskmon.engine.engine import Engine
from riskmon.events import DisconnectCause, FillReceived, Liquidity, MarkPrice, Side, SubscriptionFailed
from riskmon.metrics import engine_registry
from riskmon.metrics.labels import OTHER, Labels, fold, top_markets
from riskmon.venues.session_failures import VenueUnavailable, close_cause, refusal_cause, unavailable_cause
from riskmon.watchdogs.failure_reasons import FailureReason, rejection_reason

T0 = 1_700_000_000.0
DESK = "DMjLV5AdbdnAxEE9CCJYdzGhEDVAaKPJDRTZQ7kgMZwm"
MARKETS = 3000


def config(max_markets: int | None = None) -> str:
    metrics = f"server: {{metrics: {{max_markets: {max_markets}}}}}\n" if max_markets is not None else ""
    return (
        metrics
        + f"""
venues:
  mango: {{kind: mango_v3_fills, urls: ["ws://127.0.0.1:1"]}}
  mango2: {{kind: mango_v3_fills, urls: ["ws://127.0.0.1:2"]}}
desks:
  alpha:
    accounts: {{mango: [{DESK}], mango2: [{DESK}]}}
    limits:
      max_net_notional_usd: [{{market: "*", max_usd: 1000000}}]
"""
    )


def fill(i: int, venue: str = "mango") -> FillReceived:
    # Sizes 1..3000, alternating sides, so |notional| ranks the markets and signs cancel in sums.
    side = Side.BUY if i % 2 else Side.SELL
    return FillReceived(
        venue,
        "alpha",
        DESK,
        f"M{i:04}",
        side,
        Decimal(i + 1),
        Decimal(1),
        f"f{i}",
        "q",
        i,
        Liquidity.TAKER,
        Decimal(0),
        0,
    )


def loaded_engine(max_markets: int | None = None) -> tuple[Engine, CollectorRegistry]:
    engine = Engine(parse_config(config(max_markets), "t.yaml", {}))
    engine.ingest("mango", [fill(i) for i in range(MARKETS)], T0)
    engine.ingest("mango", [MarkPrice("mango", f"M{i:04}", Decimal("2.5"), T0) for i in range(MARKETS)], T0 + 1)
    engine.ingest("mango2", [fill(i, "mango2") for i in range(3)], T0)
    engine.ingest("mango2", [MarkPrice("mango2", f"M{i:04}", Decimal(1), T0) for i in range(3)], T0 + 1)
    return engine, engine_registry(engine)


def samples(registry: CollectorRegistry, name: str, **match: str) -> list[Sample]:
    return [
        s
        for family in registry.collect()
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in match.items())
    ]


def total(registry: CollectorRegistry, name: str, **match: str) -> float:
    return sum(s.value for s in samples(registry, name, **match))


def test_three_thousand_markets_export_the_200_largest_plus_other_with_totals_preserved() -> None:
    engine, registry = loaded_engine()
    for name in ("riskmon_position", "riskmon_exposure_net_notional_usd", "riskmon_exposure_gross_notional_usd"):
        markets = [s.labels["market"] for s in samples(registry, name, venue="mango")]
        assert len(markets) == 201, name
        # The largest exposures stay visible (sizes 2801..3000), the same ones in every family.
        assert set(markets) == {f"M{i:04}" for i in range(2800, MARKETS)} | {OTHER}, name
        # The cap is per venue: the venue with three markets keeps them all.
        assert {s.labels["market"] for s in samples(registry, name, venue="mango2")} == {"M0000", "M0001", "M0002"}
    rows = [row for row in engine.book.rows() if row.key.venue == "mango"]
    assert total(registry, "riskmon_position", venue="mango") == float(sum(r.position for r in rows))
    net = sum(r.notional_usd for r in rows if r.notional_usd is not None)
    gross = sum(abs(r.notional_usd) for r in rows if r.notional_usd is not None)
    assert total(registry, "riskmon_exposure_net_notional_usd", venue="mango") == float(net)
    assert total(registry, "riskmon_exposure_gross_notional_usd", venue="mango") == float(gross)
    other = samples(registry, "riskmon_exposure_gross_notional_usd", venue="mango", market=OTHER)[0].value
    assert other == float(sum(Decimal(i) for i in range(1, 2801)) * Decimal("2.5"))
    folded = {s.labels["metric"]: s.value for s in samples(registry, "riskmon_metric_series_capped")}
    assert folded["riskmon_position"] == 2800
    assert folded["riskmon_exposure_gross_notional_usd"] == 2800


def test_desk_families_cap_per_desk_and_utilisation_keeps_the_worst_folded_ratio() -> None:
    engine, registry = loaded_engine()
    underlyings = samples(registry, "riskmon_desk_exposure_net_notional_usd", desk="alpha")
    # 3000 instruments on one desk (Mango's 3000, Mango2's three shared by name): 200 + other.
    assert len(underlyings) == 201
    book_total = sum(net for _, _, _, net in engine.book.instrument_rows() if net is not None)
    assert sum(s.value for s in underlyings) == float(book_total)
    ratios = samples(registry, "riskmon_limit_utilisation_ratio", desk="alpha", limit="net_notional")
    assert len(ratios) == 201
    other = next(s.value for s in ratios if s.labels["market"] == OTHER)
    # Market M2799 (size 2800) is the largest folded one; a ratio summed would mean nothing.
    assert other == 2800 * 2.5 / 1_000_000


def test_max_markets_comes_from_the_config() -> None:
    _, registry = loaded_engine(max_markets=50)
    assert len(samples(registry, "riskmon_position", venue="mango")) == 51
    assert len(samples(registry, "riskmon_position", venue="mango2")) == 3


def test_top_markets_ranks_by_absolute_weight_then_name_and_never_folds_the_empty_market() -> None:
    weights: dict[Labels, Decimal] = {
        ("v", "a"): Decimal(-5),
        ("v", "b"): Decimal(5),
        ("v", "c"): Decimal(1),
        ("v", ""): Decimal(99),
    }
    kept = top_markets(weights, 2)
    assert kept == {"v": frozenset({"a", "b"})}
    assert top_markets(weights, 3) == {}  # within the cap: nothing to fold
    values: dict[Labels, float] = {
        ("d", "v", "a"): 1.0,
        ("d", "v", "c"): 2.0,
        ("d", "v", ""): 3.0,
        ("d", "w", "c"): 4.0,
    }
    series, folded = fold(values, 1, 2, kept, max)
    assert series == {("d", "v", "a"): 1.0, ("d", "v", OTHER): 2.0, ("d", "v", ""): 3.0, ("d", "w", "c"): 4.0}
    assert folded == 1


@pytest.mark.parametrize(
    ("venue_reason", "expected"),
    [
        ("insufficient_balance", FailureReason.INSUFFICIENT_BALANCE),
        ("Not enough funds", FailureReason.INSUFFICIENT_BALANCE),
        ("market suspended", FailureReason.MARKET_CLOSED),
        ("odds changed", FailureReason.ODDS_CHANGED),
        ("stake exceeds max", FailureReason.STAKE_LIMIT),
        ("duplicate external_id", FailureReason.DUPLICATE),
        ("declined", FailureReason.OTHER),  # "line" inside a word is not a line change
        ("invalid", FailureReason.OTHER),
        (None, FailureReason.OTHER),
    ],
)
def test_rejection_reasons_map_to_a_fixed_set(venue_reason: str | None, expected: FailureReason) -> None:
    assert rejection_reason(venue_reason) is expected


@pytest.mark.parametrize(
    ("code", "reason", "by_venue", "expected"),
    [
        (1000, "bye", True, DisconnectCause.CLOSED_BY_VENUE),
        (4200, "reconnect", True, DisconnectCause.CLOSED_BY_VENUE),
        (1011, "internal error", True, DisconnectCause.CLOSED_BY_VENUE),
        (1011, "keepalive ping timeout", False, DisconnectCause.PING_TIMEOUT),  # websockets gave up on us
        (1006, "", False, DisconnectCause.NETWORK_ERROR),
        (4401, "", True, DisconnectCause.AUTH),
        (1000, "access_token_expired", True, DisconnectCause.AUTH),
        (4001, "Idle timeout - no subscription received", True, DisconnectCause.IDLE),
        (4201, "Pong reply not received", True, DisconnectCause.PING_TIMEOUT),
        (1009, "", False, DisconnectCause.OTHER),
    ],
)
def test_closes_map_to_a_cause(code: int, reason: str, by_venue: bool, expected: DisconnectCause) -> None:
    assert close_cause(code, reason, [], by_venue=by_venue) is expected


def test_a_credentials_refusal_just_before_the_close_makes_it_auth() -> None:
    refused = SubscriptionFailed("tot", "auth", "Invalid API key", misconfigured=True)
    assert close_cause(4001, "", [refused], by_venue=True) is DisconnectCause.AUTH  # Totalis' 4001 is not idle


def test_refusals_and_unavailable_venues_map_to_a_cause() -> None:
    assert refusal_cause(401) is DisconnectCause.AUTH
    assert refusal_cause(503) is DisconnectCause.REFUSED
    assert unavailable_cause(VenueUnavailable("POST /login: HTTP 403", 403)) is DisconnectCause.AUTH
    assert unavailable_cause(VenueUnavailable("POST /login: HTTP 429", 429)) is DisconnectCause.REFUSED
    assert unavailable_cause(VenueUnavailable("POST /login: timed out")) is DisconnectCause.NETWORK_ERROR
    assert unavailable_cause(VenueUnavailable("POST /login: ConnectError")) is DisconnectCause.NETWORK_ERROR
    assert unavailable_cause(VenueUnavailable("not logged in")) is DisconnectCause.OTHER


def test_reconnect_reasons_are_summed_per_cause_not_per_text() -> None:
    by_cause: dict[str, int] = defaultdict(int)
    for code in (1000, 1001, 4200, 1011):
        by_cause[close_cause(code, f"anything {code}", [], by_venue=True).value] += 1
    assert by_cause == {"closed_by_venue": 4}
