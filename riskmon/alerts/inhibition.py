"""Inhibition, in Alertmanager's model: a firing source alert mutes the target alerts it explains.

A rule mutes a target when a FIRING source exists whose labels match `source`, the target's labels
match `target`, and both carry equal values (missing on both sides counts as equal) for every label
named in `equal`. An alert never inhibits itself: one that matches both sides needs another source.
The usual use: `VenueDown{venue="x"}` inhibits the staleness alerts of venue x.

`Inhibitor` keeps the firing sources indexed per rule by their `equal` values, so a check costs
O(rules), not O(firing alerts). Keep it current either incrementally (`fire`/`resolve` per alert
transition) or wholesale (`update` with every firing label set). Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from riskmon.alerts.fingerprints import fingerprint
from riskmon.alerts.matchers import LABEL_NAME, Matcher, format_matchers, matches, parse_matchers

_EqualKey = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class InhibitRule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    @classmethod
    def parse(cls, source_matchers: Iterable[str], target_matchers: Iterable[str], equal: Iterable[str]) -> InhibitRule:
        """A rule from config text; ValueError names the part that is wrong."""
        try:
            source = parse_matchers(source_matchers)
        except ValueError as exc:
            raise ValueError(f"source_matchers: {exc}") from None
        try:
            target = parse_matchers(target_matchers)
        except ValueError as exc:
            raise ValueError(f"target_matchers: {exc}") from None
        # Without matchers on a side, every alert is on that side: a rule that mutes everything
        # whenever anything fires is a config mistake, not an intent.
        if not source:
            raise ValueError("source_matchers: at least one matcher is required")
        if not target:
            raise ValueError("target_matchers: at least one matcher is required")
        names: list[str] = []
        for i, name in enumerate(equal):
            if not isinstance(name, str) or not LABEL_NAME.fullmatch(name):
                raise ValueError(f"equal [{i}]: {name!r} is not a label name")
            if name not in names:
                names.append(name)
        return cls(source, target, tuple(names))

    def key(self, labels: Mapping[str, str]) -> _EqualKey:
        return tuple(labels.get(name, "") for name in self.equal)

    def __str__(self) -> str:
        return f"{format_matchers(self.source)} inhibits {format_matchers(self.target)} on ({', '.join(self.equal)})"


class Inhibitor:
    """The firing sources of every rule, indexed by their `equal` values.

    Label sets are identified by `riskmon.alerts.fingerprints.fingerprint`, so pass the same full label
    set (alertname and severity included) that the alert tracker fingerprints.
    """

    def __init__(self, rules: Iterable[InhibitRule]) -> None:
        self.rules = tuple(rules)
        # Per rule: equal-values key -> fingerprints of the firing sources with that key.
        self._sources: list[dict[_EqualKey, set[str]]] = [{} for _ in self.rules]

    def update(self, firing: Iterable[Mapping[str, str]]) -> None:
        """Replace the firing set wholesale (at start-up, after a restore)."""
        self._sources = [{} for _ in self.rules]
        for labels in firing:
            self.fire(labels)

    def fire(self, labels: Mapping[str, str]) -> None:
        """An alert started firing: it may now inhibit others. Idempotent."""
        fp = fingerprint(labels)
        for rule, index in zip(self.rules, self._sources, strict=True):
            if matches(labels, rule.source):
                index.setdefault(rule.key(labels), set()).add(fp)

    def resolve(self, labels: Mapping[str, str]) -> None:
        """An alert resolved (or left the firing state): it inhibits nothing any more. Idempotent."""
        fp = fingerprint(labels)
        for rule, index in zip(self.rules, self._sources, strict=True):
            if not matches(labels, rule.source):
                continue
            key = rule.key(labels)
            bucket = index.get(key)
            if bucket is not None:
                bucket.discard(fp)
                if not bucket:
                    del index[key]

    def inhibited_by(self, labels: Mapping[str, str]) -> tuple[str, ...]:
        """Fingerprints of the firing sources that mute an alert with these labels, sorted; empty: not muted."""
        own = fingerprint(labels)
        sources: set[str] = set()
        for rule, index in zip(self.rules, self._sources, strict=True):
            if not index or not matches(labels, rule.target):
                continue
            bucket = index.get(rule.key(labels))
            if bucket:
                sources.update(fp for fp in bucket if fp != own)
        return tuple(sorted(sources))

    def is_inhibited(self, labels: Mapping[str, str]) -> bool:
        """Cheaper than `inhibited_by` when the caller needs only the verdict: stops at the first source."""
        own = fingerprint(labels)
        for rule, index in zip(self.rules, self._sources, strict=True):
            if not index or not matches(labels, rule.target):
                continue
            bucket = index.get(rule.key(labels))
            if bucket and (len(bucket) > 1 or own not in bucket):
                return True
        return False
