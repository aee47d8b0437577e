"""Quiet versus dead: each feed's state, and `FeedDown` after a grace.

A fill stream is quiet by nature (Mango has no heartbeat at all), so silence never marks a feed
dead here; only the session's word does: a closed socket, a missing pong, a refused login
(FeedDown) or a healthy connection (FeedUp). A feed still down after its grace raises `FeedDown`,
critical when a desk holds exposure on the venue (its risk is now unobserved), else warning. A
sequence gap puts the feed into `resyncing` until the fresh snapshot arrives; how long that took
is recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from riskmon.alerts.lifecycle import ActiveAlert, AlertTransition
from riskmon.watchdogs.context import WatchdogContext, at
from riskmon.watchdogs.latency import LatencyHistogram

KIND = "feed-down"
ALERT = "FeedDown"


class FeedState(StrEnum):
    UP = "up"
    DOWN = "down"
    RESYNCING = "resyncing"


@dataclass(frozen=True, slots=True)
class FeedDetail:
    state: FeedState
    down_since: float | None  # the first loss while down (retries keep it), or riskmon's start
    reason: str | None  # the session's latest word on why it is down; None before it said anything


@dataclass(slots=True)
class _Feed:
    state: FeedState = FeedState.DOWN
    down_since: float | None = None
    reason: str | None = None
    alert_severity: str | None = None  # the severity FeedDown fired with, while it fires
    gaps: dict[str, float] | None = None  # stream -> when its gap was seen


class FeedWatchdog:
    def __init__(self, ctx: WatchdogContext, grace: Mapping[str, float]) -> None:
        self._ctx = ctx
        self._grace = dict(grace)
        self._feeds: dict[str, _Feed] = {venue: _Feed() for venue in grace}
        self.resync_seconds: dict[str, LatencyHistogram] = {venue: LatencyHistogram() for venue in grace}

    def state(self, venue: str) -> FeedState:
        feed = self._feeds.get(venue)
        return feed.state if feed is not None else FeedState.DOWN

    def detail(self, venue: str) -> FeedDetail:
        feed = self._feeds.get(venue)
        if feed is None:
            return FeedDetail(FeedState.DOWN, None, None)
        return FeedDetail(feed.state, feed.down_since, feed.reason)

    def states(self) -> dict[str, FeedState]:
        return {venue: feed.state for venue, feed in self._feeds.items()}

    def start(self, now: float) -> None:
        """riskmon just started: a venue that never connects must be reported too."""
        for venue, feed in self._feeds.items():
            if feed.state is FeedState.DOWN and feed.down_since is None:
                feed.down_since = now
                self._ctx.deadlines.schedule((KIND, venue), now + self._grace[venue])

    def adopt(self, alerts: Iterable[ActiveAlert]) -> None:
        """After a restore: a restored firing FeedDown is the feed's own, as the severity that was not
        persisted would have said, so the feed coming up resolves it."""
        for alert in alerts:
            if alert.alertname == ALERT and alert.state == "firing":
                feed = self._feeds.get(alert.labels.get("venue", ""))
                if feed is not None:
                    feed.alert_severity = alert.severity

    def _feed(self, venue: str) -> _Feed:
        feed = self._feeds.get(venue)
        if feed is None:
            feed = self._feeds[venue] = _Feed()
            self._grace.setdefault(venue, 0.0)
            self.resync_seconds[venue] = LatencyHistogram()
        return feed

    def on_down(self, venue: str, reason: str, now: float) -> None:
        feed = self._feed(venue)
        feed.reason = reason
        if feed.state is FeedState.DOWN and feed.down_since is not None:
            return  # still down: the grace runs from the first loss, not from each failed retry
        feed.state = FeedState.DOWN
        feed.down_since = now
        self._ctx.deadlines.schedule((KIND, venue), now + self._grace[venue])

    def on_up(self, venue: str, now: float) -> list[AlertTransition]:
        feed = self._feed(venue)
        self._ctx.deadlines.cancel((KIND, venue))
        down_since = feed.down_since
        feed.state = FeedState.RESYNCING if feed.gaps else FeedState.UP
        feed.down_since = None
        if feed.alert_severity is None:
            return []
        severity, feed.alert_severity = feed.alert_severity, None
        since = f" (down since {at(down_since)})" if down_since is not None else ""
        return self._ctx.clear_alert(ALERT, severity, {"venue": venue}, f"connected again{since}", now)

    def on_gap(self, venue: str, stream: str, now: float) -> None:
        feed = self._feed(venue)
        if feed.gaps is None:
            feed.gaps = {}
        feed.gaps.setdefault(stream, now)
        if feed.state is FeedState.UP:
            feed.state = FeedState.RESYNCING

    def on_resynced(self, venue: str, stream: str, now: float) -> None:
        feed = self._feed(venue)
        since = feed.gaps.pop(stream, None) if feed.gaps else None
        if since is not None:
            self.resync_seconds[venue].observe(now - since)
        if not feed.gaps and feed.state is FeedState.RESYNCING:
            feed.state = FeedState.UP

    def on_deadline(self, key: tuple[str, str], due: float) -> list[AlertTransition]:
        venue = key[1]
        feed = self._feeds.get(venue)
        if feed is None or feed.state is not FeedState.DOWN or feed.down_since is None:
            return []
        desks = self._ctx.exposed_desks(venue)
        severity = "critical" if desks else "warning"
        # One restored from before a restart may have fired at the other severity: it ends here.
        previous, feed.alert_severity = feed.alert_severity, severity
        superseded = (
            self._ctx.clear_alert(ALERT, previous, {"venue": venue}, f"superseded by a {severity} FeedDown", due)
            if previous is not None and previous != severity
            else []
        )
        exposure = (
            f"Desks with exposure on it, now unobserved: {', '.join(desks)}."
            if desks
            else "No desk holds exposure on it."
        )
        annotations = {
            "summary": f"{venue} feed down since {at(feed.down_since)}",
            "description": f"The {venue} feed has been down for {due - feed.down_since:g}s "
            f"(last reason: {feed.reason or 'not connected yet'}). {exposure}",
        }
        return superseded + self._ctx.raise_alert(
            ALERT, severity, {"venue": venue}, annotations, due, due - feed.down_since
        )
