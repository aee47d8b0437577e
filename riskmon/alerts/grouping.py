"""Notification grouping: Alertmanager's aggregation groups, as pure state on injected time.

Alerts that reach the same route with the same group_by values form one group, and a group is
sent as one notification holding all its alerts:

- a new group waits `group_wait`, so alerts that fire together go out together (an alert that has
  already been firing longer than `group_wait`, e.g. after a restart, goes out at once);
- after that the group is looked at on a `group_interval` tick grid: a change (a new firing alert,
  or the resolution of one the receiver was told about) goes out at the next tick;
- with no change, the firing alerts are sent again at the first tick `repeat_interval` after the last send;
- a resolved alert is sent once and then dropped; one the receiver never heard fire is dropped silently
  (Alertmanager does the same, so a flap inside `group_wait` makes no noise);
- a group with nothing left is removed.

The caller passes `now`, asks `next_due()` when to wake, and calls `due(now)` then.

For the state file, the groups note which of them changed since the last `take_changes()`, and
`restore()` puts stored groups back with their timers, episode and sequence, so a notification
re-derived after a restart carries the key of the one that may already have gone out.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from riskmon.alerts.fingerprints import fingerprint
from riskmon.alerts.lifecycle import AlertTransition
from riskmon.alerts.routing import RouteMatch

_EPS = 1e-9


class Notification(msgspec.Struct, frozen=True):
    ts: float
    receiver: str
    route_id: str
    group_key: str
    group_labels: dict[str, str]
    firing: tuple[AlertTransition, ...]
    resolved: tuple[AlertTransition, ...]
    group_started_at: float
    """When the group was created; with `sequence` it names the episode."""
    sequence: int
    """1 for the group's first notification, then 2, 3, ... (repeats included)."""
    idempotency_key: str
    previously_firing: frozenset[str] = frozenset()
    """Fingerprints the receiver was told were firing by the group's previous notification."""
    repeat_due: bool = False
    """The repeat interval has passed: worth sending even if nothing changed."""


def idempotency_key(
    route_id: str,
    group_key: str,
    statuses: Sequence[tuple[str, float, Literal["firing", "resolved"]]],
    group_started_at: float,
    sequence: int,
) -> str:
    """sha256 over the group, its alerts' (fingerprint, startsAt, status), and the episode.

    The same notification rebuilt from the same inputs gets the same key, so a receiver can drop a
    duplicate; a repeat, a later change or a new episode of the same group (or of an alert in it)
    gets a new one. `statuses` holds (fingerprint, startsAt, status) per alert.
    """
    material = "\x1e".join(
        [
            route_id,
            group_key,
            repr(float(group_started_at)),
            str(sequence),
            "\x1f".join(f"{fp}:{float(starts_at)!r}:{status}" for fp, starts_at, status in sorted(statuses)),
        ]
    )
    return hashlib.sha256(material.encode()).hexdigest()


@dataclass(slots=True)
class _Group:
    order: int
    match: RouteMatch
    started_at: float
    due_at: float
    alerts: dict[str, AlertTransition] = field(default_factory=dict)
    told_firing: set[str] = field(default_factory=set)
    """Fingerprints that were firing in the last notification sent."""
    anchor: float | None = None
    """Time of the first flush: the group_interval grid starts there."""
    due_tick: int = 0
    done_tick: int = -1
    """Index on the grid of due_at, and of the last tick looked at."""
    last_sent: float | None = None
    sequence: int = 0

    def changed(self) -> bool:
        return any(a.status == "resolved" or fp not in self.told_firing for fp, a in self.alerts.items())

    def tick_at_or_after(self, t: float, *, after: float) -> tuple[int, float]:
        """The first grid tick that is >= t, > `after`, and later than the last tick looked at."""
        assert self.anchor is not None
        interval = self.match.group_interval
        k = max(
            self.done_tick + 1,
            math.ceil((t - self.anchor) / interval - _EPS),
            math.floor((after - self.anchor) / interval + _EPS) + 1,
        )
        return k, self.anchor + k * interval


