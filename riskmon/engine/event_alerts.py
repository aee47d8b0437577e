"""What the one-off alerts say: a reversed fill, a liquidation, a failed activation, an RFQ
position error, a sequence gap. The engine decides when they fire; this module words them."""

from __future__ import annotations

from typing import NamedTuple

from riskmon.engine.exposure import plain_decimal
from riskmon.events import FillReceived, Liquidation, OrderUpdate, RfqPositionUpdate, SequenceGap

FILL_REVOKED = "FillRevoked"
LIQUIDATION = "Liquidation"
ORDER_ACTIVATION_FAILED = "OrderActivationFailed"
RFQ_POSITION_ERROR = "RfqPositionError"
SEQUENCE_GAP = "SequenceGap"


class EventAlert(NamedTuple):
    alertname: str
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float = 1.0


def fill_reversed(fill: FillReceived, why: str) -> EventAlert:
    labels = {
        "desk": fill.desk,
        "venue": fill.venue,
        "market": fill.market,
        "account": fill.account,
        "sequence": str(fill.sequence),
    }
    trade = f"a {fill.side.value} of {plain_decimal(fill.quantity)} @ {plain_decimal(fill.price)}"
    annotations = {
        "summary": f"{fill.venue} {fill.market}: {trade} was reversed",
        "description": f"Fill seq {fill.sequence} on desk {fill.desk} was reversed because {why}.",
    }
    return EventAlert(FILL_REVOKED, "warning", labels, annotations, float(fill.quantity))


def liquidation(event: Liquidation) -> EventAlert:
    labels = {
        "desk": event.desk,
        "venue": event.venue,
        "market": event.market,
        "account": event.account,
        # Each liquidation is its own alert: a second one within the resolve time must notify.
        "liquidation": event.key,
    }
    size = "" if event.quantity is None else f" {plain_decimal(event.quantity)}"
    price = "" if event.price is None else f" @ {plain_decimal(event.price)}"
    annotations = {
        "summary": f"{event.venue} liquidated desk {event.desk} on {event.market}",
        "description": f"Account {event.account}: a liquidating {event.side.value}{size}{price}.",
    }
    return EventAlert(LIQUIDATION, "critical", labels, annotations)


def activation_failed(update: OrderUpdate) -> EventAlert:
    # One alert per order: a second rejection on the market must reach someone too.
    labels = {"desk": update.desk, "venue": update.venue, "market": update.market, "order_id": update.order_id}
    reason = update.reason or update.venue_status
    annotations = {
        "summary": f"{update.venue} rejected order {update.order_id}: {reason}",
        "description": f"Order {update.order_id} of desk {update.desk} on {update.market} failed to "
        f"activate ({update.venue_status}): {reason}.",
        "order_id": update.order_id,
        "reason": reason,
    }
    return EventAlert(ORDER_ACTIVATION_FAILED, "warning", labels, annotations)


def rfq_position_error(update: RfqPositionUpdate) -> EventAlert:
    labels = {"desk": update.desk, "venue": update.venue, "market": f"rfq:{update.rfq_id}"}
    annotations = {
        "summary": f"{update.venue} RFQ {update.rfq_id}: position error",
        "description": f"The venue reported an error on the position of RFQ {update.rfq_id}: "
        f"{update.detail or 'no detail given'}.",
    }
    return EventAlert(RFQ_POSITION_ERROR, "critical", labels, annotations)


def sequence_gap(gap: SequenceGap) -> EventAlert:
    missed = gap.received - gap.expected
    labels = {"venue": gap.venue, "stream": gap.stream}
    annotations = {
        "summary": f"{gap.venue} {gap.stream}: sequence gap, resubscribing",
        "description": f"Expected {gap.expected}, received {gap.received}; "
        f"{missed} update(s) missed. State is rebuilt from a fresh snapshot.",
    }
    return EventAlert(SEQUENCE_GAP, "warning", labels, annotations, float(missed))
