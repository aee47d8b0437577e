"""Fixtures for the tests that run the real Prometheus, promtool and Alertmanager.

`.ci/run` installs them from the operating system's packages (scripts/install-prometheus.sh).
When one is missing the test that needs it is skipped with a reason naming the program; it is
never passed silently.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.runtime.process_support import free_port

__all__ = ["Program", "free_port", "require_program", "wait_for_http"]

INSTALL_HINT = "bash scripts/install-prometheus.sh installs Debian's prometheus and prometheus-alertmanager"


def require_program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed ({INSTALL_HINT})")
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_program("promtool")


@pytest.fixture(scope="session")
def prometheus_program() -> str:
    return require_program("prometheus")


@pytest.fixture(scope="session")
def alertmanager_program() -> str:
    return require_program("prometheus-alertmanager")


@dataclass
class Program:
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_for_http(url: str, program: Program, timeout: float = 30.0) -> None:
    """Poll `url` until it answers 200. A real program has no event to await, so this is a
    bounded poll that fails early, with the program's output, if the program exits."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if program.process.poll() is not None:
                raise AssertionError(
                    f"{program.process.args!r} exited with {program.process.returncode}:\n{program.output()[-4000:]}"
                )
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer 200 within {timeout}s:\n{program.output()[-4000:]}")


@pytest.fixture
def start_program(tmp_path: Path) -> Iterator[Callable[..., Program]]:
    """Start a program with its output captured to a file; every program started is stopped at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*argv: str) -> Program:
        log = tmp_path / f"{Path(argv[0]).name}-{len(started)}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, cwd=tmp_path)
        started.append(process)
        return Program(process, log)

    yield start
    for process in started:
        process.terminate()
    for process in started:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
