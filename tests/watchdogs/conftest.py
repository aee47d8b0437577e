"""Shared builders for the watchdog tests: a monitor config with a ProphetX venue `px`, a Totalis
venue `tot` and a Mango venue `mango` (parsed from YAML text, as `riskmon check` would), and the
events the watchdogs react to, built directly.

pytest runs with `--import-mode=importlib`, which registers this module as
`tests.watchdogs.conftest`: import the builders with `from tests.watchdogs.conftest import ...`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import yaml

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.config import parse_config
from riskmon.config.schema import MonitorConfig
from riskmon.engine.engine import Engine
from riskmon.events import (
    Heartbeat,
    OrderIntake,
    OrderStatus,
    OrderUpdate,
    QuoteLeg,
    QuoteStatus,
    QuoteUpdate,
)

# A round unix time: annotations print times in UTC, and sums of small offsets stay exact.
T0 = 1_700_000_000.0

PX = "px"
TOT = "tot"
MANGO = "mango"
PX_ACCOUNT = "1001"  # the ProphetX user id of desk alpha
PX_MARKET = "10/20/30"  # sport_event_id/market_id/outcome_id, as the ProphetX codec names it
TOT_MM = "mm-alpha"  # desk alpha's Totalis market maker id
MANGO_ALPHA = "CGcrpkxyx92vjyQApsr1jTN6M5PeERKSEaH1zskzccRG"
MANGO_BETA = "3Ux4jMr9S5ZtUyuR9jPSj4oeZ25cFr3gh7J6XMwpuyjP"


def config_data(
    *,
    px: Mapping[str, Any] | None = None,
    tot: Mapping[str, Any] | None = None,
    mango: Mapping[str, Any] | None = None,
    desks: Mapping[str, Any] | None = None,
    **sections: Any,
) -> dict[str, Any]:
    """The config as plain data. `px`/`tot`/`mango` add to (or override) each venue's keys;
    `desks` replaces the desks; other keywords are top-level sections (`alerts`, `watchdogs`, ...).

    By default desk alpha holds an account on every venue (so it is the sole desk of `px` and
    `tot`) and desk beta only a Mango account.
    """
    venues: dict[str, Any] = {
        PX: {
            "kind": "prophetx",
            "rest_url": "http://127.0.0.1:1/partner",
            "access_key": "px-access-literal",
            "secret_key": "px-secret-literal",
            **(px or {}),
        },
        TOT: {"kind": "totalis_rfq", "api_key": "tot-key-literal", **(tot or {})},
        MANGO: {"kind": "mango_v3_fills", "urls": ["ws://127.0.0.1:9"], **(mango or {})},
    }
    default_desks: dict[str, Any] = {
        "alpha": {"accounts": {PX: [PX_ACCOUNT], TOT: [TOT_MM], MANGO: [MANGO_ALPHA]}},
        "beta": {"accounts": {MANGO: [MANGO_BETA]}},
    }
    return {
        "venues": venues,
        "desks": copy.deepcopy(dict(desks)) if desks is not None else default_desks,
        **sections,
    }


def config_text(**overrides: Any) -> str:
    """monitor.yaml text for `config_data(**overrides)`."""
    return yaml.safe_dump(config_data(**overrides), sort_keys=False)


def make_config(**overrides: Any) -> MonitorConfig:
    return parse_config(config_text(**overrides), "watchdogs.yaml", {})


def make_engine(**overrides: Any) -> Engine:
    return Engine(make_config(**overrides))


# ---- events ------------------------------------------------------------------------------------

# Each status in ProphetX's own word (protocols.md §3.3), as the codec keeps it in venue_status.
PX_WORDS = {
    OrderStatus.PENDING: "inactive",
    OrderStatus.OPEN: "open",
    OrderStatus.REJECTED: "invalid",
    OrderStatus.CANCELED: "canceled",
    OrderStatus.VOID: "void",
    OrderStatus.SETTLED: "settled",
}


def order(
    order_id: str,
    status: OrderStatus = OrderStatus.PENDING,
    *,
    sequence: int | None = 1,
    venue: str = PX,
    desk: str = "alpha",
    account: str = PX_ACCOUNT,
    market: str = PX_MARKET,
    reason: str | None = None,
    venue_ts: float = 0.0,
    worst_case_loss_usd: Decimal | None = None,
) -> OrderUpdate:
    """A ProphetX order update as the codec makes it (venue_status is ProphetX's word)."""
    return OrderUpdate(
        venue=venue,
        desk=desk,
        account=account,
        order_id=order_id,
        market=market,
        status=status,
        venue_status=PX_WORDS[status],
        sequence=sequence,
        venue_ts=venue_ts,
        reason=reason,
        worst_case_loss_usd=worst_case_loss_usd,
    )


def intake(order_id: str, placed_at: float | None = None, *, venue: str = PX, desk: str | None = None) -> OrderIntake:
    return OrderIntake(venue, order_id, placed_at, desk)


def quote(
    quote_id: str,
    status: QuoteStatus = QuoteStatus.ACCEPTED,
    *,
    rfq_id: str | None = "rfq-1",
    deadline: float | None = None,
    venue: str = TOT,
    desk: str = "alpha",
    account: str = TOT_MM,
    worst_case_loss_usd: Decimal | None = None,
    reason: str | None = None,
    legs: tuple[QuoteLeg, ...] = (),
) -> QuoteUpdate:
    """A Totalis quote update; `deadline` is the confirmation deadline (unix seconds)."""
    return QuoteUpdate(
        venue=venue,
        desk=desk,
        account=account,
        quote_id=quote_id,
        rfq_id=rfq_id,
        status=status,
        worst_case_loss_usd=worst_case_loss_usd,
        confirmation_deadline=deadline,
        reason=reason,
        legs=legs,
    )


def heartbeat(venue: str = PX, connection: str = "123.456", venue_ts: float | None = None) -> Heartbeat:
    return Heartbeat(venue, connection, venue_ts)


# ---- reading results ---------------------------------------------------------------------------

Brief = tuple[float, str, str, str, dict[str, str]]


def brief(transitions: Iterable[AlertTransition]) -> list[Brief]:
    """(ts, status, alertname, severity, labels without alertname/severity) of each transition."""
    return [
        (
            t.ts,
            t.status,
            t.alertname,
            t.severity,
            {k: v for k, v in t.labels.items() if k not in ("alertname", "severity")},
        )
        for t in transitions
    ]
