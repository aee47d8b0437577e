"""Prometheus metrics read from engine state at scrape time.

The engine keeps plain counters; this collector turns them into metric families only when
Prometheus asks, so the hot path never pays a prometheus_client call per event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from riskmon import __version__
from riskmon.engine.engine import Engine


class EngineCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | InfoMetricFamily]:
        engine = self._engine
        info = InfoMetricFamily("riskmon_build", "riskmon build information")
        info.add_metric([], {"version": __version__})
        yield info

        counters = {
            "frames": ("riskmon_frames_received_total", "Frames received from the venue"),
            "fills": ("riskmon_fills_total", "Desk fills applied to exposure"),
            "duplicates": ("riskmon_fill_duplicates_total", "Fills dropped as already seen"),
            "malformed": ("riskmon_malformed_frames_total", "Frames dropped as unusable"),
            "reconnects": ("riskmon_feed_reconnects_total", "Connections lost after being up"),
        }
        for attr, (name, doc) in counters.items():
            family = CounterMetricFamily(name, doc, labels=["venue"])
            for venue, stats in sorted(engine.stats.items()):
                family.add_metric([venue], getattr(stats, attr))
            yield family
        revokes = CounterMetricFamily(
            "riskmon_fill_revokes_total", "Fills reversed after the venue voided them", labels=["venue", "reason"]
        )
        for venue, stats in sorted(engine.stats.items()):
            revokes.add_metric([venue, "revoke"], stats.revoked)
            revokes.add_metric([venue, "absent_from_checkpoint"], stats.voided)
        yield revokes

        feed_up = GaugeMetricFamily("riskmon_feed_up", "1 while the venue connection is up", labels=["venue"])
        for venue, stats in sorted(engine.stats.items()):
            feed_up.add_metric([venue], 1.0 if stats.feed_up else 0.0)
        yield feed_up

        # Summed over accounts: account ids are unbounded, desks and markets are not.
        positions: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
        notionals: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
        for row in engine.book.rows():
            key = (row.key.desk, row.key.venue, row.key.market)
            positions[key] += row.position
            if row.notional_usd is not None:
                notionals[key] += row.notional_usd
        position = GaugeMetricFamily(
            "riskmon_position", "Net position in base units", labels=["desk", "venue", "market"]
        )
        net = GaugeMetricFamily(
            "riskmon_exposure_net_notional_usd", "Net notional at the latest mark", labels=["desk", "venue", "market"]
        )
        for key, amount in sorted(positions.items()):
            position.add_metric(list(key), float(amount))
            if key in notionals:
                net.add_metric(list(key), float(notionals[key]))
        yield position
        yield net

        utilisation = GaugeMetricFamily(
            "riskmon_limit_utilisation_ratio", "Exposure over its limit", labels=["desk", "limit", "market"]
        )
        for (desk, limit, market), ratio in sorted(engine.limits.utilisation.items()):
            utilisation.add_metric([desk, limit, market], ratio)
        yield utilisation

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


def engine_registry(engine: Engine) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(engine))
    return registry
