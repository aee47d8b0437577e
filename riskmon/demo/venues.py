"""The five loopback simulators `riskmon demo` runs, and the webhook receiver its alerts go to,
started and stopped together."""

from __future__ import annotations

import asyncio

from riskmon.demo.sink import DemoWebhookSink
from riskmon.venues.mango_v3.simulator import MangoV3FillsSimulator, SimMarket
from riskmon.venues.mobula.simulator import MobulaPerpEventsSimulator
from riskmon.venues.phoenix.sim_frames import SimMarket as PhoenixMarket
from riskmon.venues.phoenix.simulator import PhoenixSimulator
from riskmon.venues.prophetx.simulator import ProphetXSimulator
from riskmon.venues.totalis.simulator import TotalisRfqSimulator

SOL = SimMarket("SOL-PERP", "31cKs646dt1YkA3zPyxZ7rUAkxTBz279w4XEobFXcAKP")
ETH = SimMarket("ETH-PERP", "9vDfKNPJkCvQv9bzR4JNTGciQC2RVHPVNMMHiVDgT1mw")

# Phoenix units (protocols.md §5.5): SOL 2 base-lot decimals and a 100 quote-lot tick, so a
# tick is $0.01 and 100 lots are 1 SOL; ETH 3 decimals and tick 100, so a tick is $0.1.
PHOENIX_SOL = PhoenixMarket("SOL", base_lots_decimals=2, tick_size=100)
PHOENIX_ETH = PhoenixMarket("ETH", base_lots_decimals=3, tick_size=100)
PHOENIX_AUTHORITY = "5ZWj7a1f8tWkjBESHKgrLmXshuXxqeY9SYcfbshpAqPG"

PROPHETX_ACCOUNT = "acct-demo"
TOTALIS_MM = "did:privy:mm-demo"
# The simulators' own credentials: the demo needs no real key.
_KEYS = {
    "RISKMON_DEMO_MOBULA_KEY": "demo-mobula-key",
    "RISKMON_DEMO_PROPHETX_ACCESS_KEY": "demo-access-key",
    "RISKMON_DEMO_PROPHETX_SECRET_KEY": "demo-secret-key",
    "RISKMON_DEMO_TOTALIS_KEY": "demo-totalis-key",
}


class DemoVenues:
    def __init__(self) -> None:
        self.mango = MangoV3FillsSimulator((SOL, ETH))
        self.mobula = MobulaPerpEventsSimulator(_KEYS["RISKMON_DEMO_MOBULA_KEY"])
        self.prophetx = ProphetXSimulator(
            _KEYS["RISKMON_DEMO_PROPHETX_ACCESS_KEY"],
            _KEYS["RISKMON_DEMO_PROPHETX_SECRET_KEY"],
            account_id=PROPHETX_ACCOUNT,
            # Every second, well inside demo.yaml's 4 s health_check_gap until the scenario stops it.
            health_check_interval=1.0,
        )
        self.totalis = TotalisRfqSimulator(_KEYS["RISKMON_DEMO_TOTALIS_KEY"], mm_id=TOTALIS_MM)
        self.phoenix = PhoenixSimulator(markets=[PHOENIX_SOL, PHOENIX_ETH], authorities=[PHOENIX_AUTHORITY])
        # Not a venue: where demo.yaml's webhook receiver delivers, so the delivery metrics have data.
        self.webhook = DemoWebhookSink()

    async def start(self) -> None:
        await asyncio.gather(
            self.mango.start(),
            self.mobula.start(),
            self.prophetx.start(),
            self.totalis.start(),
            self.phoenix.start(),
            self.webhook.start(),
        )

    async def stop(self) -> None:
        await asyncio.gather(
            self.mango.stop(),
            self.mobula.stop(),
            self.prophetx.stop(),
            self.totalis.stop(),
            self.phoenix.stop(),
            self.webhook.stop(),
            return_exceptions=True,
        )

    def environ(self) -> dict[str, str]:
        """What demo.yaml's `${...}` references resolve to."""
        return {
            **_KEYS,
            "RISKMON_DEMO_MANGO_URL": self.mango.url,
            "RISKMON_DEMO_MOBULA_URL": self.mobula.url,
            "RISKMON_DEMO_PROPHETX_URL": self.prophetx.rest_url,
            "RISKMON_DEMO_TOTALIS_WS_URL": self.totalis.ws_url,
            "RISKMON_DEMO_TOTALIS_REST_URL": self.totalis.rest_url,
            "RISKMON_DEMO_PHOENIX_URL": self.phoenix.url,
            "RISKMON_DEMO_WEBHOOK_URL": self.webhook.url,
        }

    def endpoints(self) -> dict[str, str]:
        return {
            "mango": self.mango.url,
            "mobula": self.mobula.url,
            "prophetx": self.prophetx.rest_url,
            "totalis": self.totalis.ws_url,
            "phoenix": self.phoenix.url,
        }

    async def wait_connected(self, timeout: float) -> None:  # noqa: ASYNC109 - a deadline for all five
        """Return once the monitor is connected and subscribed on every venue."""
        async with asyncio.timeout(timeout):
            await asyncio.gather(
                self.mango.wait_for_connections(1, timeout=timeout),
                self.mobula.wait_for_subscribed(1, timeout=timeout),
                self.prophetx.wait_for_subscribed(1, channel=self.prophetx.private_channel, timeout=timeout),
                self.totalis.wait_for_subscribed(1, timeout=timeout),
                # traderState, exchange, allMids and `market` for SOL and ETH.
                self.phoenix.wait_for_subscriptions(5, timeout=timeout),
            )
