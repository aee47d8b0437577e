from __future__ import annotations

from riskmon.events import FrameMalformed
from riskmon.rules.rate import RateRuleHandler
from tests.rules.conftest import MANGO, T0, brief, fill, make_engine

BURST = """
rules:
  - kind: rate
    name: FillBurst
    event: fill
    window: 10s
    above: 2
    {extra}
    annotations: {{summary: "{{count}} fills on {{market}} within {{window}}"}}
"""
GROUP = {"desk": "alpha", "venue": MANGO, "market": "SOL-PERP", "side": "buy"}


def _handler(engine: object) -> RateRuleHandler:
    [handler] = engine.rule_hooks.rules.rules().values()  # type: ignore[attr-defined]
    assert isinstance(handler, RateRuleHandler)
    return handler


def test_fires_at_the_event_past_above_and_resolves_when_the_oldest_leaves() -> None:
    engine = make_engine(BURST.format(extra=""))
    assert engine.ingest(MANGO, [fill("1")], T0) == []
    assert engine.ingest(MANGO, [fill("1")], T0 + 4) == []
    [fired] = engine.ingest(MANGO, [fill("1")], T0 + 8)
    assert brief([fired]) == [(T0 + 8, "firing", "FillBurst", GROUP)]
    assert fired.annotations["summary"] == "3 fills on SOL-PERP within 10s"
    assert engine.advance(T0 + 9.999) == []
    [resolved] = engine.advance(T0 + 10)  # the T0 fill leaves: 2 left, not above 2
    assert (resolved.ts, resolved.status, resolved.value) == (T0 + 10, "resolved", 2.0)


def test_the_window_slides_so_old_events_do_not_count() -> None:
    engine = make_engine(BURST.format(extra=""))
    engine.ingest(MANGO, [fill("1")], T0)
    engine.ingest(MANGO, [fill("1")], T0 + 6)
    assert engine.ingest(MANGO, [fill("1")], T0 + 11) == []  # T0 left at T0 + 10
    [fired] = engine.ingest(MANGO, [fill("1")], T0 + 12)
    assert fired.ts == T0 + 12


def test_clear_at_holds_the_alert_until_the_count_falls_that_far() -> None:
    engine = make_engine(BURST.format(extra="clear_at: 0"))
    for step in range(10):  # one a second: it fires at the third, the window keeps filling
        engine.ingest(MANGO, [fill("1")], T0 + step)
    assert len(_handler(engine)._groups[tuple(GROUP.values())].times) == 3  # above + 1, not 10
    assert engine.advance(T0 + 18.999) == []
    [resolved] = engine.advance(T0 + 19)  # the last fill (T0 + 9) leaves: count 0
    assert (resolved.ts, resolved.status, resolved.value) == (T0 + 19, "resolved", 0.0)


def test_a_firing_group_resolves_exactly_when_its_newest_allowed_event_leaves() -> None:
    engine = make_engine(BURST.format(extra=""))
    for step in range(10):
        engine.ingest(MANGO, [fill("1")], T0 + step)
    # Above 2 holds until only two remain: the third newest (T0 + 7) leaves at T0 + 17.
    assert engine.advance(T0 + 16.999) == []
    [resolved] = engine.advance(T0 + 17)
    assert resolved.ts == T0 + 17


def test_duplicates_are_not_counted() -> None:
    engine = make_engine(BURST.format(extra=""))
    again = fill("1", key="same")
    for step in range(5):
        assert engine.ingest(MANGO, [again], T0 + step) == []
    assert engine.stats[MANGO].duplicates == 4


def test_groups_count_apart_and_group_by_narrows_them() -> None:
    engine = make_engine(BURST.format(extra=""))
    for step, market in enumerate(["SOL-PERP", "BTC-PERP", "SOL-PERP", "BTC-PERP"]):
        assert engine.ingest(MANGO, [fill("1", market=market)], T0 + step) == []
    rules = """
    rules:
      - kind: rate
        name: JunkFrames
        event: malformed
        window: 1m
        above: 1
        group_by: [venue]
    """
    engine = make_engine(rules)
    engine.ingest(MANGO, [FrameMalformed(MANGO, "bad json")], T0)
    [fired] = engine.ingest(MANGO, [FrameMalformed(MANGO, "truncated")], T0 + 1)  # reasons differ: one group
    assert brief([fired]) == [(T0 + 1, "firing", "JunkFrames", {"venue": MANGO})]
