"""The typed shape of monitor.yaml.

Every struct forbids unknown fields, so a typo is an error that names the key rather than a
setting silently ignored. Venue sections are a union tagged by `kind`.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import msgspec

from riskmon.config.alerting import (
    ConsoleReceiver,
    DeliveryConfig,
    InhibitRuleConfig,
    ReceiverConfig,
    RuleConfig,
)
from riskmon.config.types import Duration, Secret

__all__ = ["ConsoleReceiver", "ReceiverConfig", "RuleConfig"]


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class MetricsConfig(_Section):
    # Per venue and metric family, the `market` (or `underlying`) label values exported; the
    # smallest exposures beyond it are summed into market="other", so cardinality stays bounded.
    max_markets: Annotated[int, msgspec.Meta(ge=1)] = 200


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = 9860
    # Write endpoints require `Authorization: Bearer <token>` when set.
    token: Secret | None = None
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)


class StateConfig(_Section):
    # SQLite file of the books, deadlines, silences and outbox: restored on start (riskmon.store.state).
    path: str = "riskmon.db"
    # Fill dedupe keys kept per venue stream, in memory and in the state file; the oldest go first.
    fill_retention: Annotated[int, msgspec.Meta(ge=1)] = 200_000

    @property
    def outbox_path(self) -> Path:
        """The notification outbox's own SQLite file beside the state file (riskmon.db ->
        riskmon.outbox.db): the delivery process writes it, so its commits never wait on a lock the
        engine's state writes hold."""
        state = Path(self.path)
        return state.with_name(f"{state.stem}.outbox{state.suffix}")


class Backoff(_Section):
    initial: Duration = Duration(0.5)
    max: Duration = Duration(30.0)


class MarketLots(_Section):
    """Per-market lot sizes that turn Mango's lots into UI units (protocols.md §1.4)."""

    base_lot_size: int
    quote_lot_size: int
    base_decimals: int
    quote_decimals: int = 6


class MangoV3FillsVenue(_Section, tag_field="kind", tag="mango_v3_fills", kw_only=True):
    urls: list[str]
    # Overrides and additions to the built-in mainnet lot sizes, by market name (e.g. SOL-PERP).
    markets: dict[str, MarketLots] = {}
    reconnect: Backoff = msgspec.field(default_factory=Backoff)
    max_frame_bytes: int = 4 * 1024 * 1024
    open_timeout: Duration = Duration(10.0)
    # A feed still down this long raises FeedDown (critical while a desk has exposure on it).
    feed_down_grace: Duration = Duration(15.0)


class MobulaPerpEventsVenue(_Section, tag_field="kind", tag="mobula_perp_events", kw_only=True):
    url: str = "wss://stream-perps-prod-eu.mobula.io/"
    api_key: Secret
    # Lighter is `lighter:304` on this stream (`lighter:301` belongs to the positions stream).
    chain_ids: list[str] = msgspec.field(default_factory=lambda: ["evm:42161", "evm:8453", "lighter:304"])
    # payload.name of the subscribe envelope: how the venue names this subscription.
    subscription_name: str = "riskmon-perp-events"
    ping_interval: Duration = Duration(30.0)
    # A ping not answered within this long means the socket is dead.
    pong_timeout: Duration = Duration(10.0)
    reconnect: Backoff = msgspec.field(default_factory=Backoff)
    max_frame_bytes: int = 1024 * 1024
    open_timeout: Duration = Duration(10.0)
    # A feed still down this long raises FeedDown (critical while a desk has exposure on it).
    feed_down_grace: Duration = Duration(15.0)


class ProphetXSubscription(_Section):
    type: str  # tournament | event | event_subtype
    ids: list[str] = []


