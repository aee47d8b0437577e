"""Prometheus metrics, read from plain counters and state at scrape time by custom collectors.

No prometheus_client call happens per event; cardinality is bounded (accounts and orders are
never labels, markets are capped per venue, reasons come from fixed sets).
"""

from riskmon.metrics.delivery import DeliveryCollector
from riskmon.metrics.engine import EngineCollector, engine_registry
from riskmon.metrics.runtime import RuntimeCollector, engine_step_histograms

__all__ = ["DeliveryCollector", "EngineCollector", "RuntimeCollector", "engine_registry", "engine_step_histograms"]
