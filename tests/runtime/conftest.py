"""Fixtures the runtime tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from riskmon.venues.mango_v3.simulator import MangoV3FillsSimulator
from tests.runtime.mango_desk import SOL


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[MangoV3FillsSimulator]:
    """The Mango simulator serving SOL-PERP on loopback, started."""
    server = MangoV3FillsSimulator([SOL])
    await server.start()
    yield server
    await server.stop()
