"""The state the engine keeps only for rules (open order counts, mark ages, touched keys) is kept
while a rule reads it, and right: orders restored from the state file are counted open, a mark
age starts at the first price seen while a rule reads it, and a rule of each scope is judged on
the ingest that moves what it reads.
"""

from __future__ import annotations

from decimal import Decimal

from riskmon.engine.state_journal import StateSnapshot, StoredOrder
from riskmon.events import OrderStatus
from tests.rules.conftest import MANGO, T0, fill, make_config, make_engine, mark
from tests.watchdogs.conftest import order

OPEN_ORDERS = """
rules:
  - {kind: threshold, name: ManyOpenOrders, when: "desk.open_orders > 1"}
"""


def test_orders_restored_from_the_state_file_are_counted_open() -> None:
    engine = make_engine(OPEN_ORDERS)
    held = [order(name, OrderStatus.OPEN) for name in ("a", "b", "c")]
    engine.restore(StateSnapshot(orders=[StoredOrder(update, 1, None) for update in held]))
    engine.start(T0)
    [fired] = engine.advance(T0 + 1)  # the evaluation tick judges every desk
    assert (fired.alertname, fired.status, fired.labels["desk"], fired.value) == (
        "ManyOpenOrders",
        "firing",
        "alpha",
        3.0,
    )


STALE = """
  - {kind: threshold, name: StaleMark, when: "market.mark_age_seconds > 5"}
"""
GROSS = """
rules:
  - {kind: threshold, name: HugeGross, when: "desk.gross_usd > 1e12"}
"""


def test_a_mark_age_starts_at_the_first_price_seen_while_a_rule_reads_it() -> None:
    engine = make_engine(GROSS)
    engine.ingest(MANGO, [fill("10"), mark("100")], T0)  # no rule reads mark ages yet
    assert engine.reload(make_config(GROSS + STALE), T0 + 1) == []
    assert engine.advance(T0 + 20) == []  # the age is unknown: no decision, never a guess
    engine.ingest(MANGO, [mark("101")], T0 + 21)
    assert engine.advance(T0 + 26) == []
    [fired] = engine.advance(T0 + 27)  # the tick after 5 s without a price
    assert (fired.alertname, fired.labels["market"], fired.value) == ("StaleMark", "SOL-PERP", 6.0)


SCOPES = """
rules:
  - {kind: threshold, name: VenueFills, when: "venue.fills > 1"}
  - {kind: threshold, name: DeskPositions, when: "desk.positions > 1"}
  - {kind: threshold, name: FirmGross, when: "firm.gross_usd > 1500"}
  - {kind: threshold, name: MarketNet, when: "market.net_usd > 900"}
"""


def test_each_scope_is_judged_on_the_ingest_that_moves_it_without_waiting_for_the_tick() -> None:
    engine = make_engine(SCOPES, alerts={"evaluation_interval": "1h"})
    engine.start(T0)
    assert engine.ingest(MANGO, [fill("10"), mark("80")], T0 + 1) == []
    out = engine.ingest(MANGO, [fill("1", market="BTC-PERP"), mark("100", market="BTC-PERP")], T0 + 2)
    assert sorted((t.alertname, t.status) for t in out) == [("DeskPositions", "firing"), ("VenueFills", "firing")]
    out = engine.ingest(MANGO, [mark("95")], T0 + 3)  # SOL-PERP: 950 of net, 1,050 of gross
    assert sorted((t.alertname, t.status) for t in out) == [("MarketNet", "firing")]
    [firm] = engine.ingest(MANGO, [mark("600", market="BTC-PERP")], T0 + 4)
    assert (firm.alertname, firm.status, firm.value) == ("FirmGross", "firing", 1550.0)
    assert engine.rule_hooks.state.book.desk_gross("alpha") == Decimal(1550)
