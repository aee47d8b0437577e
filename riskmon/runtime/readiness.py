"""Readiness: is every configured venue connected, with its state re-established since it came up,
and can an alert go out?

`/readyz` answers 200 only when every configured venue is ready and alert delivery has started;
`riskmon_venue_ready{venue}` exports each venue's verdict and `riskmon_ready` the whole one. It is a
pure function of engine state, the venues whose adapter this build lacks and the delivery process's
state, so it is judged from exactly what the engine believes, between two engine steps.

Alert delivery runs in a process of its own that takes longer to come up than the state file takes
to load; until it has opened the outbox a breach would be noticed but not told, so riskmon is not
ready. Delivery that is off (the outbox cannot be opened) counts as started: waiting would not help,
and the body says so instead.

The rule, per venue, from what the sessions and the engine actually do:

- FeedUp is already the "reconciled" point of every session: each one reports it only once the
  venue's state is being delivered again.
  * mango_v3_fills: on socket open. The feed has no subscribe: the server pushes a checkpoint per
    market as the first frames of every connection, and the engine merges it before any later frame.
  * mobula_perp_events: on the venue's `subscribed` ack (nothing flows before it).
  * phoenix: on the confirmation (or snapshot) of the desk's traderState subscription.
  * prophetx: once every registered Pusher channel is subscribed.
  * totalis_rfq: only after `GET /mm/quotes` answered on that connection (the venue never replays).
- The scheduled REST reconciliation (Reconciler: ProphetX, Totalis) is an audit, not a catch-up:
  it re-reads only what the engine already holds, and its differences raise StreamDrift or
  ReconciliationFailed. Readiness does not wait for it (the first run is one reconcile_interval,
  15 minutes, after start) and does not drop on a failed run: the alert says that.
- So a venue is ready while its feed is `up` (FeedWatchdog); `resyncing` (a sequence gap, until
  the fresh snapshot arrives) and `down` are not ready; nor is a venue whose adapter is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from riskmon.engine.engine import Engine
from riskmon.notify.webhook import rfc3339
from riskmon.runtime.delivery_process import DeliveryState
from riskmon.watchdogs.feeds import FeedState

UNAVAILABLE = "unavailable"
# A feed that has reported nothing yet (no FeedUp, no FeedDown).
_NEVER_REPORTED = "not connected yet"
# What each kind's FeedUp waits for, said while a venue has not come up once.
_UP_AFTER = {
    "mango_v3_fills": "not connected yet",
    "mobula_perp_events": "not connected yet (up once the venue acknowledges the subscription)",
    "phoenix": "not connected yet (up once the traderState subscription is confirmed)",
    "prophetx": "not connected yet (up once every registered channel is subscribed)",
    "totalis_rfq": "awaiting first reconciliation (up once connected, authenticated and GET /mm/quotes answered)",
}


@dataclass(frozen=True, slots=True)
class VenueReadiness:
    venue: str
    kind: str
    ready: bool
    state: str  # a FeedState value, or "unavailable"
    reason: str | None  # why not ready; None when ready
    down_since: float | None  # unix seconds, while the feed is down after a start or a loss


@dataclass(frozen=True, slots=True)
class DeliveryReadiness:
    state: DeliveryState
    reason: str | None  # why not ready, or what an "off" delivery means; None when up

    @property
    def ready(self) -> bool:
        return self.state in (DeliveryState.UP, DeliveryState.OFF)


_DELIVERY_REASONS = {
    DeliveryState.STARTING: "alert delivery is starting: the delivery process has not opened the outbox yet",
    DeliveryState.RESTARTING: "alert delivery is restarting: the delivery process exited and another is starting",
    DeliveryState.OFF: "alert delivery is off: the outbox could not be opened, so no notification is sent"
    " (see the log)",
}


def delivery_readiness(state: DeliveryState) -> DeliveryReadiness:
    return DeliveryReadiness(state, _DELIVERY_REASONS.get(state))


@dataclass(frozen=True, slots=True)
class Readiness:
    venues: tuple[VenueReadiness, ...]  # sorted by venue
    delivery: DeliveryReadiness = DeliveryReadiness(DeliveryState.UP, None)

    @property
    def ready(self) -> bool:
        return self.delivery.ready and all(v.ready for v in self.venues)


def venue_readiness(engine: Engine, venue: str, unavailable: Collection[str] = ()) -> VenueReadiness:
    venue_config = engine.config.venues.get(venue)
    tag = venue_config.__struct_config__.tag if venue_config is not None else None
    kind = tag if isinstance(tag, str) else "unknown"
    if venue in unavailable:
        reason = f"adapter unavailable: this build has no adapter for kind {kind}"
        return VenueReadiness(venue, kind, False, UNAVAILABLE, reason, None)
    feeds = engine.watchdogs.feeds
    state = feeds.state(venue)
    if state is FeedState.UP:
        return VenueReadiness(venue, kind, True, state.value, None, None)
    if state is FeedState.RESYNCING:
        reason = "resyncing: a sequence gap was seen; waiting for the fresh snapshot"
        return VenueReadiness(venue, kind, False, state.value, reason, None)
    detail = feeds.detail(venue)
    down_since, why = detail.down_since, detail.reason
    if why is None:
        reason = _UP_AFTER.get(kind, _NEVER_REPORTED)
    elif down_since is not None:
        reason = f"feed down since {rfc3339(down_since)}: {why}"
    else:
        reason = f"feed down: {why}"
    return VenueReadiness(venue, kind, False, state.value, reason, down_since)


def readiness(
    engine: Engine, unavailable: Collection[str] = (), delivery: DeliveryState = DeliveryState.UP
) -> Readiness:
    """Every configured venue's verdict (and any unavailable one the config no longer names), and
    alert delivery's."""
    venues = sorted(set(engine.config.venues) | set(unavailable))
    return Readiness(
        tuple(venue_readiness(engine, venue, unavailable) for venue in venues), delivery_readiness(delivery)
    )


