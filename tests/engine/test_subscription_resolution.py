"""A refused subscription's alert says why it resolved (`resolution`), as a limit or an RFQ alert
does: the venue acknowledged the subscription, or brought the whole session up past a refused
login or registration. The annotations it fired with stay as they were."""

from __future__ import annotations

from riskmon.engine.engine import Engine
from riskmon.engine.venue_alerts import GRANTED, SESSION_ACCEPTED
from riskmon.events import FeedUp, Subscribed, SubscriptionFailed
from tests.engine.builders import engine_for

PHX = "phoenix"
TRADER = "trader"


def make_engine() -> Engine:
    return engine_for(
        {
            "venues": {PHX: {"kind": "phoenix", "authority": TRADER}},
            "desks": {"alpha": {"accounts": {PHX: [TRADER]}}},
        }
    )


def test_a_refusal_resolved_by_the_granted_subscription_says_so() -> None:
    engine = make_engine()
    (fired,) = engine.ingest(PHX, [SubscriptionFailed(PHX, "traderState", "rate limited")], 1.0)
    assert "resolution" not in fired.annotations
    (resolved,) = engine.ingest(PHX, [Subscribed(PHX, "traderState")], 4.0)
    assert resolved.status == "resolved"
    assert resolved.annotations == {
        "summary": "phoenix refused traderState: rate limited",
        "description": "riskmon is blind on traderState until it succeeds; the session retries.",
        "resolution": "subscription granted: the venue acknowledged it",
    }
    assert resolved.annotations["resolution"] == GRANTED


def test_a_refused_login_resolved_by_the_session_coming_up_says_so() -> None:
    engine = make_engine()
    engine.ingest(PHX, [SubscriptionFailed(PHX, "auth", "bad key", misconfigured=True)], 1.0)
    (resolved,) = engine.ingest(PHX, [FeedUp(PHX, "wss://venue:443")], 2.0, is_frame=False)
    assert (resolved.status, resolved.labels["subscription"]) == ("resolved", "auth")
    assert resolved.annotations["resolution"] == SESSION_ACCEPTED
    assert resolved.annotations["summary"] == "phoenix refused auth: bad key"
