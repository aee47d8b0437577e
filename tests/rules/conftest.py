"""Shared builders for the rule tests: the watchdog tests' monitor config (ProphetX `px`, Totalis
`tot`, Mango `mango`; desk alpha on all three, desk beta on Mango only) plus a `rules:` section
and desk sections written as YAML text, parsed as `riskmon check` would, and the events rules
react to.

Import with `from tests.rules.conftest import ...` (pytest's importlib mode).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from riskmon.alerts.lifecycle import AlertTransition
from riskmon.config import parse_config
from riskmon.config.schema import MonitorConfig
from riskmon.engine.engine import Engine
from riskmon.events import FillReceived, Liquidity, MarkPrice, Side
from tests.watchdogs.conftest import MANGO, MANGO_ALPHA, MANGO_BETA, T0, config_text

__all__ = ["MANGO", "MANGO_ALPHA", "MANGO_BETA", "T0"]


def make_config(yaml_text: str = "", **overrides: Any) -> MonitorConfig:
    """The base config, with `yaml_text` (top-level sections such as `rules:`) appended."""
    return parse_config(config_text(**overrides) + textwrap.dedent(yaml_text), "rules.yaml", {})


def make_engine(yaml_text: str = "", **overrides: Any) -> Engine:
    return Engine(make_config(yaml_text, **overrides))


def desks_with(alpha: str = "", beta: str = "") -> dict[str, Any]:
    """The default desks; `alpha`/`beta` are extra YAML for each desk's section (rules, limits)."""
    import yaml

    desks: dict[str, Any] = {
        "alpha": {"accounts": {"px": ["1001"], "tot": ["mm-alpha"], MANGO: [MANGO_ALPHA]}},
        "beta": {"accounts": {MANGO: [MANGO_BETA]}},
    }
    for name, extra in (("alpha", alpha), ("beta", beta)):
        if extra:
            desks[name].update(yaml.safe_load(textwrap.dedent(extra)))
    return desks


_sequence = iter(range(1, 1_000_000))


def fill(
    qty: str,
    *,
    side: Side = Side.BUY,
    desk: str = "alpha",
    market: str = "SOL-PERP",
    key: str | None = None,
    price: str = "100",
) -> FillReceived:
    seq = next(_sequence)
    return FillReceived(
        venue=MANGO,
        desk=desk,
        account=MANGO_ALPHA if desk == "alpha" else MANGO_BETA,
        market=market,
        side=side,
        quantity=Decimal(qty),
        price=Decimal(price),
        fill_key=key or f"fill-{seq}",
        stream="queue",
        sequence=seq,
        liquidity=Liquidity.TAKER,
        fee_rate=Decimal(0),
        venue_ts=0.0,
    )


def mark(price: str, market: str = "SOL-PERP", venue: str = MANGO) -> MarkPrice:
    return MarkPrice(venue, market, Decimal(price), 0.0)


Brief = tuple[float, str, str, dict[str, str]]


def brief(transitions: Iterable[AlertTransition]) -> list[Brief]:
    """(ts, status, alertname, labels without alertname/severity/rule/rule_kind)."""
    hidden = ("alertname", "severity", "rule", "rule_kind")
    return [(t.ts, t.status, t.alertname, {k: v for k, v in t.labels.items() if k not in hidden}) for t in transitions]
