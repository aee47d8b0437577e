from __future__ import annotations

from riskmon.events import FeedUp, FrameMalformed, Side
from tests.rules.conftest import MANGO, T0, brief, desks_with, fill, make_engine, mark

NET = """
rules:
  - kind: threshold
    name: BigNet
    severity: critical
    when: market.net_usd > 1000
    clear: market.net_usd < 800
    for: {hold}
    labels: {{team: risk}}
    annotations:
      summary: "{{desk}} {{market}} net {{value}} over {{limit}} {{unknown}} {{value.__class__}} {{0}}"
"""


def test_fires_after_for_at_the_exact_time_with_rendered_labels_and_annotations() -> None:
    engine = make_engine(NET.format(hold="10s"))
    assert engine.ingest(MANGO, [fill("10"), mark("150")], T0) == []  # 1500 > 1000: pending
    assert engine.advance(T0 + 9.999) == []
    [fired] = engine.advance(T0 + 10)
    assert (fired.ts, fired.status, fired.alertname, fired.severity) == (T0 + 10, "firing", "BigNet", "critical")
    assert fired.labels == {
        "desk": "alpha",
        "market": "SOL-PERP",
        "team": "risk",
        "rule": "BigNet",
        "rule_kind": "threshold",
        "alertname": "BigNet",
        "severity": "critical",
    }
    # Only {name} placeholders are filled; attribute/index syntax and unknown names stay as written.
    assert fired.annotations["summary"] == "alpha SOL-PERP net 1500 over 1000 {unknown} {value.__class__} {0}"
    assert fired.value == 1500.0
    [resolved] = engine.ingest(MANGO, [mark("70")], T0 + 20)
    assert (resolved.ts, resolved.status, resolved.value) == (T0 + 20, "resolved", 700.0)


def test_a_value_oscillating_around_the_line_does_not_flap() -> None:
    engine = make_engine(NET.format(hold="0s"))
    engine.ingest(MANGO, [fill("10")], T0)
    timeline = []
    for step, price in enumerate(["101", "99", "101", "95", "100.5", "81", "79.9", "99", "100.1"]):
        timeline += brief(engine.ingest(MANGO, [mark(price)], T0 + step))
    labels = {"desk": "alpha", "market": "SOL-PERP", "team": "risk"}
    assert timeline == [
        (T0, "firing", "BigNet", labels),  # 1010
        (T0 + 6, "resolved", "BigNet", labels),  # 799 < 800: the clear line, not the breach line
        (T0 + 8, "firing", "BigNet", labels),  # 1001
    ]


def test_a_pending_alert_that_stops_breaching_never_fires() -> None:
    engine = make_engine(NET.format(hold="10s"))
    engine.ingest(MANGO, [fill("10"), mark("150")], T0)
    engine.ingest(MANGO, [mark("90")], T0 + 5)  # 900: not breached, pending is dropped
    assert engine.advance(T0 + 60) == []
    assert engine.alerts.active() == []


def test_an_evaluation_error_is_no_decision_counted_and_never_resolves() -> None:
    rules = """
    rules:
      - kind: threshold
        name: RichPrice
        when: market.net_usd / market.position > 150
    """
    engine = make_engine(rules)
    engine.ingest(MANGO, [fill("5")], T0)  # no mark yet: net_usd is missing
    [rule] = [h for h in engine.rule_hooks.rules.rules().values()]
    assert rule.errors["missing"] == 1  # type: ignore[union-attr]
    [fired] = engine.ingest(MANGO, [mark("200")], T0 + 1)
    assert fired.status == "firing"
    assert engine.ingest(MANGO, [fill("5", side=Side.SELL)], T0 + 2) == []  # position 0: division by zero
    assert rule.errors["division_by_zero"] == 1  # type: ignore[union-attr]
    assert [a.alertname for a in engine.alerts.active()] == ["RichPrice"]


def test_venue_ages_are_judged_on_the_evaluation_tick_without_events() -> None:
    rules = """
    alerts: {evaluation_interval: 1s}
    rules:
      - kind: threshold
        name: QuietFeed
        when: venue.seconds_since_message > 30 and venue.feed_up == 1
        annotations: {summary: "{venue} silent {value}s (limit {limit}s)"}
    """
    engine = make_engine(rules)
    engine.ingest(MANGO, [FeedUp(MANGO, "ws://x")], T0)
    assert engine.advance(T0 + 30) == []
    [fired] = engine.advance(T0 + 31.5)
    assert (fired.ts, fired.labels["venue"]) == (T0 + 31, MANGO)
    assert fired.annotations["summary"] == "mango silent 31s (limit 30s)"
    [resolved] = engine.ingest(MANGO, [FrameMalformed(MANGO, "junk")], T0 + 40)
    assert (resolved.ts, resolved.status) == (T0 + 40, "resolved")


def test_a_desk_rule_sees_only_its_desk() -> None:
    desks = desks_with(
        beta="""
        rules:
          - kind: threshold
            name: BetaGross
            when: desk.gross_usd > 100
        """
    )
    engine = make_engine(desks=desks)
    engine.ingest(MANGO, [mark("100"), fill("50", desk="alpha")], T0)
    assert [a.alertname for a in engine.alerts.active()] == []
    [fired] = engine.ingest(MANGO, [fill("2", desk="beta")], T0 + 1)
    assert brief([fired]) == [(T0 + 1, "firing", "BetaGross", {"desk": "beta"})]


def test_firm_scope_evaluates_once() -> None:
    rules = """
    rules:
      - kind: threshold
        name: FirmGross
        when: firm.gross_usd >= 1000
    """
    engine = make_engine(rules)
    engine.ingest(MANGO, [mark("100"), fill("6", desk="alpha")], T0)
    [fired] = engine.ingest(MANGO, [fill("4", desk="beta")], T0 + 1)
    assert brief([fired]) == [(T0 + 1, "firing", "FirmGross", {})]
    assert fired.value == 1000.0
