"""Running a real `riskmon run` process in tests: a free loopback port, the process with its
log on a pipe, and waiting for a log line (the process's own word that it got somewhere)."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_riskmon(config: Path, log_level: str = "INFO") -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "riskmon",
        "--log-level",
        log_level,
        "run",
        "-c",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def wait_for_line(process: asyncio.subprocess.Process, needle: str) -> str:
    assert process.stderr is not None
    async with asyncio.timeout(20):
        while line := (await process.stderr.readline()).decode():
            if needle in line:
                return line
    raise AssertionError(f"riskmon exited before logging {needle!r}")
