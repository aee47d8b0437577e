"""From alert transitions to messages: mute, route, group, render. Pure, on injected time.

The engine says what changed; the notifier decides who hears about it and when, with
Alertmanager's model:
- muting: an alert matched by an active silence, or by an inhibition rule whose source alert
  fires, is held back. When the mute lifts (a silence expires, the source resolves), a still
  firing alert goes out at once. An alert muted after it was notified drops out of its group
  silently; its resolution is not announced.
- routing and grouping (riskmon.alerts.routing, riskmon.alerts.grouping) for console, webhook and
  Slack receivers; the Alertmanager receiver gets every transition at once and the periodic
  re-send of firing alerts, since Alertmanager groups by itself.
- rendering: each message becomes an `Outgoing` (queue, group, idempotency key, bytes) for the
  durable outbox; console lines are returned as text, not queued.

The caller feeds `observe(transitions, now)`, wakes at `next_due()` and takes `due(now)`.

Across a restart the groups are what must survive (what each told its receiver, its timers, its
episode and sequence): `take_changes()` hands over those changed since the last call, `restore()`
puts them back with the alerts the restored tracker holds firing. Muting and the Alertmanager
feeds are derived again from those alerts (Alertmanager dedupes a re-sent firing alert itself).
With `stamp_alert_states` set, the first message of each `due` carries the alert and group states
its batch reflects, for the outbox to commit with it (riskmon.store.alert_states explains why).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace

import msgspec

from riskmon.alerts.grouping import GroupId, Notification, NotificationGroups, StoredGroup
from riskmon.alerts.inhibition import Inhibitor, InhibitRule
from riskmon.alerts.lifecycle import AlertTransition
from riskmon.alerts.routing import Route, RouteMatch
from riskmon.alerts.silences import Silences
from riskmon.config.alerting import (
    DEFAULT_INHIBIT_RULES,
    AlertmanagerReceiver,
    ConsoleReceiver,
    ReceiverConfig,
    SlackReceiver,
    WebhookReceiver,
    default_route,
)
from riskmon.config.schema import MonitorConfig
from riskmon.notify.alertmanager import AlertmanagerFeed, alertmanager_body
from riskmon.notify.console import format_transition
from riskmon.notify.outbox_states import StateRows
from riskmon.notify.slack import slack_message
from riskmon.notify.webhook import alertmanager_v4_payload


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message for the outbox. `queue` is the receiver name, or `name#i` for an Alertmanager replica."""

    queue: str
    receiver: str
    group_key: str
    idempotency_key: str
    payload: bytes
    alert_states: StateRows | None = None
    """The alert and group states its batch reflects, committed with it; on a batch's first message."""


# Alert fingerprints and groups a batch of messages reflects -> their states, stamped for the outbox.
AlertStateStamp = Callable[[Collection[str], Mapping[GroupId, StoredGroup | None]], StateRows]


@dataclass(slots=True)
class Due:
    outgoing: list[Outgoing] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    # What was decided, before rendering: one per grouped message (rule tests compare these).
    notifications: list[Notification] = field(default_factory=list)


def alertmanager_queue(receiver: str, replica: int) -> str:
    return f"{receiver}#{replica}"


def build_route(config: MonitorConfig) -> Route:
    return Route.from_dict(config.routes if config.routes is not None else default_route(dict(config.receivers)))


def build_inhibitor(config: MonitorConfig) -> Inhibitor:
    rules = DEFAULT_INHIBIT_RULES if config.inhibit_rules is None else config.inhibit_rules
    return Inhibitor([InhibitRule.parse(r.source_matchers, r.target_matchers, r.equal) for r in rules])