def readiness_json(verdict: Readiness) -> dict[str, object]:
    """The /readyz body: `{"status": "ready" | "not ready", "venues": {name: {...}},
    "delivery": {"ready": ..., "state": ..., "reason"?: ...}}`."""
    venues: dict[str, object] = {}
    for v in verdict.venues:
        entry: dict[str, object] = {"ready": v.ready, "kind": v.kind, "state": v.state}
        if v.reason is not None:
            entry["reason"] = v.reason
        if v.down_since is not None:
            entry["down_since"] = v.down_since
            entry["down_since_rfc3339"] = rfc3339(v.down_since)
        venues[v.venue] = entry
    delivery: dict[str, object] = {"ready": verdict.delivery.ready, "state": verdict.delivery.state.value}
    if verdict.delivery.reason is not None:
        delivery["reason"] = verdict.delivery.reason
    return {"status": "ready" if verdict.ready else "not ready", "venues": venues, "delivery": delivery}


def delivery_assumed_up() -> DeliveryState:
    """For a verdict on venues alone (an engine without a delivery process: tools, tests)."""
    return DeliveryState.UP


class ReadinessCollector(Collector):
    """riskmon_venue_ready{venue}: 1 when connected and reconciled; riskmon_ready: what /readyz reports."""

    def __init__(
        self,
        engine: Engine,
        unavailable: Collection[str],
        delivery_state: Callable[[], DeliveryState] = delivery_assumed_up,
    ) -> None:
        self._engine = engine
        self._unavailable = unavailable  # the Monitor's live set
        self._delivery_state = delivery_state

    def collect(self) -> Iterator[Metric]:
        verdict = readiness(self._engine, self._unavailable, self._delivery_state())
        family = GaugeMetricFamily(
            "riskmon_venue_ready", "1 when the venue is connected and its state re-established", labels=["venue"]
        )
        for v in verdict.venues:
            family.add_metric([v.venue], 1.0 if v.ready else 0.0)
        yield family
        yield GaugeMetricFamily(
            "riskmon_ready",
            "1 when every venue is ready and alert delivery has started (what /readyz reports)",
            value=1.0 if verdict.ready else 0.0,
        )
