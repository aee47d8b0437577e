"""Alerts about a venue's state rather than a desk's trades: refused subscriptions, and markets
that stopped trading while a desk holds a position in them. Both are conditions (firing while
true, resolved when not), unlike one-off events such as a liquidation."""

from __future__ import annotations

from riskmon.alerts.lifecycle import AlertTracker, AlertTransition
from riskmon.engine.exposure import ExposureBook, plain_decimal
from riskmon.events import MarketStatusChanged, SubscriptionFailed

SUBSCRIPTION_ERROR = "VenueSubscriptionError"
MARKET_CLOSED = "MarketClosedWithExposure"


def subscription_alert(
    tracker: AlertTracker, venue: str, subscription: str, failure: SubscriptionFailed | None, now: float
) -> list[AlertTransition]:
    """Fire while the venue refuses `subscription`; resolve when it is granted."""
    annotations = {
        "summary": f"{venue} granted {subscription}",
        "description": f"The venue accepted {subscription}; riskmon receives it again.",
    }
    if failure is not None:
        fix = "fix the configuration" if failure.misconfigured else "the session retries"
        annotations = {
            "summary": f"{venue} refused {subscription}: {failure.reason}",
            "description": f"riskmon is blind on {subscription} until it succeeds; {fix}.",
        }
    transition = tracker.observe(
        SUBSCRIPTION_ERROR,
        "critical",
        {"venue": venue, "subscription": subscription},
        breached=failure is not None,
        cleared=failure is None,
        value=1.0 if failure is not None else 0.0,
        annotations=annotations,
        pending_for=0.0,
        now=now,
    )
    return [] if transition is None else [transition]


def market_closed_alerts(
    tracker: AlertTracker, book: ExposureBook, status: MarketStatusChanged, now: float
) -> list[AlertTransition]:
    """A market that stopped trading while a desk holds a position there cannot be exited."""
    out: list[AlertTransition] = []
    for row in book.rows():
        key = row.key
        if key.venue != status.venue or key.market != status.market:
            continue
        labels = {"desk": key.desk, "venue": key.venue, "market": key.market, "account": key.account}
        final = "" if status.final_price is None else f" (final price {plain_decimal(status.final_price)})"
        annotations = {
            "summary": f"{key.venue} {key.market} is {status.status} with desk {key.desk} holding "
            f"{plain_decimal(row.position)}",
            "description": f"The venue marked {key.market} {status.status}{final}; the position cannot be "
            "traded out of until it reopens.",
        }
        breached = not status.tradable and row.position != 0
        transition = tracker.observe(
            MARKET_CLOSED,
            "critical",
            labels,
            breached=breached,
            cleared=not breached,
            value=float(row.position),
            annotations=annotations,
            pending_for=0.0,
            now=now,
        )
        if transition is not None:
            out.append(transition)
    return out