class Notifier:
    def __init__(self, config: MonitorConfig, silences: Silences) -> None:
        self.silences = silences
        self._groups = NotificationGroups()
        self._firing: dict[str, AlertTransition] = {}
        self._muted: dict[str, AlertTransition] = {}
        self._mute_check_at: float | None = None
        self.muted_total = 0
        self.stamp_alert_states: AlertStateStamp | None = None
        self._configure(config)
        self._feeds: dict[str, AlertmanagerFeed] = {
            name: AlertmanagerFeed(resend_interval=r.resend_interval)
            for name, r in self._receivers.items()
            if isinstance(r, AlertmanagerReceiver)
        }

    def _configure(self, config: MonitorConfig) -> None:
        self._route = build_route(config)
        self._inhibitor = build_inhibitor(config)
        self._receivers: dict[str, ReceiverConfig] = dict(config.receivers)
        self._external_url = config.delivery.external_url

    # Inputs ---------------------------------------------------------------------------------------

    def observe(self, transitions: Iterable[AlertTransition], now: float) -> None:
        changed = False
        for transition in transitions:
            changed = True
            fp = transition.fingerprint
            if transition.status == "firing":
                self._firing[fp] = transition
                self._inhibitor.fire(transition.labels)
            else:
                self._firing.pop(fp, None)
                self._inhibitor.resolve(transition.labels)
                if self._muted.pop(fp, None) is not None:
                    continue  # nobody was told it fired
            if transition.status == "firing" and self._is_muted(transition.labels, now):
                self._mute(transition)
                continue
            self._dispatch(transition, now)
        if changed:
            # A source alert that fired or resolved can inhibit or release others.
            self._recheck_mutes(now)

    def mutes_changed(self, now: float) -> None:
        """A silence was added or expired: re-judge every firing alert."""
        self._recheck_mutes(now)

    def reload(self, config: MonitorConfig, now: float) -> None:
        """New routes, receivers and inhibition; a group whose alerts still reach the same receiver under
        the same group key keeps its timers (route ids may shift: they carry sibling positions)."""
        self._configure(config)
        self._inhibitor.update(a.labels for a in self._firing.values())
        feeds: dict[str, AlertmanagerFeed] = {}
        for name, receiver in self._receivers.items():
            if isinstance(receiver, AlertmanagerReceiver):
                feed = self._feeds.get(name) or AlertmanagerFeed(resend_interval=receiver.resend_interval)
                feed.resend_interval = receiver.resend_interval
                feeds[name] = feed
        self._feeds = feeds
        for orphan in self._groups.retain(self._keep):
            self._dispatch(orphan, now)
        self._recheck_mutes(now)

    def _keep(self, match: RouteMatch, alerts: list[AlertTransition]) -> RouteMatch | None:
        """The current tree's match for a group kept from an older one, or None to re-route its alerts."""
        if match.receiver not in self._receivers or not alerts:
            return None
        for candidate in self._route.route(alerts[0].labels):
            if candidate.receiver == match.receiver and candidate.group_key == match.group_key:
                return candidate
        return None

    # Persistence ----------------------------------------------------------------------------------

    def restore(self, groups: Iterable[StoredGroup], firing: Iterable[AlertTransition]) -> None:
        """Before start: the stored groups, and the alerts the restored tracker holds firing.

        The firing alerts are held as muted until the first `mutes_changed` (the silences are not
        loaded yet); then each one no silence or inhibition covers is dispatched again: into the
        group that already holds it (no change, no message), into a new group when none does (it
        was muted before the restart and no longer is), and to the Alertmanager feeds.
        """
        self._groups.restore(groups)
        self._groups.retain(self._keep)  # the routes may have changed while riskmon was down
        for transition in firing:
            self._firing[transition.fingerprint] = transition
            self._muted[transition.fingerprint] = transition
        self._inhibitor.update(a.labels for a in self._firing.values())

    def changed(self) -> bool:
        return self._groups.changed()

    def take_changes(self) -> dict[GroupId, StoredGroup | None]:
        """Groups changed since the last call (None: gone), for the state file."""
        return self._groups.take_changes()

    # Outputs --------------------------------------------------------------------------------------

    def next_due(self) -> float | None:
        times = [t for t in (self._groups.next_due(), self._mute_check_at) if t is not None]
        times.extend(t for feed in self._feeds.values() if (t := feed.next_due()) is not None)
        return min(times, default=None)

    def due(self, now: float) -> Due:
        if self._mute_check_at is not None and self._mute_check_at <= now:
            self._recheck_mutes(now)
        out = Due()
        notifications = self._groups.due(now)
        for notification in notifications:
            self._render(notification, out)
        fingerprints = {a.fingerprint for n in notifications for a in (*n.firing, *n.resolved)}
        for name, feed in self._feeds.items():
            receiver = self._receivers[name]
            assert isinstance(receiver, AlertmanagerReceiver)
            while (batch := feed.due(now)) is not None:
                if not receiver.send_resolved:
                    batch = [a for a in batch if a.status == "firing"]
                if not batch:
                    continue
                fingerprints.update(a.fingerprint for a in batch)
                body = alertmanager_body(batch, now, receiver.resend_interval, self._external_url)
                key = hashlib.sha256(body).hexdigest()
                for replica in range(len(receiver.urls)):
                    out.outgoing.append(Outgoing(alertmanager_queue(name, replica), name, name, key, body))
        if self.stamp_alert_states is not None and out.outgoing:
            groups = {(n.route_id, n.group_key): None for n in notifications}
            states = self.stamp_alert_states(fingerprints, {key: self._groups.stored(key) for key in groups})
            out.outgoing[0] = replace(out.outgoing[0], alert_states=states)
        return out

    def firing(self) -> list[AlertTransition]:
        return list(self._firing.values())

    def muted(self) -> list[AlertTransition]:
        return list(self._muted.values())

    # Internals ------------------------------------------------------------------------------------

    def _is_muted(self, labels: dict[str, str], now: float) -> bool:
        if self.silences.silenced_by(labels, now):
            return True
        return self._inhibitor.is_inhibited(labels)

    def _mute(self, transition: AlertTransition) -> None:
        self.muted_total += 1
        self._muted[transition.fingerprint] = transition

    def _dispatch(self, transition: AlertTransition, now: float) -> None:
        for match in self._route.route(transition.labels):
            receiver = self._receivers.get(match.receiver)
            if receiver is None:
                continue
            if isinstance(receiver, AlertmanagerReceiver):
                self._feeds[match.receiver].observe(transition)
            else:
                self._groups.add(transition, match, now)

    def _recheck_mutes(self, now: float) -> None:
        self._mute_check_at = self.silences.next_change(now)
        for fp, transition in list(self._muted.items()):
            if not self._is_muted(transition.labels, now):
                del self._muted[fp]
                self._dispatch(transition, now)
        for fp, transition in list(self._firing.items()):
            if fp not in self._muted and self._is_muted(transition.labels, now):
                self._mute(transition)
                self._groups.withdraw(fp)
                for feed in self._feeds.values():
                    feed.withdraw(fp)

    def _render(self, notification: Notification, out: Due) -> None:
        receiver = self._receivers.get(notification.receiver)
        if receiver is None:
            return
        if not receiver.send_resolved:
            firing = {a.fingerprint for a in notification.firing}
            # As Alertmanager: with resolutions left out, a set that only shrank tells nothing new.
            if not firing or (firing <= notification.previously_firing and not notification.repeat_due):
                return
            notification = msgspec.structs.replace(notification, resolved=())
        out.notifications.append(notification)
        if isinstance(receiver, ConsoleReceiver):
            out.console.extend(format_transition(a) for a in (*notification.firing, *notification.resolved))
            return
        payload: dict[str, object]
        if isinstance(receiver, WebhookReceiver):
            alerts = [*notification.firing, *notification.resolved]
            limit = receiver.max_alerts or len(alerts)
            payload = alertmanager_v4_payload(
                notification.receiver,
                notification.group_key,
                None,
                notification.group_labels,
                alerts[:limit],
                self._external_url,
                truncated=len(alerts) - min(limit, len(alerts)),
            )
        elif isinstance(receiver, SlackReceiver):
            payload = slack_message(notification, channel=receiver.channel, external_url=self._external_url)
        else:  # pragma: no cover - every other kind is handled above
            return
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        out.outgoing.append(
            Outgoing(
                notification.receiver,
                notification.receiver,
                notification.group_key,
                notification.idempotency_key,
                body,
            )
        )
