"""Limits and threshold rules are judged only where a change can move them, and still decide
exactly as a full judgement would: a price that moves no desk's net judges no limit, a key whose
values did not move is not observed again (the evaluation tick still judges every key), and the
worst-case-loss limit judges only the events whose loss moved, restored ones included.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from riskmon.engine.exposure import PositionKey
from riskmon.events import MarkKind, MarkPrice, OrderStatus
from riskmon.rules.limits import LimitEvaluator
from riskmon.rules.threshold import ThresholdEvaluator
from tests.rules.conftest import MANGO, T0, desks_with, fill, make_engine, mark
from tests.watchdogs.conftest import PX, PX_ACCOUNT, order

LIMITS = """
limits:
  max_net_notional_usd: [{market: "*", max_usd: 5000}]
  max_gross_notional_usd: 10000
  max_worst_case_loss_usd: 500
"""


def _count_judged(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    judged: list[str] = []
    real = LimitEvaluator._judge

    def spy(self: LimitEvaluator, line: Any, value: Decimal, *args: Any) -> None:
        judged.append(line.labels["limit"])
        real(self, line, value, *args)

    monkeypatch.setattr(LimitEvaluator, "_judge", spy)
    return judged


def test_a_price_that_moves_no_net_judges_no_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(desks=desks_with(alpha=LIMITS))
    judged = _count_judged(monkeypatch)
    engine.ingest(MANGO, [fill("10"), mark("100")], T0)
    assert judged == ["gross_notional", "net_notional", "gross_notional"]  # no net to judge before the mark
    judged.clear()
    engine.ingest(MANGO, [mark("100")], T0 + 1)  # the same price
    engine.ingest(MANGO, [mark("100", market="BTC-PERP")], T0 + 2)  # a market nobody holds
    assert judged == []
    [warning] = engine.ingest(MANGO, [mark("410")], T0 + 3)  # 4,100 of 5,000: over the 80% warning line
    assert (warning.status, warning.severity, warning.labels["limit"]) == ("firing", "warning", "net_notional")
    assert judged == ["net_notional", "gross_notional"]
    assert engine.limits.utilisation[("alpha", "net_notional", "SOL-PERP")] == pytest.approx(0.82)


def test_a_trade_price_under_a_reference_mark_moves_nothing_and_the_reference_moves_every_venue() -> None:
    underlyings = "underlyings:\n  SOL: {mango: SOL-PERP, px: SOL}\n"
    engine = make_engine(underlyings, desks=desks_with(alpha=LIMITS))
    engine.ingest(MANGO, [fill("10"), MarkPrice("px", "SOL", Decimal(100), 0.0, MarkKind.MARK)], T0)
    assert engine.ingest(MANGO, [mark("900")], T0 + 1) == []  # a trade price: the reference still rules
    assert engine.book.desk_market_net("alpha", "SOL") == Decimal(1000)
    [critical, warning] = sorted(
        engine.ingest("px", [MarkPrice("px", "SOL", Decimal(600), 0.0, MarkKind.MARK)], T0 + 2),
        key=lambda t: t.severity,
    )
    assert (critical.severity, critical.labels["market"], critical.value) == ("critical", "SOL", 6000.0)
    assert warning.severity == "warning"


def test_an_unchanged_key_is_not_observed_again_until_the_evaluation_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    rules = """
    alerts: {evaluation_interval: 10s}
    rules:
      - {kind: threshold, name: BigNet, when: "market.net_usd > 1000"}
    """
    engine = make_engine(rules)
    engine.advance(T0)
    [rule] = engine.rule_hooks.rules.rules().values()
    assert isinstance(rule, ThresholdEvaluator)
    observed: list[float | None] = []
    real = rule._when  # the compiled `when`: called once per judgement of a key with every value

    def spy(values: dict[str, Any], labels: dict[str, str]) -> bool:
        breached = real(values, labels)
        observed.append(float(values["market.net_usd"]))
        return breached

    monkeypatch.setattr(rule, "_when", spy)
    for step in (1, 1.5):
        engine.ingest(MANGO, [fill("2.5")], T0 + step)
    assert (observed, rule.errors["missing"]) == ([], 2)  # no mark: no decision, counted each time
    engine.ingest(MANGO, [mark("100")], T0 + 1.8)
    assert (observed, rule.errors["missing"]) == ([500.0], 2)
    engine.ingest(MANGO, [mark("100")], T0 + 2)
    engine.ingest(MANGO, [fill("1", desk="beta")], T0 + 3)  # another desk's key
    assert observed == [500.0, 100.0]  # only beta's key moved
    [fired] = engine.ingest(MANGO, [mark("300")], T0 + 4)
    assert (fired.alertname, fired.value, fired.labels["desk"]) == ("BigNet", 1500.0, "alpha")
    observed.clear()
    engine.advance(T0 + 10)  # the tick judges every key, moved or not
    assert sorted(v for v in observed if v is not None) == [300.0, 1500.0]
    [resolved] = engine.ingest(MANGO, [mark("100")], T0 + 11)
    assert (resolved.status, resolved.value) == ("resolved", 500.0)


def test_a_mark_age_rule_sees_every_price_even_one_that_moves_no_net() -> None:
    rules = """
    alerts: {evaluation_interval: 1s}
    rules:
      - {kind: threshold, name: StaleMark, when: "market.mark_age_seconds > 5"}
    """
    engine = make_engine(rules)
    engine.ingest(MANGO, [fill("10"), mark("100")], T0)
    [fired] = [t for step in range(1, 8) for t in engine.advance(T0 + step)]
    assert (fired.ts, fired.status, fired.alertname) == (T0 + 6, "firing", "StaleMark")
    [resolved] = engine.ingest(MANGO, [mark("100")], T0 + 7.5)  # the same price: no net moved
    assert (resolved.ts, resolved.status) == (T0 + 7.5, "resolved")


def test_worst_case_loss_judges_only_the_events_whose_loss_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(desks=desks_with(alpha=LIMITS))
    bets = [order(f"b{n}", OrderStatus.OPEN, market=f"{n}/1/1", worst_case_loss_usd=Decimal(100)) for n in range(20)]
    engine.ingest(PX, bets, T0)
    judged = _count_judged(monkeypatch)
    [fired, warned] = sorted(
        engine.ingest(PX, [order("x", OrderStatus.OPEN, market="7/2/1", worst_case_loss_usd=Decimal(450))], T0 + 1),
        key=lambda t: t.severity,
    )
    assert judged == ["worst_case_loss"]  # event 7 only, not the 19 others
    assert (fired.severity, fired.labels["market"], fired.value) == ("critical", "7", 550.0)
    assert warned.severity == "warning"
    judged.clear()
    assert engine.ingest(PX, [order("y", OrderStatus.OPEN, market="8/1/1")], T0 + 2) == []  # no loss stated
    assert judged == []
    settled = order("x", OrderStatus.SETTLED, market="7/2/1", sequence=2)
    assert sorted(t.status for t in engine.ingest(PX, [settled], T0 + 3)) == ["resolved", "resolved"]
    assert engine.limits.utilisation[("alpha", "worst_case_loss", "7")] == pytest.approx(0.2)


def test_restored_risk_is_judged_at_the_first_ingest() -> None:
    engine = make_engine(desks=desks_with(alpha=LIMITS))
    key = PositionKey("alpha", PX, PX_ACCOUNT, "42/1/1")
    engine.book.restore({}, {}, {}, {key: {"b1": (Decimal(700), False)}})
    transitions = engine.ingest(PX, [], T0)
    assert sorted((t.status, t.severity, t.labels["market"]) for t in transitions) == [
        ("firing", "critical", "42"),
        ("firing", "warning", "42"),
    ]
