from __future__ import annotations

from decimal import Decimal

import pytest

from riskmon.engine import rule_hooks
from riskmon.events import Liquidation, OrderStatus, Side, SubscriptionFailed
from tests.rules.conftest import MANGO, MANGO_ALPHA, T0, brief, desks_with, fill, make_engine
from tests.watchdogs.conftest import PX, order

REJECTED = """
alerts: {event_resolve_after: 60s}
rules:
  - kind: event
    name: NoMargin
    event: order_rejected
    match: '{reason=~"insufficient.*"}'
    resolve_after: 20s
    annotations: {summary: "{venue} rejected on {market}: {reason}"}
  - kind: event
    name: AnyLiquidation
    severity: critical
    event: liquidation
"""


def test_a_reason_regex_picks_the_rejections_and_the_alert_resolves_on_time() -> None:
    engine = make_engine(REJECTED)
    ours = [t for t in engine.ingest(PX, [order("o1", OrderStatus.REJECTED, reason="market closed")], T0)]
    assert [t.alertname for t in ours if t.alertname == "NoMargin"] == []
    out = engine.ingest(PX, [order("o2", OrderStatus.REJECTED, reason="insufficient funds")], T0 + 1)
    [fired] = [t for t in out if t.alertname == "NoMargin"]
    assert brief([fired]) == [(T0 + 1, "firing", "NoMargin", {"desk": "alpha", "venue": PX, "market": "10/20/30"})]
    assert "reason" not in fired.labels  # free text: annotations only
    assert fired.annotations["summary"] == "px rejected on 10/20/30: insufficient funds"
    assert [t for t in engine.advance(T0 + 20.9) if t.alertname == "NoMargin"] == []
    [resolved] = [t for t in engine.advance(T0 + 21) if t.alertname == "NoMargin"]
    assert (resolved.ts, resolved.status) == (T0 + 21, "resolved")


def test_a_repeated_liquidation_is_not_a_new_signal_and_the_default_resolve_after_applies() -> None:
    liquidation = Liquidation(MANGO, "alpha", MANGO_ALPHA, "SOL-PERP", Side.SELL, Decimal(3), None, "liq-1", 0.0)
    engine = make_engine(REJECTED)
    [fired] = [t for t in engine.ingest(MANGO, [liquidation], T0) if t.alertname == "AnyLiquidation"]
    assert (fired.severity, fired.value, fired.labels["rule_kind"]) == ("critical", 3.0, "event")
    [resolved] = [t for t in engine.advance(T0 + 60) if t.alertname == "AnyLiquidation"]
    assert resolved.ts == T0 + 60  # alerts.event_resolve_after
    assert engine.ingest(MANGO, [liquidation], T0 + 61) == []  # the venue repeating itself


def test_a_match_on_value_and_a_desk_rule_sees_only_its_desk() -> None:
    desks = desks_with(
        beta="""
        rules:
          - kind: event
            name: BigBetaFill
            event: fill
            match: value >= 5 and {side="buy"}
        """
    )
    engine = make_engine(desks=desks)
    assert engine.ingest(MANGO, [fill("9", desk="alpha"), fill("4", desk="beta")], T0) == []
    assert engine.ingest(MANGO, [fill("9", desk="beta", side=Side.SELL)], T0 + 1) == []
    [fired] = engine.ingest(MANGO, [fill("5", desk="beta")], T0 + 2)
    assert brief([fired]) == [
        (T0 + 2, "firing", "BigBetaFill", {"desk": "beta", "venue": MANGO, "market": "SOL-PERP", "side": "buy"})
    ]


def test_venue_signals_without_a_desk_reach_a_desk_rule_only_on_its_venues() -> None:
    desks = desks_with(
        beta="""
        rules:
          - kind: event
            name: BetaBlind
            event: subscription_error
        """
    )
    engine = make_engine(desks=desks)
    out = engine.ingest(PX, [SubscriptionFailed(PX, "markets", "denied")], T0)
    assert [t.alertname for t in out if t.alertname == "BetaBlind"] == []  # beta trades no ProphetX
    out = engine.ingest(MANGO, [SubscriptionFailed(MANGO, "fills", "denied")], T0)
    [fired] = [t for t in out if t.alertname == "BetaBlind"]
    assert fired.labels["desk"] == "beta"
    assert fired.labels["subscription"] == "fills"


def test_no_signal_is_built_for_a_kind_no_rule_listens_to(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a Signal was built for a kind nobody listens to")

    engine = make_engine(REJECTED)
    monkeypatch.setattr(rule_hooks, "Signal", refuse)
    assert engine.rule_hooks.listened == frozenset({"order_rejected", "liquidation"})
    engine.ingest(MANGO, [fill("1")], T0)
    assert engine.stats[MANGO].fills == 1
    assert engine.stats[MANGO].engine_errors == 0
