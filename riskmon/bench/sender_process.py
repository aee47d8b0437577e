"""Start and talk to the frame server process (riskmon.bench.frame_server) from a benchmark."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import Any

_START_TIMEOUT = 120.0  # building a few hundred thousand frames on a busy machine


class SenderFailed(RuntimeError):
    pass


class FrameServerProcess:
    def __init__(self, process: asyncio.subprocess.Process, ready: dict[str, Any]) -> None:
        self._process = process
        self.ready = ready

    @property
    def port(self) -> int:
        return int(self.ready["port"])

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @classmethod
    async def start(cls, *args: str) -> FrameServerProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "riskmon.bench.frame_server",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        server = cls(process, {})
        try:
            server.ready = await server.next_record("ready", _START_TIMEOUT)
        except BaseException:
            await server.stop()
            raise
        return server

    async def next_record(self, event: str, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
        """The next line the server prints, which must be an `event` record."""
        assert self._process.stdout is not None
        try:
            line = await asyncio.wait_for(self._process.stdout.readline(), timeout)
        except TimeoutError:
            raise SenderFailed(f"the frame server said nothing for {timeout:g}s (waiting for {event!r})") from None
        if not line:
            raise SenderFailed(f"the frame server exited (code {await self._process.wait()}) before {event!r}")
        record: dict[str, Any] = json.loads(line)
        if record.get("event") != event or "error" in record:
            raise SenderFailed(f"the frame server sent {record!r}, expected {event!r}")
        return record

    async def stop(self) -> None:
        process = self._process
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 10.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
