"""Running a real `riskmon run` process in tests: a free loopback port, the process with its log on a
pipe (or where the test wants it), waiting for a log line (the process's own word that it got
somewhere) or polling its HTTP API for a milestone, and the alerting sections of a monitor.yaml whose
webhook receiver counts notifications."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import httpx

from riskmon.asgi_server import AsgiServer

WAIT = 10.0  # the bound on one milestone; a passing run needs a fraction of it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def hook_alerting(hook: AsgiServer) -> str:
    """monitor.yaml sections sending each alert in a notification of its own, at once, to the started
    webhook receiver `hook` and retrying within 200 ms: a receiver can count episodes by idempotency key."""
    assert hook.port is not None, "start the receiver first"
    return f"""\
receivers:
  hook: {{kind: webhook, url: "http://127.0.0.1:{hook.port}/alerts"}}
routes:
  receiver: hook
  group_by: ["..."]
  group_wait: 0s
  group_interval: 100ms
  repeat_interval: 1h
delivery:
  retry_initial: 50ms
  retry_max: 200ms
"""


async def start_riskmon(
    config: Path,
    log_level: str = "INFO",
    *,
    stderr: int | IO[Any] = asyncio.subprocess.PIPE,
    launcher: Sequence[str] = ("-m", "riskmon"),
) -> asyncio.subprocess.Process:
    """`riskmon run -c config`; `launcher` may put a script that arms a fault before riskmon's CLI."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *launcher,
        "--log-level",
        log_level,
        "run",
        "-c",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=stderr,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def wait_for_line(process: asyncio.subprocess.Process, needle: str) -> str:
    assert process.stderr is not None
    async with asyncio.timeout(20):
        while line := (await process.stderr.readline()).decode():
            if needle in line:
                return line
    raise AssertionError(f"riskmon exited before logging {needle!r}")


async def poll(process: asyncio.subprocess.Process, condition: Callable[[], Awaitable[bool]]) -> None:
    """Wait for an observable of riskmon's (HTTP has no push); fails fast if riskmon died."""
    async with asyncio.timeout(WAIT):
        while not await condition():
            assert process.returncode is None, "riskmon exited"
            await asyncio.sleep(0.02)


async def ready(client: httpx.AsyncClient) -> bool:
    with contextlib.suppress(httpx.TransportError):
        return (await client.get("/readyz")).status_code == 200
    return False


async def sol_position(client: httpx.AsyncClient) -> Decimal | None:
    """The SOL-PERP position in GET /api/v1/exposure; None while riskmon does not answer or holds none."""
    with contextlib.suppress(httpx.TransportError):
        for row in (await client.get("/api/v1/exposure")).json().get("positions", []):
            if row.get("market") == "SOL-PERP":
                return Decimal(str(row["position"]))
    return None


async def sol_at(client: httpx.AsyncClient, expected: Decimal) -> bool:
    return await sol_position(client) == expected


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        await process.wait()
