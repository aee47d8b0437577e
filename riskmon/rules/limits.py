"""Desk exposure limits: net notional per market pattern, gross notional, pending RFQ exposure and
worst-case loss per event.

Each limit raises `ExposureLimitBreach` at two severities: warning at `warn_at` of the limit
and critical at the limit itself; an active alert clears only below `clear_at` of its own
threshold. Only the limits a change can affect are evaluated, and a limit that is neither
breached nor alerting costs a comparison: annotations are worded only when an alert may change.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from decimal import Decimal

from riskmon.alerts.lifecycle import AlertTracker, AlertTransition, fingerprint
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
        self._fingerprints: dict[tuple[tuple[tuple[str, str], ...], str], str] = {}
        # Events each desk's worst-case-loss limit was last judged on: one whose loss went to
        # zero must still be judged once more, or its alert would never clear.
        self._loss_events: dict[str, set[str]] = {}
        # Fingerprints observed during a full evaluation (evaluate_all), None otherwise.
        self._seen: set[str] | None = None

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

    def evaluate_risk(self, desk: str, book: ExposureBook, tracker: AlertTracker, now: float) -> list[AlertTransition]:
        """The limits on USD at risk without a mark: pending RFQ quotes, worst-case loss per event."""
        config = self._desks.get(desk)
        if config is None:
            return []
        out: list[AlertTransition] = []
        pending_limit = config.limits.max_pending_rfq_usd
        if pending_limit is not None:
            value = book.desk_pending(desk)
            self.utilisation[(desk, "pending_rfq", "")] = float(value / pending_limit)
            labels = {"desk": desk, "limit": "pending_rfq"}
            what = f"Desk {desk} pending RFQ exposure"
            out.extend(self._observe(config, labels, what, value, pending_limit, tracker, now))
        loss_limit = config.limits.max_worst_case_loss_usd
        if loss_limit is not None:
            losses = book.desk_worst_case_loss_by_event(desk)
            events = self._loss_events.setdefault(desk, set())
            for event in sorted(events | set(losses)):
                value = losses.get(event, Decimal(0))
                labels = {"desk": desk, "market": event, "limit": "worst_case_loss"}
                what = f"Desk {desk} worst-case loss on {event}"
                out.extend(self._observe(config, labels, what, value, loss_limit, tracker, now))
                if value:
                    events.add(event)
                    self.utilisation[(desk, "worst_case_loss", event)] = float(value / loss_limit)
                else:
                    events.discard(event)
                    self.utilisation.pop((desk, "worst_case_loss", event), None)
        return out

    def evaluate_all(self, book: ExposureBook, tracker: AlertTracker, now: float) -> list[AlertTransition]:
        """Judge every limit of every desk (a reload); resolve limit alerts no limit produces any more."""
        self._seen = set()
        out: list[AlertTransition] = []
        try:
            for desk in self._desks:
                out.extend(self.evaluate(desk, sorted(book.desk_markets(desk)), book, tracker, now))
                out.extend(self.evaluate_risk(desk, book, tracker, now))
            seen = self._seen
        finally:
            self._seen = None
        for alert in tracker.active():
            if alert.alertname != ALERTNAME or alert.fingerprint in seen:
                continue
            labels = {k: v for k, v in alert.labels.items() if k not in ("alertname", "severity")}
            transition = tracker.observe(
                ALERTNAME,
                alert.severity,
                labels,
                breached=False,
                cleared=True,
                value=alert.value,
                annotations=alert.annotations,
                pending_for=0.0,
                now=now,
            )
            if transition is not None:
                out.append(transition)
        return out

    def _fingerprint(self, labels: dict[str, str], severity: str) -> str:
        key = (tuple(labels.items()), severity)
        fp = self._fingerprints.get(key)
        if fp is None:
            fp = self._fingerprints[key] = fingerprint({**labels, "alertname": ALERTNAME, "severity": severity})
        return fp

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
            breached = value >= threshold
            fp = self._fingerprint(labels, severity)
            if self._seen is not None:
                self._seen.add(fp)
            if not breached and tracker.get(fp) is None:
                continue  # observe would do nothing: no annotations to word
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
                breached=breached,
                cleared=value < threshold * config.limits.clear_at,
                value=float(value),
                annotations=annotations,
                pending_for=config.limits.pending_for,
                now=now,
            )
            if transition is not None:
                out.append(transition)
        return out
