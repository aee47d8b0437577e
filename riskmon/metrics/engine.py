"""The engine collector: venue counters, feed liveness, exposure, alerts and watchdogs.

The engine keeps plain counters; this collector turns them into metric families only when
Prometheus asks, so the hot path never pays a prometheus_client call per event.
"""

from __future__ import annotations

import platform
from collections import defaultdict
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from riskmon import __version__
from riskmon.clock import Clock
from riskmon.engine.engine import Engine
from riskmon.events import DisconnectCause
from riskmon.metrics.exposure import exposure_families
from riskmon.metrics.families import per_venue
from riskmon.metrics.watchdogs import watchdog_families

_COUNTERS = {
    "frames": ("riskmon_frames_received_total", "Frames received from the venue"),
    "fills": ("riskmon_fills_total", "Desk fills applied to exposure"),
    "duplicates": ("riskmon_fill_duplicates_total", "Fills dropped as already seen"),
    "malformed": ("riskmon_malformed_frames_total", "Frames dropped as unusable"),
}


class EngineCollector(Collector):
    """`clock` gives `now` for the ages (absent without one); the market cap is the engine config's."""

    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        self._engine = engine
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        engine = self._engine
        info = InfoMetricFamily("riskmon_build", "riskmon build information")
        info.add_metric([], {"version": __version__, "python_version": platform.python_version()})
        yield info
        yield from self._venue_families()
        capped: dict[str, int] = {}
        yield from exposure_families(engine, engine.config.server.metrics.max_markets, capped)

        firing: dict[tuple[str, str, str], int] = defaultdict(int)
        for alert in engine.alerts.active():
            if alert.state == "firing":
                firing[(alert.alertname, alert.severity, alert.labels.get("desk", ""))] += 1
        alerts = GaugeMetricFamily(
            "riskmon_alerts_firing", "Alerts firing now", labels=["alertname", "severity", "desk"]
        )
        for key, count in sorted(firing.items()):
            alerts.add_metric(list(key), count)
        yield alerts
        yield from watchdog_families(engine)

        # Named without `_total`: it is a gauge (series folded at this scrape), and promtool rejects
        # a gauge with a counter's suffix.
        folded = GaugeMetricFamily(
            "riskmon_metric_series_capped",
            'Series summed into market="other" at this scrape (server.metrics.max_markets)',
            labels=["metric"],
        )
        per_venue(folded, capped)
        yield folded

    def _venue_families(self) -> Iterator[Metric]:
        stats = sorted(self._engine.stats.items())
        for attr, (name, doc) in _COUNTERS.items():
            family = CounterMetricFamily(name, doc, labels=["venue"])
            for venue, venue_stats in stats:
                family.add_metric([venue], getattr(venue_stats, attr))
            yield family
        reconnects = CounterMetricFamily(
            "riskmon_feed_reconnects_total",
            "Connections that ended, attempts that never came up included, by cause",
            labels=["venue", "reason"],
        )
        for venue, venue_stats in stats:
            for cause in DisconnectCause:
                reconnects.add_metric([venue, cause.value], venue_stats.disconnects.get(cause, 0))
        yield reconnects
        revokes = CounterMetricFamily(
            "riskmon_fill_revokes_total", "Fills reversed after the venue voided them", labels=["venue", "reason"]
        )
        for venue, venue_stats in stats:
            revokes.add_metric([venue, "revoke"], venue_stats.revoked)
            revokes.add_metric([venue, "absent_from_checkpoint"], venue_stats.voided)
        yield revokes

        feed_up = GaugeMetricFamily("riskmon_feed_up", "1 while the venue connection is up", labels=["venue"])
        per_venue(feed_up, {venue: 1.0 if venue_stats.feed_up else 0.0 for venue, venue_stats in stats})
        yield feed_up
        last_frames = {venue: s.last_frame_at for venue, s in stats if s.last_frame_at is not None}
        last = GaugeMetricFamily(
            "riskmon_last_message_timestamp_seconds", "When the venue's last frame arrived", labels=["venue"]
        )
        per_venue(last, last_frames)
        yield last
        if self._clock is None:
            return
        now = self._clock.now()
        age = GaugeMetricFamily(
            "riskmon_last_message_age_seconds", "Seconds since the venue's last frame", labels=["venue"]
        )
        per_venue(age, {venue: now - at for venue, at in last_frames.items()})
        yield age
        gap = GaugeMetricFamily(
            "riskmon_heartbeat_gap_seconds",
            "Seconds since the venue's last liveness signal (ProphetX health_check); absent for venues without one",
            labels=["venue"],
        )
        per_venue(gap, {venue: now - s.last_heartbeat_at for venue, s in stats if s.last_heartbeat_at is not None})
        yield gap


def engine_registry(engine: Engine, clock: Clock | None = None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(engine, clock))
    return registry