class ProphetXVenue(_Section, tag_field="kind", tag="prophetx", kw_only=True):
    rest_url: str  # e.g. https://cash.api.prophetx.co/partner
    access_key: Secret
    secret_key: Secret
    # What the channel registration asks for (the v4 declarative subscription set).
    subscriptions: list[ProphetXSubscription] = []
    activation_timeout: Duration = Duration(10.0)
    health_check_gap: Duration = Duration(30.0)
    reconcile_interval: Duration = Duration(900.0)
    # The access token lives ~20 minutes; refresh well before.
    token_refresh: Duration = Duration(480.0)
    # Re-read the connection config this often; a change means reconnect (Talaria cutover).
    config_refresh: Duration = Duration(1800.0)
    # Client pusher:ping after this much silence when the server does not say (Pusher default).
    activity_timeout: Duration = Duration(120.0)
    pong_timeout: Duration = Duration(30.0)
    reconnect: Backoff = msgspec.field(default_factory=Backoff)
    max_frame_bytes: int = 4 * 1024 * 1024
    open_timeout: Duration = Duration(10.0)
    # A feed still down this long raises FeedDown (critical while a desk has exposure on it).
    feed_down_grace: Duration = Duration(15.0)
    rest_timeout: Duration = Duration(10.0)


class TotalisRfqVenue(_Section, tag_field="kind", tag="totalis_rfq", kw_only=True):
    ws_url: str = "wss://api.totalis.trade/ws"
    rest_url: str = "https://api.totalis.trade"
    api_key: Secret
    # RFQs to follow from the start (`rfq:{id}`); every RFQ of a quote accepted later is
    # followed without listing it here.
    rfq_ids: list[str] = []
    # Warn this long before an accepted quote's confirmation deadline (off when unset).
    confirmation_lead: Duration | None = None
    # Compare the quotes riskmon holds with GET /mm/quotes this often (also after every reconnect).
    reconcile_interval: Duration = Duration(900.0)
    ping_interval: Duration = Duration(30.0)
    pong_timeout: Duration = Duration(10.0)
    reconnect: Backoff = msgspec.field(default_factory=Backoff)
    max_frame_bytes: int = 1024 * 1024
    open_timeout: Duration = Duration(10.0)
    # A feed still down this long raises FeedDown (critical while a desk has exposure on it).
    feed_down_grace: Duration = Duration(15.0)
    rest_timeout: Duration = Duration(10.0)


class PhoenixMarketUnits(_Section):
    """Lot and tick sizes (protocols.md §5.5); normally read from the exchange channel."""

    base_lots_decimals: int
    tick_size: int  # tickSizeInQuoteLotsPerBaseLot


class PhoenixVenue(_Section, tag_field="kind", tag="phoenix", kw_only=True):
    url: str = "wss://perp-api.phoenix.trade/v1/ws"
    authority: str
    trader_pda_index: int = 0
    # Symbols whose `market` channel (mark prices) is subscribed; allMids covers the rest.
    symbols: list[str] = []
    # Overrides for the units the exchange channel reports, by symbol.
    markets: dict[str, PhoenixMarketUnits] = {}
    jwt: Secret | None = None
    # Transport pings: a pong missing for ping_interval + ping_timeout means a dead socket.
    ping_interval: Duration = Duration(20.0)
    ping_timeout: Duration = Duration(20.0)
    reconnect: Backoff = msgspec.field(default_factory=Backoff)
    max_frame_bytes: int = 4 * 1024 * 1024
    open_timeout: Duration = Duration(10.0)
    # A feed still down this long raises FeedDown (critical while a desk has exposure on it).
    feed_down_grace: Duration = Duration(15.0)


VenueConfig = MangoV3FillsVenue | MobulaPerpEventsVenue | ProphetXVenue | TotalisRfqVenue | PhoenixVenue


class NetNotionalLimit(_Section):
    # fnmatch pattern on the market name; the first pattern that matches a market applies.
    market: str
    max_usd: Decimal


