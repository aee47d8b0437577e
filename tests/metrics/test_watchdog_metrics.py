"""The watchdog metric families, read from engine state at scrape time (registry injected)."""

from __future__ import annotations

from decimal import Decimal

import msgspec
from prometheus_client import CollectorRegistry

from riskmon.config.loader import parse_config
from riskmon.engine.engine import Engine
from riskmon.events import (
    FeedDown,
    FeedUp,
    OrderIntake,
    OrderStatus,
    OrderUpdate,
    QuoteStatus,
    QuoteUpdate,
    ReconciliationFinished,
    SequenceGap,
    StreamResynced,
)
from riskmon.metrics import engine_registry

CONFIG = """
venues:
  px: {kind: prophetx, rest_url: "http://127.0.0.1:1/partner", access_key: k, secret_key: s}
  tot: {kind: totalis_rfq, api_key: k}
desks:
  books: {accounts: {px: ["u1"], tot: ["mm1"]}}
"""


def setup() -> tuple[Engine, CollectorRegistry]:
    engine = Engine(parse_config(CONFIG, "t.yaml", {}))
    return engine, engine_registry(engine)


def order(order_id: str, status: OrderStatus, sequence: int) -> OrderUpdate:
    return OrderUpdate("px", "books", "u1", order_id, "1/2", status, status.value, sequence, 0.0)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_activation_latency_pending_and_timeouts_by_outcome() -> None:
    engine, registry = setup()
    engine.ingest("px", [OrderIntake("px", "fast", placed_at=100.0), OrderIntake("px", "lost")], 100.0)
    assert value(registry, "riskmon_orders_pending_activation", venue="px") == 2
    engine.ingest("px", [order("fast", OrderStatus.OPEN, 2)], 100.04)
    assert value(registry, "riskmon_order_activation_latency_seconds_count", venue="px") == 1
    assert value(registry, "riskmon_order_activation_latency_seconds_bucket", venue="px", le="0.05") == 1
    assert value(registry, "riskmon_order_activation_latency_seconds_bucket", venue="px", le="0.025") == 0
    engine.advance(110.0)  # "lost" times out; the lookup finds it open
    engine.ingest("px", [order("lost", OrderStatus.OPEN, 2)], 110.2, is_frame=False, source="get_order")
    assert value(registry, "riskmon_order_activation_timeouts_total", venue="px", outcome="activated_late") == 1
    assert value(registry, "riskmon_orders_pending_activation", venue="px") == 0


def test_rfq_awaiting_missed_and_confirm_latency() -> None:
    engine, registry = setup()
    accepted = QuoteUpdate(
        "tot",
        "books",
        "mm1",
        "q1",
        "r1",
        QuoteStatus.ACCEPTED,
        worst_case_loss_usd=Decimal("81.25"),
        confirmation_deadline=205.0,
    )
    engine.ingest("tot", [accepted, msgspec.structs.replace(accepted, quote_id="q2")], 200.0)
    assert value(registry, "riskmon_rfq_quotes_awaiting_confirmation", venue="tot") == 2
    engine.ingest("tot", [QuoteUpdate("tot", "books", "mm1", "q1", "r1", QuoteStatus.CONFIRMED)], 201.5)
    assert value(registry, "riskmon_rfq_confirm_latency_seconds_sum", venue="tot") == 1.5
    engine.advance(205.0)
    assert value(registry, "riskmon_rfq_confirmation_deadlines_missed_total", venue="tot") == 1


def test_feed_state_resync_time_and_reconciliation_runs() -> None:
    engine, registry = setup()
    assert value(registry, "riskmon_feed_state", venue="px", state="down") == 1
    engine.ingest("px", [FeedUp("px", "wss://h:1")], 10.0)
    assert value(registry, "riskmon_feed_state", venue="px", state="up") == 1
    engine.ingest("px", [SequenceGap("px", "orders", 5, 7)], 11.0)
    assert value(registry, "riskmon_feed_state", venue="px", state="resyncing") == 1
    engine.ingest("px", [StreamResynced("px", "orders")], 11.25)
    assert value(registry, "riskmon_resync_seconds_sum", venue="px") == 0.25
    assert value(registry, "riskmon_sequence_gaps_total", venue="px") == 1
    engine.ingest("px", [ReconciliationFinished("px", "orders+books", 3)], 12.0)
    engine.ingest("px", [ReconciliationFinished("px", "orders+books", error="HTTP 503")], 13.0)
    assert value(registry, "riskmon_reconciliation_runs_total", venue="px", outcome="ok") == 1
    assert value(registry, "riskmon_reconciliation_runs_total", venue="px", outcome="failed") == 1
    engine.ingest("px", [FeedDown("px", "wss://h:1", "closed")], 14.0)
    assert value(registry, "riskmon_feed_state", venue="px", state="down") == 1
    assert value(registry, "riskmon_deadlines_pending") == len(engine.deadlines)
