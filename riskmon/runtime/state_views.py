"""What the read-only JSON API shows: exposure and active alerts, built from engine state. Pure.

Amounts are exact Decimals written as strings without exponent (`"1234.5"`), so a client never
loses a digit to a float; a notional without a mark, or a limit not configured, is null.
Utilisation is |value| / limit rounded to 6 decimal places, also as a string. Times are unix
seconds and RFC 3339 side by side. Nothing here reads config beyond desks and limits, so no
credential or receiver URL can reach a response.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

from riskmon.alerts.lifecycle import ActiveAlert
from riskmon.alerts.matchers import Matcher, matches
from riskmon.engine.engine import Engine
from riskmon.engine.exposure import ZERO, plain_decimal
from riskmon.notify.notifier import Notifier
from riskmon.notify.webhook import rfc3339

AlertState = Literal["pending", "firing"]
ALERT_STATES: tuple[AlertState, ...] = ("pending", "firing")
# Most urgent first; a severity outside the three known ones comes after them.
_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
_RATIO_PLACES = Decimal("0.000001")


class UnknownName(LookupError):
    """A filter names a desk or venue the monitor does not know; the message says which ones it does."""


def _amount(value: Decimal | None) -> str | None:
    return None if value is None else plain_decimal(value)


def _utilisation(value: Decimal | None, limit: Decimal | None) -> str | None:
    if value is None or limit is None or limit <= 0:
        return None
    return plain_decimal((abs(value) / limit).quantize(_RATIO_PLACES, rounding=ROUND_HALF_EVEN))


def _measure(value: Decimal | None, limit: Decimal | None) -> dict[str, str | None]:
    return {"value": _amount(value), "limit_usd": _amount(limit), "utilisation": _utilisation(value, limit)}


def _times(name: str, ts: float) -> dict[str, object]:
    return {name: ts, f"{name}_rfc3339": rfc3339(ts)}


def known_desks(engine: Engine) -> list[str]:
    """Configured desks and any the book holds positions for (e.g. `unassigned`)."""
    return sorted(set(engine.config.desks) | set(engine.book.desks()))


def _check(kind: str, name: str | None, known: Iterable[str]) -> None:
    names = sorted(known)
    if name is not None and name not in names:
        listed = ", ".join(names) if names else "none"
        raise UnknownName(f"no {kind} named {name!r}; known {kind}s: {listed}")


def exposure_view(
    engine: Engine, now: float, *, desk: str | None = None, venue: str | None = None
) -> dict[str, object]:
    """Positions, per-desk roll-ups with their limits, and firm totals. UnknownName for a bad filter.

    `desk` narrows everything to one desk. `venue` narrows the rows (positions, amounts at risk,
    and the underlyings listed for a desk) to that venue; the desk and firm totals stay whole,
    because they are what the limits compare.
    """
    _check("desk", desk, known_desks(engine))
    _check("venue", venue, set(engine.config.venues) | set(engine.stats))
    book = engine.book
    positions: list[dict[str, object]] = []
    for row in book.rows():
        key = row.key
        if (desk is not None and key.desk != desk) or (venue is not None and key.venue != venue):
            continue
        positions.append(
            {
                "desk": key.desk,
                "venue": key.venue,
                "account": key.account,
                "market": key.market,
                "underlying": book.instrument(key.venue, key.market),
                "position": plain_decimal(row.position),
                "mark": _amount(book.mark(key.venue, key.market)),
                "notional_usd": _amount(row.notional_usd),
            }
        )
    at_risk = [
        {
            "desk": r.key.desk,
            "venue": r.key.venue,
            "account": r.key.account,
            "market": r.key.market,
            "worst_case_loss_usd": plain_decimal(r.worst_case_loss_usd),
            "pending_rfq_usd": plain_decimal(r.pending_usd),
        }
        for r in book.risk_rows()
        if (desk is None or r.key.desk == desk) and (venue is None or r.key.venue == venue)
    ]
    # The underlyings a desk holds on the filtered venue: the ones its listing keeps.
    kept = {(r.key.desk, book.instrument(r.key.venue, r.key.market)) for r in book.rows() if r.key.venue == venue}
    desks = {
        name: _desk_view(engine, name, None if venue is None else kept)
        for name in known_desks(engine)
        if desk is None or name == desk
    }
    firm = {
        "gross_notional_usd": plain_decimal(book.firm_gross()),
        "pending_rfq_usd": plain_decimal(book.firm_pending()),
        "worst_case_loss_usd": plain_decimal(book.firm_worst_case_loss()),
        "open_positions": sum(book.desk_open_positions(name) for name in book.desks()),
    }
    return {
        **_times("generated_at", now),
        "filters": {"desk": desk, "venue": venue},
        "positions": positions,
        "at_risk": at_risk,
        "desks": desks,
        "firm": firm,
    }


def _desk_view(engine: Engine, desk: str, keep: set[tuple[str, str]] | None) -> dict[str, object]:
    book = engine.book
    desk_config = engine.config.desks.get(desk)
    limits = desk_config.limits if desk_config is not None else None
    nets: list[dict[str, object]] = []
    for owner, underlying, quantity, net in book.instrument_rows():
        if owner != desk or (keep is not None and (desk, underlying) not in keep):
            continue
        limit = engine.limits.net_limit(desk, underlying) if desk_config is not None else None
        nets.append(
            {
                "underlying": underlying,
                "position": plain_decimal(quantity),
                "net_notional_usd": _amount(net),
                "limit_usd": _amount(limit),
                "utilisation": _utilisation(net, limit),
            }
        )
    by_event = book.desk_worst_case_loss_by_event(desk)
    loss_limit = limits.max_worst_case_loss_usd if limits is not None else None
    worst = max(by_event.values(), default=ZERO)
    return {
        "configured": desk_config is not None,
        "net_by_underlying": nets,
        "gross_notional_usd": _measure(book.desk_gross(desk), limits.max_gross_notional_usd if limits else None),
        "pending_rfq_usd": _measure(book.desk_pending(desk), limits.max_pending_rfq_usd if limits else None),
        "worst_case_loss_usd": {
            "value": plain_decimal(book.desk_worst_case_loss(desk)),
            # The limit applies to each event on its own: utilisation is the worst event's.
            "limit_usd_per_event": _amount(loss_limit),
            "utilisation": _utilisation(worst, loss_limit),
            "by_event": [
                {"event": event, "value": plain_decimal(value), "utilisation": _utilisation(value, loss_limit)}
                for event, value in sorted(by_event.items())
            ],
        },
        "open_positions": book.desk_open_positions(desk),
    }


def alerts_view(
    engine: Engine,
    notifier: Notifier,
    now: float,
    *,
    state: AlertState | None = None,
    matchers: Sequence[Matcher] = (),
) -> dict[str, object]:
    """Active alerts (pending and firing) with their muting, in a stable order a reader can scan:
    firing before pending, then oldest first, then by alert name, then critical before warning
    before info, then by fingerprint.

    `muted` is the notifier's verdict (held back from receivers: silenced or inhibited);
    `silenced_by` lists the active silences matching the alert. The notifier does not expose
    inhibition sources, so `inhibited` is true for a muted alert no silence matches.
    """
    muted = {t.fingerprint for t in notifier.muted()}
    chosen = [
        alert
        for alert in engine.alerts.active()
        if (state is None or alert.state == state) and matches(alert.labels, matchers)
    ]
    chosen.sort(key=_alert_order)
    return {
        **_times("generated_at", now),
        "alerts": [_alert(alert, alert.fingerprint in muted, notifier, now) for alert in chosen],
    }


def _alert_order(alert: ActiveAlert) -> tuple[bool, float, str, int, str]:
    rank = _SEVERITY_ORDER.get(alert.severity, len(_SEVERITY_ORDER))
    return (alert.state != "firing", alert.active_since, alert.alertname, rank, alert.fingerprint)


def _alert(alert: ActiveAlert, is_muted: bool, notifier: Notifier, now: float) -> dict[str, object]:
    silenced_by = notifier.silences.silenced_by(alert.labels, now)
    starts_at = alert.fired_at if alert.fired_at is not None else alert.active_since
    return {
        "fingerprint": alert.fingerprint,
        "alertname": alert.alertname,
        "severity": alert.severity,
        "state": alert.state,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        # Alertmanager's startsAt: when it fired (pending: when it became active).
        "startsAt": rfc3339(starts_at),
        "startsAtUnix": starts_at,
        "activeAt": rfc3339(alert.active_since),
        "value": alert.value,
        "muted": is_muted,
        "silenced_by": silenced_by,
        "inhibited": is_muted and not silenced_by,
    }