class DeskLimits(_Section):
    max_net_notional_usd: list[NetNotionalLimit] = []
    max_gross_notional_usd: Decimal | None = None
    # Utilisation at which a warning fires before the critical breach at 1.0.
    warn_at: Decimal = Decimal("0.8")
    # An active limit alert clears only below this fraction of its threshold, so a position
    # sitting on the line does not flap.
    clear_at: Decimal = Decimal("0.95")
    pending_for: Duration = msgspec.field(default=Duration(0.0), name="for")
    # Accepted RFQ quotes not yet confirmed, summed at their worst-case loss.
    max_pending_rfq_usd: Decimal | None = None
    # Worst-case loss of the desk's bets and RFQ positions on any one event (market).
    max_worst_case_loss_usd: Decimal | None = None


class Desk(_Section):
    # venue name -> the desk's account ids on that venue (Mango: MangoAccount pubkeys).
    accounts: dict[str, list[str]]
    limits: DeskLimits = msgspec.field(default_factory=DeskLimits)
    # Rules that apply to this desk only: their alerts carry desk=<name>, and state names
    # (desk.*, market.*) are read for this desk alone.
    rules: list[RuleConfig] = []


class AlertsConfig(_Section):
    # How long a one-off alert (a fill revoke) stays firing before it resolves by itself.
    event_resolve_after: Duration = Duration(300.0)
    # Threshold and absent rules are re-evaluated at least this often: ages grow without events.
    evaluation_interval: Duration = Duration(1.0)


class WatchdogsConfig(_Section):
    # A difference between REST and the stream is drift only if the stream has not caught up
    # this long after the reconciliation read: a REST answer can overtake a frame in flight.
    drift_grace: Duration = Duration(5.0)


class FirmLimits(_Section):
    """Firm-wide limits, evaluated in Prometheus over every riskmon instance's metrics."""

    max_gross_notional_usd: Decimal | None = None
    # fnmatch pattern on the underlying (instrument) name; the first pattern that matches applies.
    max_net_notional_usd: list[NetNotionalLimit] = []
    max_pending_rfq_usd: Decimal | None = None
    max_worst_case_loss_usd: Decimal | None = None
    warn_at: Decimal = Decimal("0.8")
    pending_for: Duration = msgspec.field(default=Duration(0.0), name="for")


class FirmConfig(_Section):
    """Desks sharded over several riskmon instances: `riskmon export-rules` turns this into Prometheus rules."""

    # How many riskmon instances must report; fewer make every firm-wide sum too low.
    instances: int
    # The Prometheus scrape job of the riskmon instances.
    job: str = "riskmon"
    limits: FirmLimits = msgspec.field(default_factory=FirmLimits)


class MonitorConfig(_Section):
    venues: dict[str, VenueConfig]
    desks: dict[str, Desk]
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    state: StateConfig = msgspec.field(default_factory=StateConfig)
    alerts: AlertsConfig = msgspec.field(default_factory=AlertsConfig)
    watchdogs: WatchdogsConfig = msgspec.field(default_factory=WatchdogsConfig)
    receivers: dict[str, ReceiverConfig] = msgspec.field(default_factory=lambda: {"console": ConsoleReceiver()})
    rules: list[RuleConfig] = []
    # The routing tree (Alertmanager's `route`); None: every alert to every receiver at once.
    routes: dict[str, Any] | None = None
    # None: the default (a venue's FeedDown inhibits its absent-rule alerts); [] turns inhibition off.
    inhibit_rules: list[InhibitRuleConfig] | None = None
    delivery: DeliveryConfig = msgspec.field(default_factory=DeliveryConfig)
    # underlying -> {venue name: that venue's market}: SOL-PERP on Mango, SOL on Phoenix and
    # lighter-sol-usd on Mobula are one exposure, priced by the best mark any of them has.
    underlyings: dict[str, dict[str, str]] = {}
    # Firm-wide limits over several riskmon instances, exported as Prometheus rules; None: not sharded.
    firm: FirmConfig | None = None
