"""Checks of the venue, desk and underlying sections that types alone cannot make: stream and REST
URLs are usable, reconnect backoff is sane, every desk account is a well-formed account of a
configured venue that belongs to one desk only, limits are positive amounts and sane fractions.

Each problem is (key path, message) so the loader can point at the file line, in the order the
sections are checked: venues, state, desks (alerting comes next, then underlyings).
"""

from __future__ import annotations

import fnmatch
import re
from urllib.parse import urlsplit

import base58

from riskmon.config.alerting_checks import is_http_url
from riskmon.config.schema import MangoV3FillsVenue, MobulaPerpEventsVenue, MonitorConfig, PhoenixVenue

KeyPath = tuple[str | int, ...]
Problem = tuple[KeyPath, str]

_EVM_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def check_venues_and_desks(config: MonitorConfig) -> list[Problem]:
    problems: list[Problem] = []

    def issue(path: KeyPath, message: str) -> None:
        problems.append((path, message))

    for name, venue in config.venues.items():
        if isinstance(venue, MangoV3FillsVenue):
            if not venue.urls:
                issue(("venues", name, "urls"), "expected at least one websocket URL")
            for index, url in enumerate(venue.urls):
                if not _is_websocket_url(url):
                    issue(("venues", name, "urls", index), "expected a ws:// or wss:// URL with a host")
            for market, lots in venue.markets.items():
                for key in ("base_lot_size", "quote_lot_size"):
                    if getattr(lots, key) <= 0:
                        issue(("venues", name, "markets", market, key), "expected a positive integer")
        if isinstance(venue, PhoenixVenue):
            if not 0 <= venue.trader_pda_index <= 255:
                issue(("venues", name, "trader_pda_index"), "expected an integer from 0 to 255")
            if not _is_pubkey(venue.authority):
                issue(("venues", name, "authority"), "expected a base58 wallet public key (32 bytes)")
        if isinstance(venue, MobulaPerpEventsVenue):
            for index, chain in enumerate(venue.chain_ids):
                if chain == "lighter:301":
                    issue(
                        ("venues", name, "chain_ids", index),
                        "lighter:301 is the Perp Positions stream's id; this perp events stream uses lighter:304 "
                        "and silently drops 301, so no Lighter event would ever arrive",
                    )
            if not venue.chain_ids:
                issue(("venues", name, "chain_ids"), "expected at least one chain id")
        for key in ("url", "ws_url"):
            stream_url = getattr(venue, key, None)
            if isinstance(stream_url, str) and not _is_websocket_url(stream_url):
                issue(("venues", name, key), "expected a ws:// or wss:// URL with a host")
        rest_url = getattr(venue, "rest_url", None)
        if isinstance(rest_url, str) and not is_http_url(rest_url):
            issue(("venues", name, "rest_url"), "expected an http:// or https:// URL with a host")
        backoff = getattr(venue, "reconnect", None)
        if backoff is not None and (backoff.initial <= 0 or backoff.max < backoff.initial):
            issue(("venues", name, "reconnect"), "expected 0 < initial <= max")

    if config.state.fill_retention < 1024:
        # Far above any venue's replay window (Mango: 256), or a replayed fill could count twice.
        issue(("state", "fill_retention"), "expected at least 1024")

    owners: dict[tuple[str, str], str] = {}
    for desk_name, desk in config.desks.items():
        for venue_name, accounts in desk.accounts.items():
            desk_venue = config.venues.get(venue_name)
            path: KeyPath = ("desks", desk_name, "accounts", venue_name)
            if desk_venue is None:
                issue(path, f"no venue named `{venue_name}` under venues")
                continue
            for index, account in enumerate(accounts):
                # Mobula sends trader addresses lowercase; the same wallet in two cases is one account.
                normalized = account.lower() if isinstance(desk_venue, MobulaPerpEventsVenue) else account
                if isinstance(desk_venue, MangoV3FillsVenue) and not _is_pubkey(account):
                    issue((*path, index), "expected a base58 MangoAccount public key (32 bytes)")
                if isinstance(desk_venue, MobulaPerpEventsVenue) and not _EVM_ADDRESS.fullmatch(account):
                    issue((*path, index), "expected a wallet address: 0x and 40 hex digits")
                if isinstance(desk_venue, PhoenixVenue) and account != desk_venue.authority:
                    issue((*path, index), f"expected the venue's authority {desk_venue.authority}")
                owner = owners.setdefault((venue_name, normalized), desk_name)
                if owner != desk_name:
                    issue((*path, index), f"account already belongs to desk `{owner}`")
        limits = desk.limits
        limits_path: KeyPath = ("desks", desk_name, "limits")
        if not 0 < limits.warn_at <= 1:
            issue((*limits_path, "warn_at"), "expected a fraction in (0, 1]")
        if not 0 < limits.clear_at < 1:
            issue((*limits_path, "clear_at"), "expected a fraction in (0, 1)")
        for index, limit in enumerate(limits.max_net_notional_usd):
            if limit.max_usd <= 0:
                issue((*limits_path, "max_net_notional_usd", index, "max_usd"), "expected a positive amount")
            try:
                fnmatch.translate(limit.market)
            except re.error:  # pragma: no cover - fnmatch.translate accepts any string today
                issue((*limits_path, "max_net_notional_usd", index, "market"), "invalid pattern")
        if limits.max_gross_notional_usd is not None and limits.max_gross_notional_usd <= 0:
            issue((*limits_path, "max_gross_notional_usd"), "expected a positive amount")
    return problems


def check_underlyings(config: MonitorConfig) -> list[Problem]:
    """Every venue an underlying maps a market on is a configured venue."""
    return [
        (("underlyings", underlying, venue_name), f"no venue named `{venue_name}` under venues")
        for underlying, markets in config.underlyings.items()
        for venue_name in markets
        if venue_name not in config.venues
    ]


def _is_websocket_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return False
    return parts.scheme in ("ws", "wss") and bool(parts.hostname)


def _is_pubkey(text: str) -> bool:
    try:
        return len(base58.b58decode(text)) == 32
    except ValueError:
        return False
