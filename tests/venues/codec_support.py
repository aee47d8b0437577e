"""What the venue codec tests share."""

from __future__ import annotations

from collections.abc import Sequence

from riskmon.events import Event, FrameMalformed


def only_malformed(events: Sequence[Event]) -> str:
    """The reason of the one event a frame gave, which must be FrameMalformed."""
    (event,) = events
    assert isinstance(event, FrameMalformed)
    return event.reason
