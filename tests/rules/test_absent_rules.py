from __future__ import annotations

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.events import OrderStatus
from tests.rules.conftest import MANGO, T0, brief, desks_with, fill, make_engine, mark
from tests.watchdogs.conftest import PX, heartbeat, order

NO_MARKS = """
rules:
  - kind: absent
    name: NoMarks
    event: mark
    for: 30s
    annotations: {summary: "no {event} on {market} for {window}, quiet {value}s"}
"""
GROUP = {"venue": MANGO, "market": "SOL-PERP"}


def _named(transitions: list[AlertTransition], name: str) -> list[AlertTransition]:
    return [t for t in transitions if t.alertname == name]


def test_never_fires_before_the_first_sighting() -> None:
    engine = make_engine(NO_MARKS)
    engine.ingest(MANGO, [fill("1")], T0)
    assert engine.advance(T0 + 1000) == []


def test_fires_for_after_the_last_sighting_and_resolves_at_the_next() -> None:
    engine = make_engine(NO_MARKS)
    engine.ingest(MANGO, [mark("100")], T0)
    engine.ingest(MANGO, [mark("101")], T0 + 20)  # moves the deadline to T0 + 50
    assert engine.advance(T0 + 49.999) == []
    [fired] = engine.advance(T0 + 50)
    assert brief([fired]) == [(T0 + 50, "firing", "NoMarks", GROUP)]
    assert fired.labels["rule_kind"] == "absent"  # the default inhibition's target when the feed is down
    assert fired.annotations["summary"] == "no mark on SOL-PERP for 30s, quiet 30s"
    [resolved] = engine.ingest(MANGO, [mark("102")], T0 + 61)
    assert (resolved.ts, resolved.status) == (T0 + 61, "resolved")
    [again] = engine.advance(T0 + 91)
    assert (again.ts, again.status) == (T0 + 91, "firing")


def test_expected_groups_fire_from_the_start_without_any_event() -> None:
    rules = """
    rules:
      - kind: absent
        name: NoBtcMarks
        event: mark
        for: 1m
        expect:
          - {venue: mango, market: BTC-PERP}
    """
    engine = make_engine(rules)
    engine.start(T0)  # a live start also arms the feed watchdogs' grace: look at this rule only
    assert _named(engine.advance(T0 + 59), "NoBtcMarks") == []
    [fired] = _named(engine.advance(T0 + 60), "NoBtcMarks")
    assert brief([fired]) == [(T0 + 60, "firing", "NoBtcMarks", {"venue": MANGO, "market": "BTC-PERP"})]


def test_while_defers_judgement_to_the_evaluation_tick_until_it_holds() -> None:
    rules = """
    alerts: {evaluation_interval: 1s}
    rules:
      - kind: absent
        name: SilentWhileTrading
        event: heartbeat
        for: 30s
        group_by: [venue]
        while: venue.open_orders > 0
    """
    engine = make_engine(rules)
    engine.ingest(PX, [heartbeat()], T0)
    assert _named(engine.advance(T0 + 40), "SilentWhileTrading") == []  # nothing open: not a concern
    engine.ingest(PX, [order("o1", OrderStatus.OPEN)], T0 + 44.5)
    [fired] = _named(engine.advance(T0 + 46), "SilentWhileTrading")
    assert (fired.ts, fired.labels["venue"]) == (T0 + 45, PX)  # the first tick after the order opened
    [resolved] = _named(engine.ingest(PX, [heartbeat()], T0 + 50), "SilentWhileTrading")
    assert (resolved.ts, resolved.status) == (T0 + 50, "resolved")


def test_a_desk_absent_rule_only_tracks_its_desk() -> None:
    desks = desks_with(
        beta="""
        rules:
          - kind: absent
            name: BetaIdle
            event: fill
            for: 10s
            group_by: [desk, market]
        """
    )
    engine = make_engine(desks=desks)
    engine.ingest(MANGO, [fill("1", desk="alpha")], T0)
    assert engine.advance(T0 + 100) == []
    engine.ingest(MANGO, [fill("1", desk="beta")], T0 + 100)
    [fired] = engine.advance(T0 + 110)
    assert brief([fired]) == [(T0 + 110, "firing", "BetaIdle", {"desk": "beta", "market": "SOL-PERP"})]
