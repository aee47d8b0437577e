from __future__ import annotations

from riskmon.engine.exposure import PositionKey
from tests.rules.conftest import MANGO, MANGO_ALPHA, T0, brief, desks_with, fill, make_config, make_engine, mark

NET = """
  - kind: threshold
    name: BigNet
    when: market.net_usd > {line}
    for: 10s
"""
BURST = """
  - kind: rate
    name: FillBurst
    event: fill
    window: 1m
    above: 2
"""
NO_MARKS = """
  - kind: absent
    name: NoMarks
    event: mark
    for: 30s
"""


def rules(*parts: str) -> str:
    return "rules:\n" + "".join(parts) if parts else ""


def test_an_unchanged_rule_keeps_its_pending_for_timer() -> None:
    engine = make_engine(rules(NET.format(line=1000)))
    engine.ingest(MANGO, [fill("10"), mark("150")], T0)  # pending from T0
    assert engine.reload(make_config(rules(NET.format(line=1000), BURST)), T0 + 5) == []
    assert engine.advance(T0 + 9.9) == []
    [fired] = engine.advance(T0 + 10)
    assert (fired.ts, fired.status, fired.alertname) == (T0 + 10, "firing", "BigNet")


def test_a_firing_rule_kept_stays_firing_and_a_removed_one_resolves() -> None:
    engine = make_engine(rules(NET.format(line=1000), BURST))
    engine.ingest(MANGO, [fill("10"), mark("150"), fill("1"), fill("1")], T0)
    [net] = engine.advance(T0 + 10)
    assert net.alertname == "BigNet"
    assert [a.alertname for a in engine.alerts.active()] == ["FillBurst", "BigNet"]
    out = engine.reload(make_config(rules(NET.format(line=1000))), T0 + 20)
    assert brief(out) == [
        (T0 + 20, "resolved", "FillBurst", {"desk": "alpha", "venue": MANGO, "market": "SOL-PERP", "side": "buy"})
    ]
    assert out[0].annotations["resolution"] == "its rule was changed or removed from the configuration"
    assert [a.alertname for a in engine.alerts.active()] == ["BigNet"]
    assert engine.advance(T0 + 200) == []  # the removed rule's window deadline was cancelled
    assert engine.book.position(PositionKey("alpha", MANGO, MANGO_ALPHA, "SOL-PERP")) == 12  # books untouched


def test_a_changed_rule_is_resolved_and_judged_afresh() -> None:
    engine = make_engine(rules(NET.format(line=1000)))
    engine.ingest(MANGO, [fill("10"), mark("150")], T0)
    engine.advance(T0 + 10)
    out = engine.reload(make_config(rules(NET.format(line=1200))), T0 + 20)
    # Resolved as the old definition; the new one starts pending (its own `for`) from the reload.
    assert [(t.ts, t.status, t.alertname) for t in out] == [(T0 + 20, "resolved", "BigNet")]
    [fired] = engine.advance(T0 + 30)
    assert (fired.ts, fired.status) == (T0 + 30, "firing")


def test_rate_windows_and_absent_deadlines_survive_a_reload() -> None:
    engine = make_engine(rules(BURST, NO_MARKS))
    engine.ingest(MANGO, [fill("1"), fill("1"), mark("100")], T0)
    assert engine.reload(make_config(rules(NO_MARKS, BURST)), T0 + 10) == []
    [fired] = engine.ingest(MANGO, [fill("1")], T0 + 11)
    assert (fired.alertname, fired.ts) == ("FillBurst", T0 + 11)
    [absent] = [t for t in engine.advance(T0 + 30) if t.alertname == "NoMarks"]
    assert absent.ts == T0 + 30


def test_a_removed_absent_rule_never_fires() -> None:
    engine = make_engine(rules(NO_MARKS))
    engine.ingest(MANGO, [mark("100")], T0)
    assert engine.reload(make_config(), T0 + 10) == []
    assert engine.advance(T0 + 100) == []


def test_new_desk_limits_apply_at_once_and_unchanged_ones_keep_their_alerts() -> None:
    engine = make_engine()
    engine.ingest(MANGO, [fill("10"), mark("100")], T0)  # gross 1,000
    limited = make_config(desks=desks_with(alpha="limits: {max_gross_notional_usd: 900}"))
    out = engine.reload(limited, T0 + 1)
    assert sorted((t.status, t.severity, t.labels["limit"]) for t in out) == [
        ("firing", "critical", "gross_notional"),
        ("firing", "warning", "gross_notional"),
    ]
    assert engine.reload(limited, T0 + 2) == []  # same limits: the alerts carry on
    out = engine.reload(make_config(), T0 + 3)  # the limit is gone: so are its alerts
    assert sorted((t.status, t.severity) for t in out) == [("resolved", "critical"), ("resolved", "warning")]
    assert {t.annotations["resolution"] for t in out} == {"its limit is no longer configured"}
    assert all(t.annotations["summary"].startswith("Desk alpha gross notional is $1,000") for t in out)
    assert engine.alerts.active() == []
