"""The new engine families, driven by real events through Engine.ingest on virtual time and read
from a fresh registry per test (registry injection, as in client_python)."""

from __future__ import annotations

import platform
from decimal import Decimal

from prometheus_client import CollectorRegistry
from prometheus_client.samples import Sample

from riskmon import __version__
from riskmon.clock import VirtualClock
from riskmon.config.loader import parse_config
from riskmon.engine.engine import Engine
from riskmon.events import (
    DisconnectCause,
    FeedDown,
    FeedUp,
    FillReceived,
    Heartbeat,
    Liquidity,
    MarkKind,
    MarkPrice,
    OrderIntake,
    OrderLookupFailed,
    OrderStatus,
    OrderUpdate,
    QuoteStatus,
    QuoteUpdate,
    Side,
)
from riskmon.metrics import engine_registry

T0 = 1_700_000_000.0
M1 = "DMjLV5AdbdnAxEE9CCJYdzGhEDVAaKPJDRTZQ7kgMZwm"  # Mango accounts and the Phoenix authority: base58 keys
M2 = "GJw8MDxaeVh4sSNsi6cEWSHW5bp93UAtCBuMo18hW2nX"
P1 = "5ZWj7a1f8tWkjBESHKgrLmXshuXxqeY9SYcfbshpAqPG"
CONFIG = f"""
venues:
  mango: {{kind: mango_v3_fills, urls: ["ws://127.0.0.1:1"]}}
  phoenix: {{kind: phoenix, authority: {P1}}}
  px: {{kind: prophetx, rest_url: "http://127.0.0.1:1/partner", access_key: k, secret_key: s}}
  tot: {{kind: totalis_rfq, api_key: k}}
underlyings:
  SOL: {{mango: SOL-PERP, phoenix: SOL}}
desks:
  sol-desk:
    accounts: {{mango: [{M1}, {M2}], phoenix: [{P1}]}}
    limits:
      max_net_notional_usd:
        - {{market: SOL, max_usd: 30000}}
        - {{market: "*", max_usd: 5000}}
        - {{market: SOL, max_usd: 1}}
      max_gross_notional_usd: 80000
  books:
    accounts: {{px: [u1], tot: [mm1]}}
    limits: {{max_pending_rfq_usd: 1000, max_worst_case_loss_usd: 400}}
"""


def setup() -> tuple[Engine, CollectorRegistry, VirtualClock]:
    clock = VirtualClock(T0)
    engine = Engine(parse_config(CONFIG, "t.yaml", {}))
    return engine, engine_registry(engine, clock), clock


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def fill(key: str, qty: str, side: Side, account: str, venue: str = "mango", market: str = "SOL-PERP") -> FillReceived:
    return FillReceived(
        venue,
        "sol-desk",
        account,
        market,
        side,
        Decimal(qty),
        Decimal(100),
        key,
        "q",
        1,
        Liquidity.TAKER,
        Decimal(0),
        0,
    )


def test_build_info_names_the_version_and_python() -> None:
    _, registry, _ = setup()
    info = {"version": __version__, "python_version": platform.python_version()}
    assert value(registry, "riskmon_build_info", **info) == 1


def test_reconnects_by_cause_count_every_ended_connection_and_keep_the_up_only_counter() -> None:
    engine, registry, _ = setup()
    assert value(registry, "riskmon_feed_reconnects_total", venue="mango", reason="closed_by_venue") == 0
    engine.ingest("mango", [FeedUp("mango", "wss://m")], T0, is_frame=False)
    engine.ingest("mango", [FeedDown("mango", "wss://m", "server closed", DisconnectCause.CLOSED_BY_VENUE)], T0 + 1)
    # Two failed attempts while down: each is a reconnect the session makes.
    engine.ingest("mango", [FeedDown("mango", "wss://m", "refused", DisconnectCause.REFUSED)], T0 + 2)
    engine.ingest("mango", [FeedDown("mango", "wss://m", "refused", DisconnectCause.REFUSED)], T0 + 3)
    engine.ingest("px", [FeedDown("px", "wss://p", "old capture")], T0 + 3)  # no cause: other
    assert value(registry, "riskmon_feed_reconnects_total", venue="mango", reason="closed_by_venue") == 1
    assert value(registry, "riskmon_feed_reconnects_total", venue="mango", reason="refused") == 2
    assert value(registry, "riskmon_feed_reconnects_total", venue="mango", reason="auth") == 0
    assert value(registry, "riskmon_feed_reconnects_total", venue="px", reason="other") == 1
    assert engine.stats["mango"].reconnects == 1  # venue.reconnects (rules): lost after being up
    reasons = {s.labels["reason"] for s in _samples(registry, "riskmon_feed_reconnects_total")}
    assert reasons == {cause.value for cause in DisconnectCause}


