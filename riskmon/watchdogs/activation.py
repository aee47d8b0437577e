"""The activation watchdog (ProphetX "Safety Protection", protocols.md §3.5).

An order the trading system declared (intake) or the stream showed in a pre-activation state
must be activated or refused within the venue's `activation_timeout`. When it is not, the
watchdog asks for a reconnect and a REST `get_order`, and the venue's answer decides the outcome:

- activated late: the activation message was lost; warning, and the order is tracked as open;
- invalid: the activation failed, with the venue's reason; warning;
- unknown (the venue does not know the order, or still calls it pending) or lookup failed
  (REST erroring or silent): critical, and it stays firing until the venue says what happened.
"""

from __future__ import annotations

import datetime
import logging
import sys
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from riskmon.alerts.lifecycle import ActiveAlert, AlertTransition
from riskmon.engine.actions import LookupOrder, ReconnectCause
from riskmon.engine.deadlines import Deadline
from riskmon.events import OrderIntake, OrderLookupFailed, OrderStatus, OrderUpdate
from riskmon.watchdogs.context import WatchdogContext, at
from riskmon.watchdogs.failure_reasons import FailureReason, rejection_reason
from riskmon.watchdogs.journal import PersistedDeadline
from riskmon.watchdogs.latency import LatencyHistogram

log = logging.getLogger(__name__)

KIND = "activation"
LOOKUP = "activation-lookup"
ALERT = "OrderActivationTimeout"
# Orders whose critical outcome waits for the venue to say what happened; each is an incident.
_UNRESOLVED_KEPT = 10_000


class Outcome(StrEnum):
    ACTIVATED_LATE = "activated_late"
    INVALID = "invalid"
    UNKNOWN = "unknown"
    LOOKUP_FAILED = "lookup_failed"


_SEVERITY = {
    Outcome.ACTIVATED_LATE: "warning",
    Outcome.INVALID: "warning",
    Outcome.UNKNOWN: "critical",
    Outcome.LOOKUP_FAILED: "critical",
}


@dataclass(frozen=True, slots=True)
class ActivationSettings:
    timeout: float
    # How long the REST answer may take after the deadline before the lookup counts as failed.
    lookup_timeout: float


class WatchedOrder(Deadline, gc=False, kw_only=True):
    """One order awaiting activation, and itself the heap entry of its activation deadline.

    Untracked by the garbage collector (it holds no references that could form a cycle): with a
    million pending, a full collection would otherwise stall the loop for hundreds of
    milliseconds. Its strings are shared with the order book (ids) or interned (markets), so a
    pending order costs this record, one dict slot and one heap slot.
    """

    venue: str
    order_id: str
    desk: str
    placed_at: float
    settings: ActivationSettings  # the venue's, shared: the due time is derived, not stored
    market: str | None = None
    checking: bool = False  # the deadline passed: waiting for the venue's answer
    missed_while_down: bool = False
    outcome: Outcome | None = None  # the critical outcome raised while the order's fate is unknown

    @property
    def due(self) -> float:
        return self.placed_at + self.settings.timeout

    def deadline_key(self) -> tuple[str, str, str]:
        return (KIND, self.venue, self.order_id)

    def persisted(self) -> PersistedDeadline:
        data = {"desk": self.desk, "placed_at": repr(self.placed_at)}
        if self.market is not None:
            data["market"] = self.market
        return PersistedDeadline(KIND, self.venue, self.order_id, self.due, data)


_CRITICAL = frozenset(outcome.value for outcome, severity in _SEVERITY.items() if severity == "critical")


def _unix(annotation: str) -> float:
    """The unix time of an `at()` annotation ("2026-11-21 19:10:00.123Z")."""
    moment = datetime.datetime.strptime(annotation, "%Y-%m-%d %H:%M:%S.%fZ").replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def _shared(text: str | None) -> str | None:
    """Market names repeat across thousands of orders: one interned copy serves them all."""
    return None if text is None else sys.intern(text)


