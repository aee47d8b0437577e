"""Exposure, limit and at-risk families, read from the engine's books at scrape time.

Summed over accounts: account ids are unbounded, desks are not, and markets are capped per venue
(per desk for the cross-venue families) with the rest in market="other".
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Iterator, MutableMapping
from decimal import Decimal

from prometheus_client.core import GaugeMetricFamily, Metric

from riskmon.engine.engine import Engine
from riskmon.metrics.families import gauge
from riskmon.metrics.labels import Labels, fold, top_markets

ZERO = Decimal(0)
DESK_VENUE_MARKET = ("desk", "venue", "market")


def exposure_families(engine: Engine, max_markets: int, capped: MutableMapping[str, int]) -> Iterator[Metric]:
    """Every exposure family; `capped` gets, per family, the series folded into "other"."""
    book = engine.book
    positions: dict[Labels, Decimal] = defaultdict(Decimal)
    nets: dict[Labels, Decimal] = {}
    grosses: dict[Labels, Decimal] = {}
    weights: dict[Labels, Decimal] = defaultdict(Decimal)
    for row in book.rows():
        key = (row.key.desk, row.key.venue, row.key.market)
        positions[key] += row.position
        weight = weights[(row.key.venue, row.key.market)]  # an unpriced market still ranks, at 0
        if row.notional_usd is not None:
            nets[key] = nets.get(key, ZERO) + row.notional_usd
            grosses[key] = grosses.get(key, ZERO) + abs(row.notional_usd)
            weights[(row.key.venue, row.key.market)] = weight + abs(row.notional_usd)
    # One choice of markets per venue for the three families, so position and notional line up.
    kept = top_markets(weights, max_markets)
    for name, doc, values in (
        ("riskmon_position", "Net position in base units, summed over accounts", positions),
        ("riskmon_exposure_net_notional_usd", "Net notional at the latest mark, summed over accounts", nets),
        ("riskmon_exposure_gross_notional_usd", "Sum over accounts of |notional| at the latest mark", grosses),
    ):
        series, capped[name] = fold(values, 1, 2, kept, operator.add)
        yield gauge(name, doc, DESK_VENUE_MARKET, series)

    desk_nets: dict[Labels, Decimal] = {
        (desk, instrument): net for desk, instrument, _, net in book.instrument_rows() if net is not None
    }
    series, capped["riskmon_desk_exposure_net_notional_usd"] = fold(
        desk_nets, 0, 1, top_markets(desk_nets, max_markets), operator.add
    )
    yield gauge(
        "riskmon_desk_exposure_net_notional_usd",
        "Desk net notional per underlying across venues and accounts (what net limits compare); "
        "absent while a position in it has no mark",
        ("desk", "underlying"),
        series,
    )

    desks = sorted(set(engine.config.desks) | set(book.desks()))
    for name, doc, read in (
        (
            "riskmon_desk_exposure_gross_notional_usd",
            "Desk gross notional: sum of |net notional| over its underlyings",
            book.desk_gross,
        ),
        (
            "riskmon_rfq_pending_exposure_usd",
            "Accepted RFQ quotes not yet confirmed, at their worst-case loss",
            book.desk_pending,
        ),
        (
            "riskmon_worst_case_loss_usd",
            "Worst-case loss of the desk's bets and RFQ positions",
            book.desk_worst_case_loss,
        ),
    ):
        yield gauge(name, doc, ("desk",), {(desk,): read(desk) for desk in desks})

    yield _limit_lines(engine)

    utilisation: dict[Labels, float] = {key: ratio for key, ratio in engine.limits.utilisation.items()}
    worst: dict[Labels, float] = {}
    for (desk, _, market), ratio in utilisation.items():
        worst[(desk, market)] = max(ratio, worst.get((desk, market), ratio))
    # A ratio summed is meaningless: "other" carries the highest utilisation among those folded.
    series_f, capped["riskmon_limit_utilisation_ratio"] = fold(utilisation, 0, 2, top_markets(worst, max_markets), max)
    yield gauge(
        "riskmon_limit_utilisation_ratio",
        "Exposure over its limit (market: the underlying or event; empty for desk-wide limits)",
        ("desk", "limit", "market"),
        series_f,
    )


def _limit_lines(engine: Engine) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "riskmon_desk_limit_usd",
        "Configured desk limit in USD (net_notional: market is the configured pattern; empty when not per market)",
        labels=["desk", "limit", "market"],
    )
    for desk, config in sorted(engine.config.desks.items()):
        limits = config.limits
        patterns: set[str] = set()
        for net in limits.max_net_notional_usd:
            if net.market not in patterns:  # a repeated pattern never applies: the first match wins
                patterns.add(net.market)
                family.add_metric([desk, "net_notional", net.market], float(net.max_usd))
        for limit, amount in (
            ("gross_notional", limits.max_gross_notional_usd),
            ("pending_rfq", limits.max_pending_rfq_usd),
            ("worst_case_loss", limits.max_worst_case_loss_usd),
        ):
            if amount is not None:
                family.add_metric([desk, limit, ""], float(amount))
    return family
