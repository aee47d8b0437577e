"""Why an order did not activate, as one of a fixed set of reasons (the activation watchdog's
failure counts and their metric label).

A venue states its refusals in free text ("Not enough funds", "market suspended"); a label of that
text would be unbounded, so each is read into the nearest fixed reason by the words it uses.
"""

from __future__ import annotations

import re
from enum import StrEnum

__all__ = ["FailureReason", "rejection_reason"]


class FailureReason(StrEnum):
    """Why an order did not activate, from a fixed set: the venue's words are free text."""

    INSUFFICIENT_BALANCE = "insufficient_balance"
    MARKET_CLOSED = "market_closed"
    ODDS_CHANGED = "odds_changed"
    STAKE_LIMIT = "stake_limit"
    DUPLICATE = "duplicate"
    UNKNOWN_ORDER = "unknown_order"  # the lookup: 404, or the venue still calls it pending
    LOOKUP_FAILED = "lookup_failed"  # the lookup erred or never answered
    OTHER = "other"


# First match wins; a word of the venue's reason (or status), lower case, starting with one of these.
_REJECTION_WORDS = (
    (("insufficient", "balance", "funds"), FailureReason.INSUFFICIENT_BALANCE),
    (("closed", "suspend", "wiped", "halted", "live"), FailureReason.MARKET_CLOSED),
    (("odds", "price", "line"), FailureReason.ODDS_CHANGED),
    (("stake", "limit", "exceed", "max", "min"), FailureReason.STAKE_LIMIT),
    (("duplicate", "already"), FailureReason.DUPLICATE),
)


def rejection_reason(venue_reason: str | None) -> FailureReason:
    words = re.findall(r"[a-z]+", (venue_reason or "").lower())
    for prefixes, reason in _REJECTION_WORDS:
        if any(word.startswith(prefixes) for word in words):
            return reason
    return FailureReason.OTHER
