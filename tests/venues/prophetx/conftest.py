"""One ProphetX simulator per session test module (it takes ~0.2 s to stop)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from riskmon.venues.prophetx.simulator import ProphetXSimulator
from tests.venues.prophetx.helpers import ACCESS_KEY, ACCOUNT, APP_SECRET, SECRET_KEY, SIM_NOW
from tests.venues.session_harness import SimClock, started


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
