"""Bounded label values: markets beyond a cap are summed into market="other".

Pure: label tuples and values in, label tuples and values out. The markets kept are, per group
(a venue, or a desk for the desk-wide families), the `limit` with the largest |weight| (USD
exposure), ties broken by name, so the series that matter to risk stay visible and the choice is
deterministic; the rest are combined (summed, so totals are preserved) into one "other" series.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TypeVar

OTHER = "other"
Labels = tuple[str, ...]
_V = TypeVar("_V", Decimal, float)


def top_markets(weights: Mapping[Labels, _V], limit: int) -> dict[str, frozenset[str]]:
    """(group, market) -> weight, to group -> the markets to keep, for the groups over `limit` only.

    The empty market ("" in a desk-wide limit) is never folded and does not count against the cap.
    """
    by_group: dict[str, dict[str, _V]] = {}
    for (group, market), weight in weights.items():
        if market:
            by_group.setdefault(group, {})[market] = weight
    kept: dict[str, frozenset[str]] = {}
    for group, markets in by_group.items():
        if len(markets) > limit:
            ranked = sorted(markets, key=lambda market: (-abs(markets[market]), market))
            kept[group] = frozenset(ranked[:limit])
    return kept


def fold(
    values: Mapping[Labels, _V],
    group_at: int,
    market_at: int,
    kept: Mapping[str, frozenset[str]],
    combine: Callable[[_V, _V], _V],
) -> tuple[dict[Labels, _V], int]:
    """Relabel the markets a group does not keep as "other", combining their values.

    Returns the series and how many source series were folded into "other".
    """
    out: dict[Labels, _V] = {}
    folded = 0
    for series, value in values.items():
        keep = kept.get(series[group_at])
        market = series[market_at]
        key = series
        if keep is not None and market and market not in keep:
            relabelled = list(series)
            relabelled[market_at] = OTHER
            key = tuple(relabelled)
            folded += 1
        held = out.get(key)
        out[key] = value if held is None else combine(held, value)
    return out, folded
