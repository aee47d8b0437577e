"""Desk exposure limits: net notional per market pattern and gross notional per desk.

Each limit raises `ExposureLimitBreach` at two severities: warning at `warn_at` of the limit
and critical at the limit itself; an active alert clears only below `clear_at` of its own
threshold. Only the limits a change can affect are evaluated.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from decimal import Decimal

from riskmon.alerts.lifecycle import AlertTracker, AlertTransition
from riskmon.config.schema import Desk
from riskmon.engine.exposure import ExposureBook

ALERTNAME = "ExposureLimitBreach"


def usd(amount: Decimal) -> str:
    return f"${amount:,.0f}"


class LimitEvaluator:
    def __init__(self, desks: Mapping[str, Desk]) -> None:
        self._desks = desks
        # (desk, limit, market or "") -> latest utilisation, read by metrics and the demo.
        self.utilisation: dict[tuple[str, str, str], float] = {}
        self._market_limit_cache: dict[tuple[str, str], Decimal | None] = {}

    def net_limit(self, desk: str, market: str) -> Decimal | None:
        cache_key = (desk, market)
        if cache_key not in self._market_limit_cache:
            limits = self._desks[desk].limits.max_net_notional_usd
            match = next((lim.max_usd for lim in limits if fnmatch.fnmatchcase(market, lim.market)), None)
            self._market_limit_cache[cache_key] = match
        return self._market_limit_cache[cache_key]

    def evaluate(
        self, desk: str, markets: Iterable[str], book: ExposureBook, tracker: AlertTracker, now: float
    ) -> list[AlertTransition]:
        config = self._desks.get(desk)
        if config is None:
            return []
        out: list[AlertTransition] = []
        for market in markets:
            limit = self.net_limit(desk, market)
            if limit is None:
                continue
            net = book.desk_market_net(desk, market)
            if net is None:
                continue
            value = abs(net)
            self.utilisation[(desk, "net_notional", market)] = float(value / limit)
            labels = {"desk": desk, "market": market, "limit": "net_notional"}
            what = f"Desk {desk} net notional on {market}"
            out.extend(self._observe(config, labels, what, value, limit, tracker, now))
        gross_limit = config.limits.max_gross_notional_usd
        if gross_limit is not None:
            value = book.desk_gross(desk)
            self.utilisation[(desk, "gross_notional", "")] = float(value / gross_limit)
            labels = {"desk": desk, "limit": "gross_notional"}
            out.extend(self._observe(config, labels, f"Desk {desk} gross notional", value, gross_limit, tracker, now))
        return out

    def _observe(
        self,
        config: Desk,
        labels: dict[str, str],
        what: str,
        value: Decimal,
        limit: Decimal,
        tracker: AlertTracker,
        now: float,
    ) -> list[AlertTransition]:
        levels = [("critical", limit)]
        if config.limits.warn_at < 1:
            levels.append(("warning", limit * config.limits.warn_at))
        out = []
        for severity, threshold in levels:
            ratio = value / limit
            annotations = {
                "summary": f"{what} is {usd(value)}, {ratio:.0%} of its {usd(limit)} limit",
                "description": (
                    f"{what} reached {usd(value)} against a limit of {usd(limit)} "
                    f"({severity} at {usd(threshold)}, clears below {usd(threshold * config.limits.clear_at)})."
                ),
                "value": f"{value:.2f}",
                "limit": f"{limit:.2f}",
            }
            transition = tracker.observe(
                ALERTNAME,
                severity,
                labels,
                breached=value >= threshold,
                cleared=value < threshold * config.limits.clear_at,
                value=float(value),
                annotations=annotations,
                pending_for=config.limits.pending_for,
                now=now,
            )
            if transition is not None:
                out.append(transition)
        return out
