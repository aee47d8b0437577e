"""The venue heartbeat watchdog: ProphetX sends `health_check` every 5 s; none for longer than
`health_check_gap` means the private channel is dead even if the socket looks open, so the
session reconnects and `VenueHealthCheckGap` fires until health_checks resume.
"""

from __future__ import annotations

from collections.abc import Mapping

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.engine.actions import ReconnectCause
from riskmon.watchdogs.context import WatchdogContext, at

KIND = "health-check"
ALERT = "VenueHealthCheckGap"


class HealthCheckWatchdog:
    def __init__(self, ctx: WatchdogContext, gaps: Mapping[str, float]) -> None:
        self._ctx = ctx
        self._gaps = dict(gaps)
        self._last: dict[str, float] = {}
        self._firing: dict[str, str] = {}  # venue -> severity the alert fired with
        self.gaps_detected: dict[str, int] = dict.fromkeys(gaps, 0)

    def tracks(self, venue: str) -> bool:
        return venue in self._gaps

    def last_health_check(self, venue: str) -> float | None:
        return self._last.get(venue)

    def on_feed_up(self, venue: str, now: float) -> None:
        if self.tracks(venue):
            self._ctx.deadlines.schedule((KIND, venue), now + self._gaps[venue])

    def on_feed_down(self, venue: str) -> None:
        # While the feed is down the feed watchdog speaks; the gap clock restarts at FeedUp.
        self._ctx.deadlines.cancel((KIND, venue))

    def on_heartbeat(self, venue: str, now: float) -> list[AlertTransition]:
        if not self.tracks(venue):
            return []
        self._last[venue] = now
        self._ctx.deadlines.schedule((KIND, venue), now + self._gaps[venue])
        severity = self._firing.pop(venue, None)
        if severity is None:
            return []
        resolution = f"health_check resumed (received at {at(now)})"
        return self._ctx.clear_alert(ALERT, severity, {"venue": venue}, resolution, now)

    def on_deadline(self, key: tuple[str, str], due: float) -> list[AlertTransition]:
        venue = key[1]
        gap = self._gaps[venue]
        self.gaps_detected[venue] += 1
        self._ctx.reconnect(venue, f"no health_check for {gap:g}s", ReconnectCause.HEALTH_CHECK_GAP, due)
        # Re-armed: if the reconnect does not happen or does not help, try again a gap later.
        self._ctx.deadlines.schedule((KIND, venue), due + gap)
        last = self._last.get(venue)
        desks = self._ctx.exposed_desks(venue)
        severity = self._firing.get(venue) or ("critical" if desks else "warning")
        self._firing[venue] = severity
        seen = f"the last one arrived at {at(last)}" if last is not None else "none arrived on this connection"
        annotations = {
            "summary": f"{venue}: no health_check for {gap:g}s, reconnecting",
            "description": f"The venue sends health_check every 5s; {seen}. The private channel "
            f"(orders, fills) may be dead. Reconnecting."
            + (f" Desks with exposure: {', '.join(desks)}." if desks else ""),
        }
        # float(): the gap is a config Duration, a float subclass the state file cannot encode.
        return self._ctx.raise_alert(ALERT, severity, {"venue": venue}, annotations, due, float(gap))
