"""Which desk owns what on a venue, as the config says."""

from __future__ import annotations

from riskmon.config.schema import MonitorConfig


def desk_accounts(config: MonitorConfig, venue: str) -> dict[str, str]:
    """account id -> desk, for one venue."""
    return {account: desk_name for desk_name, desk in config.desks.items() for account in desk.accounts.get(venue, ())}


def sole_desk(config: MonitorConfig, venue: str) -> str | None:
    """The desk a venue's private stream belongs to when exactly one desk lists the venue.

    Private channels (ProphetX orders, Totalis quotes) only carry our own login's objects, so
    with one desk on the venue an id the config does not list is still that desk's.
    """
    desks = [name for name, desk in config.desks.items() if venue in desk.accounts]
    return desks[0] if len(desks) == 1 else None
