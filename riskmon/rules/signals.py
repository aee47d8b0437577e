"""Signals: what event, rate and absent rules count, one per applied engine event.

The engine emits a signal only for an event it applied and had not seen before: a replayed fill,
a repeated liquidation or a stale order update is not news, so no rule counts it twice. It does
not even build one when no rule listens to the kind (the hot path serves ~400k events/s).

The labels each kind carries (`match` conditions and `group_by` read them), and its `value`:

| kind               | labels                                 | value                              |
|--------------------|----------------------------------------|------------------------------------|
| fill               | desk, venue, market, side              | quantity (base units)              |
| fill_revoked       | desk, venue, market                    | quantity reversed (base units)     |
| liquidation        | desk, venue, market                    | quantity, when the venue says      |
| order_rejected     | desk, venue, market, reason            | -                                  |
| position_error     | desk, venue, rfq                       | -                                  |
| subscription_error | venue, subscription, reason            | -                                  |
| sequence_gap       | venue, stream                          | updates missed                     |
| reconnect          | venue, reason (a feed that was up went down) | -                            |
| feed_down          | venue                                  | -                                  |
| feed_up            | venue                                  | -                                  |
| mark               | venue, market                          | price (USD per base unit)          |
| heartbeat          | venue                                  | -                                  |
| malformed          | venue, reason                          | -                                  |
| quote_accepted     | desk, venue, rfq                       | worst-case loss in USD, when known |
| trade              | venue, market                          | price (USD per base unit)          |

`reason` is free text from the venue: it can be matched (`{reason=~"insufficient.*"}`) but is not
in a kind's default `group_by`, so it never multiplies alert groups on its own.
"""

from __future__ import annotations

from decimal import Decimal
from typing import get_args

import msgspec

from riskmon.config.alerting import SignalKind


class Signal(msgspec.Struct, frozen=True):
    kind: SignalKind
    venue: str
    labels: dict[str, str]  # every label of SIGNAL_LABELS[kind], venue included
    value: Decimal | None = None


SIGNAL_KINDS: tuple[SignalKind, ...] = get_args(SignalKind)

SIGNAL_LABELS: dict[SignalKind, tuple[str, ...]] = {
    "fill": ("desk", "venue", "market", "side"),
    "fill_revoked": ("desk", "venue", "market"),
    "liquidation": ("desk", "venue", "market"),
    "order_rejected": ("desk", "venue", "market", "reason"),
    "position_error": ("desk", "venue", "rfq"),
    "subscription_error": ("venue", "subscription", "reason"),
    "sequence_gap": ("venue", "stream"),
    "reconnect": ("venue", "reason"),
    "feed_down": ("venue",),
    "feed_up": ("venue",),
    "mark": ("venue", "market"),
    "heartbeat": ("venue",),
    "malformed": ("venue", "reason"),
    "quote_accepted": ("desk", "venue", "rfq"),
    "trade": ("venue", "market"),
}

# Venue-written text: matchable, but never a grouping label by default (unbounded cardinality).
FREE_TEXT_LABELS = frozenset({"reason"})


def default_group_by(kind: SignalKind) -> tuple[str, ...]:
    return tuple(label for label in SIGNAL_LABELS[kind] if label not in FREE_TEXT_LABELS)
