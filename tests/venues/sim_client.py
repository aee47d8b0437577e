"""What the simulator tests do as a venue's client: read the server's next frame, bounded in time."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection

from tests.venues.session_harness import TIMEOUT


async def recv_text(ws: ClientConnection) -> str:
    async with asyncio.timeout(TIMEOUT):
        text = await ws.recv()
    assert isinstance(text, str), "frames must be text"
    return text


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    """The next frame, which must be a JSON object."""
    frame = json.loads(await recv_text(ws))
    assert isinstance(frame, dict)
    return frame
