"""The engine on venue-reported positions, underlyings, market status, liquidations, amendments,
sequence gaps, subscriptions, heartbeats, books, public trades, and events it cannot apply."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from riskmon.engine.engine import Engine
from riskmon.engine.exposure import PositionKey, PositionRow
from riskmon.events import (
    BookLevel,
    BookSide,
    BookSnapshot,
    FeedUp,
    FillReceived,
    Heartbeat,
    Liquidation,
    Liquidity,
    MarketStatusChanged,
    MarkKind,
    MarkPrice,
    PositionAmended,
    PositionsReported,
    ReportedPosition,
    SequenceGap,
    Side,
    Subscribed,
    SubscriptionFailed,
    TradeExecuted,
)
from tests.engine.builders import engine_for, firing

MANGO = "mango"
PHX = "phoenix"
MOB = "mobula"
TRADER = "trader"
PHX_SOL = PositionKey("alpha", PHX, TRADER, "SOL")
PHX_ETH = PositionKey("alpha", PHX, TRADER, "ETH")
MANGO_SOL = PositionKey("alpha", MANGO, "acct", "SOL-PERP")
SOL_UNDERLYING = {"SOL": {MANGO: "SOL-PERP", PHX: "SOL"}}


def make_engine(**overrides: Any) -> Engine:
    return engine_for(
        {
            "venues": {
                MANGO: {"kind": "mango_v3_fills", "urls": ["wss://mango.invalid/"]},
                PHX: {"kind": "phoenix", "authority": TRADER},
                MOB: {"kind": "mobula_perp_events", "api_key": "key"},
            },
            "desks": {
                "alpha": {
                    "accounts": {MANGO: ["acct"], PHX: [TRADER], MOB: ["0xabc"]},
                    "limits": {"max_net_notional_usd": [{"market": "SOL*", "max_usd": "10000"}]},
                },
                "beta": {"accounts": {PHX: ["trader2"]}},
            },
            **overrides,
        }
    )


def report(
    *rows: tuple[str, str], complete: bool = False, desk: str = "alpha", account: str = TRADER
) -> PositionsReported:
    positions = tuple(ReportedPosition(market, Decimal(qty)) for market, qty in rows)
    return PositionsReported(PHX, desk, account, positions, complete)


def mark(venue: str, market: str, price: str, kind: MarkKind = MarkKind.MARK) -> MarkPrice:
    return MarkPrice(venue, market, Decimal(price), 0.0, kind)


def mango_fill(key: str, qty: str, side: Side = Side.BUY) -> FillReceived:
    return FillReceived(
        venue=MANGO,
        desk="alpha",
        account="acct",
        market="SOL-PERP",
        side=side,
        quantity=Decimal(qty),
        price=Decimal("90"),
        fill_key=key,
        stream="queue",
        sequence=1,
        liquidity=Liquidity.TAKER,
        fee_rate=Decimal(0),
        venue_ts=0.0,
    )


def status(state: str, tradable: bool, market: str = "SOL", final: str | None = None) -> MarketStatusChanged:
    return MarketStatusChanged(PHX, market, state, tradable, None if final is None else Decimal(final))


# ---- venue-reported positions --------------------------------------------------------------------


def test_a_complete_report_replaces_every_position_of_that_venue_account() -> None:
    engine = make_engine()
    engine.ingest(MANGO, [mango_fill("f1", "2")], 1.0)
    engine.ingest(PHX, [report(("SOL", "3"), ("BTC", "1"), account="other")], 1.5)
    engine.ingest(PHX, [report(("SOL", "5.25"), ("ETH", "-2"), complete=True)], 2.0)
    assert engine.book.position(PHX_SOL) == Decimal("5.25")
    assert engine.book.position(PHX_ETH) == Decimal("-2")

    engine.ingest(PHX, [report(("SOL", "3"), complete=True)], 3.0)
    assert engine.book.position(PHX_SOL) == Decimal("3")
    assert engine.book.position(PHX_ETH) == 0  # not listed: flat
    # Another account on the venue and another venue of the desk are not the report's to flatten.
    assert engine.book.position(PositionKey("alpha", PHX, "other", "SOL")) == Decimal("3")
    assert engine.book.position(PositionKey("alpha", PHX, "other", "BTC")) == Decimal("1")
    assert engine.book.position(MANGO_SOL) == Decimal("2")
    assert engine.stats[PHX].position_reports == 3

    engine.ingest(PHX, [report(complete=True)], 4.0)  # an empty snapshot: everything flat
    assert engine.book.position(PHX_SOL) == 0
    assert [(row.key, row.position) for row in engine.book.rows()] == [
        (MANGO_SOL, Decimal("2")),
        (PositionKey("alpha", PHX, "other", "BTC"), Decimal("1")),
        (PositionKey("alpha", PHX, "other", "SOL"), Decimal("3")),
        (PHX_ETH, Decimal(0)),
        (PHX_SOL, Decimal(0)),
    ]


def test_a_partial_report_changes_only_the_markets_it_lists() -> None:
    engine = make_engine()
    engine.ingest(PHX, [report(("SOL", "5"), ("ETH", "-2"), complete=True)], 1.0)
    engine.ingest(PHX, [report(("ETH", "1.5"))], 2.0)
    assert (engine.book.position(PHX_SOL), engine.book.position(PHX_ETH)) == (Decimal("5"), Decimal("1.5"))
    engine.ingest(PHX, [report(("SOL", "0"))], 3.0)
    assert (engine.book.position(PHX_SOL), engine.book.position(PHX_ETH)) == (Decimal(0), Decimal("1.5"))
    # Flat and never held: no row appears for it.
    engine.ingest(PHX, [report(("DOGE", "0"))], 4.0)
    assert [row.key.market for row in engine.book.rows()] == ["ETH", "SOL"]


def _limit_annotations(value: str, ratio: str, severity: str, threshold: str, clears: str, raw: str) -> dict[str, str]:
    return {
        "summary": f"Desk alpha net notional on SOL is {value}, {ratio} of its $10,000 limit",
        "description": f"Desk alpha net notional on SOL reached {value} against a limit of $10,000 "
        f"({severity} at {threshold}, clears below {clears}).",
        "value": raw,
        "limit": "10000.00",
    }


def test_reported_positions_with_a_mark_fire_and_resolve_the_desk_limit() -> None:
    engine = make_engine()
    engine.ingest(PHX, [mark(PHX, "SOL", "100")], 1.0)
    (warning,) = engine.ingest(PHX, [report(("SOL", "90"))], 2.0)
    labels = {
        "desk": "alpha",
        "market": "SOL",
        "limit": "net_notional",
        "alertname": "ExposureLimitBreach",
        "severity": "warning",
    }
    assert warning == firing(
        2.0, labels, _limit_annotations("$9,000", "90%", "warning", "$8,000", "$7,600", "9000.00"), value=9000.0
    )
    (critical,) = engine.ingest(PHX, [report(("SOL", "-120"))], 3.0)  # a short counts by its size
    assert (critical.status, critical.severity, critical.value) == ("firing", "critical", 12000.0)
    assert critical.annotations["summary"] == "Desk alpha net notional on SOL is $12,000, 120% of its $10,000 limit"
    assert engine.limits.utilisation[("alpha", "net_notional", "SOL")] == 1.2

    # A complete snapshot without SOL: flat, both resolve (critical first).
    resolved = engine.ingest(PHX, [report(("ETH", "1"), complete=True)], 4.0)
    assert [(t.status, t.severity, t.value, t.starts_at) for t in resolved] == [
        ("resolved", "critical", 0.0, 3.0),
        ("resolved", "warning", 0.0, 2.0),
    ]
    assert engine.alerts.active() == []


def test_a_position_reported_before_its_mark_is_evaluated_when_the_mark_arrives() -> None:
    engine = make_engine()
    assert engine.ingest(PHX, [report(("SOL", "200"))], 1.0) == []  # no price: no partial sum
    fired = engine.ingest(PHX, [mark(PHX, "SOL", "60")], 2.0)
    assert [(t.severity, t.value) for t in fired] == [("critical", 12000.0), ("warning", 12000.0)]
    # A market no limit pattern matches never alerts.
    assert engine.ingest(PHX, [mark(PHX, "ETH", "4000"), report(("ETH", "100"))], 3.0) == []


def test_an_unchanged_report_evaluates_nothing() -> None:
    engine = make_engine()
    engine.ingest(PHX, [mark(PHX, "SOL", "100"), report(("SOL", "90"))], 1.0)
    assert engine.ingest(PHX, [report(("SOL", "90"))], 2.0) == []
    assert engine.ingest(PHX, [report(("SOL", "90"), complete=True)], 3.0) == []
    assert len(engine.alerts.active()) == 1


# ---- underlyings: one instrument across venues -----------------------------------------------------


def test_a_mango_fill_and_a_phoenix_position_net_into_one_underlying() -> None:
    engine = make_engine(underlyings=SOL_UNDERLYING)
    engine.ingest(MANGO, [mango_fill("f1", "10")], 1.0)
    engine.ingest(PHX, [report(("SOL", "-4"))], 2.0)
    assert engine.book.instrument(MANGO, "SOL-PERP") == engine.book.instrument(PHX, "SOL") == "SOL"
    assert engine.book.desk_markets("alpha") == {"SOL"}
    assert engine.book.desks_holding("SOL") == {"alpha"}
    assert list(engine.book.instrument_rows()) == [("alpha", "SOL", Decimal("6"), None)]

    # Mango's last trade prices Mango only: the Phoenix leg is unpriced, so no partial net.
    assert engine.ingest(MANGO, [mark(MANGO, "SOL-PERP", "95", MarkKind.TRADE)], 3.0) == []
    assert engine.book.desk_market_net("alpha", "SOL") is None

    # Phoenix's mark is the reference: it prices the Mango position too, over Mango's trade price.
    engine.ingest(PHX, [mark(PHX, "SOL", "100")], 4.0)
    assert engine.book.mark(MANGO, "SOL-PERP") == Decimal("100")
    assert engine.book.desk_market_net("alpha", "SOL") == Decimal("600")
    assert list(engine.book.instrument_rows()) == [("alpha", "SOL", Decimal("6"), Decimal("600"))]
    assert list(engine.book.rows()) == [
        PositionRow(MANGO_SOL, Decimal("10"), Decimal("1000")),
        PositionRow(PHX_SOL, Decimal("-4"), Decimal("-400")),
    ]

    # A later Mango trade price does not override the reference mark.
    engine.ingest(MANGO, [mark(MANGO, "SOL-PERP", "97", MarkKind.TRADE)], 5.0)
    assert engine.book.mark(MANGO, "SOL-PERP") == Decimal("100")
    assert engine.book.desk_market_net("alpha", "SOL") == Decimal("600")
    # A newer reference (a mid counts too) replaces it for both venues.
    engine.ingest(PHX, [mark(PHX, "SOL", "101.5", MarkKind.MID)], 6.0)
    assert engine.book.desk_market_net("alpha", "SOL") == Decimal("609.0")
    assert engine.book.desk_gross("alpha") == Decimal("609.0")


def test_a_phoenix_trade_price_is_not_a_reference_mark() -> None:
    engine = make_engine(underlyings=SOL_UNDERLYING)
    engine.ingest(MANGO, [mango_fill("f1", "10")], 1.0)
    engine.ingest(PHX, [mark(PHX, "SOL", "80", MarkKind.TRADE)], 2.0)
    assert engine.book.mark(MANGO, "SOL-PERP") is None
    assert engine.book.mark(PHX, "SOL") == Decimal("80")


def test_the_netted_underlying_is_what_the_desk_limit_sees() -> None:
    limits = {"max_net_notional_usd": [{"market": "SOL", "max_usd": "500"}], "warn_at": "1"}
    desks = {"alpha": {"accounts": {MANGO: ["acct"], PHX: [TRADER]}, "limits": limits}}
    engine = make_engine(underlyings=SOL_UNDERLYING, desks=desks)
    engine.ingest(MANGO, [mango_fill("f1", "10")], 1.0)
    engine.ingest(PHX, [report(("SOL", "-4"))], 2.0)
    (fired,) = engine.ingest(PHX, [mark(PHX, "SOL", "100")], 3.0)  # net 600 >= 500; Mango alone 1000
    assert (fired.status, fired.severity, fired.labels["market"], fired.value) == ("firing", "critical", "SOL", 600.0)
    assert engine.ingest(MANGO, [mark(MANGO, "SOL-PERP", "200", MarkKind.TRADE)], 4.0) == []
    # The Phoenix short grows: the net falls below the clear level (475) and resolves.
    (resolved,) = engine.ingest(PHX, [report(("SOL", "-5.5"))], 5.0)
    assert (resolved.status, resolved.value) == ("resolved", 450.0)


# ---- market status -------------------------------------------------------------------------------


def _closed_labels(desk: str = "alpha", account: str = TRADER) -> dict[str, str]:
    return {
        "desk": desk,
        "venue": PHX,
        "market": "SOL",
        "account": account,
        "alertname": "MarketClosedWithExposure",
        "severity": "critical",
    }


def test_a_closed_market_with_a_position_fires_and_resolves_when_it_reopens() -> None:
    engine = make_engine()
    engine.ingest(PHX, [report(("SOL", "5")), report(("ETH", "1"))], 1.0)
    (fired,) = engine.ingest(PHX, [status("closed", False)], 2.0)
    labels = _closed_labels()
    assert fired == firing(
        2.0,
        labels,
        {
            "summary": "phoenix SOL is closed with desk alpha holding 5",
            "description": "The venue marked SOL closed; the position cannot be traded out of until it reopens.",
        },
        value=5.0,
    )
    assert not engine.markets.tradable(PHX, "SOL")
    assert engine.markets.tradable(PHX, "ETH")
    # Still closed (another word for it), or a smaller position: refreshed, not re-fired.
    assert engine.ingest(PHX, [status("paused", False)], 3.0) == []
    assert engine.ingest(PHX, [report(("SOL", "3"))], 4.0) == []
    (active,) = engine.alerts.active()
    assert active.value == 3.0

    (resolved,) = engine.ingest(PHX, [status("active", True)], 5.0)
    assert (resolved.status, resolved.ts, resolved.starts_at, resolved.value) == ("resolved", 5.0, 2.0, 3.0)
    # A resolved alert carries the annotations it last fired with (refreshed while paused).
    assert resolved.annotations["summary"] == "phoenix SOL is paused with desk alpha holding 3"
    assert engine.alerts.active() == []


def test_a_tombstoned_market_names_its_final_price_and_resolves_when_the_position_goes_flat() -> None:
    engine = make_engine()
    engine.ingest(PHX, [report(("SOL", "-2.5"))], 1.0)
    (fired,) = engine.ingest(PHX, [status("tombstoned", False, final="101.50")], 2.0)
    assert fired.value == -2.5
    assert fired.annotations == {
        "summary": "phoenix SOL is tombstoned with desk alpha holding -2.5",
        "description": "The venue marked SOL tombstoned (final price 101.5); the position cannot be traded out "
        "of until it reopens.",
    }
    (resolved,) = engine.ingest(PHX, [report(("SOL", "0"))], 3.0)
    assert (resolved.status, resolved.labels, resolved.value) == ("resolved", _closed_labels(), 0.0)


def test_a_complete_snapshot_that_omits_a_closed_market_resolves_its_alert() -> None:
    engine = make_engine()
    engine.ingest(PHX, [report(("SOL", "5"))], 1.0)
    assert len(engine.ingest(PHX, [status("closed", False)], 2.0)) == 1
    resolved = engine.ingest(PHX, [report(("ETH", "1"), complete=True)], 3.0)
    assert engine.book.position(PHX_SOL) == 0
    assert [(t.alertname, t.status) for t in resolved] == [("MarketClosedWithExposure", "resolved")]


def test_a_closed_market_without_a_position_fires_nothing() -> None:
    engine = make_engine()
    assert engine.ingest(PHX, [status("closed", False)], 1.0) == []  # never held
    engine.ingest(PHX, [report(("ETH", "5")), report(("ETH", "0"))], 2.0)
    assert engine.ingest(PHX, [status("closed", False, market="ETH")], 3.0) == []  # held, now flat
    assert engine.ingest(PHX, [report(("ETH", "0"))], 4.0) == []
    # A Mango position in the same underlying is another venue's market: not closed.
    engine = make_engine(underlyings=SOL_UNDERLYING)
    engine.ingest(MANGO, [mango_fill("f1", "1")], 5.0)
    assert engine.ingest(PHX, [status("closed", False)], 6.0) == []
    assert engine.alerts.active() == []


def test_a_position_reported_in_an_already_closed_market_fires_per_desk() -> None:
    engine = make_engine()
    engine.ingest(PHX, [status("closed", False)], 1.0)
    (alpha,) = engine.ingest(PHX, [report(("SOL", "1"))], 2.0)
    assert (alpha.status, alpha.ts, alpha.labels) == ("firing", 2.0, _closed_labels())
    (beta,) = engine.ingest(PHX, [report(("SOL", "-7"), desk="beta", account="trader2")], 3.0)
    assert (beta.labels, beta.value) == (_closed_labels("beta", "trader2"), -7.0)
    resolved = engine.ingest(PHX, [status("active", True)], 4.0)
    assert sorted((t.labels["desk"], t.status) for t in resolved) == [("alpha", "resolved"), ("beta", "resolved")]


# ---- liquidations and amendments -----------------------------------------------------------------


def liquidation(key: str, qty: str | None = "0.5", price: str | None = "60000") -> Liquidation:
    return Liquidation(
        venue=MOB,
        desk="alpha",
        account="0xabc",
        market="BTC",
        side=Side.SELL,
        quantity=None if qty is None else Decimal(qty),
        price=None if price is None else Decimal(price),
        key=key,
        venue_ts=0.0,
    )


def test_a_liquidation_fires_critical_once_and_a_repeat_is_a_counted_duplicate() -> None:
    engine = make_engine()
    (fired,) = engine.ingest(MOB, [liquidation("tx1")], 10.0)
    labels = {
        "desk": "alpha",
        "venue": MOB,
        "market": "BTC",
        "account": "0xabc",
        "liquidation": "tx1",
        "alertname": "Liquidation",
        "severity": "critical",
    }
    assert fired == firing(
        10.0,
        labels,
        {
            "summary": "mobula liquidated desk alpha on BTC",
            "description": "Account 0xabc: a liquidating sell 0.5 @ 60000.",
        },
        value=1.0,
    )
    assert engine.ingest(MOB, [liquidation("tx1")], 11.0) == []
    assert (engine.stats[MOB].liquidations, engine.stats[MOB].duplicates) == (1, 1)
    # An event alert: it resolves by itself after alerts.event_resolve_after (300 s by default).
    assert engine.advance(309.9) == []
    (resolved,) = engine.advance(400.0)
    assert (resolved.status, resolved.ts, resolved.starts_at) == ("resolved", 310.0, 10.0)
    # Still a duplicate after the alert resolved: the key is remembered, not the alert.
    assert engine.ingest(MOB, [liquidation("tx1")], 500.0) == []
    assert (engine.stats[MOB].liquidations, engine.stats[MOB].duplicates) == (1, 2)


def test_a_liquidation_without_size_or_price_says_so_plainly() -> None:
    engine = make_engine(alerts={"event_resolve_after": "1m"})
    (fired,) = engine.ingest(MOB, [liquidation("tx1", qty=None, price=None)], 0.0)
    assert fired.annotations["description"] == "Account 0xabc: a liquidating sell."
    (resolved,) = engine.advance(60.0)
    assert resolved.ts == 60.0
    engine.ingest(MOB, [liquidation("tx2")], 61.0)  # another liquidation key: counted as one more
    assert (engine.stats[MOB].liquidations, engine.stats[MOB].duplicates) == (2, 0)


def amendment(key: str, change: str = "UPDATE_TP") -> PositionAmended:
    return PositionAmended(MOB, "alpha", "0xabc", "BTC", change, key, (("tp", "65000"),))


def test_position_amendments_are_counted_and_their_repeats_are_duplicates() -> None:
    engine = make_engine()
    assert engine.ingest(MOB, [amendment("a1"), amendment("a2", "LEVERAGE_UPDATE_EXECUTED")], 1.0) == []
    assert engine.ingest(MOB, [amendment("a1"), amendment("a2")], 2.0) == []
    stats = engine.stats[MOB]
    assert (stats.amendments, stats.duplicates) == (2, 2)
    # Liquidation and amendment keys live apart: the same string is not a repeat across them.
    assert len(engine.ingest(MOB, [liquidation("a1")], 3.0)) == 1
    assert (stats.liquidations, stats.duplicates) == (1, 2)
    # Amendments never move exposure.
    assert list(engine.book.rows()) == []
    assert engine.alerts.active()[0].alertname == "Liquidation"


# ---- sequence gaps, subscriptions, heartbeats -------------------------------------------------------


def test_a_sequence_gap_fires_a_warning_valued_by_how_many_updates_were_missed() -> None:
    engine = make_engine()
    (fired,) = engine.ingest(PHX, [SequenceGap(PHX, "exchange", expected=101, received=105)], 1.0)
    labels = {"venue": PHX, "stream": "exchange", "alertname": "SequenceGap", "severity": "warning"}
    assert fired == firing(
        1.0,
        labels,
        {
            "summary": "phoenix exchange: sequence gap, resubscribing",
            "description": "Expected 101, received 105; 4 update(s) missed. State is rebuilt from a fresh snapshot.",
        },
        value=4.0,
    )
    # Another gap on the stream while it fires refreshes it; another stream is its own alert.
    assert engine.ingest(PHX, [SequenceGap(PHX, "exchange", expected=200, received=202)], 2.0) == []
    (active,) = engine.alerts.active()
    assert active.value == 2.0
    (other,) = engine.ingest(PHX, [SequenceGap(PHX, "trader:0", expected=7, received=8)], 3.0)
    assert (other.labels["stream"], other.value) == ("trader:0", 1.0)
    assert engine.stats[PHX].sequence_gaps == 3


def test_a_refused_subscription_fires_critical_until_the_same_subscription_succeeds() -> None:
    engine = make_engine()
    (fired,) = engine.ingest(PHX, [SubscriptionFailed(PHX, "traderState", "rate limited")], 1.0)
    labels = {
        "venue": PHX,
        "subscription": "traderState",
        "alertname": "VenueSubscriptionError",
        "severity": "critical",
    }
    assert fired == firing(
        1.0,
        labels,
        {
            "summary": "phoenix refused traderState: rate limited",
            "description": "riskmon is blind on traderState until it succeeds; the session retries.",
        },
        value=1.0,
    )
    assert engine.stats[PHX].subscription_errors == 1
    assert engine.ingest(PHX, [SubscriptionFailed(PHX, "traderState", "rate limited")], 2.0) == []  # still
    assert engine.stats[PHX].subscription_errors == 2
    assert engine.ingest(PHX, [Subscribed(PHX, "allMids")], 3.0) == []  # another subscription
    assert engine.ingest(MANGO, [Subscribed(MANGO, "traderState")], 3.5) == []  # another venue
    (resolved,) = engine.ingest(PHX, [Subscribed(PHX, "traderState")], 4.0)
    assert (resolved.status, resolved.fingerprint, resolved.starts_at, resolved.value) == (
        "resolved",
        fired.fingerprint,
        1.0,
        0.0,
    )
    assert engine.ingest(PHX, [Subscribed(PHX, "traderState")], 5.0) == []
    assert engine.alerts.active() == []


def test_a_misconfigured_subscription_says_the_config_must_change() -> None:
    engine = make_engine()
    failed = SubscriptionFailed(MOB, "mm:quotes:x", "no desk lists this market maker", misconfigured=True)
    (fired,) = engine.ingest(MOB, [failed], 1.0)
    assert (
        fired.annotations["description"] == "riskmon is blind on mm:quotes:x until it succeeds; fix the configuration."
    )


def test_heartbeats_are_counted_and_stamped_with_the_receive_time() -> None:
    engine = make_engine()
    stats = engine.venue_stats("prophetx")
    assert (stats.heartbeats, stats.last_heartbeat_at) == (0, None)
    assert engine.ingest("prophetx", [Heartbeat("prophetx", "123.456", venue_ts=5.0)], 10.0) == []
    assert engine.ingest("prophetx", [Heartbeat("prophetx", "123.456")], 15.5, is_frame=False) == []
    assert (stats.heartbeats, stats.last_heartbeat_at) == (2, 15.5)
    assert (stats.frames, stats.last_frame_at, stats.events) == (1, 10.0, 2)


# ---- books and public trades ---------------------------------------------------------------------


def book(sequence: int | None, price: str) -> BookSnapshot:
    side = BookSide("outcome-1", (BookLevel(Decimal(price), Decimal("250")),))
    return BookSnapshot("prophetx", "ev1:m1", (side,), sequence)


def test_book_snapshots_replace_unless_older() -> None:
    engine = make_engine()
    stats = engine.venue_stats("prophetx")
    engine.ingest("prophetx", [book(5, "-110")], 1.0)
    assert engine.ingest("prophetx", [book(4, "+120")], 2.0) == []
    assert (stats.book_updates, stats.stale_updates) == (1, 1)
    assert engine.markets.books[("prophetx", "ev1:m1")] == book(5, "-110")
    engine.ingest("prophetx", [book(6, "+105")], 3.0)
    assert engine.markets.books[("prophetx", "ev1:m1")] == book(6, "+105")
    engine.ingest("prophetx", [book(None, "+101")], 4.0)  # no sequence: nothing to compare
    assert engine.markets.books[("prophetx", "ev1:m1")] == book(None, "+101")
    engine.ingest("prophetx", [book(1, "+99")], 5.0)  # the held one has no sequence: replaces
    assert engine.markets.books[("prophetx", "ev1:m1")] == book(1, "+99")
    assert (stats.book_updates, stats.stale_updates) == (4, 1)


def test_public_trades_are_recorded_but_move_no_exposure_or_mark() -> None:
    engine = make_engine()
    engine.ingest(PHX, [report(("SOL", "5"))], 1.0)
    first = TradeExecuted(PHX, "SOL", Decimal("100.25"), Decimal("3"), 41, 1.0)
    second = TradeExecuted(PHX, "SOL", Decimal("100.5"), Decimal("0.1"), 42, 2.0)
    assert engine.ingest(PHX, [first, second], 2.0) == []
    assert engine.stats[PHX].trades == 2
    assert engine.markets.last_trades == {(PHX, "SOL"): second}
    assert engine.book.mark(PHX, "SOL") is None
    assert engine.book.position(PHX_SOL) == Decimal("5")


# ---- events the engine cannot apply --------------------------------------------------------------


class NotAnEvent(msgspec.Struct, frozen=True):
    venue: str


def test_an_event_the_engine_cannot_apply_is_counted_and_the_next_ones_still_apply(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = make_engine()
    too_precise = mango_fill("f1", "0." + "1" * 61)  # beyond the exact context: Inexact
    caplog.set_level(logging.ERROR, logger="riskmon.engine.engine")
    out = engine.ingest(
        MANGO,
        [
            NotAnEvent(MANGO),  # type: ignore[list-item]
            too_precise,
            mango_fill("f2", "1.5"),
            SequenceGap(MANGO, "queue", expected=1, received=3),
        ],
        1.0,
    )
    stats = engine.stats[MANGO]
    assert (stats.engine_errors, stats.events, stats.frames) == (2, 4, 1)
    assert [t.alertname for t in out] == ["SequenceGap"]
    assert engine.book.position(MANGO_SOL) == Decimal("1.5")
    assert [r.getMessage() for r in caplog.records] == [
        "engine could not apply NotAnEvent from mango",
        "engine could not apply FillReceived from mango",
    ]
    # And the engine carries on with the next frame.
    engine.ingest(MANGO, [mango_fill("f3", "1")], 2.0)
    assert (engine.book.position(MANGO_SOL), stats.engine_errors) == (Decimal("2.5"), 2)


def test_a_venue_wide_halt_holds_every_position_until_both_venue_and_market_trade() -> None:
    engine = make_engine()
    engine.ingest(PHX, [report(("SOL", "5")), report(("ETH", "-1"))], 1.0)
    fired = engine.ingest(PHX, [status("halted", False, market="*")], 2.0)
    assert sorted(t.labels["market"] for t in fired) == ["ETH", "SOL"]
    assert {t.status for t in fired} == {"firing"}
    assert fired[0].annotations["summary"].startswith("phoenix (all markets) is halted with desk alpha holding")
    # SOL itself closes while the venue is halted; when the venue resumes, only ETH can trade.
    assert engine.ingest(PHX, [status("closed", False)], 3.0) == []
    resumed = engine.ingest(PHX, [status("active", True, market="*")], 4.0)
    assert [(t.status, t.labels["market"]) for t in resumed] == [("resolved", "ETH")]
    assert [a.labels["market"] for a in engine.alerts.active()] == ["SOL"]


@pytest.mark.parametrize("subscription", ["auth", "channel registration", "pusher", "rest:quotes"])
def test_feed_up_cures_session_refusals_but_not_channel_refusals(subscription: str) -> None:
    engine = make_engine()
    engine.ingest(PHX, [SubscriptionFailed(PHX, subscription, "refused", misconfigured=True)], 1.0)
    engine.ingest(PHX, [SubscriptionFailed(PHX, "market:XYZ", "unknown symbol")], 1.0)
    engine.ingest(MOB, [SubscriptionFailed(MOB, subscription, "refused")], 1.0)
    (resolved,) = engine.ingest(PHX, [FeedUp(PHX, "wss://venue:443")], 2.0, is_frame=False)
    assert (resolved.status, resolved.labels["venue"], resolved.labels["subscription"]) == (
        "resolved",
        PHX,
        subscription,
    )
    # A resolved alert carries the annotations it last fired with.
    assert resolved.annotations["summary"] == f"{PHX} refused {subscription}: refused"
    still = sorted((a.labels["venue"], a.labels["subscription"]) for a in engine.alerts.active())
    assert still == sorted([(PHX, "market:XYZ"), (MOB, subscription)])