def test_last_message_and_heartbeat_ages_come_from_the_injected_clock() -> None:
    engine, registry, clock = setup()
    assert value(registry, "riskmon_last_message_age_seconds", venue="px") is None  # no frame yet
    engine.ingest("px", [Heartbeat("px", "sock-1")], T0 + 5)
    engine.ingest("px", [], T0 + 8)  # a frame without events (a pong)
    clock.set(T0 + 20)
    assert value(registry, "riskmon_last_message_timestamp_seconds", venue="px") == T0 + 8
    assert value(registry, "riskmon_last_message_age_seconds", venue="px") == 12
    assert value(registry, "riskmon_heartbeat_gap_seconds", venue="px") == 15
    assert value(registry, "riskmon_heartbeat_gap_seconds", venue="mango") is None  # Mango has no heartbeat
    # A REST answer or a session report is not a message from the stream.
    engine.ingest("px", [FeedUp("px", "wss://p")], T0 + 19, is_frame=False)
    assert value(registry, "riskmon_last_message_age_seconds", venue="px") == 12
    without_clock = engine_registry(engine)
    assert value(without_clock, "riskmon_last_message_age_seconds", venue="px") is None
    assert value(without_clock, "riskmon_last_message_timestamp_seconds", venue="px") == T0 + 8


def test_gross_is_the_sum_of_each_accounts_size_while_net_offsets_them() -> None:
    engine, registry, _ = setup()
    engine.ingest("mango", [fill("a", "10", Side.BUY, M1), fill("b", "4", Side.SELL, M2)], T0)
    engine.ingest("mango", [MarkPrice("mango", "SOL-PERP", Decimal(150), T0)], T0 + 1)
    labels = {"desk": "sol-desk", "venue": "mango", "market": "SOL-PERP"}
    assert value(registry, "riskmon_position", **labels) == 6
    assert value(registry, "riskmon_exposure_net_notional_usd", **labels) == 900  # (10 - 4) x 150
    assert value(registry, "riskmon_exposure_gross_notional_usd", **labels) == 2100  # (10 + 4) x 150


def test_desk_net_per_underlying_crosses_venues_and_desk_gross_sums_underlyings() -> None:
    engine, registry, _ = setup()
    engine.ingest("mango", [fill("a", "10", Side.BUY, M1)], T0)
    engine.ingest("phoenix", [fill("p", "25", Side.SELL, P1, venue="phoenix", market="SOL")], T0)
    engine.ingest("mango", [fill("e", "2", Side.BUY, M1, market="ETH-PERP")], T0)
    assert value(registry, "riskmon_desk_exposure_net_notional_usd", desk="sol-desk", underlying="SOL") is None
    engine.ingest("phoenix", [MarkPrice("phoenix", "SOL", Decimal(100), T0, MarkKind.MARK)], T0 + 1)
    engine.ingest("mango", [MarkPrice("mango", "ETH-PERP", Decimal(2000), T0)], T0 + 1)
    assert value(registry, "riskmon_desk_exposure_net_notional_usd", desk="sol-desk", underlying="SOL") == -1500
    assert value(registry, "riskmon_desk_exposure_net_notional_usd", desk="sol-desk", underlying="ETH-PERP") == 4000
    assert value(registry, "riskmon_desk_exposure_gross_notional_usd", desk="sol-desk") == 5500
    assert value(registry, "riskmon_desk_exposure_gross_notional_usd", desk="books") == 0
    # The per-venue view keeps the venue's own sign: 10 long on Mango, 25 short on Phoenix.
    assert (
        value(registry, "riskmon_exposure_net_notional_usd", desk="sol-desk", venue="mango", market="SOL-PERP") == 1000
    )
    utilisation = value(
        registry, "riskmon_limit_utilisation_ratio", desk="sol-desk", limit="net_notional", market="SOL"
    )
    assert utilisation == 1500 / 30000


