"""Silences, in Alertmanager's model: label matchers and a time window that mute the alerts they match.

A silence mutes every alert whose labels match all its matchers while `starts_at <= now < ends_at`.
It is pending before its window, active inside it, expired after it. Expiring one sets `ends_at = now`;
an expired silence is kept (so operators can see what muted what) until `prune` drops it.

Pure: the caller passes `now`, persists what `add`/`expire` return, and re-evaluates muting at
`next_change(now)`. No clock, no I/O, no asyncio.
"""

from __future__ import annotations

import builtins
import math
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal

import msgspec

from riskmon.alerts.matchers import Matcher, matches, parse_matchers

SilenceState = Literal["active", "pending", "expired"]
SILENCE_STATES: tuple[SilenceState, ...] = ("active", "pending", "expired")

MAX_SILENCES = 10_000
MAX_MATCHERS = 32
MAX_CREATED_BY_CHARS = 200
MAX_COMMENT_CHARS = 2_000
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})
_COMMENT_WHITESPACE = frozenset("\n\t")


class SilenceError(ValueError):
    """A silence request that is refused; the message says why and is safe to show to the client."""


class UnknownSilence(SilenceError):
    """No silence has the id asked for."""


class Silence(msgspec.Struct, frozen=True, kw_only=True):
    """One silence. `matchers` are canonical Alertmanager matcher strings (`venue="mango"`)."""

    id: str
    matchers: tuple[str, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    created_at: float
    updated_at: float

    def state(self, now: float) -> SilenceState:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"


def _new_id() -> str:
    return str(uuid.uuid4())


class Silences:
    """The registry of silences. `id_factory` makes new ids (uuid4 text by default)."""

    def __init__(self, *, max_silences: int = MAX_SILENCES, id_factory: Callable[[], str] = _new_id) -> None:
        self._max = max_silences
        self._new_id = id_factory
        self._silences: dict[str, Silence] = {}
        # Parsed once: silenced_by runs for every alert transition.
        self._parsed: dict[str, tuple[Matcher, ...]] = {}

    def __len__(self) -> int:
        return len(self._silences)

    def add(
        self,
        matchers: Sequence[str | Matcher],
        *,
        starts_at: float | None,
        ends_at: float,
        created_by: str,
        comment: str,
        now: float,
    ) -> Silence:
        """A new silence, stored and returned; SilenceError when the request is not acceptable.

        A start in the past (or none) means now, as in Alertmanager.
        """
        parsed = _parse(matchers)
        start = now if starts_at is None else _finite("starts_at", starts_at)
        start = max(start, now)
        end = _finite("ends_at", ends_at)
        if end <= now:
            raise SilenceError("ends_at must be in the future")
        if end <= start:
            raise SilenceError("ends_at must be after starts_at")
        _check_text("created_by", created_by, MAX_CREATED_BY_CHARS, allowed=frozenset())
        _check_text("comment", comment, MAX_COMMENT_CHARS, allowed=_COMMENT_WHITESPACE)
        if len(self._silences) >= self._max:
            raise SilenceError(
                f"too many silences ({len(self._silences)} stored, expired ones included; the limit is {self._max}):"
                " expire unused ones and wait for expired ones to be pruned"
            )
        silence_id = self._new_id()
        if silence_id in self._silences:
            raise SilenceError(f"silence id {silence_id} is already taken")
        silence = Silence(
            id=silence_id,
            matchers=tuple(str(m) for m in parsed),
            starts_at=start,
            ends_at=end,
            created_by=created_by,
            comment=comment,
            created_at=now,
            updated_at=now,
        )
        self._put(silence, parsed)
        return silence

    def expire(self, silence_id: str, now: float) -> Silence:
        """End a silence now; an expired one is returned unchanged. UnknownSilence for an unknown id."""
        silence = self._silences.get(silence_id)
        if silence is None:
            raise UnknownSilence(f"no silence with id {silence_id!r}")
        if silence.state(now) == "expired":
            return silence
        # A pending silence ends before it starts: both ends move to now, so its window is empty.
        expired = msgspec.structs.replace(silence, starts_at=min(silence.starts_at, now), ends_at=now, updated_at=now)
        self._silences[silence_id] = expired
        return expired

    def get(self, silence_id: str) -> Silence | None:
        return self._silences.get(silence_id)

    def list(self, now: float, state: SilenceState | None = None) -> list[Silence]:
        """Active first (soonest end first), then pending (soonest start first), then expired (latest end first)."""
        if state is not None and state not in SILENCE_STATES:
            raise SilenceError(f"unknown silence state {state!r}; expected one of {', '.join(SILENCE_STATES)}")
        rank = {"active": 0, "pending": 1, "expired": 2}

        def order(s: Silence) -> tuple[int, float, str]:
            st = s.state(now)
            when = s.ends_at if st == "active" else s.starts_at if st == "pending" else -s.ends_at
            return rank[st], when, s.id

        chosen = [s for s in self._silences.values() if state is None or s.state(now) == state]
        return sorted(chosen, key=order)

    def silenced_by(self, labels: Mapping[str, str], now: float) -> builtins.list[str]:
        """Ids of the active silences that mute an alert with these labels, sorted."""
        return sorted(
            sid
            for sid, silence in self._silences.items()
            if silence.starts_at <= now < silence.ends_at and matches(labels, self._parsed[sid])
        )

    def next_change(self, now: float) -> float | None:
        """The next time a silence starts or ends after `now`: re-evaluate muting then."""
        upcoming = [t for s in self._silences.values() for t in (s.starts_at, s.ends_at) if t > now]
        return min(upcoming, default=None)

    def prune(self, now: float, keep_expired_for: float) -> builtins.list[str]:
        """Forget silences that expired at least `keep_expired_for` seconds ago; returns their ids."""
        gone = [sid for sid, s in self._silences.items() if s.ends_at + keep_expired_for <= now]
        for sid in gone:
            del self._silences[sid]
            del self._parsed[sid]
        return gone

    def load(self, silences: Iterable[Silence]) -> builtins.list[str]:
        """Restore stored silences (replacing any with the same id), past the limit if need be.

        A silence whose matchers no longer parse, or whose window is inverted, is skipped: the returned
        list says which and why, for the caller to log. A bad row must not stop the others loading.
        """
        skipped: builtins.list[str] = []
        for silence in silences:
            try:
                parsed = _parse(silence.matchers)
                if not silence.ends_at >= silence.starts_at:
                    raise SilenceError("ends_at is before starts_at")
            except SilenceError as exc:
                skipped.append(f"silence {silence.id}: {exc}")
                continue
            self._put(silence, parsed)
        return skipped

    def _put(self, silence: Silence, parsed: tuple[Matcher, ...]) -> None:
        self._silences[silence.id] = silence
        self._parsed[silence.id] = parsed


def _parse(matchers: Sequence[str | Matcher]) -> tuple[Matcher, ...]:
    if isinstance(matchers, str):
        raise SilenceError("matchers must be a list of matchers, not one string")
    if not matchers:
        raise SilenceError("a silence needs at least one matcher")
    if len(matchers) > MAX_MATCHERS:
        raise SilenceError(f"a silence has at most {MAX_MATCHERS} matchers, got {len(matchers)}")
    try:
        # A Matcher goes through its canonical text too, so the stored form always parses back.
        parsed = parse_matchers(str(m) if isinstance(m, Matcher) else m for m in matchers)
    except ValueError as exc:
        raise SilenceError(str(exc)) from None
    # As in Alertmanager: a silence whose every matcher matches the empty string would mute
    # every alert that lacks those labels, which is to say almost everything.
    if all(m.matches("") for m in parsed):
        raise SilenceError(
            "at least one matcher must not match the empty string, so that the silence cannot mute everything"
        )
    return parsed


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SilenceError(f"{name} must be a finite number of unix seconds")
    return float(value)


def _check_text(name: str, value: str, limit: int, *, allowed: frozenset[str]) -> None:
    if not isinstance(value, str) or not value.strip():
        raise SilenceError(f"{name} must be a non-empty string")
    if len(value) > limit:
        raise SilenceError(f"{name} is at most {limit} characters, got {len(value)}")
    for position, char in enumerate(value):
        if char not in allowed and unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            raise SilenceError(f"{name} has a control character (U+{ord(char):04X}) at position {position}")
