"""Wire encoders for the ProphetX simulator: Pusher frames, the triple-encoded event
envelope, channel names, HMAC signatures, book levels and malformed frames.

Written from protocols.md §3 only (never from the adapter's codec) so the two check each other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from decimal import Decimal
from typing import Any, Literal

__all__ = [
    "BROADCAST_CHANNEL",
    "HEALTH_PAYLOAD_B64",
    "MALFORMED_KINDS",
    "MalformedKind",
    "american_profit",
    "b64_json",
    "broadcast_frame",
    "default_line_id",
    "dumps",
    "envelope",
    "event_channel",
    "event_frame",
    "make_token",
    "malformed_frame",
    "private_channel",
    "pusher_frame",
    "selection_level",
    "sign",
    "subtype_channel",
]

# Service 3 / device type 5 as in the register-response example of §3.1 (newer doc
# tables show service=6; clients must read names from the response, never build them).
_PREFIX = "private-broadcast-service=3-device_type=5"
BROADCAST_CHANNEL = _PREFIX
HEALTH_PAYLOAD_B64 = "e30="  # base64 of "{}", as the real health_check carries

MalformedKind = Literal["not_json", "data_not_json", "payload_not_base64", "payload_not_json", "missing_info"]
MALFORMED_KINDS: tuple[MalformedKind, ...] = (
    "not_json",
    "data_not_json",
    "payload_not_base64",
    "payload_not_json",
    "missing_info",
)


def private_channel(account_id: str) -> str:
    return f"private-service=3-device_type=5-user={account_id}"


def event_channel(event_id: int | str) -> str:
    return f"{_PREFIX}-event={event_id}"


def subtype_channel(event_id: int | str, sub_type: str) -> str:
    return f"{_PREFIX}-event={event_id}-subtype={sub_type}"


def dumps(obj: object) -> str:
    # Compact, like the venue's frames; dict order is the field order emitted.
    return json.dumps(obj, separators=(",", ":"))


def sign(key: str, secret: str, message: str) -> str:
    """Pusher auth string: ``key:hex(HMAC-SHA256(secret, message))``."""
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    return f"{key}:{digest}"


def b64_json(obj: object) -> str:
    return base64.b64encode(dumps(obj).encode()).decode("ascii")


def pusher_frame(event: str, data: str | dict[str, Any], channel: str | None = None) -> str:
    """A Pusher protocol frame. ``data`` is usually a JSON *string* (Pusher double-encodes)."""
    frame: dict[str, Any] = {"event": event}
    if channel is not None:
        frame["channel"] = channel
    frame["data"] = data
    return dumps(frame)


def envelope(timestamp_ns: int, change_type: str, op: str, payload_b64: str) -> str:
    """The inner JSON string carried in ``data`` (second of the three encodings)."""
    return dumps({"timestamp": timestamp_ns, "change_type": change_type, "op": op, "payload": payload_b64})


def event_frame(event: str, channel: str, timestamp_ns: int, change_type: str, op: str, payload: object) -> str:
    """Frame -> data JSON string -> payload base64(JSON): the §3.2 triple encoding."""
    return pusher_frame(event, envelope(timestamp_ns, change_type, op, b64_json(payload)), channel)


def broadcast_frame(event: str, timestamp_ns: int, change_type: str, op: str, payload: object) -> str:
    return event_frame(event, BROADCAST_CHANNEL, timestamp_ns, change_type, op, payload)


def malformed_frame(kind: MalformedKind, channel: str, timestamp_ns: int) -> str:
    """A ``wagers`` frame broken at exactly one of the three encoding layers."""
    if kind == "not_json":
        return '{"event":"wagers","channel":"' + channel + '","data":"{\\"timest'  # cut short
    if kind == "data_not_json":
        return pusher_frame("wagers", "{timestamp: not json", channel)
    if kind == "payload_not_base64":
        return pusher_frame("wagers", envelope(timestamp_ns, "wager", "u", "!!not*base64!!"), channel)
    if kind == "payload_not_json":
        raw = base64.b64encode(b"{info: not json").decode("ascii")
        return pusher_frame("wagers", envelope(timestamp_ns, "wager", "u", raw), channel)
    if kind == "missing_info":
        return event_frame("wagers", channel, timestamp_ns, "wager", "u", {"wager": {"id": "0"}})
    raise ValueError(f"unknown malformed kind: {kind!r}")


def american_profit(stake: float, odds: int) -> float:
    """Profit if a stake at American ``odds`` wins, in USD rounded to cents."""
    s = Decimal(str(stake))
    profit = s * odds / 100 if odds > 0 else s * 100 / -odds
    return float(round(profit, 2))


def _taker_value(stake: float, odds: int) -> float:
    # The inverse of american_profit: the amount whose win at ``odds`` equals ``stake``.
    s = Decimal(str(stake))
    value = s * 100 / odds if odds > 0 else s * -odds / 100
    return float(round(value, 2))


def _display_line(line: float) -> str:
    return f"{line:+g}" if line else "0"


def selection_level(
    *,
    outcome_id: int,
    odds: int,
    stake: float,
    name: str = "",
    competitor_id: int = 0,
    line: float = 0.0,
    line_id: str | None = None,
    updated_at: int = 0,
) -> dict[str, Any]:
    """One book level shaped as in §3.2 ``market_selections``.

    [I] ``display_odds`` is the opposite side of ``odds`` and ``value`` is the taker's side
    of ``stake`` at those odds, as in the §3.2 example (odds 110, stake 110 -> "-110", 100.0).
    """
    return {
        "outcome_id": outcome_id,
        "name": name,
        "competitor_id": competitor_id,
        "line": line,
        "line_id": line_id if line_id is not None else default_line_id(outcome_id, line),
        "odds": odds,
        "display_odds": f"{-odds:+d}",
        "display_line": _display_line(line),
        "value": _taker_value(stake, odds),
        "stake": stake,
        "updated_at": updated_at,
    }


def default_line_id(outcome_id: int, line: float) -> str:
    # Real line ids are opaque hex strings; a stable hash keeps book and wagers in agreement.
    return hashlib.sha256(f"{outcome_id}:{line:g}".encode()).hexdigest()[:32]


def make_token(secret: str, claims: dict[str, Any]) -> str:
    """A JWT-shaped HS256 token (the real access token is a JWT); opaque to clients."""

    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(dumps(obj).encode()).rstrip(b"=").decode("ascii")

    head = f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}"
    mac = hmac.new(secret.encode(), head.encode(), hashlib.sha256).digest()
    return f"{head}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode('ascii')}"
