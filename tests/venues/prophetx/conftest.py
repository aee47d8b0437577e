"""One ProphetX simulator per session test module (it takes ~0.2 s to stop), and the codec the codec
tests drive with frames."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from riskmon.venues.prophetx.codec import ProphetXCodec
from riskmon.venues.prophetx.simulator import ProphetXSimulator
from tests.venues.prophetx.helpers import ACCESS_KEY, ACCOUNT, APP_SECRET, SECRET_KEY, SIM_NOW, VENUE
from tests.venues.session_harness import SimClock, started

CODEC_ACCOUNT = "7782"  # the account of the codec tests' frames (protocols.md's examples)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim() -> AsyncIterator[ProphetXSimulator]:
    """The desk's venue, no background health checks, on a fixed clock; test_simulator.py has its own."""
    simulator = ProphetXSimulator(
        ACCESS_KEY,
        SECRET_KEY,
        account_id=ACCOUNT,
        app_secret=APP_SECRET,
        health_check_interval=None,
        clock=SimClock(SIM_NOW),
    )
    async with started(simulator) as server:
        yield server


@pytest.fixture
def codec() -> ProphetXCodec:
    """A codec on a fresh connection, before the handshake: CODEC_ACCOUNT's orders go to desk alpha."""
    codec = ProphetXCodec(VENUE, {CODEC_ACCOUNT: "alpha"}, None)
    codec.connection_opened()
    return codec