GroupId = tuple[str, str]  # (route_id, group_key)


def _refingerprinted(alert: AlertTransition) -> AlertTransition:
    fp = fingerprint(alert.labels)
    return alert if fp == alert.fingerprint else msgspec.structs.replace(alert, fingerprint=fp)


class StoredGroup(msgspec.Struct, array_like=True, frozen=True):
    """A group as the state file keeps it: everything its next notification and its key depend on."""

    order: int
    match: RouteMatch
    started_at: float
    due_at: float
    alerts: list[AlertTransition]
    told_firing: list[str]
    anchor: float | None
    due_tick: int
    done_tick: int
    last_sent: float | None
    sequence: int


class NotificationGroups:
    def __init__(self) -> None:
        self._groups: dict[GroupId, _Group] = {}
        self._created = 0
        # Groups changed since the last take (None: not journaling). Every mutation goes through
        # add/withdraw/retain/due, which mark what they touch.
        self._changed: set[GroupId] | None = None

    def __len__(self) -> int:
        return len(self._groups)

    def add(self, transition: AlertTransition, match: RouteMatch, now: float) -> None:
        """Take one alert transition for one route it reached (call once per RouteMatch)."""
        key = (match.route_id, match.group_key)
        group = self._groups.get(key)
        fp = transition.fingerprint
        self._touch(key)
        if group is None:
            if transition.status == "resolved":
                return  # nothing the receiver was told about
            late = transition.starts_at + match.group_wait < now
            self._created += 1
            group = _Group(self._created, match, now, now if late else now + match.group_wait)
            self._groups[key] = group
        if transition.status == "firing" or fp in group.told_firing:
            group.alerts[fp] = transition
        else:
            group.alerts.pop(fp, None)
        if not group.alerts:
            del self._groups[key]
            return
        if group.anchor is None:
            return  # the first flush is already set for the end of group_wait
        if group.changed():
            k, at = group.tick_at_or_after(now, after=now - _EPS)
            if at < group.due_at:
                group.due_tick, group.due_at = k, at
        else:  # e.g. a flap that ended where the receiver last saw it: back to the repeat tick
            assert group.last_sent is not None
            wake = group.last_sent + group.match.repeat_interval
            group.due_tick, group.due_at = group.tick_at_or_after(wake, after=now - _EPS)

    def withdraw(self, fp: str) -> None:
        """Forget an alert without telling anyone (it became silenced or inhibited), as Alertmanager
        leaves a muted alert out of later notifications rather than announcing it resolved."""
        for key, group in list(self._groups.items()):
            if group.alerts.pop(fp, None) is not None or fp in group.told_firing:
                self._touch(key)
                group.told_firing.discard(fp)
                if not group.alerts:
                    del self._groups[key]

    def retain(self, keep: Callable[[RouteMatch, list[AlertTransition]], RouteMatch | None]) -> list[AlertTransition]:
        """After a reload: keep each group that `keep` maps (given its route and its alerts) to a match in
        the new tree, with its timers; drop the rest and return their firing alerts to be routed afresh."""
        orphans: list[AlertTransition] = []
        kept: dict[tuple[str, str], _Group] = {}
        for group in self._groups.values():
            match = keep(group.match, list(group.alerts.values()))
            if match is None:
                orphans.extend(a for a in group.alerts.values() if a.status == "firing")
            else:
                group.match = match
                kept[(match.route_id, match.group_key)] = group
        if self._changed is not None:
            self._changed.update(self._groups)
            self._changed.update(kept)
        self._groups = kept
        return orphans

    def next_due(self) -> float | None:
        return min((g.due_at for g in self._groups.values()), default=None)

    def due(self, now: float) -> list[Notification]:
        """The notifications due by `now`, oldest first; advances each group to its next tick."""
        ready = sorted((g for g in self._groups.values() if g.due_at <= now), key=lambda g: (g.due_at, g.order))
        out: list[Notification] = []
        for group in ready:
            notification = self._flush(group, now)
            if notification is not None:
                out.append(notification)
        return out

    def _flush(self, group: _Group, now: float) -> Notification | None:
        self._touch((group.match.route_id, group.match.group_key))
        tick = group.due_at
        if group.anchor is None:
            group.anchor, group.due_tick = tick, 0
        group.done_tick = group.due_tick
        firing = tuple(a for a in group.alerts.values() if a.status == "firing")
        repeat = group.last_sent is not None and tick >= group.last_sent + group.match.repeat_interval - _EPS
        notification = None
        if group.changed() or (firing and repeat):
            notification = self._notification(group, firing, now, repeat)
            group.last_sent = now
            group.told_firing = {a.fingerprint for a in firing}
            group.alerts = {a.fingerprint: a for a in firing}
        if not group.alerts:
            del self._groups[(group.match.route_id, group.match.group_key)]
            return notification
        assert group.last_sent is not None
        wake = group.last_sent + group.match.repeat_interval
        group.due_tick, group.due_at = group.tick_at_or_after(wake, after=now)
        return notification

    # Persistence ----------------------------------------------------------------------------------

    def restore(self, stored: Iterable[StoredGroup]) -> None:
        """Put stored groups back as they were (timers included; one already due flushes at the next
        `due`), then journal changes from here on. Call `retain` after it if the routes may differ.

        Alert fingerprints are worked out afresh from the stored labels, as the tracker's restore does,
        so a group stored under an older fingerprint scheme still holds (and is told about) the same
        alerts; such a group is rewritten at the next take."""
        migrated: set[GroupId] = set()
        for s in stored:
            alerts = [_refingerprinted(a) for a in s.alerts]
            renamed = {old.fingerprint: new.fingerprint for old, new in zip(s.alerts, alerts, strict=True)}
            if any(old != new for old, new in renamed.items()):
                migrated.add((s.match.route_id, s.match.group_key))
            group = _Group(
                s.order,
                s.match,
                s.started_at,
                s.due_at,
                {a.fingerprint: a for a in alerts},
                {renamed.get(fp, fp) for fp in s.told_firing},
                s.anchor,
                s.due_tick,
                s.done_tick,
                s.last_sent,
                s.sequence,
            )
            self._groups[(s.match.route_id, s.match.group_key)] = group
            self._created = max(self._created, s.order)
        self._changed = migrated

    def changed(self) -> bool:
        return bool(self._changed)

    def take_changes(self) -> dict[GroupId, StoredGroup | None]:
        """Every group changed since the last take, as it stands now (None: it is gone)."""
        if not self._changed:
            return {}
        changes = {key: self.stored(key) for key in self._changed}
        self._changed = set()
        return changes

    def stored(self, key: GroupId) -> StoredGroup | None:
        """The group as the state file keeps it now (None: gone)."""
        group = self._groups.get(key)
        if group is None:
            return None
        return StoredGroup(
            group.order,
            group.match,
            group.started_at,
            group.due_at,
            list(group.alerts.values()),
            sorted(group.told_firing),
            group.anchor,
            group.due_tick,
            group.done_tick,
            group.last_sent,
            group.sequence,
        )

    def _touch(self, key: GroupId) -> None:
        if self._changed is not None:
            self._changed.add(key)

    @staticmethod
    def _notification(group: _Group, firing: tuple[AlertTransition, ...], now: float, repeat: bool) -> Notification:
        resolved = tuple(a for a in group.alerts.values() if a.status == "resolved")
        group.sequence += 1
        match = group.match
        statuses = [(a.fingerprint, a.starts_at, a.status) for a in (*firing, *resolved)]
        return Notification(
            ts=now,
            receiver=match.receiver,
            route_id=match.route_id,
            group_key=match.group_key,
            group_labels=dict(match.group_labels),
            firing=firing,
            resolved=resolved,
            group_started_at=group.started_at,
            sequence=group.sequence,
            idempotency_key=idempotency_key(
                match.route_id, match.group_key, statuses, group.started_at, group.sequence
            ),
            previously_firing=frozenset(group.told_firing),
            repeat_due=repeat,
        )