class ActivationWatchdog:
    def __init__(
        self,
        ctx: WatchdogContext,
        settings: Mapping[str, ActivationSettings],
        default_desk: Callable[[str], str],
    ) -> None:
        self._ctx = ctx
        self._settings = dict(settings)
        self._default_desk = default_desk
        # Per venue, by order id: no key tuple per order.
        self._orders: dict[str, dict[str, WatchedOrder]] = {venue: {} for venue in settings}
        self._unresolved: OrderedDict[tuple[str, str], WatchedOrder] = OrderedDict()
        self.latency: dict[str, LatencyHistogram] = {venue: LatencyHistogram() for venue in settings}
        self.outcomes: Counter[tuple[str, str]] = Counter()
        # (venue, FailureReason) -> refusals, rejections and failed lookups.
        self.failures: Counter[tuple[str, FailureReason]] = Counter()

    def adopt(self, alerts: Iterable[ActiveAlert]) -> None:
        """After a restore: a critical OrderActivationTimeout restored firing waits again for the venue
        to say what became of its order, as it did before the restart, so that word resolves it
        (and raises the late warning) instead of leaving it firing for ever."""
        for alert in alerts:
            if alert.alertname != ALERT or alert.state != "firing" or alert.severity != "critical":
                continue
            labels = alert.labels
            venue, order_id, outcome = labels.get("venue", ""), labels.get("order_id", ""), labels.get("outcome")
            settings = self._settings.get(venue)
            if settings is None or not order_id or outcome not in _CRITICAL or (venue, order_id) in self._unresolved:
                continue
            try:
                placed_at = _unix(alert.annotations["placed_at"])
            except (KeyError, ValueError):
                # Kept by a version that did not note it: the alert fired at the deadline or just after.
                placed_at = (alert.fired_at or alert.active_since) - settings.timeout
            self._unresolved[(venue, order_id)] = WatchedOrder(
                venue=venue,
                order_id=order_id,
                desk=labels.get("desk", ""),
                placed_at=placed_at,
                settings=settings,
                outcome=Outcome(outcome),
            )

    def tracks(self, venue: str) -> bool:
        return venue in self._settings

    def pending(self, venue: str) -> int:
        """Orders of the venue awaiting activation."""
        watched = self._orders.get(venue)
        return 0 if watched is None else len(watched)

    def __len__(self) -> int:
        return sum(len(watched) for watched in self._orders.values())

    def _watched(self, venue: str, order_id: str) -> WatchedOrder | None:
        watched = self._orders.get(venue)
        return None if watched is None else watched.get(order_id)

    # Arming ------------------------------------------------------------------------------------

    def on_intake(self, intake: OrderIntake, known: OrderUpdate | None, now: float) -> None:
        if not self.tracks(intake.venue):
            log.warning("%s: order intake for a venue without activation tracking dropped", intake.venue)
            return
        if known is not None and known.status is not OrderStatus.PENDING:
            return  # the stream told us first: it is already activated or refused
        if self._watched(intake.venue, intake.order_id) is not None or (intake.venue, intake.order_id) in (
            self._unresolved
        ):
            return  # declared twice, seen pending on the stream first, or already judged: one watchdog
        placed_at = intake.placed_at if intake.placed_at is not None else now
        desk = intake.desk or (known.desk if known is not None else self._default_desk(intake.venue))
        # The order book's copy of the id when it has one: one string for both.
        order_id = known.order_id if known is not None else intake.order_id
        order = WatchedOrder(
            venue=intake.venue, order_id=order_id, desk=desk, placed_at=placed_at, settings=self._settings[intake.venue]
        )
        if known is not None:
            order.market = _shared(known.market)
        self._arm(order, now)

    def _arm(self, order: WatchedOrder, now: float, *, journal: bool = True) -> None:
        if self._orders[order.venue].setdefault(order.order_id, order) is not order:
            return  # already watched (a restore of an order the stream re-announced)
        # A placement declared late (or restored after its deadline) is checked at once.
        due = order.placed_at + order.settings.timeout
        self._ctx.deadlines.arm(order, due if due > now else now)
        if journal:
            self._ctx.journal.note(order.deadline_key(), order)

    def restore(self, record: PersistedDeadline, now: float) -> None:
        self.restore_all((record,), now)

    def restore_all(self, records: Iterable[PersistedDeadline], now: float) -> None:
        """Re-arm the state file's activation deadlines (other records are skipped) in one heap
        build rather than a push each: a restart holds one per open order, so this loop is kept
        free of per-record calls."""
        armed: list[WatchedOrder] = []
        journal = self._ctx.journal
        for record in records:
            settings = self._settings.get(record.venue)
            if record.kind != KIND or settings is None:
                continue
            data = record.data
            try:
                placed_at = float(data["placed_at"])
            except (KeyError, ValueError):
                placed_at = record.due - settings.timeout  # the deadline still stands
            due = placed_at + settings.timeout
            market = data.get("market")
            order = WatchedOrder(
                fires_at=due if due > now else now,  # one that passed while riskmon was down: at once
                venue=record.venue,
                order_id=record.subject,
                desk=sys.intern(data.get("desk", "unassigned")),
                placed_at=placed_at,
                settings=settings,
                market=None if market is None else sys.intern(market),  # as _shared, without the call
                missed_while_down=record.due <= now,
            )
            if self._orders[order.venue].setdefault(order.order_id, order) is not order:
                continue  # already watched (a restore of an order the stream re-announced)
            armed.append(order)
            # The state file holds this record already: writing it back unchanged would rewrite
            # every open order's row on the first flush after a restart. A new timeout moves it.
            if due != record.due:
                journal.note(order.deadline_key(), order)
        self._ctx.deadlines.arm_many(armed)

    # The venue's word ---------------------------------------------------------------------------

    def on_order(
        self, update: OrderUpdate, held_before: OrderUpdate | None, now: float, *, from_lookup: bool
    ) -> tuple[list[AlertTransition], bool]:
        """(transitions, whether this watchdog reported the order's fate).

        When it did, the engine does not raise its own activation-failed alert for the update.
        """
        if update.status is OrderStatus.REJECTED and (held_before is None or held_before.status is not update.status):
            self.failures[(update.venue, rejection_reason(update.reason or update.venue_status))] += 1
        order = self._watched(update.venue, update.order_id)
        if order is None:
            key = (update.venue, update.order_id)
            late = self._unresolved.get(key)
            if late is not None:
                if update.status is OrderStatus.PENDING:
                    return [], False  # still unknown: the critical verdict stands
                del self._unresolved[key]
                late.market = _shared(update.market)  # the desk stays: the labels must match the critical
                self.latency[late.venue].observe(now - late.placed_at)
                return self._decided(late, update, now, from_lookup), True
            if update.status is OrderStatus.PENDING and held_before is None and self.tracks(update.venue):
                order = WatchedOrder(
                    venue=update.venue,
                    order_id=update.order_id,
                    desk=update.desk,
                    placed_at=now,
                    settings=self._settings[update.venue],
                    market=_shared(update.market),
                )
                self._arm(order, now)
            return [], False
        order.desk, order.market = update.desk, _shared(update.market)
        if update.status is OrderStatus.PENDING:
            if held_before is None and order.order_id is not update.order_id:
                # The order book keys the order by this update's copy of the id: share it.
                watched = self._orders[order.venue]
                del watched[order.order_id]
                order.order_id = update.order_id
                watched[order.order_id] = order
            if from_lookup and order.checking:
                return self._critical(order, Outcome.UNKNOWN, "the venue still reports it pending", now), True
            return [], False
        self._disarm(order)
        self.latency[order.venue].observe(now - order.placed_at)
        if not order.checking:
            return [], False  # activated (or refused) in time: the normal path
        return self._decided(order, update, now, from_lookup), True

    def on_lookup_failed(self, failure: OrderLookupFailed, now: float) -> list[AlertTransition]:
        order = self._watched(failure.venue, failure.order_id)
        if order is None or not order.checking:
            return []
        self._ctx.deadlines.cancel((LOOKUP, order.venue, order.order_id))
        if failure.status == 404:
            return self._critical(order, Outcome.UNKNOWN, "the venue does not know the order", now)
        return self._critical(order, Outcome.LOOKUP_FAILED, f"the REST lookup failed: {failure.reason}", now)

    def on_deadline(self, key: tuple[str, str, str], due: float) -> list[AlertTransition]:
        kind, venue, order_id = key
        order = self._watched(venue, order_id)
        if order is None:
            return []
        if kind == LOOKUP:
            if not order.checking:
                return []
            waited = self._settings[venue].lookup_timeout
            return self._critical(order, Outcome.LOOKUP_FAILED, f"no REST answer within {waited:g}s", due)
        order.checking = True
        timeout = self._settings[venue].timeout
        self._ctx.reconnect(
            venue, f"order {order_id} not activated within {timeout:g}s", ReconnectCause.ACTIVATION_TIMEOUT, due
        )
        self._ctx.actions.append(LookupOrder(venue, order_id))
        self._ctx.deadlines.schedule((LOOKUP, venue, order_id), due + self._settings[venue].lookup_timeout)
        return []

    # Outcomes ------------------------------------------------------------------------------------

    def _disarm(self, order: WatchedOrder) -> None:
        del self._orders[order.venue][order.order_id]
        self._ctx.deadlines.disarm(order)
        self._ctx.deadlines.cancel((LOOKUP, order.venue, order.order_id))
        self._ctx.journal.drop(KIND, order.venue, order.order_id)

    def _critical(self, order: WatchedOrder, outcome: Outcome, why: str, now: float) -> list[AlertTransition]:
        self._disarm(order)
        order.outcome = outcome
        self.outcomes[(order.venue, outcome.value)] += 1
        failure = FailureReason.UNKNOWN_ORDER if outcome is Outcome.UNKNOWN else FailureReason.LOOKUP_FAILED
        self.failures[(order.venue, failure)] += 1
        key = (order.venue, order.order_id)
        self._unresolved[key] = order
        if len(self._unresolved) > _UNRESOLVED_KEPT:
            _, dropped = self._unresolved.popitem(last=False)
            log.warning("%s: forgetting unresolved order %s (too many unresolved)", dropped.venue, dropped.order_id)
        annotations = self._annotations(order, outcome, f"{why}; its state at the venue is unknown", now)
        return self._ctx.raise_alert(ALERT, _SEVERITY[outcome], self._labels(order, outcome), annotations, now)

    def _decided(
        self, order: WatchedOrder, update: OrderUpdate, now: float, from_lookup: bool
    ) -> list[AlertTransition]:
        out: list[AlertTransition] = []
        if order.outcome is not None:
            # A critical outcome raised earlier is answered now.
            labels = self._labels(order, order.outcome)
            resolution = f"the venue now reports {update.venue_status}"
            out.extend(self._ctx.clear_alert(ALERT, _SEVERITY[order.outcome], labels, resolution, now))
        if update.status is OrderStatus.REJECTED:
            outcome = Outcome.INVALID
            why = f"activation failed: {update.reason or update.venue_status}"
        else:
            outcome = Outcome.ACTIVATED_LATE
            how = "the REST lookup" if from_lookup else "a late stream update"
            why = f"the activation message was lost; {how} reports it {update.venue_status}"
        self.outcomes[(order.venue, outcome.value)] += 1
        order.outcome = outcome
        annotations = self._annotations(order, outcome, why, now)
        if update.reason:
            annotations["reason"] = update.reason
        out.extend(self._ctx.event_alert(ALERT, _SEVERITY[outcome], self._labels(order, outcome), annotations, now))
        return out

    @staticmethod
    def _labels(order: WatchedOrder, outcome: Outcome) -> dict[str, str]:
        return {"desk": order.desk, "venue": order.venue, "order_id": order.order_id, "outcome": outcome.value}

    def _annotations(self, order: WatchedOrder, outcome: Outcome, why: str, now: float) -> dict[str, str]:
        timeout = self._settings[order.venue].timeout
        market = f" on {order.market}" if order.market else ""
        description = (
            f"Order {order.order_id} of desk {order.desk}{market}, placed at {at(order.placed_at)}, "
            f"was not activated within {timeout:g}s: {why}."
        )
        if order.missed_while_down:
            description += f" The deadline ({at(order.due)}) passed while riskmon was down."
        annotations = {
            "summary": f"{order.venue} order {order.order_id}: no activation within {timeout:g}s ({outcome.value})",
            "description": description,
            "order_id": order.order_id,
            "outcome": outcome.value,
            # Also what a restart reads back to keep waiting for the venue's word (adopt).
            "placed_at": at(order.placed_at),
        }
        if order.missed_while_down:
            annotations["missed_while_down"] = "true"
        return annotations
