"""The engine on bet orders (ProphetX) and RFQ quotes (Totalis): sequence-checked order state,
worst-case loss per order, pending RFQ reservations, and the two books' retention."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest

from riskmon.engine.engine import Engine
from riskmon.engine.exposure import PositionKey, RiskRow
from riskmon.engine.state_journal import StoredOrder
from riskmon.engine.trading import OrderBook, QuoteBook
from riskmon.events import (
    OrderStatus,
    OrderUpdate,
    QuoteLeg,
    QuoteStatus,
    QuoteUpdate,
    RfqPositionStatus,
    RfqPositionUpdate,
)
from tests.engine.builders import engine_for, firing

PX = "prophetx"
TOT = "totalis"
MARKET = "ev1:m1:o1"
ORDER_KEY = PositionKey("alpha", PX, "u1", MARKET)
RFQ_KEY = PositionKey("alpha", TOT, "mm1", "rfq:r1")


def make_engine(**overrides: Any) -> Engine:
    return engine_for(
        {
            "venues": {
                PX: {
                    "kind": "prophetx",
                    "rest_url": "https://prophetx.invalid/partner",
                    "access_key": "access",
                    "secret_key": "secret",
                },
                TOT: {"kind": "totalis_rfq", "api_key": "key"},
            },
            "desks": {
                "alpha": {"accounts": {PX: ["u1"], TOT: ["mm1"]}},
                "beta": {"accounts": {PX: ["u2"]}},
            },
            **overrides,
        }
    )


def order(
    status: OrderStatus = OrderStatus.OPEN,
    seq: int | None = 1,
    *,
    order_id: str = "o1",
    loss: str | None = None,
    filled: str | None = None,
    reason: str | None = None,
    venue_status: str | None = None,
    market: str = MARKET,
    desk: str = "alpha",
    account: str = "u1",
) -> OrderUpdate:
    return OrderUpdate(
        venue=PX,
        desk=desk,
        account=account,
        order_id=order_id,
        market=market,
        status=status,
        venue_status=venue_status or status.value,
        sequence=seq,
        venue_ts=1_700_000_000.0,
        reason=reason,
        price=Decimal("150"),
        quantity=Decimal("100"),
        filled_quantity=None if filled is None else Decimal(filled),
        worst_case_loss_usd=None if loss is None else Decimal(loss),
    )


def quote(
    status: QuoteStatus,
    *,
    quote_id: str = "q1",
    rfq_id: str | None = "r1",
    loss: str | None = None,
    deadline: float | None = None,
    reason: str | None = None,
    execution_id: str | None = None,
    legs: tuple[QuoteLeg, ...] = (),
) -> QuoteUpdate:
    return QuoteUpdate(
        venue=TOT,
        desk="alpha",
        account="mm1",
        quote_id=quote_id,
        rfq_id=rfq_id,
        status=status,
        worst_case_loss_usd=None if loss is None else Decimal(loss),
        confirmation_deadline=deadline,
        reason=reason,
        execution_id=execution_id,
        legs=legs,
    )


def position(status: RfqPositionStatus, rfq_id: str = "r1", detail: str | None = None) -> RfqPositionUpdate:
    return RfqPositionUpdate(venue=TOT, desk="alpha", account="mm1", rfq_id=rfq_id, status=status, detail=detail)


# ---- orders: sequences ---------------------------------------------------------------------------


def test_older_and_equal_sequences_are_dropped_and_counted_as_stale() -> None:
    engine = make_engine()
    assert engine.ingest(PX, [order(OrderStatus.OPEN, 2, loss="50")], 1.0) == []
    stats = engine.stats[PX]
    assert (stats.order_updates, stats.stale_updates) == (1, 0)

    assert engine.ingest(PX, [order(OrderStatus.VOID, 1, loss="0")], 2.0) == []  # older
    assert engine.ingest(PX, [order(OrderStatus.OPEN, 2, loss="70")], 3.0) == []  # equal: a replay
    assert (stats.order_updates, stats.stale_updates) == (1, 2)
    held = engine.orders.get(PX, "o1")
    assert held is not None
    assert (held.sequence, held.status, held.worst_case_loss_usd) == (2, OrderStatus.OPEN, Decimal("50"))
    assert engine.book.desk_worst_case_loss("alpha") == Decimal("50")

    engine.ingest(PX, [order(OrderStatus.OPEN, 3, loss="80")], 4.0)
    assert (stats.order_updates, stats.stale_updates) == (2, 2)
    assert engine.book.desk_worst_case_loss("alpha") == Decimal("80")


def test_a_sequence_is_per_order() -> None:
    engine = make_engine()
    engine.ingest(PX, [order(seq=9, loss="10"), order(seq=1, order_id="o2", loss="20")], 1.0)
    assert (engine.stats[PX].order_updates, engine.stats[PX].stale_updates) == (2, 0)
    assert engine.book.desk_worst_case_loss("alpha") == Decimal("30")


def test_an_update_without_a_sequence_is_always_applied() -> None:
    engine = make_engine()
    engine.ingest(PX, [order(seq=5, loss="10")], 1.0)
    engine.ingest(PX, [order(seq=None, loss="11")], 2.0)  # the held one has a sequence, this one none
    engine.ingest(PX, [order(seq=None, loss="12")], 3.0)  # neither has one
    # Sequence 5 was seen before the unsequenced ones: 1 is still older than that, so stale.
    engine.ingest(PX, [order(seq=1, loss="13")], 4.0)
    assert (engine.stats[PX].order_updates, engine.stats[PX].stale_updates) == (3, 1)
    engine.ingest(PX, [order(seq=6, loss="14")], 5.0)
    assert (engine.stats[PX].order_updates, engine.stats[PX].stale_updates) == (4, 1)
    held = engine.orders.get(PX, "o1")
    assert held is not None
    assert (held.sequence, held.worst_case_loss_usd) == (6, Decimal("14"))
    assert engine.book.desk_worst_case_loss("alpha") == Decimal("14")


def test_an_older_sequence_after_an_unsequenced_update_is_still_stale() -> None:
    engine = make_engine()
    engine.ingest(PX, [order(OrderStatus.OPEN, 5, loss="100")], 1.0)
    engine.ingest(PX, [order(OrderStatus.SETTLED, None, loss="0")], 2.0)
    engine.ingest(PX, [order(OrderStatus.OPEN, 4, loss="100")], 3.0)  # delayed in flight
    assert engine.stats[PX].stale_updates == 1
    assert engine.book.desk_worst_case_loss("alpha") == 0


# ---- orders: worst-case loss ---------------------------------------------------------------------


def test_worst_case_loss_is_held_per_order_and_rolls_up_per_market_and_desk() -> None:
    engine = make_engine()
    other_key = PositionKey("alpha", PX, "u1", "ev2:m1:o3")
    engine.ingest(
        PX,
        [
            order(order_id="o1", loss="100"),
            order(order_id="o2", loss="25.50"),
            order(order_id="o3", loss="0.01", market="ev2:m1:o3"),
            order(order_id="o4", loss="40", desk="beta", account="u2"),
        ],
        1.0,
    )
    assert engine.book.desk_worst_case_loss("alpha") == Decimal("125.51")
    assert engine.book.desk_worst_case_loss("beta") == Decimal("40")
    assert engine.book.desk_pending("alpha") == 0
    assert engine.book.risk_of(ORDER_KEY, "o2") == (Decimal("25.50"), False)
    assert list(engine.book.risk_rows()) == [
        RiskRow(ORDER_KEY, Decimal("125.50"), Decimal(0)),
        RiskRow(other_key, Decimal("0.01"), Decimal(0)),
        RiskRow(PositionKey("beta", PX, "u2", MARKET), Decimal("40"), Decimal(0)),
    ]

    # A newer update replaces the order's amount; it is never added to what the order held.
    engine.ingest(PX, [order(seq=2, order_id="o1", loss="60")], 2.0)
    assert engine.book.risk_of(ORDER_KEY, "o1") == (Decimal("60"), False)
    assert engine.book.desk_worst_case_loss("alpha") == Decimal("85.51")

    # An update that does not say keeps what the order carried.
    engine.ingest(PX, [order(seq=3, order_id="o1", loss=None)], 3.0)
    assert engine.book.risk_of(ORDER_KEY, "o1") == (Decimal("60"), False)
    # Bets have no mark: they never show up as a position.
    assert list(engine.book.rows()) == []


@pytest.mark.parametrize("status", [OrderStatus.VOID, OrderStatus.SETTLED, OrderStatus.REJECTED])
def test_a_finished_order_releases_its_worst_case_loss(status: OrderStatus) -> None:
    engine = make_engine()
    engine.ingest(PX, [order(OrderStatus.OPEN, 1, loss="100"), order(order_id="o2", loss="7")], 1.0)
    assert engine.book.desk_worst_case_loss("alpha") == Decimal("107")
    engine.ingest(PX, [order(status, 2, loss="0")], 2.0)
    assert engine.book.risk_of(ORDER_KEY, "o1") is None
    assert engine.book.desk_worst_case_loss("alpha") == Decimal("7")
    assert list(engine.book.risk_rows()) == [RiskRow(ORDER_KEY, Decimal("7"), Decimal(0))]
    engine.ingest(PX, [order(status, 2, order_id="o2", loss="0")], 3.0)
    assert engine.book.desk_worst_case_loss("alpha") == 0
    assert list(engine.book.risk_rows()) == []


@pytest.mark.parametrize("status", [OrderStatus.VOID, OrderStatus.SETTLED])
def test_a_void_or_settled_order_releases_its_loss_even_when_the_update_states_none(status: OrderStatus) -> None:
    engine = make_engine()
    engine.ingest(PX, [order(OrderStatus.OPEN, 1, loss="100")], 1.0)
    engine.ingest(PX, [order(status, 2, loss=None)], 2.0)
    assert engine.book.desk_worst_case_loss("alpha") == 0


def test_a_canceled_order_keeps_the_loss_its_matched_part_carries() -> None:
    engine = make_engine()
    engine.ingest(PX, [order(OrderStatus.OPEN, 1, loss="30", filled="30")], 1.0)
    engine.ingest(PX, [order(OrderStatus.CANCELED, 2, loss="30", filled="30")], 2.0)
    assert engine.book.desk_worst_case_loss("alpha") == Decimal("30")
    assert engine.stats[PX].fills == 1


def test_a_filled_increase_counts_as_one_fill() -> None:
    engine = make_engine()
    stats = engine.stats[PX]
    engine.ingest(PX, [order(OrderStatus.PENDING, 1)], 1.0)  # nothing said about the fill
    engine.ingest(PX, [order(OrderStatus.OPEN, 2, filled="0")], 2.0)
    assert stats.fills == 0
    engine.ingest(PX, [order(OrderStatus.OPEN, 3, filled="10")], 3.0)
    assert stats.fills == 1
    engine.ingest(PX, [order(OrderStatus.OPEN, 4, filled="10")], 4.0)  # no increase
    assert stats.fills == 1
    engine.ingest(PX, [order(OrderStatus.OPEN, 5, filled="25.5")], 5.0)
    assert stats.fills == 2
    engine.ingest(PX, [order(OrderStatus.OPEN, 4, filled="99")], 6.0)  # stale: not applied, not counted
    assert (stats.fills, stats.stale_updates) == (2, 1)
    # A first sighting already partly filled is a fill.
    engine.ingest(PX, [order(OrderStatus.OPEN, 1, order_id="o2", filled="1")], 7.0)
    assert stats.fills == 3
    assert stats.order_updates == 6


def test_an_update_that_does_not_say_how_much_filled_does_not_recount_the_fill() -> None:
    engine = make_engine()
    engine.ingest(PX, [order(OrderStatus.OPEN, 1, filled="10")], 1.0)
    engine.ingest(PX, [order(OrderStatus.OPEN, 2, filled=None)], 2.0)
    engine.ingest(PX, [order(OrderStatus.OPEN, 3, filled="10")], 3.0)
    assert engine.stats[PX].fills == 1


# ---- orders: activation failures -----------------------------------------------------------------


def _activation_failed(reason: str, venue_status: str = "invalid", order_id: str = "o1") -> dict[str, str]:
    return {
        "summary": f"prophetx rejected order {order_id}: {reason}",
        "description": f"Order {order_id} of desk alpha on {MARKET} failed to activate ({venue_status}): {reason}.",
        "order_id": order_id,
        "reason": reason,
    }


def test_a_rejected_order_fires_order_activation_failed_once_with_its_reason() -> None:
    engine = make_engine()
    assert engine.ingest(PX, [order(OrderStatus.PENDING, 1)], 10.0) == []
    (fired,) = engine.ingest(
        PX, [order(OrderStatus.REJECTED, 2, loss="0", reason="insufficient funds", venue_status="invalid")], 11.0
    )
    labels = {
        "desk": "alpha",
        "venue": PX,
        "market": MARKET,
        "order_id": "o1",
        "alertname": "OrderActivationFailed",
        "severity": "warning",
    }
    assert fired == firing(11.0, labels, _activation_failed("insufficient funds"), value=1.0)
    # Repeats: the same sequence (stale), a newer sequence, no sequence.
    assert engine.ingest(PX, [order(OrderStatus.REJECTED, 2, reason="insufficient funds")], 12.0) == []
    assert engine.stats[PX].stale_updates == 1
    assert engine.ingest(PX, [order(OrderStatus.REJECTED, 3, reason="insufficient funds")], 13.0) == []
    assert engine.ingest(PX, [order(OrderStatus.REJECTED, None, reason="insufficient funds")], 14.0) == []
    assert engine.ingest(PX, [order(OrderStatus.REJECTED, None)], 15.0) == []
    assert (engine.stats[PX].order_updates, engine.stats[PX].stale_updates) == (5, 1)

    # The event alert resolves by itself; a repeat after that still does not fire it again.
    (resolved,) = engine.advance(11.0 + 300.0)
    assert (resolved.status, resolved.ts, resolved.starts_at, resolved.alertname) == (
        "resolved",
        311.0,
        11.0,
        "OrderActivationFailed",
    )
    assert engine.ingest(PX, [order(OrderStatus.REJECTED, None)], 400.0) == []
    assert engine.alerts.active() == []


def test_a_rejection_seen_first_fires_and_names_the_venue_word_without_a_reason() -> None:
    engine = make_engine()
    (fired,) = engine.ingest(PX, [order(OrderStatus.REJECTED, 1, venue_status="invalid")], 5.0)
    assert fired.annotations == _activation_failed("invalid")
    assert fired.status == "firing"


def test_other_statuses_fire_nothing() -> None:
    engine = make_engine()
    events = [
        order(OrderStatus.PENDING, 1),
        order(OrderStatus.OPEN, 2),
        order(OrderStatus.CANCELED, 3, reason="user"),
        order(OrderStatus.VOID, 4),
        order(OrderStatus.SETTLED, 5),
    ]
    assert engine.ingest(PX, events, 1.0) == []
    assert engine.alerts.active() == []


def test_a_second_order_rejected_on_the_same_market_fires_its_own_alert() -> None:
    engine = make_engine()
    assert len(engine.ingest(PX, [order(OrderStatus.REJECTED, 1, order_id="o1")], 1.0)) == 1
    second = engine.ingest(PX, [order(OrderStatus.REJECTED, 1, order_id="o2")], 2.0)
    assert [t.annotations["order_id"] for t in second] == ["o2"]


# ---- RFQ quotes ---------------------------------------------------------------------------------


def test_quote_accepted_then_mm_quote_accepted_is_one_reservation() -> None:
    engine = make_engine()
    # quote:accepted: rfq and deadline, no amount yet.
    assert engine.ingest(TOT, [quote(QuoteStatus.ACCEPTED, deadline=1_000.0)], 10.0) == []
    held = engine.quotes.get(TOT, "q1")
    assert held is not None
    assert (held.pending, held.accepted_at, held.confirmation_deadline) == (True, 10.0, 1_000.0)
    assert engine.book.desk_pending("alpha") == 0
    # mm_quote:accepted fills in the amount.
    leg = QuoteLeg(venue="kalshi", market="KXBTC", side="yes", exposure_usd=Decimal("250"))
    engine.ingest(TOT, [quote(QuoteStatus.ACCEPTED, loss="250.00", deadline=1_001.0, legs=(leg,))], 11.0)
    assert engine.book.desk_pending("alpha") == Decimal("250.00")
    assert engine.book.desk_worst_case_loss("alpha") == 0
    assert engine.book.risk_of(RFQ_KEY, "q1") == (Decimal("250.00"), True)
    assert list(engine.book.risk_rows()) == [RiskRow(RFQ_KEY, Decimal(0), Decimal("250.00"))]
    assert (held.sightings, held.history, held.accepted_at) == (2, [QuoteStatus.ACCEPTED], 10.0)
    assert held.confirmation_deadline == 1_000.0  # the first deadline stays
    assert held.legs == (leg,)
    assert engine.stats[TOT].quote_updates == 2


def test_mm_quote_accepted_then_quote_accepted_is_one_reservation() -> None:
    engine = make_engine()
    engine.ingest(TOT, [quote(QuoteStatus.ACCEPTED, loss="250")], 10.0)
    assert engine.book.desk_pending("alpha") == Decimal("250")
    engine.ingest(TOT, [quote(QuoteStatus.ACCEPTED, deadline=1_000.0)], 11.0)  # no amount: keeps it
    assert engine.book.desk_pending("alpha") == Decimal("250")
    # Both frames with the amount (a REST reconcile restating it) still reserve it once.
    engine.ingest(TOT, [quote(QuoteStatus.ACCEPTED, loss="250")], 12.0)
    assert engine.book.desk_pending("alpha") == Decimal("250")
    assert list(engine.book.risk_rows()) == [RiskRow(RFQ_KEY, Decimal(0), Decimal("250"))]


def test_a_quote_without_its_rfq_reserves_once_the_rfq_is_known() -> None:
    engine = make_engine()
    engine.ingest(TOT, [quote(QuoteStatus.ACCEPTED, rfq_id=None, loss="80")], 1.0)
    assert engine.book.desk_pending("alpha") == 0
    engine.ingest(TOT, [quote(QuoteStatus.ACCEPTED, rfq_id="r1")], 2.0)
    assert engine.book.risk_of(RFQ_KEY, "q1") == (Decimal("80"), True)


def test_pending_is_per_quote_and_per_rfq() -> None:
    engine = make_engine()
    engine.ingest(
        TOT,
        [
            quote(QuoteStatus.ACCEPTED, quote_id="q1", rfq_id="r1", loss="100"),
            quote(QuoteStatus.ACCEPTED, quote_id="q2", rfq_id="r1", loss="0.5"),
            quote(QuoteStatus.ACCEPTED, quote_id="q3", rfq_id="r2", loss="9"),
        ],
        1.0,
    )
    assert engine.book.desk_pending("alpha") == Decimal("109.5")
    assert list(engine.book.risk_rows()) == [
        RiskRow(RFQ_KEY, Decimal(0), Decimal("100.5")),
        RiskRow(RFQ_KEY._replace(market="rfq:r2"), Decimal(0), Decimal("9")),
    ]


@pytest.mark.parametrize("status", [QuoteStatus.CONFIRMED, QuoteStatus.EXECUTED])
def test_confirm_or_execute_moves_the_reservation_to_worst_case_loss(status: QuoteStatus) -> None:
    engine = make_engine()
    engine.ingest(TOT, [quote(QuoteStatus.ACCEPTED, loss="250")], 1.0)
    engine.ingest(TOT, [quote(status, execution_id="x1")], 2.0)
    assert engine.book.desk_pending("alpha") == 0
    assert engine.book.desk_worst_case_loss("alpha") == Decimal("250")
    assert engine.book.risk_of(RFQ_KEY, "q1") == (Decimal("250"), False)
    assert list(engine.book.risk_rows()) == [RiskRow(RFQ_KEY, Decimal("250"), Decimal(0))]
    held = engine.quotes.get(TOT, "q1")
    assert held is not None
    assert (held.status, held.history, held.execution_id) == (status, [QuoteStatus.ACCEPTED, status], "x1")


def test_confirmed_then_executed_keeps_one_worst_case_loss() -> None:
    engine = make_engine()
    engine.ingest(TOT, [quote(QuoteStatus.ACCEPTED, loss="250"), quote(QuoteStatus.CONFIRMED)], 1.0)
    engine.ingest(TOT, [quote(QuoteStatus.EXECUTED)], 2.0)
    assert (engine.book.desk_worst_case_loss("alpha"), engine.book.desk_pending("alpha")) == (
        Decimal("250"),
        Decimal(0),
    )
    held = engine.quotes.get(TOT, "q1")
    assert held is not None
    assert held.history == [QuoteStatus.ACCEPTED, QuoteStatus.CONFIRMED, QuoteStatus.EXECUTED]


@pytest.mark.parametrize("status", [QuoteStatus.EXPIRED, QuoteStatus.REJECTED, QuoteStatus.WITHDRAWN])
def test_an_expired_rejected_or_withdrawn_quote_releases_its_reservation(status: QuoteStatus) -> None:
    engine = make_engine()
    engine.ingest(
        TOT, [quote(QuoteStatus.ACCEPTED, loss="250"), quote(QuoteStatus.ACCEPTED, quote_id="q2", loss="5")], 1.0
    )
    assert engine.ingest(TOT, [quote(status, reason="too late")], 2.0) == []
    assert engine.book.risk_of(RFQ_KEY, "q1") is None
    assert (engine.book.desk_pending("alpha"), engine.book.desk_worst_case_loss("alpha")) == (Decimal("5"), Decimal(0))
    held = engine.quotes.get(TOT, "q1")
    assert held is not None
    assert (held.status, held.reason, held.at_risk_usd) == (status, "too late", Decimal(0))


def test_a_released_quote_after_confirmation_releases_the_worst_case_loss() -> None:
    engine = make_engine()
    engine.ingest(TOT, [quote(QuoteStatus.ACCEPTED, loss="250"), quote(QuoteStatus.CONFIRMED)], 1.0)
    engine.ingest(TOT, [quote(QuoteStatus.WITHDRAWN)], 2.0)
    assert (engine.book.desk_worst_case_loss("alpha"), engine.book.desk_pending("alpha")) == (Decimal(0), Decimal(0))


def test_a_late_accepted_frame_never_regresses_a_later_stage() -> None:
    engine = make_engine()
    engine.ingest(TOT, [quote(QuoteStatus.ACCEPTED, deadline=100.0), quote(QuoteStatus.CONFIRMED)], 1.0)
    engine.ingest(TOT, [quote(QuoteStatus.ACCEPTED, loss="250", deadline=200.0)], 2.0)  # mm_quote:accepted late
    held = engine.quotes.get(TOT, "q1")
    assert held is not None
    assert (held.status, held.pending, held.history) == (
        QuoteStatus.CONFIRMED,
        False,
        [QuoteStatus.ACCEPTED, QuoteStatus.CONFIRMED],
    )
    assert held.confirmation_deadline == 100.0
    # The amount the late frame brings is confirmed loss, never pending.
    assert (engine.book.desk_worst_case_loss("alpha"), engine.book.desk_pending("alpha")) == (
        Decimal("250"),
        Decimal(0),
    )

    # Nor does a late accepted or executed frame revive a released quote.
    engine.ingest(
        TOT, [quote(QuoteStatus.EXPIRED, quote_id="q2"), quote(QuoteStatus.ACCEPTED, quote_id="q2", loss="9")], 3.0
    )
    engine.ingest(TOT, [quote(QuoteStatus.EXECUTED, quote_id="q2")], 4.0)
    released = engine.quotes.get(TOT, "q2")
    assert released is not None
    assert (released.status, released.history) == (QuoteStatus.EXPIRED, [QuoteStatus.EXPIRED])
    assert engine.book.risk_of(RFQ_KEY, "q2") is None
    assert engine.book.desk_pending("alpha") == 0


def test_a_quote_confirmed_before_any_accepted_frame_is_worst_case_loss_at_once() -> None:
    engine = make_engine()
    engine.ingest(TOT, [quote(QuoteStatus.CONFIRMED, loss="40")], 1.0)
    held = engine.quotes.get(TOT, "q1")
    assert held is not None
    assert held.accepted_at is None
    assert (engine.book.desk_worst_case_loss("alpha"), engine.book.desk_pending("alpha")) == (Decimal("40"), Decimal(0))


# ---- RFQ positions ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [RfqPositionStatus.SETTLED, RfqPositionStatus.CANCELLED])
def test_a_settled_or_cancelled_rfq_position_closes_every_quote_of_the_rfq(status: RfqPositionStatus) -> None:
    engine = make_engine()
    engine.ingest(
        TOT,
        [
            quote(QuoteStatus.ACCEPTED, quote_id="q1", loss="250"),
            quote(QuoteStatus.CONFIRMED, quote_id="q1"),
            quote(QuoteStatus.ACCEPTED, quote_id="q2", loss="30"),  # still pending on the same RFQ
            quote(QuoteStatus.CONFIRMED, quote_id="q3", rfq_id="r2", loss="7"),
        ],
        1.0,
    )
    assert (engine.book.desk_worst_case_loss("alpha"), engine.book.desk_pending("alpha")) == (
        Decimal("257"),
        Decimal("30"),
    )
    assert engine.ingest(TOT, [position(RfqPositionStatus.CREATED)], 2.0) == []
    assert engine.book.desk_worst_case_loss("alpha") == Decimal("257")

    assert engine.ingest(TOT, [position(status, detail="yes")], 3.0) == []
    assert (engine.book.desk_worst_case_loss("alpha"), engine.book.desk_pending("alpha")) == (Decimal("7"), Decimal(0))
    assert list(engine.book.risk_rows()) == [RiskRow(RFQ_KEY._replace(market="rfq:r2"), Decimal("7"), Decimal(0))]
    for quote_id in ("q1", "q2"):
        held = engine.quotes.get(TOT, quote_id)
        assert held is not None
        assert (held.closed, held.at_risk_usd) == (True, Decimal(0))
    assert engine.stats[TOT].rfq_position_updates == 2

    # A frame arriving after the close does not put the risk back.
    engine.ingest(TOT, [quote(QuoteStatus.EXECUTED, quote_id="q1", loss="250")], 4.0)
    assert engine.book.desk_worst_case_loss("alpha") == Decimal("7")
    # Closing again, or an RFQ nobody quoted, changes nothing.
    assert engine.ingest(TOT, [position(status), position(status, rfq_id="r9")], 5.0) == []
    assert engine.book.desk_worst_case_loss("alpha") == Decimal("7")


def test_an_rfq_position_error_fires_a_critical_alert_and_keeps_the_risk() -> None:
    engine = make_engine()
    engine.ingest(TOT, [quote(QuoteStatus.ACCEPTED, loss="250"), quote(QuoteStatus.CONFIRMED)], 1.0)
    (fired,) = engine.ingest(TOT, [position(RfqPositionStatus.ERROR, detail="settlement tx failed")], 2.0)
    labels = {
        "desk": "alpha",
        "venue": TOT,
        "market": "rfq:r1",
        "alertname": "RfqPositionError",
        "severity": "critical",
    }
    assert fired == firing(
        2.0,
        labels,
        {
            "summary": "totalis RFQ r1: position error",
            "description": "The venue reported an error on the position of RFQ r1: settlement tx failed.",
        },
        value=1.0,
    )
    assert engine.book.desk_worst_case_loss("alpha") == Decimal("250")
    # Again while it fires: refreshed, not re-fired.
    assert engine.ingest(TOT, [position(RfqPositionStatus.ERROR)], 3.0) == []
    (active,) = engine.alerts.active()
    assert active.annotations["description"] == (
        "The venue reported an error on the position of RFQ r1: no detail given."
    )


# ---- retention ----------------------------------------------------------------------------------


def _q(status: QuoteStatus, quote_id: str, rfq_id: str | None = None) -> QuoteUpdate:
    return quote(status, quote_id=quote_id, rfq_id=rfq_id or f"r-{quote_id}", loss="1")


def test_quote_book_prunes_finished_quotes_oldest_first_and_keeps_live_ones() -> None:
    book = QuoteBook(retention=2)
    for quote_id in ("a", "b", "c"):
        book.apply(_q(QuoteStatus.ACCEPTED, quote_id), 1.0)
    # Over retention, but nothing is finished: a live reservation is never forgotten.
    assert [q.quote_id for q in book.quotes()] == ["a", "b", "c"]

    book.apply(_q(QuoteStatus.EXPIRED, "b"), 2.0)  # the only finished one: forgotten at once
    assert [q.quote_id for q in book.quotes()] == ["a", "c"]
    assert book.get(TOT, "b") is None
    assert book.close_rfq(TOT, "r-b") == []  # its RFQ index entry went with it

    book.apply(_q(QuoteStatus.ACCEPTED, "d"), 3.0)
    assert [q.quote_id for q in book.quotes()] == ["a", "c", "d"]
    closed = book.close_rfq(TOT, "r-a")
    assert [q.quote_id for q in closed] == ["a"]
    book.apply(_q(QuoteStatus.REJECTED, "c"), 4.0)  # now a (closed) and c (rejected) are finished
    # Least recently updated first: a goes, which is enough to get back to retention.
    assert [q.quote_id for q in book.quotes()] == ["d", "c"]


def test_quote_book_prunes_through_the_engine_retention_setting() -> None:
    engine = make_engine(state={"fill_retention": 2})
    engine.ingest(
        TOT,
        [_q(QuoteStatus.ACCEPTED, "a"), _q(QuoteStatus.ACCEPTED, "b"), _q(QuoteStatus.WITHDRAWN, "a")],
        1.0,
    )
    assert [q.quote_id for q in engine.quotes.quotes()] == ["b", "a"]  # at retention: kept
    engine.ingest(TOT, [_q(QuoteStatus.ACCEPTED, "c")], 2.0)
    assert [q.quote_id for q in engine.quotes.quotes()] == ["b", "c"]
    assert engine.book.desk_pending("alpha") == Decimal("2")


def test_order_book_prunes_finished_orders_oldest_first_and_keeps_live_ones() -> None:
    book = OrderBook(retention=2)
    for order_id, status in (("a", OrderStatus.SETTLED), ("b", OrderStatus.OPEN), ("c", OrderStatus.PENDING)):
        assert book.apply(order(status, order_id=order_id)) == (True, None, Decimal(0))
    assert [o.order_id for o in book.orders()] == ["b", "c"]
    book.apply(order(OrderStatus.OPEN, order_id="d"))
    assert [o.order_id for o in book.orders()] == ["b", "c", "d"]  # all live: none forgotten
    applied, held, _filled = book.apply(order(OrderStatus.VOID, 2, order_id="c"))
    assert applied
    assert held is not None
    assert held.status is OrderStatus.PENDING
    assert [o.order_id for o in book.orders()] == ["b", "d"]
    assert book.get(PX, "c") is None


# ---- orders: what the book keeps -----------------------------------------------------------------


def test_the_book_keeps_what_the_engine_reads_and_shares_repeated_strings() -> None:
    book = OrderBook(retention=10)
    first = order(OrderStatus.PENDING, 1, market="".join(["ev1:", "m1:o1"]), filled="0.00", loss="0.0")
    book.apply(first)
    # Each update brings its own copies of the strings, as a decoder makes them.
    book.apply(order(OrderStatus.OPEN, 2, order_id="".join(["o", "1"]), market="".join(["ev1:m1", ":o1"]), filled="0"))
    held = book.get(PX, "o1")
    assert held is not None
    assert (held.status, held.venue_status, held.sequence, held.market, held.account) == (
        OrderStatus.OPEN,
        "open",
        2,
        MARKET,
        "u1",
    )
    assert held.order_id is first.order_id  # the id the book keys the order by: one copy
    assert held.market is book.orders()[0].market
    assert (held.price, held.quantity, held.external_id, held.fill_price) == (None, None, None, None)
    assert held.filled_quantity == 0
    assert held.worst_case_loss_usd is None  # the update said nothing of it
    other = OrderBook(retention=10)
    other.apply(order(OrderStatus.OPEN, order_id="o9", market="".join(["ev1:", "m1:o1"]), filled="0.0", loss="0"))
    mirrored = other.get(PX, "o9")
    assert mirrored is not None
    assert mirrored.market is held.market  # interned: one copy across orders
    assert mirrored.filled_quantity is held.filled_quantity  # one shared zero, the same value


def test_what_an_order_remembers_beyond_its_update_survives_the_state_file_round_trip() -> None:
    book = OrderBook(retention=10)
    book.apply(order(OrderStatus.OPEN, 5, filled="40"))
    book.apply(order(OrderStatus.OPEN, None, filled="10"))  # a REST read: no sequence, an older fill
    book.apply(order(OrderStatus.OPEN, 1, order_id="o2", filled="3"))
    assert book.stored(PX, "o1") == StoredOrder(book.get(PX, "o1"), 5, Decimal(40))  # type: ignore[arg-type]
    assert book.stored(PX, "o2") == StoredOrder(book.get(PX, "o2"), 1, Decimal(3))  # type: ignore[arg-type]
    restored = OrderBook(retention=10)
    restored.restore([book.stored(PX, "o2"), book.stored(PX, "o1")])  # type: ignore[list-item]
    assert [o.order_id for o in restored.orders()] == ["o2", "o1"]
    assert restored.stored(PX, "o1") == book.stored(PX, "o1")
    assert len(restored) == 2
    # Sequence 5 is still remembered: 4 is stale, and the larger fill stands.
    assert restored.apply(order(OrderStatus.OPEN, 4, filled="50")) == (False, book.get(PX, "o1"), Decimal(40))
    assert restored.apply(order(OrderStatus.OPEN, 6, filled="20"))[2] == Decimal(40)


def test_retention_counts_orders_of_every_venue_and_forgets_only_finished_ones() -> None:
    book = OrderBook(retention=2)
    book.apply(msgspec.structs.replace(order(OrderStatus.SETTLED, order_id="a"), venue="other"))
    book.apply(order(OrderStatus.OPEN, order_id="b"))
    assert len(book) == 2
    book.apply(order(OrderStatus.OPEN, order_id="c"))
    assert [(o.venue, o.order_id) for o in book.orders()] == [(PX, "b"), (PX, "c")]
    assert book.get("other", "a") is None
    book.apply(order(OrderStatus.OPEN, order_id="d"))
    assert len(book) == 3  # all live: none forgotten
