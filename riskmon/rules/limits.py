"""Desk exposure limits: net notional per market pattern, gross notional, pending RFQ exposure and
worst-case loss per event.

Each limit raises `ExposureLimitBreach` at two severities: warning at `warn_at` of the limit
and critical at the limit itself; an active alert clears only below `clear_at` of its own
threshold. Only the limits a change can affect are evaluated, and a limit that is neither
breached nor alerting costs a comparison and a lookup per severity: its labels, fingerprints and
thresholds are worked out once, and annotations are worded only when an alert starts or
someone reads them (a firing alert is re-judged at every mark that moves its net).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from decimal import Decimal
from functools import partial

from riskmon.alerts.fingerprints import fingerprint
from riskmon.alerts.lifecycle import AlertTracker, AlertTransition
from riskmon.config.schema import Desk
from riskmon.engine.exposure import ExposureBook

ALERTNAME = "ExposureLimitBreach"
LineKey = tuple[str, str, str]  # (desk, limit, market or event or "")


def usd(amount: Decimal) -> str:
    return f"${amount:,.0f}"


def usd_cents(amount: Decimal) -> str:
    # To the cent where whole dollars could mislead: $949.60 is below a $950 clear level.
    return f"${amount:,.2f}"


def _wording(what: str, value: Decimal, limit: Decimal, level: _Level) -> dict[str, str]:
    return {
        "summary": f"{what} is {usd(value)}, {value / limit:.0%} of its {usd(limit)} limit",
        "description": (
            f"{what} reached {usd(value)} against a limit of {usd(limit)} "
            f"({level.severity} at {usd(level.threshold)}, clears below {usd(level.clear_below)})."
        ),
        "value": f"{value:.2f}",
        "limit": f"{limit:.2f}",
    }


class _Level:
    __slots__ = ("clear_below", "fingerprint", "severity", "threshold")

    def __init__(self, severity: str, threshold: Decimal, clear_below: Decimal, labels: Mapping[str, str]) -> None:
        self.severity = severity
        self.threshold = threshold
        self.clear_below = clear_below
        self.fingerprint = fingerprint({**labels, "alertname": ALERTNAME, "severity": severity})


class _Line:
    """One limit of a desk as one alert line (per market or event where it has one)."""

    __slots__ = ("fingerprints", "floor", "labels", "levels", "limit", "pending_for", "value", "what")

    def __init__(self, config: Desk, labels: dict[str, str], what: str, limit: Decimal) -> None:
        self.labels = labels
        self.what = what
        self.limit = limit
        self.pending_for = config.limits.pending_for
        warn_at, clear_at = config.limits.warn_at, config.limits.clear_at
        thresholds = [("critical", limit)] + ([("warning", limit * warn_at)] if warn_at < 1 else [])
        self.levels = tuple(_Level(severity, t, t * clear_at, labels) for severity, t in thresholds)
        self.fingerprints = tuple(level.fingerprint for level in self.levels)
        # Below every threshold, a line with no active alert has nothing to start or clear.
        self.floor = min(level.threshold for level in self.levels)
        self.value: Decimal | None = None  # latest judged; None: no utilisation to report


def _idle(line: _Line, tracker: AlertTracker) -> bool:
    """No alert of the line is pending or firing."""
    return not tracker.any_active(line.fingerprints)


# A (desk, market) whose net limit line is not worked out yet (None: no pattern matches it).
_UNKNOWN = _Line.__new__(_Line)


class LimitEvaluator:
    def __init__(self, desks: Mapping[str, Desk]) -> None:
        self._desks = desks
        # (desk, market) -> the net limit line that applies (None: no pattern matches the market).
        self._net_lines: dict[tuple[str, str], _Line | None] = {}
        self._lines: dict[LineKey, _Line] = {}
        # Fingerprints observed during a full evaluation (evaluate_all), None otherwise.
        self._seen: set[str] | None = None

    @property
    def utilisation(self) -> dict[LineKey, float]:
        """(desk, limit, market or event or "") -> latest utilisation, read by metrics and the demo."""
        return {key: float(line.value / line.limit) for key, line in self._lines.items() if line.value is not None}

    def net_limit(self, desk: str, market: str) -> Decimal | None:
        line = self._net_line(desk, market)
        return None if line is None else line.limit

    def _net_line(self, desk: str, market: str) -> _Line | None:
        cache_key = (desk, market)
        if cache_key in self._net_lines:
            return self._net_lines[cache_key]
        config = self._desks[desk]
        limits = config.limits.max_net_notional_usd
        match = next((lim.max_usd for lim in limits if fnmatch.fnmatchcase(market, lim.market)), None)
        line = None
        if match is not None:
            labels = {"desk": desk, "market": market, "limit": "net_notional"}
            what = f"Desk {desk} net notional on {market}"
            line = self._line(config, (desk, "net_notional", market), labels, what, match)
        self._net_lines[cache_key] = line
        return line

    def _line(self, config: Desk, key: LineKey, labels: dict[str, str], what: str, limit: Decimal) -> _Line:
        line = self._lines.get(key)
        if line is None:
            line = self._lines[key] = _Line(config, labels, what, limit)
        return line

    def evaluate(
        self, desk: str, markets: Iterable[str], book: ExposureBook, tracker: AlertTracker, now: float
    ) -> list[AlertTransition]:
        config = self._desks.get(desk)
        if config is None:
            return []
        out: list[AlertTransition] = []
        net_lines = self._net_lines
        for market in markets:
            # Every mark that moves a desk's net comes here: one lookup for a line already known.
            line = net_lines.get((desk, market), _UNKNOWN)
            if line is _UNKNOWN:
                line = self._net_line(desk, market)
            if line is None:
                continue
            net = book.desk_market_net(desk, market)
            if net is not None:
                self._judge(line, net.copy_abs(), tracker, now, out)
        gross_limit = config.limits.max_gross_notional_usd
        if gross_limit is not None:
            line = self._lines.get((desk, "gross_notional", ""))  # labels and wording built once
            if line is None:
                labels = {"desk": desk, "limit": "gross_notional"}
                what = f"Desk {desk} gross notional"
                line = self._line(config, (desk, "gross_notional", ""), labels, what, gross_limit)
            self._judge(line, book.desk_gross(desk), tracker, now, out)
        return out

    def evaluate_risk(
        self,
        desk: str,
        book: ExposureBook,
        tracker: AlertTracker,
        now: float,
        events: Iterable[str] | None = None,
    ) -> list[AlertTransition]:
        """The limits on USD at risk without a mark: pending RFQ quotes, and worst-case loss on
        `events` (those whose loss moved; None: every event of the desk, and those judged before)."""
        config = self._desks.get(desk)
        if config is None:
            return []
        out: list[AlertTransition] = []
        pending_limit = config.limits.max_pending_rfq_usd
        if pending_limit is not None:
            line = self._lines.get((desk, "pending_rfq", ""))
            if line is None:
                labels = {"desk": desk, "limit": "pending_rfq"}
                what = f"Desk {desk} pending RFQ exposure"
                line = self._line(config, (desk, "pending_rfq", ""), labels, what, pending_limit)
            self._judge(line, book.desk_pending(desk), tracker, now, out)
        loss_limit = config.limits.max_worst_case_loss_usd
        if loss_limit is not None:
            if events is None:
                # An event whose loss went to zero is judged once more, or its alert would never clear.
                judged = (k[2] for k, line in self._lines.items() if k[:2] == (desk, "worst_case_loss") and line.value)
                events = {*book.desk_worst_case_loss_by_event(desk), *judged}
            for event, value in sorted(book.desk_worst_case_loss_by_event(desk, events).items()):
                line = self._lines.get((desk, "worst_case_loss", event))
                if line is None:
                    labels = {"desk": desk, "market": event, "limit": "worst_case_loss"}
                    what = f"Desk {desk} worst-case loss on {event}"
                    line = self._line(config, (desk, "worst_case_loss", event), labels, what, loss_limit)
                self._judge(line, value, tracker, now, out)
                if not value:
                    # Nothing at risk: no utilisation to report, and the line need not be kept.
                    line.value = None
                    if _idle(line, tracker):
                        del self._lines[(desk, "worst_case_loss", event)]
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
            transition = tracker.end(alert.fingerprint, now, "its limit is no longer configured")
            if transition is not None:
                out.append(transition)
        return out

    def _judge(
        self, line: _Line, value: Decimal, tracker: AlertTracker, now: float, out: list[AlertTransition]
    ) -> None:
        """Observe the line's alerts at `value`, appending the transitions to `out`."""
        seen = self._seen
        if seen is not None:
            seen.update(line.fingerprints)
        elif value == line.value:
            return  # judged at this value already: observing it again would change nothing
        line.value = value
        if value < line.floor and not tracker.any_active(line.fingerprints):
            return  # nothing to start and nothing to clear: no annotations to word
        limit = line.limit
        for level in line.levels:
            breached = value >= level.threshold
            if not breached and tracker.get(level.fingerprint) is None:
                continue
            transition = tracker.observe(
                ALERTNAME,
                level.severity,
                line.labels,
                breached=breached,
                cleared=value < level.clear_below,
                value=float(value),
                annotations=partial(_wording, line.what, value, limit, level),
                pending_for=line.pending_for,
                now=now,
                resolution=(
                    f"back to {usd_cents(value)} against the {usd_cents(limit)} limit"
                    if value < level.clear_below
                    else None
                ),
                fp=level.fingerprint,
            )
            if transition is not None:
                out.append(transition)