def test_desk_limit_lines_come_from_the_config() -> None:
    _, registry, _ = setup()
    lines = {
        (s.labels["desk"], s.labels["limit"], s.labels["market"]): s.value
        for s in _samples(registry, "riskmon_desk_limit_usd")
    }
    assert lines == {
        ("sol-desk", "net_notional", "SOL"): 30000,  # the repeated SOL pattern never applies: not a line
        ("sol-desk", "net_notional", "*"): 5000,
        ("sol-desk", "gross_notional", ""): 80000,
        ("books", "pending_rfq", ""): 1000,
        ("books", "worst_case_loss", ""): 400,
    }


def test_rfq_pending_exposure_and_worst_case_loss_per_desk() -> None:
    engine, registry, _ = setup()

    def quote(quote_id: str, status: QuoteStatus, loss: str | None = None) -> QuoteUpdate:
        worst = Decimal(loss) if loss is not None else None
        return QuoteUpdate("tot", "books", "mm1", quote_id, "r1", status, worst_case_loss_usd=worst)

    engine.ingest("tot", [quote("q1", QuoteStatus.ACCEPTED, "81.25"), quote("q2", QuoteStatus.ACCEPTED, "50")], T0)
    assert value(registry, "riskmon_rfq_pending_exposure_usd", desk="books") == 131.25
    assert value(registry, "riskmon_worst_case_loss_usd", desk="books") == 0
    engine.ingest("tot", [quote("q2", QuoteStatus.CONFIRMED)], T0 + 1)
    assert value(registry, "riskmon_rfq_pending_exposure_usd", desk="books") == 81.25
    assert value(registry, "riskmon_worst_case_loss_usd", desk="books") == 50
    assert value(registry, "riskmon_rfq_pending_exposure_usd", desk="sol-desk") == 0


def order(order_id: str, status: OrderStatus, sequence: int, reason: str | None = None) -> OrderUpdate:
    return OrderUpdate("px", "books", "u1", order_id, "1/2/3", status, status.value, sequence, 0.0, reason=reason)


def test_activation_failures_by_bounded_reason() -> None:
    engine, registry, _ = setup()
    engine.ingest("px", [order("a", OrderStatus.REJECTED, 1, "Insufficient balance for stake")], T0)
    engine.ingest("px", [order("a", OrderStatus.REJECTED, 2, "Insufficient balance for stake")], T0 + 1)  # repeat
    secret = "wallet 0xdeadbeef: call +1-555-0100"  # a venue reason can carry anything: never a label
    engine.ingest("px", [order("b", OrderStatus.PENDING, 1), order("b", OrderStatus.REJECTED, 2, secret)], T0)
    engine.ingest("px", [OrderIntake("px", "c", placed_at=T0), OrderIntake("px", "d", placed_at=T0)], T0)
    engine.advance(T0 + 10)  # both time out: reconnect + lookup
    engine.ingest("px", [OrderLookupFailed("px", "c", "GET /order: HTTP 404", 404)], T0 + 10.5, is_frame=False)
    engine.ingest("px", [OrderLookupFailed("px", "d", "GET /order: timed out")], T0 + 10.5, is_frame=False)

    def failures(reason: str) -> float | None:
        return value(registry, "riskmon_order_activation_failures_total", venue="px", reason=reason)

    assert failures("insufficient_balance") == 1
    assert failures("other") == 1
    assert failures("unknown_order") == 1
    assert failures("lookup_failed") == 1
    assert failures("stake_limit") == 0
    exported = {s.labels["reason"] for s in _samples(registry, "riskmon_order_activation_failures_total")}
    assert secret not in exported
    assert len(exported) == 8


def _samples(registry: CollectorRegistry, name: str) -> list[Sample]:
    return [s for family in registry.collect() for s in family.samples if s.name == name]
