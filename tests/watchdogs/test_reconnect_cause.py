"""A watchdog's reconnect names its cause (a bounded set), and the runtime's Remedies hands it to the
venue session, whose FeedDown carries it into the reconnect metric's `cause` label."""

from __future__ import annotations

import pytest

from riskmon.clock import VirtualClock
from riskmon.engine.actions import ReconnectCause, ReconnectVenue
from riskmon.events import DisconnectCause
from riskmon.runtime.remedies import Remedies, disconnect_cause
from riskmon.venues.base import Inbound
from riskmon.venues.registry import build_codec, build_session
from tests.watchdogs.conftest import MANGO, PX, T0, heartbeat, intake, make_config, make_engine


async def nowhere(_: Inbound) -> None:
    raise AssertionError("no inbound item expected")


async def no_reconcile(venue: str, reason: str) -> None:
    raise AssertionError("no reconciliation expected")


class PlainSession:
    """A VenueSession that is not a StreamSession."""

    venue = "plain"

    def __init__(self) -> None:
        self.dropped: list[tuple[str, DisconnectCause]] = []

    async def run(self) -> None:
        return None

    def drop_connection(self, reason: str, cause: DisconnectCause = DisconnectCause.REQUESTED) -> None:
        self.dropped.append((reason, cause))


def test_each_watchdog_names_its_reconnect_cause() -> None:
    engine = make_engine(px={"feed_down_grace": "1h", "health_check_gap": "30s"})
    engine.ingest(PX, [heartbeat(PX)], T0)
    engine.advance(T0 + 30)
    assert [(a.venue, a.cause) for a in engine.take_actions() if isinstance(a, ReconnectVenue)] == [
        (PX, ReconnectCause.HEALTH_CHECK_GAP)
    ]
    engine = make_engine(px={"feed_down_grace": "1h"})
    engine.ingest(PX, [intake("o1", T0)], T0, is_frame=False)
    engine.advance(T0 + 10)
    assert [(a.venue, a.cause) for a in engine.take_actions() if isinstance(a, ReconnectVenue)] == [
        (PX, ReconnectCause.ACTIVATION_TIMEOUT)
    ]


def test_remedies_pass_the_reason_and_cause_to_every_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = make_config()
    clock = VirtualClock(T0)
    mango = build_session(config, MANGO, build_codec(config, MANGO), nowhere, clock)
    dropped: list[tuple[str, DisconnectCause]] = []
    monkeypatch.setattr(mango, "drop_connection", lambda reason, cause: dropped.append((reason, cause)))
    plain = PlainSession()
    remedies = Remedies({MANGO: mango, "plain": plain}, nowhere, clock, no_reconcile)
    remedies.carry_out(
        [
            ReconnectVenue(MANGO, "no health_check for 30s", ReconnectCause.HEALTH_CHECK_GAP),
            ReconnectVenue("plain", "order o1 not activated within 10s", ReconnectCause.ACTIVATION_TIMEOUT),
            ReconnectVenue("unknown-venue", "ignored", ReconnectCause.HEALTH_CHECK_GAP),
        ]
    )
    assert dropped == [("no health_check for 30s", DisconnectCause.HEALTH_CHECK_GAP)]
    assert plain.dropped == [("order o1 not activated within 10s", DisconnectCause.ACTIVATION_TIMEOUT)]


def test_the_reconnect_metric_names_every_watchdog_cause() -> None:
    for cause in ReconnectCause:
        assert disconnect_cause(cause).value == cause.value
