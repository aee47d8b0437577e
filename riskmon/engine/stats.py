"""Per-venue counters the engine keeps for metrics and replay summaries."""

from __future__ import annotations

from dataclasses import dataclass, field

from riskmon.events import DisconnectCause


@dataclass(slots=True)
class VenueStats:
    """Plain counters: metrics read them at scrape time instead of paying per event."""

    frames: int = 0
    events: int = 0
    fills: int = 0
    duplicates: int = 0
    revoked: int = 0
    revoke_unknown: int = 0
    voided: int = 0
    malformed: int = 0
    reconnects: int = 0  # connections lost after being up (rules: venue.reconnects)
    engine_errors: int = 0
    feed_up: bool = False
    last_frame_at: float | None = None
    liquidations: int = 0
    amendments: int = 0
    order_updates: int = 0
    stale_updates: int = 0
    quote_updates: int = 0
    rfq_position_updates: int = 0
    position_reports: int = 0
    sequence_gaps: int = 0
    subscription_errors: int = 0
    heartbeats: int = 0
    last_heartbeat_at: float | None = None
    book_updates: int = 0
    trades: int = 0
    # Every connection that ended (attempts that never came up included), by why: each is a reconnect.
    disconnects: dict[DisconnectCause, int] = field(default_factory=dict)

    def connection_ended(self, cause: DisconnectCause) -> bool:
        """Count a FeedDown; returns whether the feed was up until now."""
        was_up = self.feed_up
        if was_up:
            self.reconnects += 1
        self.feed_up = False
        self.disconnects[cause] = self.disconnects.get(cause, 0) + 1
        return was_up
