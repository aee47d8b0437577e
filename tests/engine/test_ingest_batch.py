"""`Engine.ingest_batch` is exactly `Engine.ingest` item by item: on the recorded five-venue mix
(riskmon/bench/venue_mix.py frames through the real codecs), with limits and rules set low enough
that net, gross and worst-case-loss limits, threshold rules of every scope, a rate rule and the
watchdogs all fire and resolve, the same transitions come out in the same order and the books,
counters and limit lines end the same. Deadlines falling due between the items of one batch fire
at their own due time, between the items they fall between.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from decimal import Decimal
from functools import cache
from typing import Any

import pytest

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.bench.venue_mix import SUITE_CONFIG, VenueMix, build_mix
from riskmon.config import parse_config
from riskmon.config.schema import MonitorConfig
from riskmon.engine.engine import Engine, IngestItem
from riskmon.events import FeedUp, FillReceived, Liquidity, MarkPrice, Side

T0 = 1_000.0
READ = 16  # frames per socket read: they share one receive time, as a session stamps them

TIGHT = (
    (
        SUITE_CONFIG.replace("max_usd: 1000000000}", "max_usd: 2900}")
        .replace("max_gross_notional_usd: 5000000000", "max_gross_notional_usd: 2500")
        .replace("max_worst_case_loss_usd: 1000000000", "max_worst_case_loss_usd: 300")
        .replace("max_pending_rfq_usd: 1000000000", "max_pending_rfq_usd: 200")
        .replace('"market.net_usd > 1e12"', '"market.net_usd > 15000", for: 3s')
        .replace("above: 1000000000", "above: 20")
    )
    + """\
  - {kind: threshold, name: OpenOrders, when: "desk.open_orders > 3"}
  - {kind: threshold, name: QuietVenue, when: "venue.seconds_since_message > 2"}
  - {kind: threshold, name: StaleMark, when: "market.mark_age_seconds > 0.4"}
  - {kind: threshold, name: FirmLoss, when: "firm.worst_case_loss_usd > 400"}
