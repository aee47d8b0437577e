from __future__ import annotations

from decimal import Decimal

import pytest

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.events import OrderStatus, QuoteStatus
from riskmon.rules import limits
from tests.rules.conftest import MANGO, T0, desks_with, fill, make_engine, mark
from tests.watchdogs.conftest import PX, TOT, order, quote

LIMITS = """
limits:
  max_pending_rfq_usd: 1000
  max_worst_case_loss_usd: 500
  max_gross_notional_usd: 10000
  warn_at: 0.8
  clear_at: 0.95
"""


def _limit(transitions: list[AlertTransition]) -> list[tuple[float, str, str, str]]:
    return [
        (t.ts, t.status, t.severity, t.labels.get("market", ""))
        for t in transitions
        if t.alertname == "ExposureLimitBreach"
    ]


def test_pending_rfq_exposure_warns_breaches_and_clears_when_quotes_confirm() -> None:
    engine = make_engine(desks=desks_with(alpha=LIMITS))
    deadline = T0 + 3600
    q1 = quote("q1", rfq_id="r1", deadline=deadline, worst_case_loss_usd=Decimal(850))
    out = engine.ingest(TOT, [q1], T0)
    assert _limit(out) == [(T0, "firing", "warning", "")]
    [warning] = [t for t in out if t.alertname == "ExposureLimitBreach"]
    assert warning.labels["limit"] == "pending_rfq"
    assert warning.annotations["summary"] == "Desk alpha pending RFQ exposure is $850, 85% of its $1,000 limit"
    q2 = quote("q2", rfq_id="r2", deadline=deadline, worst_case_loss_usd=Decimal(200))
    assert _limit(engine.ingest(TOT, [q2], T0 + 1)) == [(T0 + 1, "firing", "critical", "")]
    assert engine.limits.utilisation[("alpha", "pending_rfq", "")] == pytest.approx(1.05)
    confirmed = quote("q1", QuoteStatus.CONFIRMED, rfq_id="r1")
    assert sorted(_limit(engine.ingest(TOT, [confirmed], T0 + 2))) == [
        # Confirmed, the 850 is a loss the desk can take on RFQ r1: over the 500 per-event limit.
        (T0 + 2, "firing", "critical", "rfq:r1"),
        (T0 + 2, "firing", "warning", "rfq:r1"),
        (T0 + 2, "resolved", "critical", ""),  # 200 pending is below 95% of 1000
        (T0 + 2, "resolved", "warning", ""),  # and below 95% of 800
    ]


def test_worst_case_loss_is_judged_per_event_and_clears_when_bets_settle() -> None:
    engine = make_engine(desks=desks_with(alpha=LIMITS))
    bets = [
        order("b1", OrderStatus.OPEN, market="10/20/30", worst_case_loss_usd=Decimal(300)),
        order("b2", OrderStatus.OPEN, market="10/21/31", worst_case_loss_usd=Decimal(250)),
        order("b3", OrderStatus.OPEN, market="11/20/30", worst_case_loss_usd=Decimal(300)),
    ]
    out = engine.ingest(PX, bets, T0)
    # Event 10 carries 550 (critical and warning); event 11 carries 300, under the 400 warning line.
    assert sorted(_limit(out)) == [(T0, "firing", "critical", "10"), (T0, "firing", "warning", "10")]
    assert engine.limits.utilisation[("alpha", "worst_case_loss", "10")] == pytest.approx(1.1)
    assert engine.limits.utilisation[("alpha", "worst_case_loss", "11")] == pytest.approx(0.6)
    settled = order("b1", OrderStatus.SETTLED, market="10/20/30", sequence=2, worst_case_loss_usd=Decimal(300))
    out = engine.ingest(PX, [settled], T0 + 5)
    assert sorted(_limit(out)) == [(T0 + 5, "resolved", "critical", "10"), (T0 + 5, "resolved", "warning", "10")]
    settled = order("b2", OrderStatus.SETTLED, market="10/21/31", sequence=2)
    engine.ingest(PX, [settled], T0 + 6)
    assert ("alpha", "worst_case_loss", "10") not in engine.limits.utilisation  # nothing left at risk


def test_a_limit_far_from_its_line_words_no_annotations(monkeypatch: pytest.MonkeyPatch) -> None:
    worded: list[Decimal] = []
    real_usd = limits.usd

    def counting_usd(amount: Decimal) -> str:
        worded.append(amount)
        return real_usd(amount)

    monkeypatch.setattr(limits, "usd", counting_usd)
    engine = make_engine(desks=desks_with(alpha=LIMITS))
    engine.ingest(MANGO, [fill("10"), mark("100")], T0)
    for step in range(20):
        engine.ingest(MANGO, [mark(str(100 + step))], T0 + step)
    assert worded == []  # 1,000-1,190 of 10,000: no alert to start or update
    assert engine.limits.utilisation[("alpha", "gross_notional", "")] == pytest.approx(0.119)
    engine.ingest(MANGO, [mark("900")], T0 + 30)  # 9,000: the warning fires and is worded
    assert worded != []
