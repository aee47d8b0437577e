"""Alerts about a venue's state rather than a desk's trades: refused subscriptions, and markets
that stopped trading while a desk holds a position in them. Both are conditions (firing while
true, resolved when not), unlike one-off events such as a liquidation."""

from __future__ import annotations

from riskmon.alerts.lifecycle import AlertTracker, AlertTransition
from riskmon.engine.exposure import ExposureBook, plain_decimal
from riskmon.engine.markets import VenueMarkets
from riskmon.events import SESSION_SUBSCRIPTIONS, MarketStatusChanged, SubscriptionFailed

SUBSCRIPTION_ERROR = "VenueSubscriptionError"
MARKET_CLOSED = "MarketClosedWithExposure"


# Why a refusal alert resolved (its `resolution`): the subscription itself was acknowledged, or
# the venue brought the whole session up, which it does only past login and registration.
GRANTED = "subscription granted: the venue acknowledged it"
SESSION_ACCEPTED = "subscription granted: the venue accepted the session and the feed is up"


def subscription_alert(
    tracker: AlertTracker,
    venue: str,
    subscription: str,
    failure: SubscriptionFailed | None,
    now: float,
    resolution: str = GRANTED,
) -> list[AlertTransition]:
    """Fire while the venue refuses `subscription`; resolve when it is granted, saying how."""
    annotations: dict[str, str] = {}  # a resolved alert keeps those it fired with
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
        resolution=None if failure is not None else resolution,
    )
    return [] if transition is None else [transition]


def session_refusals_disproved(tracker: AlertTracker, venue: str, now: float) -> list[AlertTransition]:
    """The venue accepted the whole session: its login/registration refusals are cured."""
    out: list[AlertTransition] = []
    for alert in tracker.active():
        labels = alert.labels
        if (
            alert.alertname == SUBSCRIPTION_ERROR
            and labels.get("venue") == venue
            and labels.get("subscription") in SESSION_SUBSCRIPTIONS
        ):
            out.extend(subscription_alert(tracker, venue, labels["subscription"], None, now, SESSION_ACCEPTED))
    return out


def market_closed_alerts(
    tracker: AlertTracker, book: ExposureBook, markets: VenueMarkets, status: MarketStatusChanged, now: float
) -> list[AlertTransition]:
    """A market that stopped trading while a desk holds a position there cannot be exited.

    `status` is the change being applied: one market, or the whole venue (`*`). A position is
    stuck while either its market or its venue does not trade.
    """
    out: list[AlertTransition] = []
    for row in book.rows():
        key = row.key
        if key.venue != status.venue or status.market not in (key.market, "*"):
            continue
        tradable = markets.tradable(key.venue, key.market) and markets.tradable(key.venue, "*")
        labels = {"desk": key.desk, "venue": key.venue, "market": key.market, "account": key.account}
        final = "" if status.final_price is None else f" (final price {plain_decimal(status.final_price)})"
        what = key.market if status.market != "*" else f"the whole venue ({key.market} included)"
        annotations = {
            "summary": f"{key.venue} {key.market if status.market != '*' else '(all markets)'} is {status.status} "
            f"with desk {key.desk} holding {plain_decimal(row.position)}",
            "description": f"The venue marked {what} {status.status}{final}; the position cannot be "
            "traded out of until it reopens.",
        }
        breached = not tradable and row.position != 0
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
