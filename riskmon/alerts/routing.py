"""The routing tree, with Alertmanager's semantics.

An alert enters at the root and walks down depth-first: the first child whose matchers match
takes it, unless that child says `continue`, in which case later siblings are tried too. A route
none of whose children match is itself the match. Children inherit every setting they leave unset
(receiver, group_by, group_wait, group_interval, repeat_interval) from their parent.

Each match carries a group key, `{}/{severity="critical"}:{desk="a"}`: the route's key (the
matcher lists from the root down) and the values of its group_by labels, as Alertmanager builds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from riskmon.alerts.matchers import LABEL_NAME, Matcher, format_matchers, matches, parse_matchers, quote
from riskmon.config.types import Duration

ALL: Final = "..."
"""`group_by: ["..."]`: group by every label, so each alert is its own group."""

GroupBy = tuple[str, ...] | Literal["..."]

DEFAULT_GROUP_WAIT: Final = 30.0
DEFAULT_GROUP_INTERVAL: Final = 300.0
DEFAULT_REPEAT_INTERVAL: Final = 4 * 3600.0

_KEYS = frozenset(
    {"receiver", "matchers", "group_by", "group_wait", "group_interval", "repeat_interval", "continue", "routes"}
)


@dataclass(frozen=True, slots=True)
class RouteMatch:
    receiver: str
    route_id: str
    """Unique per route node (its key plus its position among siblings); groups are kept per route."""
    group_key: str
    group_labels: dict[str, str]
    group_wait: float
    group_interval: float
    repeat_interval: float


@dataclass(frozen=True, slots=True)
class Route:
    """One node of the tree, with its effective (already inherited) settings."""

    receiver: str
    matchers: tuple[Matcher, ...] = ()
    group_by: GroupBy = ()
    group_wait: float = DEFAULT_GROUP_WAIT
    group_interval: float = DEFAULT_GROUP_INTERVAL
    repeat_interval: float = DEFAULT_REPEAT_INTERVAL
    continue_: bool = False
    routes: tuple[Route, ...] = field(default=())

    @classmethod
    def from_dict(cls, d: object, parent: Route | None = None, *, path: str = "route") -> Route:
        """Build a route (and its children) from plain config data; errors name the path of the bad key."""
        if not isinstance(d, Mapping):
            raise ValueError(f"{path}: expected a mapping, got {type(d).__name__}")
        unknown = sorted(str(k) for k in d if k not in _KEYS)
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_KEYS))}")
        receiver = d.get("receiver", parent.receiver if parent else None)
        if receiver is None:
            raise ValueError(f"{path}.receiver: the root route must name a receiver")
        if not isinstance(receiver, str) or not receiver:
            raise ValueError(f"{path}.receiver: expected a non-empty string")
        raw_matchers = d.get("matchers", [])
        if not isinstance(raw_matchers, list):
            raise ValueError(f"{path}.matchers: expected a list of strings like 'severity=\"critical\"'")
        try:
            route_matchers = parse_matchers(raw_matchers)
        except ValueError as exc:
            raise ValueError(f"{path}.matchers{str(exc).removeprefix('matcher ')}") from None
        if parent is None and route_matchers:
            raise ValueError(f"{path}.matchers: the root route matches every alert and takes no matchers")
        continue_ = d.get("continue", False)
        if not isinstance(continue_, bool):
            raise ValueError(f"{path}.continue: expected true or false")
        if parent is None and continue_:
            raise ValueError(f"{path}.continue: the root route cannot continue")
        group_by = (
            _group_by(d["group_by"], f"{path}.group_by") if "group_by" in d else (parent.group_by if parent else ())
        )
        group_wait = _setting(
            d, "group_wait", parent.group_wait if parent else DEFAULT_GROUP_WAIT, path, positive=False
        )
        group_interval = _setting(
            d, "group_interval", parent.group_interval if parent else DEFAULT_GROUP_INTERVAL, path
        )
        repeat_interval = _setting(
            d, "repeat_interval", parent.repeat_interval if parent else DEFAULT_REPEAT_INTERVAL, path
        )
        shell = cls(receiver, route_matchers, group_by, group_wait, group_interval, repeat_interval, continue_)
        raw_routes = d.get("routes", [])
        if not isinstance(raw_routes, list):
            raise ValueError(f"{path}.routes: expected a list of routes")
        children = tuple(cls.from_dict(child, shell, path=f"{path}.routes[{i}]") for i, child in enumerate(raw_routes))
        return cls(receiver, route_matchers, group_by, group_wait, group_interval, repeat_interval, continue_, children)

    def route(self, labels: Mapping[str, str]) -> list[RouteMatch]:
        """Every route the alert reaches, in Alertmanager's order; empty only if the root does not match."""
        out: list[RouteMatch] = []
        self._collect(labels, "{}" if not self.matchers else format_matchers(self.matchers), "", out)
        return out

    def _collect(self, labels: Mapping[str, str], key: str, route_id: str, out: list[RouteMatch]) -> bool:
        if not matches(labels, self.matchers):
            return False
        before = len(out)
        for i, child in enumerate(self.routes):
            child_key = f"{key}/{format_matchers(child.matchers)}"
            if child._collect(labels, child_key, f"{child_key}/{i}", out) and not child.continue_:
                break
        if len(out) == before:
            out.append(self._match(labels, key, route_id or key))
        return True

    def _match(self, labels: Mapping[str, str], key: str, route_id: str) -> RouteMatch:
        if self.group_by == ALL:
            group_labels = dict(labels)
        else:
            group_labels = {name: labels[name] for name in self.group_by if name in labels}
        return RouteMatch(
            receiver=self.receiver,
            route_id=route_id,
            group_key=f"{key}:{format_labels(group_labels)}",
            group_labels=group_labels,
            group_wait=self.group_wait,
            group_interval=self.group_interval,
            repeat_interval=self.repeat_interval,
        )


def format_labels(labels: Mapping[str, str]) -> str:
    """`{desk="a", severity="critical"}`: sorted by name, as Alertmanager prints a label set."""
    return "{" + ", ".join(f"{name}={quote(labels[name])}" for name in sorted(labels)) + "}"


def parse_duration(value: object) -> float:
    """Seconds from a number or a duration string (`30s`, `5m`, `1h30m`, `250ms`, `0`): the config's own parser."""
    try:
        return float(Duration.parse(value))
    except ValueError as exc:
        raise ValueError(f"invalid duration {value!r}: {exc}") from None


def _setting(d: Mapping[str, Any], key: str, inherited: float, path: str, *, positive: bool = True) -> float:
    if key not in d:
        return inherited
    try:
        seconds = parse_duration(d[key])
    except ValueError as exc:
        raise ValueError(f"{path}.{key}: {exc}") from None
    if positive and seconds <= 0:
        raise ValueError(f"{path}.{key}: must be greater than zero")
    return seconds


def _group_by(value: object, path: str) -> GroupBy:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{path}: expected a list of label names, or ['...'] for all labels")
    if ALL in value:
        if len(value) != 1:
            raise ValueError(f"{path}: '...' groups by all labels and cannot be combined with other names")
        return ALL
    for i, name in enumerate(value):
        if not LABEL_NAME.fullmatch(name):
            raise ValueError(f"{path}[{i}]: invalid label name {name!r}")
    if len(set(value)) != len(value):
        raise ValueError(f"{path}: duplicate label names")
    return tuple(value)
