"""A realistic mix of the five venues' frames, and the config of the desks that trade on them.

Proportions (`MIX`), by frame count. No venue publishes its message rates, so they are this
project's estimate of a firm trading all five at once, dominated by market data:

| venue    | share | what it is                                                                 |
|----------|-------|----------------------------------------------------------------------------|
| mango    | 35 %  | every fill on SOL-PERP (a mark price each), one in ten the desk's own      |
| phoenix  | 30 %  | allMids 40 %, market stats 20 %, public trades 30 %, desk traderState 10 % |
| mobula   | 20 %  | every trader's Gains trades and Lighter liquidations, 1 in 20 the desk's   |
| prophetx | 12 %  | order book (market_selections) 60 %, the desk's wager updates 38 %,        |
|          |       | health_check 2 %                                                           |
| totalis  | 3 %   | the market maker's quote lifecycle (accepted, confirmed, position events)  |

The frames are interleaved in a seeded random order, each venue's own frames staying in order.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from riskmon.bench.mango_feed import DESK_ACCOUNT, MANGO
from riskmon.bench.venue_frames import (
    MOBULA,
    MOBULA_DESK_WALLET,
    PHOENIX,
    PHOENIX_AUTHORITY,
    PROPHETX,
    PROPHETX_ACCOUNT,
    TOTALIS,
    TOTALIS_MM,
    MangoSource,
    MobulaSource,
    PhoenixSource,
    ProphetXSource,
    TotalisSource,
)
from riskmon.config import MonitorConfig, parse_config
from riskmon.venues.base import VenueCodec
from riskmon.venues.registry import build_codec

MIX: Mapping[str, float] = {MANGO: 0.35, PHOENIX: 0.30, MOBULA: 0.20, PROPHETX: 0.12, TOTALIS: 0.03}

_DEAD = "127.0.0.1:9"  # the pipeline benchmark never connects

SUITE_CONFIG = f"""
venues:
  {MANGO}: {{kind: mango_v3_fills, urls: ["ws://{_DEAD}"]}}
  {MOBULA}: {{kind: mobula_perp_events, url: "ws://{_DEAD}", api_key: bench, chain_ids: ["evm:42161", "lighter:304"]}}
  {PROPHETX}: {{kind: prophetx, rest_url: "http://{_DEAD}", access_key: bench, secret_key: bench}}
  {TOTALIS}: {{kind: totalis_rfq, ws_url: "ws://{_DEAD}", rest_url: "http://{_DEAD}", api_key: bench}}
  {PHOENIX}: {{kind: phoenix, url: "ws://{_DEAD}", authority: {PHOENIX_AUTHORITY}, symbols: [SOL, ETH]}}
underlyings:
  SOL: {{{MANGO}: SOL-PERP, {PHOENIX}: SOL}}
  ETH: {{{PHOENIX}: ETH, {MOBULA}: gains-eth-usd-usdc}}
desks:
  perp-desk:
    accounts:
      {MANGO}: [{DESK_ACCOUNT}]
      {PHOENIX}: [{PHOENIX_AUTHORITY}]
      {MOBULA}: ["{MOBULA_DESK_WALLET}"]
    limits:
      max_net_notional_usd: [{{market: "*", max_usd: 1000000000}}]
      max_gross_notional_usd: 5000000000
  bet-desk:
    accounts:
      {PROPHETX}: [{PROPHETX_ACCOUNT}]
      {TOTALIS}: ["{TOTALIS_MM}"]
    limits:
      max_worst_case_loss_usd: 1000000000
      max_pending_rfq_usd: 1000000000
rules:
  - {{kind: threshold, name: MarketNetHuge, when: "market.net_usd > 1e12", value: market.net_usd}}
  - {{kind: rate, name: FillStorm, event: fill, window: 1m, above: 1000000000}}
  - {{kind: event, name: DeskLiquidated, event: liquidation}}
"""


def suite_config() -> MonitorConfig:
    """Desks on every venue, net/gross/worst-case/pending limits and three rules (none fire on the mix)."""
    return parse_config(SUITE_CONFIG, "bench-suite.yaml", {})


class FrameSource(Protocol):
    venue: str

    def handshake(self, codec: VenueCodec) -> list[str]: ...

    async def frames(self, n: int) -> list[str]: ...


@dataclass(frozen=True)
class VenueMix:
    config: MonitorConfig
    handshakes: Mapping[str, list[str]]  # per venue: what a fresh codec sees first (untimed)
    frames: list[tuple[str, str]]  # (venue, text frame) in arrival order
    counts: Mapping[str, int]  # frames per venue
    build_s: float

    def fresh_codecs(self) -> dict[str, VenueCodec]:
        """Codecs as a new connection has them: opened, outbox drained (see `handshakes`)."""
        codecs = {}
        for venue in self.config.venues:
            codec = build_codec(self.config, venue)
            codec.connection_opened()
            codec.data_to_send()
            codecs[venue] = codec
        return codecs


def build_mix(total: int, seed: int = 0, config: MonitorConfig | None = None) -> VenueMix:
    """`total` frames in the `MIX` proportions, built by the venues' simulators."""
    return asyncio.run(_build(total, seed, config or suite_config()))


async def _build(total: int, seed: int, config: MonitorConfig) -> VenueMix:
    started = time.perf_counter()
    rng = random.Random(seed)  # noqa: S311 - a reproducible mix, not a secret
    sources: list[FrameSource] = [
        MangoSource(config, timestamp=int(time.time())),
        PhoenixSource(rng),
        MobulaSource(rng),
        ProphetXSource(rng),
        TotalisSource(),
    ]
    counts = {source.venue: round(total * MIX[source.venue]) for source in sources}
    counts[MANGO] += total - sum(counts.values())  # rounding
    handshakes: dict[str, list[str]] = {}
    per_venue: dict[str, list[str]] = {}
    for source in sources:
        codec = build_codec(config, source.venue)
        codec.connection_opened()
        codec.data_to_send()
        handshakes[source.venue] = source.handshake(codec)
        per_venue[source.venue] = await source.frames(counts[source.venue])
    order = [venue for venue, n in counts.items() for _ in range(n)]
    rng.shuffle(order)
    cursors = dict.fromkeys(counts, 0)
    frames: list[tuple[str, str]] = []
    for venue in order:
        frames.append((venue, per_venue[venue][cursors[venue]]))
        cursors[venue] += 1
    return VenueMix(config, handshakes, frames, counts, time.perf_counter() - started)