"""
)


@cache
def _tight_config() -> MonitorConfig:
    return parse_config(TIGHT, "tight.yaml", {})


@cache
def _mix(frames: int, seed: int) -> VenueMix:
    return build_mix(frames, seed, config=_tight_config())


def _recorded(frames: int, seed: int, step: float) -> tuple[list[IngestItem], list[list[IngestItem]]]:
    """The handshakes (untimed) and the frames decoded into reads of READ frames, read k at T0 + k * step."""
    mix = _mix(frames, seed)
    codecs = mix.fresh_codecs()
    opening: list[IngestItem] = []
    for venue, handshake in mix.handshakes.items():
        opening.append(IngestItem(venue, [FeedUp(venue, "wss://venue")], T0, is_frame=False))
        opening += [IngestItem(venue, codecs[venue].receive_text(text), T0) for text in handshake]
    reads: list[list[IngestItem]] = []
    for start in range(0, len(mix.frames), READ):
        now = T0 + (start // READ + 1) * step
        reads.append([IngestItem(v, codecs[v].receive_text(text), now) for v, text in mix.frames[start : start + READ]])
    return opening, reads


def _started(opening: list[IngestItem]) -> tuple[Engine, list[AlertTransition]]:
    engine = Engine(_tight_config())
    engine.start(T0)
    out: list[AlertTransition] = []
    for item in opening:
        out += engine.ingest(item.venue, item.events, item.now, is_frame=item.is_frame)
    return engine, out


def _books(engine: Engine) -> dict[str, Any]:
    book = engine.book
    return {
        "positions": list(book.rows()),
        "instruments": list(book.instrument_rows()),
        "risk": list(book.risk_rows()),
        "gross": {desk: book.desk_gross(desk) for desk in engine.config.desks},
        "firm": (book.firm_gross(), book.firm_pending(), book.firm_worst_case_loss()),
        "stats": {venue: asdict(stats) for venue, stats in engine.stats.items()},
        "orders": engine.orders.orders(),
        "quotes": [asdict(quote) for quote in engine.quotes.quotes()],
        "utilisation": engine.limits.utilisation,
        "active": sorted((a.fingerprint, a.state) for a in engine.alerts.active()),
        "open_orders": dict(engine.rule_hooks.state.open_orders_by_desk),
        "next_deadline": engine.next_deadline(),
    }


@pytest.mark.parametrize(("frames", "seed", "step"), [(3000, 3, 2.0), (3000, 2, 0.5)])
def test_the_batch_path_gives_the_item_path_transitions_and_books_on_the_recorded_mix(
    frames: int, seed: int, step: float
) -> None:
    opening, reads = _recorded(frames, seed, step)
    by_item, by_item_out = _started(opening)
    by_batch, by_batch_out = _started(opening)
    for read in reads:
        for item in read:
            by_item_out += by_item.ingest(item.venue, item.events, item.now, is_frame=item.is_frame)
        by_batch_out += by_batch.ingest_batch(read)

    assert by_batch_out == by_item_out
    assert _books(by_batch) == _books(by_item)
    # The mix moved what the test is about: every kind of rule and limit fired, deadlines too.
    fired = Counter((t.alertname, t.labels.get("limit"), t.status) for t in by_item_out)
    for alertname, limit in [
        ("ExposureLimitBreach", "net_notional"),
        ("ExposureLimitBreach", "gross_notional"),
        ("ExposureLimitBreach", "worst_case_loss"),
        ("OpenOrders", None),
        ("QuietVenue", None),
        ("StaleMark", None),
        ("FirmLoss", None),
    ]:
        assert fired[(alertname, limit, "firing")] > 0, (alertname, limit)
    assert fired[("QuietVenue", None, "resolved")] > 0
    assert sum(s["engine_errors"] for s in _books(by_item)["stats"].values()) == 0
    assert sum(s["events"] for s in _books(by_item)["stats"].values()) > frames


def _fill(key: str, qty: str) -> FillReceived:
    return FillReceived(
        "mango", "perp-desk", "CGcrpkxyx92vjyQApsr1jTN6M5PeERKSEaH1zskzccRG", "SOL-PERP", Side.BUY,
        Decimal(qty), Decimal(100), key, "queue", int(key), Liquidity.TAKER, Decimal(0), 0.0,
    )  # fmt: skip


def test_a_deadline_due_inside_a_batch_fires_at_its_own_time_between_the_items_it_falls_between() -> None:
    # Net limit 2,900 (warning at 2,320) held `for` 3 s by the market rule at 15,000: a position of
    # 200 SOL at 100 breaches it; the rule's pending alert falls due at +3 s, between two items.
    items = [
        IngestItem("mango", [_fill("1", "200"), MarkPrice("mango", "SOL-PERP", Decimal(100), 0.0)], T0 + 1),
        IngestItem("mango", [MarkPrice("mango", "SOL-PERP", Decimal(100), 0.0)], T0 + 2),
        IngestItem("mango", [MarkPrice("mango", "SOL-PERP", Decimal(50), 0.0)], T0 + 7),
    ]
    item_engine, batch_engine = Engine(_tight_config()), Engine(_tight_config())
    item_engine.start(T0)
    batch_engine.start(T0)
    by_item = [t for item in items for t in item_engine.ingest(item.venue, item.events, item.now)]
    by_batch = batch_engine.ingest_batch(items)

    assert by_batch == by_item
    steps = [(t.ts, t.alertname, t.severity, t.status) for t in by_batch if t.alertname == "MarketNetHuge"]
    # Pending from T0+1; fires at exactly T0+4 (not at T0+7, the next item), then resolves at T0+7.
    assert steps == [(T0 + 4, "MarketNetHuge", "warning", "firing"), (T0 + 7, "MarketNetHuge", "warning", "resolved")]
    order = [t.alertname for t in by_batch]
    assert order.index("MarketNetHuge") > max(i for i, name in enumerate(order) if name == "ExposureLimitBreach")
